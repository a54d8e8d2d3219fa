//! The small-face cascade: person box → head region, enlarged, → face detector.
//!
//! The face detector runs on the whole frame at its native resolution, which finds faces down
//! to about 14 px (recall 1.00 from 16 px, 0.98 at 14, 0.78 at 12 on the CCTV-like test
//! frames). Below that, the detector's smallest anchors no longer fit. A person the object
//! detector found tells where a head must be: the top of its box. That region is cropped from
//! the full-resolution frame, enlarged so the expected face reaches [`TARGET_FACE_PX`], and
//! searched again; faces found there map back to frame pixels.
//!
//! Between whole-frame passes (the agent's `analysis.face_interval`) the detector searches only
//! where faces can be ([`faces_in_regions`]): the head regions of the tracked persons
//! ([`head_region`]), around the live face tracks, and where the picture moved.

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
        let expected = expected_face_px(p);
        if !(MIN_EXPECTED_FACE_PX..CASCADE_BELOW_PX).contains(&expected) {
            continue;
        }
        let head = head_region(p);
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

/// The height a standing person's face has in a person box `p`, pixels.
pub fn expected_face_px(p: &[f32; 4]) -> f32 {
    (p[3] - p[1]) * FACE_PER_PERSON
}

/// Where a person's head is: the top of its box `p`, widened a little.
pub fn head_region(p: &[f32; 4]) -> [f32; 4] {
    let (pw, ph) = (p[2] - p[0], p[3] - p[1]);
    [
        p[0] - pw * HEAD_WIDEN,
        p[1] - ph * 0.05,
        p[2] + pw * HEAD_WIDEN,
        p[1] + ph * HEAD_HEIGHT,
    ]
}

/// Box `b` grown by `times` its own width and height on every side (each at least `min`
/// wide and high first): where to look again for something tracked there.
pub fn grown(b: &[f32; 4], times: f32, min: [f32; 2]) -> [f32; 4] {
    let (w, h) = (
        (b[2] - b[0]).max(min[0]) * times,
        (b[3] - b[1]).max(min[1]) * times,
    );
    [b[0] - w, b[1] - h, b[2] + w, b[3] + h]
}

/// Where to look again for a face tracked at box `b`: the box grown by its own size on every
/// side (room for a frame's movement and a misplaced prediction).
pub fn around_face(b: &[f32; 4]) -> [f32; 4] {
    grown(b, 1.0, [8.0, 8.0])
}

/// `regions` clamped to a `w`×`h` image, overlapping ones merged into their bounding box until
/// none overlap; empty ones dropped.
pub fn merge_regions(regions: &[[f32; 4]], w: u32, h: u32) -> Vec<[f32; 4]> {
    let (w, h) = (w as f32, h as f32);
    let mut out: Vec<[f32; 4]> = regions
        .iter()
        .map(|r| [r[0].max(0.0), r[1].max(0.0), r[2].min(w), r[3].min(h)])
        .filter(|r| r[2] - r[0] >= 1.0 && r[3] - r[1] >= 1.0)
        .collect();
    super::merge_overlapping(&mut out, |a, b| {
        a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
    });
    out
}

/// Searched regions covering more than this share of the frame: the whole frame is searched
/// instead (one pass is cheaper than many overlapping crops).
const REGIONS_MAX_SHARE: f32 = 0.5;

/// Faces in `regions` of `img` only (merged where they overlap, each searched at the
/// resolution of the frame, mapped back to frame pixels, duplicates of the overlaps dropped):
/// the face detector's work between whole-frame passes. When the regions cover most of the
/// frame, the whole frame is searched. No regions, no faces.
pub fn faces_in_regions(
    detector: &mut dyn FaceDetector,
    img: &BgrImage,
    regions: &[[f32; 4]],
) -> Result<Vec<FaceDetection>, InferError> {
    let regions = merge_regions(regions, img.width, img.height);
    let area: f32 = regions.iter().map(|r| (r[2] - r[0]) * (r[3] - r[1])).sum();
    if area > REGIONS_MAX_SHARE * img.width as f32 * img.height as f32 {
        return detector.detect(img);
    }
    let mut found: Vec<FaceDetection> = Vec::new();
    for r in &regions {
        let Some((crop, ox, oy)) = img.crop(*r) else {
            continue;
        };
        for mut f in detector.detect(&crop)? {
            for (i, v) in f.bbox.iter_mut().enumerate() {
                *v += if i % 2 == 0 { ox } else { oy };
            }
            for l in &mut f.landmarks {
                l[0] += ox;
                l[1] += oy;
            }
            found.push(f);
        }
    }
    Ok(super::nms(found, 0.3, |f| f.bbox, |f| f.score))
}

/// Whether the centre of box `b` lies inside box `r`.
pub fn centre_inside(b: &[f32; 4], r: &[f32; 4]) -> bool {
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    cx >= r[0] && cx <= r[2] && cy >= r[1] && cy <= r[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_regions_merge_and_are_clamped_to_the_image() {
        let m = merge_regions(
            &[
                [-10.0, -10.0, 50.0, 50.0],
                [40.0, 40.0, 80.0, 80.0],
                [200.0, 200.0, 300.0, 300.0],
                [70.0, 10.0, 90.0, 45.0],
                [500.0, 500.0, 600.0, 600.0],
            ],
            320,
            240,
        );
        assert_eq!(
            m,
            vec![[0.0, 0.0, 90.0, 80.0], [200.0, 200.0, 300.0, 240.0]],
            "chains merge, the region outside the image is dropped"
        );
        assert!(merge_regions(&[], 10, 10).is_empty());
    }

    #[test]
    fn head_and_face_regions_hold_what_they_should() {
        let person = [100.0, 100.0, 160.0, 400.0];
        let head = head_region(&person);
        // A face at the top of the box, about a seventh of its height.
        let face = [115.0, 110.0, 145.0, 150.0];
        assert!(centre_inside(&face, &head));
        assert!(
            !centre_inside(&[115.0, 300.0, 145.0, 340.0], &head),
            "not the legs"
        );
        assert!((expected_face_px(&person) - 40.0).abs() < 1e-3);
        let around = around_face(&face);
        assert_eq!(around, [85.0, 70.0, 175.0, 190.0]);
    }
}
