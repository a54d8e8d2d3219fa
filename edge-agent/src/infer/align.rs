//! Face alignment: the similarity transform (rotation, uniform scale, translation; no
//! reflection) that best maps five detected landmarks onto the ArcFace 112×112 template
//! (Umeyama's least squares, closed form in 2-D), and the bilinear warp through it.

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
}
