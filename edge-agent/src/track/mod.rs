//! Per-camera tracking: an I/O-free state machine fed detections and the capture time.
//!
//! This is the IoU tracker of the walking skeleton: greedy association by IoU, a track is
//! reported (`start`) after `min_hits` detections, sends an `update` at most every
//! `update_interval_ms`, and ends (`end`) once unmatched for `max_age_ms`. Time only comes in
//! through `now_ms`, so tests drive it with synthetic time.

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
    bbox: [f32; 4],
    score: f32,
    best_score: f32,
    hits: u32,
    last_seen_ms: i64,
    last_emit_ms: i64,
    confirmed: bool,
}

/// IoU tracker of one camera and class.
#[derive(Debug, Clone)]
pub struct IouTracker {
    cfg: TrackerConfig,
    next_id: u64,
    tracks: Vec<Track>,
}

impl IouTracker {
    /// A tracker whose first track id is `first_id` (make it unique across restarts, e.g.
    /// derived from the start time).
    pub fn new(cfg: TrackerConfig, first_id: u64) -> Self {
        Self {
            cfg,
            next_id: first_id,
            tracks: Vec::new(),
        }
    }

    /// Number of live tracks (confirmed or not).
    pub fn live(&self) -> usize {
        self.tracks.len()
    }

    /// Feeds one frame's detections captured at `now_ms`; returns what happened.
    pub fn update(&mut self, dets: &[Detection], now_ms: i64) -> Vec<TrackOutput> {
        let mut out = Vec::new();
        // Greedy association, best IoU first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                let v = iou(&t.bbox, &d.bbox);
                if v >= self.cfg.iou_threshold && v > 0.0 {
                    pairs.push((v, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_used = vec![false; dets.len()];
        for (_, ti, di) in pairs {
            if track_used[ti] || det_used[di] {
                continue;
            }
            track_used[ti] = true;
            det_used[di] = true;
            let t = &mut self.tracks[ti];
            let d = dets[di];
            t.bbox = d.bbox;
            t.score = d.score;
            t.best_score = t.best_score.max(d.score);
            t.hits += 1;
            t.last_seen_ms = now_ms;
            if !t.confirmed && t.hits >= self.cfg.min_hits {
                t.confirmed = true;
                t.last_emit_ms = now_ms;
                out.push(output(t, TrackEvent::Start, now_ms, di));
            } else if t.confirmed && now_ms - t.last_emit_ms >= self.cfg.update_interval_ms {
                t.last_emit_ms = now_ms;
                out.push(output(t, TrackEvent::Update, now_ms, di));
            }
        }
        for (di, d) in dets.iter().enumerate() {
            if det_used[di] {
                continue;
            }
            let mut t = Track {
                id: self.next_id,
                bbox: d.bbox,
                score: d.score,
                best_score: d.score,
                hits: 1,
                last_seen_ms: now_ms,
                last_emit_ms: now_ms,
                confirmed: false,
            };
            self.next_id += 1;
            if self.cfg.min_hits <= 1 {
                t.confirmed = true;
                out.push(output(&t, TrackEvent::Start, now_ms, di));
            }
            self.tracks.push(t);
        }
        let max_age = self.cfg.max_age_ms;
        self.tracks.retain(|t| {
            let expired = now_ms - t.last_seen_ms > max_age;
            if expired && t.confirmed {
                out.push(end(t));
            }
            !expired
        });
        out
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
            iou_threshold: 0.2,
            min_hits: 2,
            max_age_ms: 1000,
            update_interval_ms: 1000,
        }
    }

    fn events(out: &[TrackOutput]) -> Vec<(u64, TrackEvent)> {
        out.iter().map(|o| (o.track, o.event)).collect()
    }

    #[test]
    fn moving_object_is_one_track_with_start_updates_end() {
        let mut t = IouTracker::new(cfg(), 1);
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
    fn single_blip_is_never_reported() {
        let mut t = IouTracker::new(cfg(), 1);
        assert!(t.update(&[det(0.0)], 0).is_empty());
        assert!(t.update(&[], 2000).is_empty());
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn two_objects_get_two_tracks_and_a_short_gap_does_not_split() {
        let mut t = IouTracker::new(cfg(), 10);
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
        let mut t = IouTracker::new(cfg(), 1);
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
}
