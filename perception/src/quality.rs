//! How useful a detected face is for identification: size, sharpness and frontal pose, from
//! the pixels and the five landmarks (no model). A track keeps the face that scores best.

use super::{BgrImage, FaceDetection};

/// A face's quality factors, each 0..1 (1 is best).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceQuality {
    /// Face height relative to [`FULL_SIZE_PX`] (capped at 1).
    pub size: f32,
    /// Focus: variance of the Laplacian of the face's luma, mapped to 0..1.
    pub sharpness: f32,
    /// Frontal pose: 1 with the nose midway between the eyes and at its usual height between
    /// eyes and mouth, falling as the head turns (yaw) or tilts (pitch).
    pub frontal: f32,
    /// Detector score.
    pub score: f32,
}

/// Faces this high (pixels) or more are big enough for the embedder (SFace aligns to 112 px;
/// below ~64 px detail is lost).
pub const FULL_SIZE_PX: f32 = 64.0;
/// Laplacian variance giving sharpness 0.5 (a focused face on a 1080p CCTV frame measures
/// several hundred; a blurred or motion-smeared one a few tens).
const SHARPNESS_HALF: f32 = 100.0;
/// The Laplacian is sampled on at most this many points per side of the face box.
const SAMPLES: u32 = 48;

impl FaceQuality {
    /// The product of the factors: the number a track maximises.
    pub fn total(&self) -> f32 {
        self.size * self.sharpness * self.frontal * self.score
    }
}

/// The quality of face `d` in `img`.
pub fn face_quality(img: &BgrImage, d: &FaceDetection) -> FaceQuality {
    let h = (d.bbox[3] - d.bbox[1]).max(0.0);
    FaceQuality {
        size: (h / FULL_SIZE_PX).min(1.0),
        sharpness: {
            let v = laplacian_variance(img, d.bbox);
            v / (v + SHARPNESS_HALF)
        },
        frontal: frontal(&d.landmarks),
        score: d.score.clamp(0.0, 1.0),
    }
}

/// Frontal-pose factor from the five landmarks (eye, eye, nose, mouth corner, mouth corner).
pub fn frontal(l: &[[f32; 2]; 5]) -> f32 {
    let eye_mid = [(l[0][0] + l[1][0]) / 2.0, (l[0][1] + l[1][1]) / 2.0];
    let mouth_mid = [(l[3][0] + l[4][0]) / 2.0, (l[3][1] + l[4][1]) / 2.0];
    let eye_dist = ((l[1][0] - l[0][0]).powi(2) + (l[1][1] - l[0][1]).powi(2)).sqrt();
    let face_len = mouth_mid[1] - eye_mid[1];
    if eye_dist < 1e-3 || face_len < 1e-3 {
        return 0.0;
    }
    // Yaw: the nose leaves the eyes' midpoint as the head turns (0 frontal, 0.5 at profile).
    let yaw = (l[2][0] - eye_mid[0]).abs() / eye_dist;
    // Pitch: on a frontal face the nose tip sits about 55 % of the way from eyes to mouth.
    let pitch = ((l[2][1] - eye_mid[1]) / face_len - 0.55).abs();
    ((1.0 - 2.0 * yaw).max(0.0) * (1.0 - 2.0 * pitch).max(0.0)).clamp(0.0, 1.0)
}

/// Variance of the 4-neighbour Laplacian of luma over the box, sampled on a grid of at most
/// [`SAMPLES`]² points (neighbours one grid step away), without allocating.
pub fn laplacian_variance(img: &BgrImage, b: [f32; 4]) -> f32 {
    let (w, h) = (img.width as i64, img.height as i64);
    let x1 = (b[0].max(0.0) as i64).min(w - 1);
    let y1 = (b[1].max(0.0) as i64).min(h - 1);
    let x2 = (b[2].max(0.0) as i64).min(w - 1);
    let y2 = (b[3].max(0.0) as i64).min(h - 1);
    let side = (x2 - x1).min(y2 - y1);
    if side < 4 {
        return 0.0;
    }
    let step = (side / SAMPLES as i64).max(1);
    let luma = |x: i64, y: i64| {
        let i = ((y * w + x) * 3) as usize;
        let p = &img.data[i..i + 3];
        0.114 * p[0] as f32 + 0.587 * p[1] as f32 + 0.299 * p[2] as f32
    };
    let (mut n, mut sum, mut sq) = (0u32, 0.0f64, 0.0f64);
    let mut y = y1 + step;
    while y + step <= y2 {
        let mut x = x1 + step;
        while x + step <= x2 {
            let lap = luma(x - step, y) + luma(x + step, y) + luma(x, y - step) + luma(x, y + step)
                - 4.0 * luma(x, y);
            n += 1;
            sum += lap as f64;
            sq += (lap as f64).powi(2);
            x += step;
        }
        y += step;
    }
    if n == 0 {
        return 0.0;
    }
    let mean = sum / n as f64;
    (sq / n as f64 - mean * mean).max(0.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(landmarks: [[f32; 2]; 5], bbox: [f32; 4]) -> FaceDetection {
        FaceDetection {
            bbox,
            score: 0.9,
            landmarks,
            embedding: None,
        }
    }

    const FRONTAL: [[f32; 2]; 5] = [
        [30.0, 40.0],
        [70.0, 40.0],
        [50.0, 62.0],
        [35.0, 80.0],
        [65.0, 80.0],
    ];

    #[test]
    fn frontal_faces_beat_turned_and_tilted_ones() {
        assert!(frontal(&FRONTAL) > 0.9);
        let mut turned = FRONTAL;
        turned[2][0] = 66.0; // nose near the far eye: about 40° of yaw
        assert!(frontal(&turned) < 0.4, "{}", frontal(&turned));
        let mut down = FRONTAL;
        down[2][1] = 78.0; // nose almost at the mouth: head pitched
        assert!(frontal(&down) < 0.5, "{}", frontal(&down));
        assert_eq!(frontal(&[[0.0; 2]; 5]), 0.0);
    }

    #[test]
    fn sharp_texture_beats_its_blurred_copy() {
        let (w, h) = (100u32, 100u32);
        let mut sharp = vec![0u8; (w * h * 3) as usize];
        for y in 0..h {
            for x in 0..w {
                let v = if (x / 2 + y / 2) % 2 == 0 { 40 } else { 210 };
                let i = ((y * w + x) * 3) as usize;
                sharp[i..i + 3].fill(v);
            }
        }
        let sharp = BgrImage::new(w, h, sharp).unwrap();
        // Box blur by down- and up-scaling.
        let blurred = sharp.resized(12, 12).resized(w, h);
        let b = [0.0, 0.0, 100.0, 100.0];
        let (qs, qb) = (
            face_quality(&sharp, &face(FRONTAL, b)),
            face_quality(&blurred, &face(FRONTAL, b)),
        );
        assert!(qs.sharpness > 0.9, "{qs:?}");
        assert!(qb.sharpness < qs.sharpness / 2.0, "{qb:?} vs {qs:?}");
        assert!(qs.total() > qb.total());
        // A flat image has no detail at all.
        let flat = BgrImage::new(w, h, vec![128; (w * h * 3) as usize]).unwrap();
        assert_eq!(laplacian_variance(&flat, b), 0.0);
    }

    #[test]
    fn size_saturates_and_boxes_outside_the_image_are_safe() {
        let img = BgrImage::new(50, 50, vec![100; 50 * 50 * 3]).unwrap();
        let q = face_quality(&img, &face(FRONTAL, [10.0, 10.0, 42.0, 42.0]));
        assert!((q.size - 0.5).abs() < 1e-6);
        let q = face_quality(&img, &face(FRONTAL, [-30.0, -30.0, 400.0, 400.0]));
        assert_eq!(q.size, 1.0);
        assert_eq!(laplacian_variance(&img, [60.0, 60.0, 90.0, 90.0]), 0.0);
    }
}
