//! Geometric crops out of frames.
//!
//! Faces: the similarity transform (rotation, uniform scale, translation; no reflection) that
//! best maps five detected landmarks onto the ArcFace 112×112 template (Umeyama's least
//! squares, closed form in 2-D), and the bilinear warp through it.
//!
//! Plates: the perspective transform (homography) that maps a plate's four detected corners
//! onto an upright rectangle, and the bilinear warp that rectifies the plate through it.

use super::BgrImage;

/// ArcFace 112×112 template: right eye, left eye (image-left first), nose, mouth corners.
pub const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// `[[a, -b, tx], [b, a, ty]]`: maps image points onto template points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    a: f32,
    b: f32,
    tx: f32,
    ty: f32,
}

impl Similarity {
    /// The least-squares similarity mapping `src` points onto `dst` points.
    /// None if the source points coincide (no scale can be estimated).
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Self> {
        let n = src.len().min(dst.len()) as f32;
        if n < 2.0 {
            return None;
        }
        let mean = |p: &[[f32; 2]]| {
            let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0], y + q[1]));
            (sx / n, sy / n)
        };
        let (mx, my) = mean(src);
        let (mu, mv) = mean(dst);
        let (mut num_a, mut num_b, mut den) = (0.0f32, 0.0f32, 0.0f32);
        for (s, d) in src.iter().zip(dst) {
            let (x, y) = (s[0] - mx, s[1] - my);
            let (u, v) = (d[0] - mu, d[1] - mv);
            num_a += x * u + y * v;
            num_b += x * v - y * u;
            den += x * x + y * y;
        }
        if den <= f32::EPSILON {
            return None;
        }
        let (a, b) = (num_a / den, num_b / den);
        Some(Self {
            a,
            b,
            tx: mu - (a * mx - b * my),
            ty: mv - (b * mx + a * my),
        })
    }

    /// Maps an image point to the template.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// Maps a template point back to the image.
    pub fn invert(&self, q: [f32; 2]) -> [f32; 2] {
        let s2 = self.a * self.a + self.b * self.b;
        let (u, v) = (q[0] - self.tx, q[1] - self.ty);
        [
            (self.a * u + self.b * v) / s2,
            (-self.b * u + self.a * v) / s2,
        ]
    }

    /// Scale factor (template pixels per image pixel).
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Warps `img` through `m` into a `size`×`size` crop, written as planar **RGB** floats
/// (0..255, NCHW order: all R, then G, then B) into `out` (resized to `3·size²`).
/// Pixels that fall outside the image are 0.
pub fn warp_rgb_planar(img: &BgrImage, m: &Similarity, size: usize, out: &mut Vec<f32>) {
    let plane = size * size;
    out.clear();
    out.resize(3 * plane, 0.0);
    let (w, h) = (img.width as i64, img.height as i64);
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            img.data[((y * w + x) * 3) as usize + c] as f32
        }
    };
    for v in 0..size {
        for u in 0..size {
            let [x, y] = m.invert([u as f32, v as f32]);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let i = v * size + u;
            // BGR source, RGB planes: R is channel 2, B is channel 0.
            for (plane_idx, c) in [(0usize, 2usize), (1, 1), (2, 0)] {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bot = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                out[plane_idx * plane + i] = top * (1.0 - fy) + bot * fy;
            }
        }
    }
}

/// A plane perspective transform: `[x', y', w'] = H · [x, y, 1]`, row-major, `h[8] = 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    h: [f64; 9],
}

impl Homography {
    /// The transform mapping the four `src` points onto the four `dst` points (direct linear
    /// transform, solved exactly). None when three of the points are collinear.
    pub fn from_points(src: &[[f32; 2]; 4], dst: &[[f32; 2]; 4]) -> Option<Self> {
        // Unknowns h0..h7; each correspondence gives two rows of the 8×8 system.
        let mut a = [[0f64; 9]; 8];
        for (k, (s, d)) in src.iter().zip(dst).enumerate() {
            let (x, y) = (s[0] as f64, s[1] as f64);
            let (u, v) = (d[0] as f64, d[1] as f64);
            a[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        // Gaussian elimination with partial pivoting on the augmented matrix.
        for col in 0..8 {
            let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
            if a[pivot][col].abs() < 1e-10 {
                return None;
            }
            a.swap(col, pivot);
            let pivot_row = a[col];
            for (r, row) in a.iter_mut().enumerate() {
                let f = row[col] / pivot_row[col];
                if r != col && f != 0.0 {
                    for (v, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                        *v -= f * p;
                    }
                }
            }
        }
        let mut h = [0f64; 9];
        for (i, row) in a.iter().enumerate() {
            h[i] = row[8] / row[i];
        }
        h[8] = 1.0;
        h.iter().all(|v| v.is_finite()).then_some(Self { h })
    }

    /// Maps a point; None where it goes to infinity.
    pub fn apply(&self, p: [f32; 2]) -> Option<[f32; 2]> {
        let (x, y) = (p[0] as f64, p[1] as f64);
        let h = &self.h;
        let w = h[6] * x + h[7] * y + h[8];
        if w.abs() < 1e-12 {
            return None;
        }
        Some([
            ((h[0] * x + h[1] * y + h[2]) / w) as f32,
            ((h[3] * x + h[4] * y + h[5]) / w) as f32,
        ])
    }
}

/// Rectifies the quadrilateral `corners` of `img` (top-left, top-right, bottom-right,
/// bottom-left) into an upright `width`×`height` BGR image, bilinearly. Pixels that fall
/// outside the image take the nearest edge pixel. None for a degenerate quadrilateral.
pub fn warp_quad(
    img: &BgrImage,
    corners: &[[f32; 2]; 4],
    width: u32,
    height: u32,
) -> Option<BgrImage> {
    let (ow, oh) = (width.max(1), height.max(1));
    let rect = [
        [0.0, 0.0],
        [ow as f32, 0.0],
        [ow as f32, oh as f32],
        [0.0, oh as f32],
    ];
    // Output pixel centres map back into the image.
    let back = Homography::from_points(&rect, corners)?;
    let (w, h) = (img.width as usize, img.height as usize);
    let mut data = Vec::with_capacity(ow as usize * oh as usize * 3);
    for v in 0..oh {
        for u in 0..ow {
            let [x, y] = back
                .apply([u as f32 + 0.5, v as f32 + 0.5])
                .unwrap_or([-1.0, -1.0]);
            let x = (x - 0.5).clamp(0.0, (w - 1) as f32);
            let y = (y - 0.5).clamp(0.0, (h - 1) as f32);
            let (x0, y0) = (x as usize, y as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            for c in 0..3 {
                let p = |xx: usize, yy: usize| img.data[(yy * w + xx) * 3 + c] as f32;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                data.push((top * (1.0 - fy) + bot * fy).round() as u8);
            }
        }
    }
    BgrImage::new(ow, oh, data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        // Rotate 30°, scale 0.5, translate (10, -4).
        let (c, s) = (
            30f32.to_radians().cos() * 0.5,
            30f32.to_radians().sin() * 0.5,
        );
        let src: Vec<[f32; 2]> = ARCFACE_112
            .iter()
            .map(|p| [p[0] * 3.0 + 100.0, p[1] * 3.0 + 50.0])
            .collect();
        let dst: Vec<[f32; 2]> = src
            .iter()
            .map(|p| [c * p[0] - s * p[1] + 10.0, s * p[0] + c * p[1] - 4.0])
            .collect();
        let m = Similarity::estimate(&src, &dst).unwrap();
        assert!((m.scale() - 0.5).abs() < 1e-4);
        for (p, q) in src.iter().zip(&dst) {
            let r = m.apply(*p);
            assert!((r[0] - q[0]).abs() < 1e-3 && (r[1] - q[1]).abs() < 1e-3);
            let back = m.invert(*q);
            assert!((back[0] - p[0]).abs() < 1e-2 && (back[1] - p[1]).abs() < 1e-2);
        }
    }

    #[test]
    fn degenerate_points_are_refused() {
        assert!(Similarity::estimate(&[[1.0, 1.0]; 5], &ARCFACE_112).is_none());
    }

    #[test]
    fn warp_of_identity_copies_pixels_as_rgb() {
        let mut data = vec![0u8; 4 * 4 * 3];
        data[(4 + 2) * 3] = 10; // pixel (x=2, y=1): B = 10
        data[(4 + 2) * 3 + 2] = 200; // R = 200
        let img = BgrImage::new(4, 4, data).unwrap();
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        let mut out = Vec::new();
        warp_rgb_planar(&img, &id, 4, &mut out);
        assert_eq!(out[4 + 2], 200.0, "R plane");
        assert_eq!(out[2 * 16 + 4 + 2], 10.0, "B plane");
    }

    #[test]
    fn homography_maps_the_four_points_and_refuses_degenerate_ones() {
        let src = [[10.0, 20.0], [110.0, 25.0], [105.0, 60.0], [12.0, 55.0]];
        let dst = [[0.0, 0.0], [200.0, 0.0], [200.0, 64.0], [0.0, 64.0]];
        let h = Homography::from_points(&src, &dst).unwrap();
        for (s, d) in src.iter().zip(&dst) {
            let p = h.apply(*s).unwrap();
            assert!(
                (p[0] - d[0]).abs() < 1e-3 && (p[1] - d[1]).abs() < 1e-3,
                "{p:?} vs {d:?}"
            );
        }
        let line = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert!(Homography::from_points(&line, &dst).is_none());
    }

    #[test]
    fn warp_quad_rectifies_a_tilted_patch() {
        // A white parallelogram on black; rectified, the crop is nearly all white.
        let (w, h) = (200u32, 120u32);
        let corners = [[40.0, 30.0], [160.0, 40.0], [150.0, 90.0], [30.0, 80.0]];
        let inside = |x: f32, y: f32| {
            // Inside when on the same side of all four edges.
            (0..4).all(|i| {
                let a: [f32; 2] = corners[i];
                let b: [f32; 2] = corners[(i + 1) % 4];
                (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) >= 0.0
            })
        };
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = if inside(x as f32 + 0.5, y as f32 + 0.5) {
                    255
                } else {
                    0
                };
                data.extend([v, v, v]);
            }
        }
        let img = BgrImage::new(w, h, data).unwrap();
        let crop = warp_quad(&img, &corners, 60, 20).unwrap();
        assert_eq!((crop.width, crop.height), (60, 20));
        let mean = crop.data.iter().map(|&v| v as f64).sum::<f64>() / crop.data.len() as f64;
        assert!(mean > 230.0, "rectified patch mean {mean}");
    }
}
