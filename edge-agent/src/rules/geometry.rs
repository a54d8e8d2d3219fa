//! Geometry and similarity the rules share: zone polygons, foot points, great-circle
//! distance, and cosine similarity against float or quantised embeddings without allocating.

use sharpeyes_wire::QEmbedding;

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

/// A borrowed face embedding, as floats or as it travels (quantised); either way compared
/// without allocating. It need not be normalised.
#[derive(Debug, Clone, Copy)]
pub enum EmbeddingRef<'a> {
    /// Float values.
    F32(&'a [f32]),
    /// Quantised values (e.g. a track's best face as kept for publishing).
    Quantized(&'a QEmbedding),
}

impl<'a> From<&'a [f32]> for EmbeddingRef<'a> {
    fn from(v: &'a [f32]) -> Self {
        EmbeddingRef::F32(v)
    }
}

impl<'a> From<&'a QEmbedding> for EmbeddingRef<'a> {
    fn from(v: &'a QEmbedding) -> Self {
        EmbeddingRef::Quantized(v)
    }
}

impl EmbeddingRef<'_> {
    /// Number of dimensions.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingRef::F32(v) => v.len(),
            EmbeddingRef::Quantized(q) => q.len(),
        }
    }

    /// Whether it has no dimensions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dot product with `other` (same length assumed; extra values are ignored).
    fn dot(&self, other: &[f32]) -> f32 {
        match self {
            EmbeddingRef::F32(v) => v.iter().zip(other).map(|(a, b)| a * b).sum(),
            EmbeddingRef::Quantized(q) => {
                let s: f32 =
                    q.q.iter()
                        .zip(other)
                        .map(|(&a, b)| f32::from(a as i8) * b)
                        .sum();
                s * q.scale
            }
        }
    }

    /// Euclidean norm.
    fn norm(&self) -> f32 {
        match self {
            EmbeddingRef::F32(v) => v.iter().map(|a| a * a).sum::<f32>().sqrt(),
            EmbeddingRef::Quantized(q) => {
                let s: f32 = q.q.iter().map(|&a| f32::from(a as i8).powi(2)).sum();
                s.sqrt() * q.scale.abs()
            }
        }
    }

    /// `1 / norm`, when the embedding is usable (non-empty, finite, not all zero).
    pub(crate) fn inverse_norm(&self) -> Option<f32> {
        let n = self.norm();
        (n.is_finite() && n > 0.0 && !self.is_empty()).then(|| 1.0 / n)
    }

    /// Cosine similarity with a unit vector `unit` of the same length, given this embedding's
    /// [`inverse_norm`](Self::inverse_norm).
    pub(crate) fn cosine_with_unit(&self, unit: &[f32], inverse_norm: f32) -> Option<f32> {
        if unit.len() != self.len() {
            return None;
        }
        let c = self.dot(unit) * inverse_norm;
        c.is_finite().then_some(c)
    }

    /// Cosine similarity with a unit vector of the same length; `None` when either is empty,
    /// the lengths differ or a value is not finite.
    pub fn cosine(&self, unit: &[f32]) -> Option<f32> {
        self.cosine_with_unit(unit, self.inverse_norm()?)
    }

    /// Replaces `out` with the L2-normalised values (reusing its memory); false (and `out`
    /// empty) when the embedding is unusable.
    pub(crate) fn write_unit(&self, out: &mut Vec<f32>) -> bool {
        out.clear();
        let Some(inv) = self.inverse_norm() else {
            return false;
        };
        match self {
            EmbeddingRef::F32(v) => out.extend(v.iter().map(|a| a * inv)),
            EmbeddingRef::Quantized(q) => {
                let k = q.scale * inv;
                out.extend(q.q.iter().map(|&a| f32::from(a as i8) * k));
            }
        }
        if out.iter().all(|v| v.is_finite()) {
            true
        } else {
            out.clear();
            false
        }
    }
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

    #[test]
    fn cosine_of_float_and_quantised_embeddings_agree() {
        let v: Vec<f32> = (0..128).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w: Vec<f32> = (0..128).map(|i| ((i as f32) * 0.11).cos()).collect();
        let mut unit = Vec::new();
        assert!(EmbeddingRef::F32(&w).write_unit(&mut unit));
        let q = QEmbedding::quantize(&v);
        let (a, b) = (
            EmbeddingRef::F32(&v).cosine(&unit).unwrap(),
            EmbeddingRef::Quantized(&q).cosine(&unit).unwrap(),
        );
        assert!((a - b).abs() < 0.01, "{a} vs {b}");
        let mut self_unit = Vec::new();
        assert!(EmbeddingRef::Quantized(&q).write_unit(&mut self_unit));
        let c = EmbeddingRef::F32(&v).cosine(&self_unit).unwrap();
        assert!(c > 0.999, "{c}");
        // Unusable: zero, NaN, empty, other length.
        assert!(EmbeddingRef::F32(&[0.0; 128]).cosine(&unit).is_none());
        assert!(EmbeddingRef::F32(&[f32::NAN; 128]).cosine(&unit).is_none());
        assert!(EmbeddingRef::F32(&[]).cosine(&[]).is_none());
        assert!(EmbeddingRef::F32(&v[..64]).cosine(&unit).is_none());
        assert!(!EmbeddingRef::F32(&[f32::INFINITY, 1.0]).write_unit(&mut unit));
        assert!(unit.is_empty());
    }
}
