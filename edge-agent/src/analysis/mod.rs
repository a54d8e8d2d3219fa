//! The analysis stage: inference workers (one per core by default, `analysis.workers`), shared
//! by all cameras, take the cameras' newest frames round-robin, detect, track, link, embed,
//! read plates, take best shots and apply the rules per camera, and hand the outputs to the
//! publisher. Each worker has its own model sessions; a camera's state (trackers, rules) goes
//! to whichever worker takes its frame and is held by it until that frame is done
//! ([`FrameSlots::claim`]), so each camera's frames are analysed one at a time and in order
//! while the cameras share the cores. This file holds the workers' loop, the per-camera state
//! and one frame's orchestration; each concern has its own file (see the crate doc).

mod detect;
mod faces;
mod link;
pub(crate) mod motion;
mod plates;
mod rules;
mod thumbs;

pub use faces::BestFace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sharpeyes_wire::{Alert, Evidence, ObjectClass};
use tokio::sync::mpsc;
use tracing::info_span;

use self::link::face_in_person;
use self::thumbs::ThumbState;
use crate::config::{AgentConfig, TrackerConfig};
use crate::infer::{FaceDetector, FaceEmbedder, ObjectDetector, PlateReader};
use crate::ingest::{Frame, FrameSlots, Take};
use crate::metrics::{Metrics, add};
use crate::publish::{Analysed, Output, WatchlistFeed};
use crate::rules::{PreparedWatchlists, RuleOutput, Rules};
use crate::track::{ByteTracker, Detection, PlateVote, TrackIds, TrackOutput};

/// Per-camera analysis state: one tracker per class (all drawing ids from one counter).
struct CameraState {
    faces: ByteTracker,
    /// Person and vehicle trackers, one per reported class.
    objects: Vec<(ObjectClass, ByteTracker)>,
    /// Plate tracks.
    plates: ByteTracker,
    /// Each live plate track's readings.
    votes: HashMap<u64, PlateVote>,
    /// Capture time of the last frame the plate reader ran on.
    last_plate_ms: Option<i64>,
    /// Plate readings done (every `analysis.plate_interval`th searches the whole frame).
    plate_reads: u64,
    /// Frames of the camera analysed so far (which detectors are due, see `detect::Plan`).
    frame_no: u64,
    /// Which parts of the camera's frames change.
    motion: motion::MotionGate,
    /// Capture time of the last frame every detector searched whole.
    last_whole_ms: Option<i64>,
    /// Size of the camera's last analysed frame.
    size: (u32, u32),
    /// Capture time of the camera's last analysed frame.
    last_ms: i64,
    /// When (agent clock) the camera's last frame was analysed.
    last_at: Option<Instant>,
    /// Whether the camera's frames carry footage time (`clock = "stream"`, files by default):
    /// then only its frames move its time on, until it stops delivering.
    stream_clock: bool,
    /// A stream-clock camera without frames for this long has stopped, ms (its
    /// `stall_timeout_s`).
    stall_ms: i64,
    /// Each live face track's best face.
    best: HashMap<u64, BestFace>,
    /// Links between tracks of different classes, both ways (person ↔ face, vehicle ↔ plate).
    links: HashMap<u64, u64>,
    /// The camera's alert rules.
    rules: Rules,
    /// The watchlists its rules hold (the newest a worker had when it took the camera).
    watchlists: Option<Arc<PreparedWatchlists>>,
    /// Plate tracks seen in this frame (when the plate reader ran on it), with their boxes.
    plates_seen: Vec<(u64, [f32; 4])>,
    /// Evidence encoded for alerts not sent yet (a face alert waits for the companion check),
    /// by alert id, with the capture time of the newest image.
    evidence: HashMap<String, (i64, Vec<Evidence>)>,
    /// Each live track's best shots (see [`ThumbState`]).
    thumbs: HashMap<u64, ThumbState>,
}

impl CameraState {
    fn new(cfg: &AgentConfig, cam: usize, ids: TrackIds, rules: Rules) -> Self {
        let od = &cfg.object_detector;
        // Object tracks start from `track_score` and continue down to the class threshold.
        let objects = match od.enabled {
            true => od
                .thresholds
                .iter()
                .map(|(&class, &threshold)| {
                    let tracker = TrackerConfig {
                        high_score: od.track_score,
                        low_score: threshold.min(od.track_score),
                        ..cfg.tracker.clone()
                    };
                    (class, ByteTracker::with_ids(tracker, ids.clone()))
                })
                .collect(),
            false => Vec::new(),
        };
        Self {
            faces: ByteTracker::with_ids(cfg.tracker.clone(), ids.clone()),
            objects,
            plates: ByteTracker::with_ids(cfg.tracker.clone(), ids),
            votes: HashMap::new(),
            last_plate_ms: None,
            plate_reads: 0,
            frame_no: 0,
            motion: motion::MotionGate::new(cfg.analysis.motion.clone()),
            last_whole_ms: None,
            size: (0, 0),
            last_ms: 0,
            last_at: None,
            stream_clock: cfg.cameras.get(cam).is_some_and(|c| c.stream_clock()),
            stall_ms: cfg
                .cameras
                .get(cam)
                .map_or(10_000, |c| c.stall_timeout_s as i64 * 1000),
            best: HashMap::new(),
            links: HashMap::new(),
            rules,
            watchlists: None,
            plates_seen: Vec::new(),
            evidence: HashMap::new(),
            thumbs: HashMap::new(),
        }
    }

    /// Every tracker with the class it tracks.
    fn trackers(&mut self) -> impl Iterator<Item = (ObjectClass, &mut ByteTracker)> {
        [
            (ObjectClass::Face, &mut self.faces),
            (ObjectClass::Plate, &mut self.plates),
        ]
        .into_iter()
        .chain(self.objects.iter_mut().map(|(c, t)| (*c, t)))
    }

    /// Live tracks of every class.
    fn live(&self) -> usize {
        self.faces.live()
            + self.plates.live()
            + self.objects.iter().map(|(_, t)| t.live()).sum::<usize>()
    }

    /// What every tracker says when a frame brings nothing: at `now_ms` (lost tracks age and
    /// may end), or, with none, at shutdown (every track ends).
    fn without_detections(&mut self, now_ms: Option<i64>) -> Vec<(ObjectClass, TrackOutput)> {
        let mut out = Vec::new();
        for (class, t) in self.trackers() {
            let o = match now_ms {
                Some(now) => t.update(&[], now),
                None => t.flush(),
            };
            out.extend(o.into_iter().map(|o| (class, o)));
        }
        out
    }
}

/// The models the analysis stage runs.
pub(crate) struct Models {
    pub(crate) detector: Box<dyn FaceDetector>,
    pub(crate) embedder: Option<Box<dyn FaceEmbedder>>,
    pub(crate) objects: Option<Box<dyn ObjectDetector>>,
    pub(crate) plates: Option<PlateReader>,
}

/// The cameras' states while no worker holds them.
struct Pool {
    states: Mutex<Vec<Option<CameraState>>>,
    /// Cameras whose tracks were ended at the end of the run.
    flushed: Mutex<Vec<bool>>,
}

/// The camera states a worker holds, by camera index; indexing one it does not hold is a bug
/// (a worker holds a camera only between [`FrameSlots::claim`] and [`FrameSlots::release`]).
struct Held(Vec<Option<CameraState>>);

impl std::ops::Index<usize> for Held {
    type Output = CameraState;
    fn index(&self, cam: usize) -> &CameraState {
        self.0[cam]
            .as_ref()
            .expect("camera not held by this worker")
    }
}

impl std::ops::IndexMut<usize> for Held {
    fn index_mut(&mut self, cam: usize) -> &mut CameraState {
        self.0[cam]
            .as_mut()
            .expect("camera not held by this worker")
    }
}

/// One analysis worker: its models and the camera it holds; hands outputs on.
struct Analysis<'a> {
    cfg: &'a AgentConfig,
    models: Models,
    cams: Held,
    pool: &'a Pool,
    slots: &'a FrameSlots,
    tx: &'a mpsc::Sender<Analysed>,
    metrics: &'a Metrics,
    /// The watchlists as they arrive from the aggregator.
    watchlists: WatchlistFeed,
    /// Reused buffer of the rules' outputs.
    rule_out: Vec<RuleOutput>,
}

/// The boxes of `dets` for the tracker.
fn detections<T>(dets: &[T], f: impl Fn(&T) -> ([f32; 4], f32)) -> Vec<Detection> {
    dets.iter()
        .map(|d| {
            let (bbox, score) = f(d);
            Detection { bbox, score }
        })
        .collect()
}

impl Analysis<'_> {
    /// Takes camera `cam`'s state from the pool (the caller has claimed the camera), with the
    /// newest watchlists applied.
    fn hold(&mut self, cam: usize) {
        let state = self.pool.states.lock().unwrap_or_else(|e| e.into_inner())[cam].take();
        self.cams.0[cam] = state;
        self.take_watchlists(cam);
    }

    /// Puts camera `cam`'s state back and releases the camera.
    fn give_back(&mut self, cam: usize) {
        let state = self.cams.0[cam].take();
        self.pool.states.lock().unwrap_or_else(|e| e.into_inner())[cam] = state;
        self.slots.release(cam);
    }

    /// Analyses one frame of a claimed camera and gives the camera back; false once the
    /// publisher is gone.
    fn claimed_frame(&mut self, f: Frame) -> bool {
        let cam = f.camera;
        self.hold(cam);
        let open = self.frame(f);
        self.give_back(cam);
        open
    }

    /// Detects, tracks, links and embeds one frame; false once the publisher is gone.
    fn frame(&mut self, f: Frame) -> bool {
        let cam = f.camera;
        let _span = info_span!("analyse", camera = %self.cfg.cameras[cam].id).entered();
        let Some(detect::Found {
            faces,
            objects,
            still,
        }) = self.detect(cam, &f)
        else {
            return true;
        };
        let m = &self.metrics.cameras[cam];

        let t0 = Instant::now();
        let state = &mut self.cams[cam];
        state.size = (f.image.width, f.image.height);
        state.last_ms = f.capture_ms;
        state.last_at = Some(Instant::now());
        if still {
            // Nothing moved and nothing is tracked: only the rules see time pass.
            add(&m.track_us, t0.elapsed().as_micros() as u64);
            let alerts = self.apply_rules(cam, f.capture_ms, Some(&f), &[], &[]);
            return alerts.is_empty() || self.send(cam, Some(f.capture_ms), Vec::new(), alerts);
        }
        let mut outputs: Vec<(ObjectClass, TrackOutput)> = state
            .faces
            .update(&detections(&faces, |d| (d.bbox, d.score)), f.capture_ms)
            .into_iter()
            .map(|o| (ObjectClass::Face, o))
            .collect();
        let (mut persons, mut vehicles) = (Vec::new(), Vec::new());
        let mut tracked: Vec<(ObjectClass, u64, [f32; 4])> = Vec::new();
        for (class, tracker) in &mut state.objects {
            // Detected on this frame: tracked; skipped: the tracks' predicted boxes.
            let seen: Vec<(u64, [f32; 4])> = match &objects {
                Some(objects) => {
                    let idx: Vec<usize> = (0..objects.len())
                        .filter(|&i| objects[i].class == *class)
                        .collect();
                    let dets = detections(&idx, |&i| (objects[i].bbox, objects[i].score));
                    let o = tracker.update(&dets, f.capture_ms);
                    outputs.extend(o.into_iter().map(|o| (*class, o)));
                    tracker.assigned().map(|(t, d)| (t, dets[d].bbox)).collect()
                }
                None => tracker.predicted(f.capture_ms, false),
            };
            tracked.extend(seen.iter().map(|&(t, b)| (*class, t, b)));
            match class {
                ObjectClass::Person => persons.extend(seen),
                c if c.carries_plate() => vehicles.extend(seen),
                _ => {}
            }
        }
        let seen_faces: Vec<(u64, usize)> = state.faces.assigned().collect();
        let face_boxes: Vec<(u64, [f32; 4])> = seen_faces
            .iter()
            .map(|&(t, d)| (t, faces[d].bbox))
            .collect();
        state.link(&face_boxes, &persons, face_in_person);
        add(&m.track_us, t0.elapsed().as_micros() as u64);

        self.choose_best_faces(cam, &f, &faces, &seen_faces);
        outputs.extend(self.read_plates(cam, &f, objects.as_deref(), &vehicles));
        self.take_thumbs(cam, &f, &vehicles);
        let alerts = self.apply_rules(cam, f.capture_ms, Some(&f), &face_boxes, &tracked);
        self.send(cam, Some(f.capture_ms), outputs, alerts)
    }

    /// Ends the tracks of cameras that stopped delivering frames; false once the publisher is
    /// gone. `now_ms` is the agent's clock; `finished` says whether a camera's stream ended
    /// for good. A wall-clock camera's time is `now_ms`. A stream-clock camera's time moves on
    /// only with its frames, however slowly they are analysed; once it has finished, or had no
    /// frame for its `stall_timeout_s`, its time goes on from its last frame at the agent
    /// clock's pace.
    fn expire(&mut self, now_ms: i64) -> bool {
        for cam in 0..self.cams.0.len() {
            // A camera another worker holds, or whose frame waits, is not stalled.
            if !self.slots.try_claim(cam) {
                continue;
            }
            self.hold(cam);
            let open = self.expire_camera(cam, now_ms);
            self.give_back(cam);
            if !open {
                return false;
            }
        }
        true
    }

    /// [`Analysis::expire`] for one held camera.
    fn expire_camera(&mut self, cam: usize, now_ms: i64) -> bool {
        let finished = self.slots.is_finished(cam);
        {
            let s = &mut self.cams[cam];
            let now_ms = match (s.stream_clock, s.last_at) {
                (false, _) => now_ms,
                (true, None) => return true,
                (true, Some(at)) => {
                    let quiet = at.elapsed().as_millis() as i64;
                    if quiet <= s.stall_ms && !finished {
                        return true;
                    }
                    s.last_ms + quiet
                }
            };
            if now_ms - s.last_ms <= self.cfg.tracker.max_age_ms {
                return true;
            }
        }
        let s = &mut self.cams[cam];
        let outputs = if s.live() > 0 {
            s.without_detections(Some(now_ms))
        } else {
            Vec::new()
        };
        // The rules see time pass (never backwards: a file analysed faster than real
        // time runs ahead of the wall clock), so a waiting face decision goes out.
        let rules_ms = now_ms.max(s.last_ms);
        let alerts = self.apply_rules(cam, rules_ms, None, &[], &[]);
        if (!outputs.is_empty() || !alerts.is_empty()) && !self.send(cam, None, outputs, alerts) {
            return false;
        }
        true
    }

    /// Ends every track of the cameras this worker can claim that were not ended yet (at the
    /// end of the run, a camera another worker holds is ended by that worker after its frame).
    fn flush(&mut self) {
        for cam in 0..self.cams.0.len() {
            if self.pool.flushed.lock().unwrap_or_else(|e| e.into_inner())[cam]
                || !self.slots.try_claim(cam)
            {
                continue;
            }
            self.hold(cam);
            let outputs = self.cams[cam].without_detections(None);
            if !outputs.is_empty() {
                self.send(cam, None, outputs, Vec::new());
            }
            self.pool.flushed.lock().unwrap_or_else(|e| e.into_inner())[cam] = true;
            self.give_back(cam);
        }
    }

    /// Attaches to each output its link, its best embedding (a person's comes from its face)
    /// and its voted plate (a vehicle's comes from its plate), hands the outputs to the
    /// publisher and forgets the state of ended tracks.
    fn send(
        &mut self,
        cam: usize,
        capture_ms: Option<i64>,
        outputs: Vec<(ObjectClass, TrackOutput)>,
        alerts: Vec<Alert>,
    ) -> bool {
        let s = &mut self.cams[cam];
        let outputs: Vec<Output> = outputs
            .into_iter()
            .map(|(class, o)| {
                let link = s.links.get(&o.track).copied();
                let thumb = s.thumbs.get_mut(&o.track).and_then(|t| t.pending.take());
                // A person shows its linked face's best, else the one it kept from an
                // earlier face track that ended.
                let face = match class {
                    ObjectClass::Face => Some(o.track),
                    ObjectClass::Person => {
                        link.filter(|f| s.best.contains_key(f)).or(Some(o.track))
                    }
                    _ => None,
                };
                let plate = match class {
                    ObjectClass::Plate => Some(o.track),
                    c if c.carries_plate() => link,
                    _ => None,
                };
                Output {
                    class,
                    track: o,
                    embedding: face
                        .and_then(|t| s.best.get(&t))
                        .and_then(|b| b.embedding.clone()),
                    plate: plate
                        .and_then(|t| s.votes.get(&t))
                        .and_then(PlateVote::best)
                        .map(|(text, confidence)| sharpeyes_wire::PlateReading {
                            text,
                            confidence,
                        }),
                    link,
                    thumb,
                }
            })
            .collect();
        for o in &outputs {
            if o.track.event == sharpeyes_wire::TrackEvent::End {
                let t = o.track.track;
                let best = s.best.remove(&t);
                s.votes.remove(&t);
                s.thumbs.remove(&t);
                if let Some(other) = s.links.remove(&t) {
                    s.links.remove(&other);
                    // The person outlives its face track (the head turned away): it keeps the
                    // face's best if that beats what it holds.
                    if let Some(b) = best.filter(|_| o.class == ObjectClass::Face)
                        && s.best
                            .get(&other)
                            .is_none_or(|p| p.quality.total() < b.quality.total())
                    {
                        s.best.insert(other, b);
                    }
                }
            }
        }
        let (frame_w, frame_h) = s.size;
        self.tx
            .blocking_send(Analysed {
                camera: cam,
                frame_w,
                frame_h,
                capture_ms,
                outputs,
                alerts,
            })
            .is_ok()
    }
}

/// Everything the analysis workers share.
pub(crate) struct AnalysisInputs<'a> {
    pub(crate) cfg: &'a AgentConfig,
    pub(crate) rules: Vec<Rules>,
    pub(crate) watchlists: WatchlistFeed,
    pub(crate) slots: &'a FrameSlots,
    pub(crate) tx: &'a mpsc::Sender<Analysed>,
    pub(crate) metrics: &'a Metrics,
}

/// How often a worker busy with frames also looks for stalled cameras.
const EXPIRE_EVERY: Duration = Duration::from_millis(250);

/// The analysis stage: one worker thread per set of `models` (see the module doc), until
/// every camera has finished or the slots are closed; then every track is ended.
pub(crate) fn run_analysis(inputs: AnalysisInputs<'_>, models: Vec<Models>) {
    let AnalysisInputs {
        cfg,
        rules,
        watchlists,
        slots,
        tx,
        metrics,
    } = inputs;
    let first_id = sharpeyes_wire::now_ms().max(0) as u64 * 1000;
    let n = rules.len();
    let pool = Pool {
        states: Mutex::new(
            rules
                .into_iter()
                .enumerate()
                .map(|(cam, r)| Some(CameraState::new(cfg, cam, TrackIds::new(first_id), r)))
                .collect(),
        ),
        flushed: Mutex::new(vec![false; n]),
    };
    let pool = &pool;
    std::thread::scope(|scope| {
        for (i, models) in models.into_iter().enumerate() {
            let watchlists = watchlists.clone();
            let worker = move || {
                let a = Analysis {
                    cfg,
                    models,
                    cams: Held((0..n).map(|_| None).collect()),
                    pool,
                    slots,
                    tx,
                    metrics,
                    watchlists,
                    rule_out: Vec::new(),
                };
                work(a)
            };
            if let Err(e) = std::thread::Builder::new()
                .name(format!("analysis-{i}"))
                .spawn_scoped(scope, worker)
            {
                tracing::error!(error = %e, worker = i, "could not start an analysis worker; the others go on (raise the thread limit)");
            }
        }
    });
}

/// One worker's loop: claims frames until the run ends, then ends the tracks of the cameras
/// no other worker holds.
fn work(mut a: Analysis<'_>) {
    let mut last_expire = Instant::now();
    loop {
        a.metrics.heartbeat.beat();
        a.note_watchlists();
        let open = match a.slots.claim(EXPIRE_EVERY) {
            Take::Frame(f) => {
                let open = a.claimed_frame(f);
                // Cameras that stopped delivering age even while others keep the worker busy.
                if open && last_expire.elapsed() >= EXPIRE_EVERY {
                    last_expire = Instant::now();
                    a.expire(sharpeyes_wire::now_ms())
                } else {
                    open
                }
            }
            Take::Timeout => {
                last_expire = Instant::now();
                a.expire(sharpeyes_wire::now_ms())
            }
            Take::Finished => break,
        };
        if !open {
            // The publisher is gone: every worker stops.
            a.slots.close();
            break;
        }
    }
    a.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera's rules with the default configuration.
    pub(super) fn test_rules(cfg: &AgentConfig) -> Rules {
        Rules::new(&cfg.rules, "s", "cam", &Default::default(), "sface", 1).unwrap()
    }

    #[test]
    fn object_trackers_start_at_track_score_and_continue_down_to_the_class_threshold() {
        let mut cfg = AgentConfig::default();
        cfg.object_detector.thresholds = [(ObjectClass::Person, 0.3)].into_iter().collect();
        cfg.object_detector.track_score = 0.5;
        cfg.tracker.min_hits = 1;
        let mut s = CameraState::new(&cfg, 0, TrackIds::new(1), test_rules(&cfg));
        assert_eq!(s.objects.len(), 1);
        let t = &mut s.objects[0].1;
        let d = |score| Detection {
            bbox: [0.0, 0.0, 50.0, 150.0],
            score,
        };
        assert!(
            t.update(&[d(0.4)], 0).is_empty(),
            "0.4 < track_score starts nothing"
        );
        assert_eq!(t.update(&[d(0.6)], 200).len(), 1);
        t.update(&[d(0.35)], 400);
        assert_eq!(
            t.assigned().count(),
            1,
            "0.35 ≥ the class threshold continues it"
        );
    }
}
