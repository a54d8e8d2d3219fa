//! The small-face cascade: person box → head region, enlarged, → face detector.
//!
//! The face detector runs on the whole frame at its native resolution, which finds faces down
//! to about 14 px (recall 1.00 from 16 px, 0.98 at 14, 0.78 at 12 on the CCTV-like test
//! frames). Below that, the detector's smallest anchors no longer fit. A person the object
//! detector found tells where a head must be: the top of its box. That region is cropped from
//! the full-resolution frame, enlarged so the expected face reaches [`TARGET_FACE_PX`], and
//! searched again; faces found there map back to frame pixels.

use super::{BgrImage, FaceDetection, FaceDetector, InferError, iou};

/// A person's face is about this fraction of its box height (a standing adult, head to toe).
const FACE_PER_PERSON: f32 = 1.0 / 7.5;
/// The head region: the top 30 % of the person box, widened by 10 % each side.
const HEAD_HEIGHT: f32 = 0.3;
const HEAD_WIDEN: f32 = 0.1;
/// Expected faces are enlarged to this height (well inside the detector's reliable range).
pub const TARGET_FACE_PX: f32 = 32.0;
/// Enlargement is capped: beyond ×4 there is no detail left to find.
const MAX_UPSCALE: f32 = 4.0;
/// Only persons whose expected face is smaller than this are searched again (bigger faces are
/// found by the whole-frame pass).
pub const CASCADE_BELOW_PX: f32 = 20.0;
/// Nor persons so small that their face would be under this many pixels.
const MIN_EXPECTED_FACE_PX: f32 = 6.0;

/// Faces found in the head regions of `persons` (boxes in `img`) that the whole-frame pass
/// (`found`) does not already hold.
pub fn head_faces(
    detector: &mut dyn FaceDetector,
    img: &BgrImage,
    persons: &[[f32; 4]],
    found: &[FaceDetection],
) -> Result<Vec<FaceDetection>, InferError> {
    let mut extra: Vec<FaceDetection> = Vec::new();
    for p in persons {
        let (pw, ph) = (p[2] - p[0], p[3] - p[1]);
        let expected = ph * FACE_PER_PERSON;
        if !(MIN_EXPECTED_FACE_PX..CASCADE_BELOW_PX).contains(&expected) {
            continue;
        }
        let head = [
            p[0] - pw * HEAD_WIDEN,
            p[1] - ph * 0.05,
            p[2] + pw * HEAD_WIDEN,
            p[1] + ph * HEAD_HEIGHT,
        ];
        // The whole-frame pass already has a face there: nothing to add.
        if found
            .iter()
            .chain(&extra)
            .any(|f| centre_inside(&f.bbox, &head))
        {
            continue;
        }
        let Some((crop, ox, oy)) = img.crop(head) else {
            continue;
        };
        let scale = (TARGET_FACE_PX / expected).clamp(1.0, MAX_UPSCALE);
        let big = crop.resized(
            (crop.width as f32 * scale).round() as u32,
            (crop.height as f32 * scale).round() as u32,
        );
        for mut f in detector.detect(&big)? {
            for (i, v) in f.bbox.iter_mut().enumerate() {
                *v = *v / scale + if i % 2 == 0 { ox } else { oy };
            }
            for l in &mut f.landmarks {
                l[0] = l[0] / scale + ox;
                l[1] = l[1] / scale + oy;
            }
            if !found
                .iter()
                .chain(&extra)
                .any(|g| iou(&g.bbox, &f.bbox) > 0.3)
            {
                extra.push(f);
            }
        }
    }
    Ok(extra)
}

fn centre_inside(b: &[f32; 4], r: &[f32; 4]) -> bool {
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    cx >= r[0] && cx <= r[2] && cy >= r[1] && cy <= r[3]
}
