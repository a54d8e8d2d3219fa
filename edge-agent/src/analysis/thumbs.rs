//! Each track's best shots ("thumbs"): small JPEGs taken when its best improves markedly,
//! riding on its next update.

use std::collections::HashMap;

use sharpeyes_wire::Evidence;
use tracing::warn;

use super::Analysis;
use crate::infer::BgrImage;
use crate::ingest::Frame;

/// A track's best shots ("thumbs": small JPEGs the aggregator shows beside the track's
/// sighting). A track takes one when its best improves markedly: a face or person track when
/// its face's best (by [`FaceQuality`](crate::infer::FaceQuality)) reaches [`THUMB_GAIN`] × the quality of the last one
/// taken, a vehicle or plate track when its box area does; at most [`THUMB_MAX_PER_TRACK`]
/// per track. A shot taken rides on the track's next update (or its end), so a batch carries
/// at most one per track. Each is at most [`THUMB_SIDE`] px on its longer side at JPEG quality
/// [`THUMB_QUALITY`]: 2–6 KB, so at most about 3 × 6 KB per track, most tracks sending one or
/// two (docs/benchmarks.md: measured bytes per track).
#[derive(Debug, Default)]
pub(super) struct ThumbState {
    /// Quality of the last shot taken (face quality; box area in px² for vehicles and plates).
    quality: f32,
    /// Shots taken so far.
    taken: u8,
    /// Taken, not yet sent.
    pub(super) pending: Option<Evidence>,
    /// Capture time of the frame the track was last considered on (to forget tracks that
    /// vanish without an end).
    seen_ms: i64,
}

impl ThumbState {
    /// Whether a shot of `quality` is due (marks the track considered at `now_ms`).
    fn due(&mut self, quality: f32, now_ms: i64) -> bool {
        self.seen_ms = now_ms;
        quality > 0.0 && self.taken < THUMB_MAX_PER_TRACK && quality >= self.quality * THUMB_GAIN
    }

    /// Records a shot of `quality` taken, to ride on the track's next update.
    fn take(&mut self, quality: f32, shot: Evidence) {
        self.quality = quality;
        self.taken += 1;
        self.pending = Some(shot);
    }
}

/// Longer side of a track's best shot, pixels at most.
const THUMB_SIDE: u32 = 128;
/// JPEG quality of a track's best shot.
const THUMB_QUALITY: u8 = 80;
/// Best shots a track sends at most.
const THUMB_MAX_PER_TRACK: u8 = 3;
/// How much better (quality ratio) a track's best must get for another shot.
const THUMB_GAIN: f32 = 1.5;

impl Analysis<'_> {
    /// Takes the best shots due on `f` (see [`ThumbState`]): faces whose best was replaced on
    /// this frame (for the face track and its person), the camera's vehicles `vehicles` and
    /// the plates read on it.
    pub(super) fn take_thumbs(&mut self, cam: usize, f: &Frame, vehicles: &[(u64, [f32; 4])]) {
        let now = f.capture_ms;
        let forget_ms = 2 * self.cfg.tracker.max_age_ms + 10_000;
        let s = &mut self.cams[cam];
        s.thumbs.retain(|_, t| now - t.seen_ms <= forget_ms);
        // Whether `track` takes a shot of this quality; marks it considered.
        let due = |thumbs: &mut HashMap<u64, ThumbState>, track: u64, quality: f32| {
            thumbs.entry(track).or_default().due(quality, now)
        };
        let take = |thumbs: &mut HashMap<u64, ThumbState>, track: u64, quality, e: &Evidence| {
            if let Some(t) = thumbs.get_mut(&track) {
                t.take(quality, e.clone());
            }
        };
        let jpeg = |role: &str, img: &BgrImage| match img.to_jpeg(THUMB_SIDE, THUMB_QUALITY) {
            Ok(data) => Some(Evidence {
                role: role.into(),
                mime: "image/jpeg".into(),
                data,
            }),
            Err(e) => {
                warn!(error = %e, "best shot could not be encoded");
                None
            }
        };
        for (&track, b) in &s.best {
            if b.ts_ms != now {
                continue;
            }
            let q = b.quality.total();
            let person = s.links.get(&track).copied();
            let face_due = due(&mut s.thumbs, track, q);
            let person_due = person.is_some_and(|p| due(&mut s.thumbs, p, q));
            if !(face_due || person_due) {
                continue;
            }
            let Some(e) = jpeg("face", &b.crop) else {
                continue;
            };
            if face_due {
                take(&mut s.thumbs, track, q, &e);
            }
            if let Some(p) = person.filter(|_| person_due) {
                take(&mut s.thumbs, p, q, &e);
            }
        }
        let boxes = vehicles
            .iter()
            .map(|&(t, b)| (t, b, "vehicle", 0.1))
            .chain(s.plates_seen.iter().map(|&(t, b)| (t, b, "plate", 0.3)));
        for (track, b, role, margin) in boxes {
            let area = (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
            if !due(&mut s.thumbs, track, area) {
                continue;
            }
            let (mx, my) = ((b[2] - b[0]) * margin, (b[3] - b[1]) * margin);
            let Some((crop, _, _)) = f.image.crop([b[0] - mx, b[1] - my, b[2] + mx, b[3] + my])
            else {
                continue;
            };
            if let Some(e) = jpeg(role, &crop) {
                take(&mut s.thumbs, track, area, &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_takes_a_best_shot_only_when_it_improves_markedly_and_a_few_at_most() {
        let shot = |n: u8| Evidence {
            role: "face".into(),
            mime: "image/jpeg".into(),
            data: vec![0xff, 0xd8, n],
        };
        let mut t = ThumbState::default();
        assert!(!t.due(0.0, 1), "no quality, no shot");
        let mut taken = Vec::new();
        for (i, q) in [10.0f32, 12.0, 14.9, 15.0, 20.0, 40.0, 1000.0]
            .into_iter()
            .enumerate()
        {
            if t.due(q, i as i64) {
                t.take(q, shot(i as u8));
                taken.push(q);
            }
        }
        assert_eq!(
            taken,
            vec![10.0, 15.0, 40.0],
            "×1.5 each, then the cap of 3"
        );
        assert_eq!(
            t.pending.take(),
            Some(shot(5)),
            "the newest waits for the next update"
        );
        assert_eq!(t.seen_ms, 6);
        assert_eq!(usize::from(THUMB_MAX_PER_TRACK), taken.len());
    }
}
