//! Per-camera tracking: an I/O-free state machine fed detections and the capture time.
//!
//! ByteTrack-style ([Zhang et al. 2022]): each track carries a constant-velocity Kalman
//! filter (`kalman`); detections are split by score into high and low; high ones are
//! associated first with every confirmed track (tracked or lost) by IoU against the
//! predicted boxes, low ones then continue tracks that are still unmatched (occluded or
//! blurred objects score low), and only high ones start tracks. A track is reported
//! (`start`) after `min_hits` detections, sends an `update` at most every
//! `update_interval_ms`, survives `max_age_ms` without a detection (the lost-track buffer,
//! during which its prediction keeps moving) and then ends (`end`). Association is greedy by
//! IoU (best pair first), which equals the optimal assignment when boxes of different objects
//! overlap little, as faces do. A tentative track (one sighting, no velocity yet) matches by
//! centre distance instead of IoU (within `new_match_dist` box heights, widening at
//! `new_match_speed` box heights per second when detections are further apart in time, as a
//! plate's readings are), so small fast objects at low analysis rates are picked up;
//! its second sighting gives the filter its initial velocity. Time only comes in through `now_ms`, so tests drive it with
//! synthetic time.

mod kalman;
mod vote;

pub use self::vote::PlateVote;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sharpeyes_wire::TrackEvent;

use crate::config::TrackerConfig;
use crate::infer::iou;

/// One detection handed to the tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in pixels.
    pub bbox: [f32; 4],
    /// Score (0..1).
    pub score: f32,
}

/// What the tracker reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackOutput {
    /// Track id.
    pub track: u64,
    /// Start, update or end.
    pub event: TrackEvent,
    /// Capture time the output describes (for `end`: when the track was last seen).
    pub ts_ms: i64,
    /// Box at that time.
    pub bbox: [f32; 4],
    /// Score at that time (for `end`: the best score of the track).
    pub score: f32,
    /// Index of this frame's detection the output describes (none for `end`).
    pub detection: Option<usize>,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    kf: kalman::Kalman,
    /// Last detection box (what is reported).
    bbox: [f32; 4],
    score: f32,
    best_score: f32,
    hits: u32,
    last_seen_ms: i64,
    last_emit_ms: i64,
    last_predict_ms: i64,
    confirmed: bool,
    matched: bool,
    /// Consecutive frames without a detection.
    missed: u32,
    /// Index of this frame's detection assigned to the track.
    detection: Option<usize>,
}

/// The track ids of one camera: its trackers (one per class) draw from one counter, so a
/// track id is unique per camera whatever its class. Clones share the counter.
#[derive(Debug, Clone)]
pub struct TrackIds(Arc<AtomicU64>);

impl TrackIds {
    /// Ids from `first` on (make it unique across restarts, e.g. derived from the start time).
    pub fn new(first: u64) -> Self {
        Self(Arc::new(AtomicU64::new(first)))
    }

    fn take(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// ByteTrack-style tracker of one camera and class.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    cfg: TrackerConfig,
    ids: TrackIds,
    tracks: Vec<Track>,
}

/// Greedy matching of `tracks` (indices into `all`) with `dets` (indices into `dets_all`) by
/// `sim` (higher is better, best pair first); pairs below `min_sim` never match.
fn greedy(
    all: &[Track],
    tracks: &[usize],
    dets_all: &[Detection],
    dets: &[usize],
    min_sim: f32,
    sim: impl Fn(&Track, &Detection) -> f32,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for &ti in tracks {
        for &di in dets {
            let v = sim(&all[ti], &dets_all[di]);
            if v >= min_sim && v > 0.0 {
                pairs.push((v, ti, di));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut t_used, mut d_used) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (_, ti, di) in pairs {
        if t_used.contains(&ti) || d_used.contains(&di) {
            continue;
        }
        t_used.push(ti);
        d_used.push(di);
        out.push((ti, di));
    }
    out
}

/// IoU of a track's predicted box with a detection.
fn predicted_iou(t: &Track, d: &Detection) -> f32 {
    iou(&t.kf.bbox(), &d.bbox)
}

/// How far (box heights) a tentative track may have moved in `gap_ms` of capture time:
/// `new_match_dist` per frame, widening with the gap at `new_match_speed` (a plate read every
/// `plate_reader.interval_ms` moves further between readings than between frames).
fn new_match_gate(cfg: &TrackerConfig, gap_ms: i64) -> f32 {
    cfg.new_match_dist
        .max(cfg.new_match_speed * gap_ms.max(0) as f32 / 1000.0)
}

/// For tentative tracks, which have no velocity yet: 1 at the same centre, falling to 0 at a
/// centre distance of `max_dist` box heights; 0 unless the heights are within a factor 1.5.
fn centre_similarity(t: &Track, d: &Detection, max_dist: f32) -> f32 {
    let (a, b) = (&t.bbox, &d.bbox);
    let (ha, hb) = ((a[3] - a[1]).max(1e-3), (b[3] - b[1]).max(1e-3));
    if ha / hb > 1.5 || hb / ha > 1.5 {
        return 0.0;
    }
    let dx = (a[0] + a[2] - b[0] - b[2]) / 2.0;
    let dy = (a[1] + a[3] - b[1] - b[3]) / 2.0;
    let dist = (dx * dx + dy * dy).sqrt() / ha.max(hb);
    (1.0 - dist / max_dist.max(1e-3)).max(0.0)
}

impl ByteTracker {
    /// A tracker with its own ids, the first being `first_id`.
    pub fn new(cfg: TrackerConfig, first_id: u64) -> Self {
        Self::with_ids(cfg, TrackIds::new(first_id))
    }

    /// A tracker drawing its ids from `ids` (shared with the camera's other trackers).
    pub fn with_ids(cfg: TrackerConfig, ids: TrackIds) -> Self {
        Self {
            cfg,
            ids,
            tracks: Vec::new(),
        }
    }

    /// Number of live tracks (confirmed or not, tracked or lost).
    pub fn live(&self) -> usize {
        self.tracks.len()
    }

    /// Tracks not confirmed yet (they need more detections before they are reported).
    pub fn tentative(&self) -> usize {
        self.tracks.iter().filter(|t| !t.confirmed).count()
    }

    /// Feeds one frame's detections captured at `now_ms`; returns what happened.
    pub fn update(&mut self, dets: &[Detection], now_ms: i64) -> Vec<TrackOutput> {
        let cfg = self.cfg.clone();
        let mut out = Vec::new();
        for t in &mut self.tracks {
            t.kf.predict((now_ms - t.last_predict_ms) as f32 / 1000.0);
            t.last_predict_ms = now_ms;
            t.matched = false;
            t.detection = None;
        }
        let high: Vec<usize> = (0..dets.len())
            .filter(|&i| dets[i].score >= cfg.high_score)
            .collect();
        let low: Vec<usize> = (0..dets.len())
            .filter(|&i| dets[i].score >= cfg.low_score && dets[i].score < cfg.high_score)
            .collect();
        let mut det_used = vec![false; dets.len()];

        // 1. High detections with every confirmed track, tracked or lost.
        let confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].confirmed)
            .collect();
        let m1 = greedy(
            &self.tracks,
            &confirmed,
            dets,
            &high,
            cfg.match_iou,
            predicted_iou,
        );
        // 2. Low detections with confirmed tracks seen in the previous frame that are still unmatched.
        let recent: Vec<usize> = confirmed
            .iter()
            .copied()
            .filter(|&i| !m1.iter().any(|m| m.0 == i) && self.tracks[i].missed == 0)
            .collect();
        let m2 = greedy(
            &self.tracks,
            &recent,
            dets,
            &low,
            cfg.low_match_iou,
            predicted_iou,
        );
        // 3. Remaining high detections with tentative tracks.
        let tentative: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| !self.tracks[i].confirmed)
            .collect();
        let rest: Vec<usize> = high
            .iter()
            .copied()
            .filter(|d| !m1.iter().any(|m| m.1 == *d))
            .collect();
        let m3 = greedy(
            &self.tracks,
            &tentative,
            dets,
            &rest,
            f32::MIN_POSITIVE,
            |t, d| centre_similarity(t, d, new_match_gate(&cfg, now_ms - t.last_seen_ms)),
        );

        for (ti, di) in m1.into_iter().chain(m2).chain(m3) {
            det_used[di] = true;
            let t = &mut self.tracks[ti];
            let d = dets[di];
            if t.hits == 1 && now_ms > t.last_seen_ms {
                // Second sighting: start the filter with the observed velocity.
                let dt = (now_ms - t.last_seen_ms) as f32 / 1000.0;
                let c = |b: &[f32; 4]| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0];
                let (c0, c1) = (c(&t.bbox), c(&d.bbox));
                t.kf = kalman::Kalman::new(&d.bbox);
                t.kf.set_velocity((c1[0] - c0[0]) / dt, (c1[1] - c0[1]) / dt);
            } else {
                t.kf.update(&d.bbox);
            }
            t.bbox = d.bbox;
            t.score = d.score;
            t.best_score = t.best_score.max(d.score);
            t.hits += 1;
            t.last_seen_ms = now_ms;
            t.matched = true;
            t.detection = Some(di);
            if !t.confirmed && t.hits >= cfg.min_hits {
                t.confirmed = true;
                t.last_emit_ms = now_ms;
                out.push(output(t, TrackEvent::Start, now_ms, di));
            } else if t.confirmed && now_ms - t.last_emit_ms >= cfg.update_interval_ms {
                t.last_emit_ms = now_ms;
                out.push(output(t, TrackEvent::Update, now_ms, di));
            }
        }
        // Tentative tracks that missed a frame are dropped unreported.
        self.tracks.retain(|t| t.confirmed || t.matched);
        for &di in &high {
            if det_used[di] {
                continue;
            }
            let d = dets[di];
            let mut t = Track {
                id: self.ids.take(),
                kf: kalman::Kalman::new(&d.bbox),
                bbox: d.bbox,
                score: d.score,
                best_score: d.score,
                hits: 1,
                last_seen_ms: now_ms,
                last_emit_ms: now_ms,
                last_predict_ms: now_ms,
                confirmed: false,
                matched: true,
                missed: 0,
                detection: Some(di),
            };
            if cfg.min_hits <= 1 {
                t.confirmed = true;
                out.push(output(&t, TrackEvent::Start, now_ms, di));
            }
            self.tracks.push(t);
        }
        for t in &mut self.tracks {
            t.missed = if t.matched { 0 } else { t.missed + 1 };
        }
        let max_age = cfg.max_age_ms;
        self.tracks.retain(|t| {
            let expired = now_ms - t.last_seen_ms > max_age;
            if expired && t.confirmed {
                out.push(end(t));
            }
            !expired
        });
        out
    }

    /// The confirmed tracks given a detection by the last `update`: (track id, index of the
    /// detection). Every frame, not only when outputs are due (linking and best-face choice
    /// use it).
    pub fn assigned(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.tracks
            .iter()
            .filter(|t| t.confirmed)
            .filter_map(|t| t.detection.map(|d| (t.id, d)))
    }

    /// The tracks seen at the last `update` (confirmed ones; with `tentative`, also those not
    /// yet reported), with their boxes predicted to `now_ms`; nothing changes. On a frame the
    /// detector skips (`analysis.object_interval`) these stand in for its detections, and
    /// they tell where to look for faces and plates.
    pub fn predicted(&self, now_ms: i64, tentative: bool) -> Vec<(u64, [f32; 4])> {
        self.tracks
            .iter()
            .filter(|t| t.missed == 0 && (t.confirmed || tentative))
            .map(|t| {
                let mut kf = t.kf.clone();
                kf.predict((now_ms - t.last_predict_ms).max(0) as f32 / 1000.0);
                (t.id, kf.bbox())
            })
            .collect()
    }

    /// Ends every track (stream ended or agent stopping); returns the `end`s of confirmed ones.
    pub fn flush(&mut self) -> Vec<TrackOutput> {
        self.tracks
            .drain(..)
            .filter(|t| t.confirmed)
            .map(|t| end(&t))
            .collect()
    }
}

fn output(t: &Track, event: TrackEvent, now_ms: i64, detection: usize) -> TrackOutput {
    TrackOutput {
        track: t.id,
        event,
        ts_ms: now_ms,
        bbox: t.bbox,
        score: t.score,
        detection: Some(detection),
    }
}

fn end(t: &Track) -> TrackOutput {
    TrackOutput {
        track: t.id,
        event: TrackEvent::End,
        ts_ms: t.last_seen_ms,
        bbox: t.bbox,
        score: t.best_score,
        detection: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32) -> Detection {
        Detection {
            bbox: [x, 100.0, x + 50.0, 150.0],
            score: 0.9,
        }
    }

    fn cfg() -> TrackerConfig {
        TrackerConfig {
            max_age_ms: 1000,
            ..TrackerConfig::default()
        }
    }

    fn events(out: &[TrackOutput]) -> Vec<(u64, TrackEvent)> {
        out.iter().map(|o| (o.track, o.event)).collect()
    }

    #[test]
    fn moving_object_is_one_track_with_start_updates_end() {
        let mut t = ByteTracker::new(cfg(), 1);
        let mut all = Vec::new();
        for i in 0..25 {
            all.extend(t.update(&[det(100.0 + i as f32 * 5.0)], i * 200));
        }
        // 5 fps for 5 s: start at the 2nd frame, updates every second, then silence.
        for i in 25..40 {
            all.extend(t.update(&[], i * 200));
        }
        let ev = events(&all);
        assert_eq!(ev.first(), Some(&(1, TrackEvent::Start)));
        assert_eq!(ev.last(), Some(&(1, TrackEvent::End)));
        assert_eq!(ev.iter().filter(|e| e.1 == TrackEvent::Update).count(), 4);
        assert!(ev.iter().all(|e| e.0 == 1));
        let end = all.last().unwrap();
        assert_eq!(end.ts_ms, 24 * 200, "end carries the last sighting time");
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn trackers_sharing_ids_never_reuse_one() {
        use std::collections::BTreeSet;
        let ids = TrackIds::new(100);
        let mut faces = ByteTracker::with_ids(cfg(), ids.clone());
        let mut plates = ByteTracker::with_ids(cfg(), ids);
        let (mut face_ids, mut plate_ids) = (BTreeSet::new(), BTreeSet::new());
        // The same box in both trackers, then a second object in each after the first ended.
        for (t0, x) in [(0, 100.0), (5_000, 600.0)] {
            for i in 0..4 {
                face_ids.extend(
                    faces
                        .update(&[det(x)], t0 + i * 200)
                        .iter()
                        .map(|o| o.track),
                );
                plate_ids.extend(
                    plates
                        .update(&[det(x)], t0 + i * 200)
                        .iter()
                        .map(|o| o.track),
                );
            }
            face_ids.extend(faces.flush().iter().map(|o| o.track));
            plate_ids.extend(plates.flush().iter().map(|o| o.track));
        }
        assert_eq!((face_ids.len(), plate_ids.len()), (2, 2));
        assert!(
            face_ids.is_disjoint(&plate_ids),
            "{face_ids:?} {plate_ids:?}"
        );
        assert!(face_ids.iter().chain(&plate_ids).all(|&id| id >= 100));
    }

    #[test]
    fn predicted_boxes_follow_the_motion_without_changing_the_tracks() {
        let mut t = ByteTracker::new(cfg(), 1);
        for (i, x) in [0.0, 10.0, 20.0].into_iter().enumerate() {
            t.update(&[det(x)], i as i64 * 200);
        }
        let before = t.clone();
        let p = t.predicted(600, false);
        assert_eq!(p.len(), 1);
        // 10 px per 200 ms: at 600 ms the box is near x = 30.
        let x = p[0].1[0];
        assert!((x - 30.0).abs() < 3.0, "predicted x {x}");
        assert_eq!(t.predicted(600, false), p, "predicting changes nothing");
        assert_eq!(format!("{:?}", t.tracks), format!("{:?}", before.tracks));
        // A tentative track shows only when asked for.
        t.update(&[det(30.0), det(500.0)], 600);
        assert_eq!(t.predicted(600, false).len(), 1);
        assert_eq!(t.predicted(600, true).len(), 2);
        // A track that missed the last update is not predicted.
        t.update(&[det(40.0)], 800);
        assert!(t.predicted(800, true).iter().all(|(_, b)| b[0] < 100.0));
    }

    #[test]
    fn single_blip_is_never_reported() {
        let mut t = ByteTracker::new(cfg(), 1);
        assert!(t.update(&[det(0.0)], 0).is_empty());
        assert!(t.update(&[], 2000).is_empty());
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn two_objects_get_two_tracks_and_a_short_gap_does_not_split() {
        let mut t = ByteTracker::new(cfg(), 10);
        let mut all = Vec::new();
        for i in 0..10 {
            let dets = if i == 5 {
                vec![]
            } else {
                vec![det(0.0), det(500.0)]
            };
            all.extend(t.update(&dets, i * 200));
        }
        let starts: Vec<u64> = all
            .iter()
            .filter(|o| o.event == TrackEvent::Start)
            .map(|o| o.track)
            .collect();
        assert_eq!(starts, vec![10, 11]);
        all.extend(t.flush());
        assert_eq!(all.iter().filter(|o| o.event == TrackEvent::End).count(), 2);
    }

    #[test]
    fn a_jump_starts_a_new_track() {
        let mut t = ByteTracker::new(cfg(), 1);
        t.update(&[det(0.0)], 0);
        t.update(&[det(0.0)], 200);
        let out = t.update(&[det(900.0)], 400);
        assert!(out.is_empty(), "new object unconfirmed yet: {out:?}");
        let out = t.update(&[det(0.0), det(900.0)], 600);
        assert_eq!(events(&out), vec![(2, TrackEvent::Start)]);
        assert_eq!(
            out[0].detection,
            Some(1),
            "the output names the detection it describes"
        );
    }

    /// A plate (130 × 41 px) crossing at 128 px/s, read every 600 ms (interval 500 ms at
    /// 5 fps): about 1.9 plate heights between readings, beyond `new_match_dist` per frame.
    #[test]
    fn readings_spaced_in_time_become_one_track_at_any_spacing() {
        let plate = |x: f32| Detection {
            bbox: [x, 600.0, x + 130.0, 641.0],
            score: 0.9,
        };
        for gap_ms in [200i64, 600, 1000] {
            let mut t = ByteTracker::new(TrackerConfig::default(), 1);
            let mut out = Vec::new();
            let mut ms = 0;
            while ms <= 6000 {
                out.extend(t.update(&[plate(100.0 + 0.128 * ms as f32)], ms));
                ms += gap_ms;
            }
            out.extend(t.flush());
            assert_eq!(
                events(&out).first(),
                Some(&(1, TrackEvent::Start)),
                "gap {gap_ms} ms: {out:?}"
            );
            assert!(out.iter().all(|o| o.track == 1), "gap {gap_ms} ms: {out:?}");
            assert_eq!(out.last().map(|o| o.event), Some(TrackEvent::End));
        }
        // The gate widens with time, not without bound: a jump of 10 heights in 200 ms is
        // another object.
        let mut t = ByteTracker::new(TrackerConfig::default(), 1);
        t.update(&[plate(100.0)], 0);
        assert!(t.update(&[plate(510.0)], 200).is_empty());
        assert!(t.update(&[plate(520.0)], 400).iter().all(|o| o.track == 2));
    }

    fn at(x: f32, score: f32) -> Detection {
        Detection {
            bbox: [x, 100.0, x + 50.0, 150.0],
            score,
        }
    }

    /// The track id whose output box is nearest to `x` in `out`.
    fn id_near(out: &[TrackOutput], x: f32) -> Option<u64> {
        out.iter()
            .min_by(|a, b| (a.bbox[0] - x).abs().total_cmp(&(b.bbox[0] - x).abs()))
            .map(|o| o.track)
    }

    #[test]
    fn crossing_paths_keep_their_identities() {
        // A walks right, B walks left, same row: they overlap completely mid-way.
        let mut t = ByteTracker::new(
            TrackerConfig {
                update_interval_ms: 0,
                ..cfg()
            },
            1,
        );
        let mut first = Vec::new();
        let mut last = Vec::new();
        for i in 0..21 {
            let (xa, xb) = (20.0 * i as f32, 400.0 - 20.0 * i as f32);
            let out = t.update(&[at(xa, 0.9), at(xb, 0.8)], i * 200);
            if i == 2 {
                first = vec![id_near(&out, xa).unwrap(), id_near(&out, xb).unwrap()];
            }
            if i == 20 {
                last = vec![id_near(&out, xa).unwrap(), id_near(&out, xb).unwrap()];
            }
        }
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], first[1]);
        assert_eq!(
            first, last,
            "A (moving right) and B (moving left) keep their ids after crossing"
        );
    }

    #[test]
    fn occlusion_shorter_than_max_age_keeps_the_track_and_prediction_follows() {
        let mut t = ByteTracker::new(cfg(), 1);
        let mut all = Vec::new();
        // Moving 30 px per 200 ms; hidden for 800 ms (4 frames), reappears 120 px further.
        for i in 0..20 {
            let dets = if (8..12).contains(&i) {
                vec![]
            } else {
                vec![at(30.0 * i as f32, 0.9)]
            };
            all.extend(t.update(&dets, i * 200));
        }
        all.extend(t.flush());
        let ids: std::collections::BTreeSet<u64> = all.iter().map(|o| o.track).collect();
        assert_eq!(ids.len(), 1, "one track through the occlusion: {all:?}");
        assert_eq!(all.iter().filter(|o| o.event == TrackEvent::End).count(), 1);
    }

    #[test]
    fn low_scores_continue_tracks_but_never_start_them() {
        let mut t = ByteTracker::new(cfg(), 1);
        let mut all = Vec::new();
        for i in 0..10 {
            // The tracked face fades to 0.4 (blur); a 0.4 face appears elsewhere.
            let s = if i < 3 { 0.9 } else { 0.4 };
            let mut dets = vec![at(10.0 * i as f32, s)];
            if i >= 3 {
                dets.push(at(600.0, 0.4));
            }
            all.extend(t.update(&dets, i * 200));
        }
        let ids: std::collections::BTreeSet<u64> = all.iter().map(|o| o.track).collect();
        assert_eq!(ids.len(), 1, "{all:?}");
        assert_eq!(t.live(), 1, "the low-score stranger has no track");
        // Below low_score nothing counts: the track ages out.
        for i in 10..20 {
            all.extend(t.update(&[at(100.0, 0.1)], i * 200));
        }
        assert_eq!(all.last().map(|o| o.event), Some(TrackEvent::End));
    }

    #[test]
    fn missed_frames_at_irregular_intervals() {
        // Frames arrive at uneven intervals (dropped frames); the object moves at constant speed.
        let times = [0, 200, 400, 1000, 1100, 1300, 1900, 2000];
        let mut t = ByteTracker::new(cfg(), 1);
        let mut all = Vec::new();
        for &ms in &times {
            all.extend(t.update(&[at(0.1 * ms as f32, 0.9)], ms));
        }
        assert!(all.iter().all(|o| o.track == 1), "{all:?}");
        assert_eq!(
            all.iter().filter(|o| o.event == TrackEvent::Start).count(),
            1
        );
    }
}
