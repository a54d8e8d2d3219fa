//! Detection on one frame: persons and vehicles (every `analysis.object_interval` analysed
//! frames; between, their tracks' predictions stand in), faces (the whole frame every
//! `analysis.face_interval` analysed frames; between, only the head regions of the tracked
//! persons and around the live face tracks), and the small-face cascade (faces too small for
//! the whole-frame detector, looked for again, enlarged, in the persons' head regions).

use std::time::Instant;

use sharpeyes_wire::ObjectClass;
use tracing::warn;

use super::Analysis;
use crate::infer::{self, FaceDetection, ObjectDetection, cascade};
use crate::ingest::Frame;
use crate::metrics::{add, inc};

/// A tracked object whose predicted box comes this close to the frame's edge (share of the
/// frame's shorter side) is detected on every frame until it leaves.
const EDGE_SHARE: f32 = 0.05;

/// What one frame's detection found.
pub(super) struct Found {
    /// Faces (whole frame or regions, and the cascade's).
    pub(super) faces: Vec<FaceDetection>,
    /// Persons and vehicles, when the object detector ran on this frame; None on a frame it
    /// skipped (the trackers' predictions stand in).
    pub(super) objects: Option<Vec<ObjectDetection>>,
    /// Nothing moved and nothing is tracked (the motion gate's decision): no detector ran.
    pub(super) still: bool,
}

/// Which detectors run on a camera's `n`th analysed frame (counting from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// The person / vehicle detector runs.
    pub(super) objects: bool,
    /// The face detector searches the whole frame (else only regions).
    pub(super) whole_faces: bool,
}

impl Plan {
    /// The plan of the `n`th analysed frame of a camera: each detector on every `interval`th
    /// frame, the first frame included (a new camera is searched whole at once).
    pub(super) fn of(n: u64, object_interval: u32, face_interval: u32) -> Self {
        Self {
            objects: n.is_multiple_of(object_interval.max(1) as u64),
            whole_faces: n.is_multiple_of(face_interval.max(1) as u64),
        }
    }
}

impl Analysis<'_> {
    /// Detects the faces and (when due) the persons and vehicles on `f`, with
    /// `face_detector.cascade` also the small faces in the head regions of the persons; None
    /// when face detection failed (the frame is skipped).
    pub(super) fn detect(&mut self, cam: usize, f: &Frame) -> Option<Found> {
        let m = &self.metrics.cameras[cam];
        let a = &self.cfg.analysis;
        let state = &mut self.cams[cam];
        let mut plan = Plan::of(state.frame_no, a.object_interval, a.face_interval);
        state.frame_no += 1;
        // A person or vehicle seen once is detected again on the next frame, not an interval
        // later: its track is confirmed (and reported) as soon as without intervals.
        plan.objects |= state.objects.iter().any(|(_, t)| t.tentative() > 0);
        // One about to leave the frame is followed frame by frame, so its track ends where
        // it leaves rather than up to an interval earlier.
        let (w, h) = (f.image.width as f32, f.image.height as f32);
        let near_edge = |b: &[f32; 4]| {
            let m = EDGE_SHARE * w.min(h);
            b[0] < m || b[1] < m || b[2] > w - m || b[3] > h - m
        };
        plan.objects |= state.objects.iter().any(|(_, t)| {
            t.predicted(f.capture_ms, false)
                .iter()
                .any(|(_, b)| near_edge(b))
        });
        let motion = state.motion.observe(&f.image);
        // A camera where nothing moves is still searched whole now and then: what stands still
        // from the start (a parked car, a seated person) is never motion, and the tracks of
        // still objects are confirmed.
        let whole_due = a.still_interval_s == 0
            || state.last_whole_ms.is_none_or(|t| {
                f.capture_ms - t >= a.still_interval_s as i64 * 1000 || f.capture_ms < t
            });
        if !motion.moving && !whole_due && state.live() == 0 {
            // Nothing changed and nothing is tracked: nothing new came in. A camera with live
            // tracks keeps its detectors running at their intervals even when nothing moves
            // (a standing person's track, its box and its alerts need detections: carrying
            // the tracks through still frames lost persons and an alert on small.toml).
            inc(&m.frames_still);
            inc(&m.frames_analysed);
            return Some(Found {
                faces: Vec::new(),
                objects: None,
                still: true,
            });
        }
        if whole_due && (state.live() == 0 || !motion.moving) {
            plan = Plan {
                objects: true,
                whole_faces: true,
            };
        }
        if plan.objects && plan.whole_faces {
            state.last_whole_ms = Some(f.capture_ms);
        }

        let objects = match self.models.objects.as_mut() {
            Some(d) if plan.objects => {
                let t0 = Instant::now();
                let r = d.detect(&f.image);
                add(&m.object_us, t0.elapsed().as_micros() as u64);
                inc(&m.object_passes);
                let objects = r.unwrap_or_else(|e| {
                    warn!(error = %e, "object detection failed on a frame; faces only");
                    Vec::new()
                });
                add(&m.objects, objects.len() as u64);
                Some(objects)
            }
            Some(_) => None,
            None => Some(Vec::new()),
        };
        // The persons: just detected, or where their tracks are predicted to be now.
        let persons: Vec<[f32; 4]> = match &objects {
            Some(o) => infer::person_boxes(o),
            None => state
                .objects
                .iter()
                .filter(|(c, _)| *c == ObjectClass::Person)
                .flat_map(|(_, t)| t.predicted(f.capture_ms, false))
                .map(|(_, b)| b)
                .collect(),
        };

        let t0 = Instant::now();
        let detector = self.models.detector.as_mut();
        let r = if plan.whole_faces {
            inc(&m.face_full_passes);
            detector.detect(&f.image)
        } else {
            inc(&m.face_region_passes);
            // Bigger faces where persons' heads are (the cascade below takes the small ones),
            // and wherever a face is being tracked (a face without a detected person).
            let mut regions: Vec<[f32; 4]> = persons
                .iter()
                .filter(|p| cascade::expected_face_px(p) >= cascade::CASCADE_BELOW_PX)
                .map(cascade::head_region)
                .collect();
            let face_tracks = state.faces.predicted(f.capture_ms, true);
            regions.extend(face_tracks.iter().map(|(_, b)| cascade::around_face(b)));
            // Motion no track explains (a person the object detector missed); new faces among
            // tracked ones wait for the next whole-frame pass.
            regions.extend(motion.regions.iter().filter(|r| {
                !persons.iter().any(|p| cascade::centre_inside(r, p))
                    && !face_tracks
                        .iter()
                        .any(|(_, b)| cascade::centre_inside(b, r))
            }));
            cascade::faces_in_regions(detector, &f.image, &regions)
        };
        let mut faces = match r {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "face detection failed on a frame; skipped");
                return None;
            }
        };
        if self.cfg.face_detector.cascade {
            match cascade::head_faces(detector, &f.image, &persons, &faces) {
                Ok(extra) => {
                    add(&m.cascade_faces, extra.len() as u64);
                    faces.extend(extra);
                }
                Err(e) => warn!(error = %e, "small-face cascade failed on a frame"),
            }
        }
        add(&m.detect_us, t0.elapsed().as_micros() as u64);
        add(&m.detections, faces.len() as u64);
        inc(&m.frames_analysed);
        Some(Found {
            faces,
            objects,
            still: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Plan;

    #[test]
    fn each_detector_runs_on_every_nth_frame_from_the_first() {
        let plans: Vec<Plan> = (0..6).map(|n| Plan::of(n, 3, 2)).collect();
        let objects: Vec<bool> = plans.iter().map(|p| p.objects).collect();
        let faces: Vec<bool> = plans.iter().map(|p| p.whole_faces).collect();
        assert_eq!(objects, [true, false, false, true, false, false]);
        assert_eq!(faces, [true, false, true, false, true, false]);
        assert!((0..10).all(|n| Plan::of(n, 1, 1)
            == Plan {
                objects: true,
                whole_faces: true
            }));
    }
}
