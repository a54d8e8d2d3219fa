//! Geometry the rules share: zone polygons, foot points, great-circle distance.

/// A zone outline in pixels with its bounding box (a cheap first test).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Polygon {
    pts: Vec<[f32; 2]>,
    /// `[x1, y1, x2, y2]` of the vertices.
    bbox: [f32; 4],
}

impl Polygon {
    /// The polygon of `pts` (validated by the config: 3+ finite vertices).
    pub(crate) fn new(pts: &[[f32; 2]]) -> Self {
        let mut bbox = [f32::INFINITY, f32::INFINITY, -f32::INFINITY, -f32::INFINITY];
        for p in pts {
            bbox = [
                bbox[0].min(p[0]),
                bbox[1].min(p[1]),
                bbox[2].max(p[0]),
                bbox[3].max(p[1]),
            ];
        }
        Self {
            pts: pts.to_vec(),
            bbox,
        }
    }

    /// Whether `p` is inside (even-odd rule; points on an edge may go either way). Non-finite
    /// points and empty polygons are outside.
    pub(crate) fn contains(&self, [x, y]: [f32; 2]) -> bool {
        let b = &self.bbox;
        if !(x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]) {
            return false;
        }
        let Some(&last) = self.pts.last() else {
            return false;
        };
        let mut inside = false;
        let mut prev = last;
        for &cur in &self.pts {
            let ([xi, yi], [xj, yj]) = (cur, prev);
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            prev = cur;
        }
        inside
    }
}

/// The bottom centre of a box `[x1, y1, x2, y2]`: where a standing person touches the ground.
pub(crate) fn foot_point(b: &[f32; 4]) -> [f32; 2] {
    [(b[0] + b[2]) / 2.0, b[3]]
}

/// Whether every coordinate of a box is finite.
pub(crate) fn finite_box(b: &[f32; 4]) -> bool {
    b.iter().all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_contains_by_even_odd_rule() {
        // An L shape: the notch at the top right is outside.
        let l = Polygon::new(&[
            [0.0, 0.0],
            [10.0, 0.0],
            [10.0, 5.0],
            [20.0, 5.0],
            [20.0, 10.0],
            [0.0, 10.0],
        ]);
        assert!(l.contains([5.0, 5.0]));
        assert!(l.contains([15.0, 7.0]));
        assert!(!l.contains([15.0, 2.0]), "the notch");
        assert!(!l.contains([25.0, 7.0]));
        assert!(!l.contains([f32::NAN, 5.0]));
        assert!(!l.contains([f32::INFINITY, 5.0]));
        assert!(!Polygon::new(&[]).contains([0.0, 0.0]));
        assert_eq!(foot_point(&[10.0, 20.0, 30.0, 100.0]), [20.0, 100.0]);
    }
}
