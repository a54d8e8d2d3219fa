//! # edge-agent
//!
//! Runs on a camera gateway: decodes each camera's stream (GStreamer, `ingest`), detects
//! faces, persons, vehicles and plates (ONNX Runtime, `infer`), tracks them per camera
//! (`track`), applies the alert rules (`rules`: loitering, face and plate watchlists, the
//! watchlists arriving live over MQTT), and publishes compact track batches and alerts with
//! evidence over MQTT (`publish`). [`run`] is the whole agent; `main.rs` only parses
//! the command line.
//!
//! Stages and threads: one ingest thread per camera → newest-frame slots (bounded, drops
//! counted) → one analysis thread (detector + per-camera trackers) → a bounded channel →
//! the publisher task (batches, encodes, QoS 1) and the MQTT event loop task.

pub mod config;
pub mod ingest;
pub mod metrics;
pub mod probe;
pub mod publish;
pub mod rules;
pub mod track;

/// Inference (its own crate, `perception`, which the aggregator's enrollment shares).
pub use perception as infer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sharpeyes_wire::{Alert, Evidence, ObjectClass, QEmbedding};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

pub use crate::config::AgentConfig;
use crate::config::{ConfigFile, TrackerConfig};
use crate::infer::{
    BgrImage, FaceDetection, FaceDetector, FaceEmbedder, FaceQuality, ObjectDetection,
    ObjectDetector, PlateReader, cascade, face_quality,
};
use crate::ingest::{Frame, FrameSlots, Take};
use crate::metrics::{Metrics, add, get, inc};
use crate::publish::{Analysed, Output, WatchlistFeed};
use crate::rules::{FaceSeen, PlateSeen, RuleOutput, Rules, TrackedObject};
use crate::track::{ByteTracker, Detection, PlateVote, TrackIds, TrackOutput};

/// Why the agent could not run.
#[derive(Debug, Error)]
pub enum AgentError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// GStreamer could not start.
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    /// A model or the runtime could not be loaded, or an image could not be analysed.
    #[error(transparent)]
    Infer(#[from] infer::InferError),
    /// Publishing failed fatally.
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    /// A thread could not be started or joined.
    #[error("thread: {0}")]
    Thread(String),
}

/// What a finished run did (also useful to tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Frames analysed, all cameras.
    pub frames_analysed: u64,
    /// Frames dropped because analysis was behind, all cameras.
    pub frames_dropped: u64,
    /// Stream restarts after errors, stalls or ends, all cameras.
    pub reconnects: u64,
    /// Mean detection time per analysed frame, ms.
    pub detect_ms_mean: f64,
    /// Analysed frames per second of wall time.
    pub analysed_fps: f64,
    /// Mean person / vehicle detection time per analysed frame, ms.
    pub object_ms_mean: f64,
    /// Mean time per analysed frame spent on face quality and embeddings, ms.
    pub embed_ms_mean: f64,
    /// Face embeddings computed, all cameras.
    pub embeddings: u64,
    /// Mean tracking and linking time per analysed frame, ms.
    pub track_ms_mean: f64,
    /// Time spent batching, encoding, spooling and handing batches to MQTT, ms in all.
    pub publish_ms: f64,
    /// Frames the plate reader ran on, all cameras.
    pub plate_frames: u64,
    /// Plates read (grammatical readings, before voting), all cameras.
    pub plates_read: u64,
    /// Mean time to find and read the plates of one frame, ms.
    pub plate_ms_mean: f64,
    /// Track updates published.
    pub track_updates: u64,
    /// Bytes of track-batch payloads.
    pub track_bytes: u64,
    /// Payloads acknowledged by the broker (PUBACK: in flight).
    pub published: u64,
    /// Track batches and alerts written to the spool (every one produced).
    pub spooled: u64,
    /// Spooled messages an aggregator acknowledged as committed.
    pub acked: u64,
    /// Spooled messages sent again (no acknowledgement in time, or a reconnect).
    pub resent: u64,
    /// Track batches and alerts still in the spool at exit, no aggregator having acknowledged
    /// them (sent at the next start).
    pub spool_pending: u64,
    /// Broker connection errors.
    pub broker_errors: u64,
}

/// Runs the agent until `shutdown` is cancelled, or until every camera has ended (files
/// whose `at_end` stops them). On the way out it ends all tracks, publishes them, publishes an
/// offline status and waits (bounded) for the broker's acknowledgements.
pub async fn run(
    config: AgentConfig,
    shutdown: CancellationToken,
) -> Result<RunSummary, AgentError> {
    config.validate()?;
    ingest::init()?;
    // The tracker continues tracks with low-score faces: detect down to its low threshold.
    let detector_cfg = config::FaceDetectorConfig {
        score_threshold: config
            .face_detector
            .score_threshold
            .min(config.tracker.low_score),
        ..config.face_detector.clone()
    };
    let detector = infer::face_detector(&config.models, &detector_cfg)?;
    let embedder = match config.face_embedder.enabled {
        true => Some(infer::face_embedder(&config.models, &config.face_embedder)?),
        false => None,
    };
    let plates = match config.plate_reader.enabled {
        true => Some(infer::plate_reader(&config.models, &config.plate_reader)?),
        false => None,
    };
    let objects = match config.object_detector.enabled {
        true => Some(infer::object_detector(
            &config.models,
            &config.object_detector,
        )?),
        false => None,
    };
    let models = Models {
        detector,
        embedder,
        objects,
        plates,
    };
    let metrics = Arc::new(Metrics::new(config.cameras.iter().map(|c| c.id.as_str())));
    let _ops = sharpeyes_common::ops::start(&config.ops, config::OPS_PORT, metrics.clone()).await;
    let slots = Arc::new(FrameSlots::new(config.cameras.len()));
    let started = Instant::now();

    // Alert ids count from the start time, so a restarted agent never reuses one.
    let first_alert_n = sharpeyes_wire::now_ms().max(0) as u64;
    let rules = config
        .cameras
        .iter()
        .map(|c| {
            Rules::new(
                &config.rules,
                &config.site,
                &c.id,
                &c.rules(),
                &config.face_embedder.family,
                first_alert_n,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (watchlists_tx, watchlists) = tokio::sync::watch::channel(None);

    let (publisher, eventloop) = publish::connect(&config, metrics.clone())?;
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let mqtt_stop = CancellationToken::new();
    let driver = tokio::spawn(publish::drive(
        eventloop,
        config.clone(),
        metrics.clone(),
        publisher.link(),
        conn_tx,
        watchlists_tx,
        mqtt_stop.clone(),
    ));
    let (tx, rx) = mpsc::channel(256);
    let publisher = tokio::spawn(publish::publish_loop(publisher, rx, conn_rx));

    let ingest_stop = shutdown.child_token();
    let mut ingest_threads = Vec::new();
    for (i, cam) in config.cameras.iter().enumerate() {
        if !cam.enabled {
            metrics.cameras[i].set_state("disabled");
            slots.finish(i);
            continue;
        }
        let h = ingest::spawn_camera(
            i,
            cam.clone(),
            slots.clone(),
            metrics.clone(),
            ingest_stop.clone(),
        )
        .map_err(|e| AgentError::Thread(e.to_string()))?;
        ingest_threads.push(h);
    }
    if ingest_threads.is_empty() {
        warn!("no enabled camera: nothing to analyse");
    }
    info!(agent = %config.agent_id, site = %config.site, cameras = ingest_threads.len(), "edge agent started");

    let analysis = {
        let (cfg, slots, metrics) = (config.clone(), slots.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("analysis".into())
            .spawn(move || analysis_loop(&cfg, models, rules, watchlists, &slots, &tx, &metrics))
            .map_err(|e| AgentError::Thread(e.to_string()))?
    };
    // Shutdown closes the slots so analysis stops at once (ingest threads see the token too).
    let closer = {
        let (slots, shutdown) = (slots.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            slots.close();
        })
    };
    let joined = tokio::task::spawn_blocking(move || {
        let a = analysis.join();
        ingest_stop.cancel();
        for h in ingest_threads {
            let _ = h.join();
        }
        a
    })
    .await;
    closer.abort();
    let publish_result = publisher
        .await
        .map_err(|e| AgentError::Thread(e.to_string()))?;
    mqtt_stop.cancel();
    let _ = driver.await;
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(_)) | Err(_) => return Err(AgentError::Thread("analysis thread panicked".into())),
    }
    publish_result?;

    let analysed: u64 = metrics
        .cameras
        .iter()
        .map(|c| get(&c.frames_analysed))
        .sum();
    let sum = |f: fn(&metrics::CameraMetrics) -> &std::sync::atomic::AtomicU64| -> u64 {
        metrics.cameras.iter().map(|c| get(f(c))).sum()
    };
    let per_frame_ms = |us: u64| us as f64 / analysed.max(1) as f64 / 1000.0;
    let detect_us = sum(|c| &c.detect_us);
    let plate_frames: u64 = metrics.cameras.iter().map(|c| get(&c.plate_frames)).sum();
    let plate_us: u64 = metrics.cameras.iter().map(|c| get(&c.plate_us)).sum();
    let summary = RunSummary {
        frames_analysed: analysed,
        frames_dropped: metrics.cameras.iter().map(|c| get(&c.frames_dropped)).sum(),
        reconnects: metrics.cameras.iter().map(|c| get(&c.reconnects)).sum(),
        detect_ms_mean: if analysed > 0 {
            detect_us as f64 / analysed as f64 / 1000.0
        } else {
            0.0
        },
        analysed_fps: analysed as f64 / started.elapsed().as_secs_f64().max(1e-9),
        object_ms_mean: per_frame_ms(sum(|c| &c.object_us)),
        embed_ms_mean: per_frame_ms(sum(|c| &c.embed_us)),
        embeddings: sum(|c| &c.embeddings),
        track_ms_mean: per_frame_ms(sum(|c| &c.track_us)),
        publish_ms: get(&metrics.publish_us) as f64 / 1000.0,
        plate_frames,
        plates_read: metrics.cameras.iter().map(|c| get(&c.plates_read)).sum(),
        plate_ms_mean: plate_us as f64 / plate_frames.max(1) as f64 / 1000.0,
        track_updates: get(&metrics.track_updates),
        track_bytes: get(&metrics.track_bytes),
        published: get(&metrics.published),
        spooled: get(&metrics.spooled),
        acked: get(&metrics.acked),
        resent: get(&metrics.resent),
        spool_pending: get(&metrics.spool_pending),
        broker_errors: get(&metrics.broker_errors),
    };
    info!(?summary, "edge agent stopped");
    Ok(summary)
}

/// A face track's best face so far (what identifies it): chosen by [`FaceQuality`].
#[derive(Debug, Clone)]
pub struct BestFace {
    /// Its quality.
    pub quality: FaceQuality,
    /// Its embedding (quantised as on the wire), when the embedder is enabled.
    pub embedding: Option<QEmbedding>,
    /// The face, cropped with a margin (evidence and review).
    pub crop: BgrImage,
    /// Capture time of its frame.
    pub ts_ms: i64,
}

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
    /// Size of the camera's last analysed frame.
    size: (u32, u32),
    /// Capture time of the camera's last analysed frame.
    last_ms: i64,
    /// Each live face track's best face.
    best: HashMap<u64, BestFace>,
    /// Links between tracks of different classes, both ways (person ↔ face, vehicle ↔ plate).
    links: HashMap<u64, u64>,
    /// The camera's alert rules.
    rules: Rules,
    /// Plate tracks seen in this frame (when the plate reader ran on it), with their boxes.
    plates_seen: Vec<(u64, [f32; 4])>,
    /// Evidence encoded for alerts not sent yet (a face alert waits for the companion check),
    /// by alert id, with the capture time of the newest image.
    evidence: HashMap<String, (i64, Vec<Evidence>)>,
    /// Each live track's best shots (see [`ThumbState`]).
    thumbs: HashMap<u64, ThumbState>,
}

/// A track's best shots ("thumbs": small JPEGs the aggregator shows beside the track's
/// sighting). A track takes one when its best improves markedly: a face or person track when
/// its face's best (by [`FaceQuality`]) reaches [`THUMB_GAIN`] × the quality of the last one
/// taken, a vehicle or plate track when its box area does; at most [`THUMB_MAX_PER_TRACK`]
/// per track. A shot taken rides on the track's next update (or its end), so a batch carries
/// at most one per track. Each is at most [`THUMB_SIDE`] px on its longer side at JPEG quality
/// [`THUMB_QUALITY`]: 2–6 KB, so at most about 3 × 6 KB per track, most tracks sending one or
/// two (README: measured bytes per track).
#[derive(Debug, Default)]
struct ThumbState {
    /// Quality of the last shot taken (face quality; box area in px² for vehicles and plates).
    quality: f32,
    /// Shots taken so far.
    taken: u8,
    /// Taken, not yet sent.
    pending: Option<Evidence>,
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

impl CameraState {
    fn new(cfg: &AgentConfig, ids: TrackIds, rules: Rules) -> Self {
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
            size: (0, 0),
            last_ms: 0,
            best: HashMap::new(),
            links: HashMap::new(),
            rules,
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

    /// Links each face seen this frame with the person whose head region holds it, and each
    /// plate with the vehicle around it (the smallest enclosing one when several qualify).
    fn link(
        &mut self,
        inner: &[(u64, [f32; 4])],
        outer: &[(u64, [f32; 4])],
        holds: impl Fn(&[f32; 4], &[f32; 4]) -> bool,
    ) {
        for &(i, ib) in inner {
            let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
            let Some(&(o, _)) = outer
                .iter()
                .filter(|(_, ob)| holds(&ib, ob))
                .min_by(|a, b| area(&a.1).total_cmp(&area(&b.1)))
            else {
                continue;
            };
            // A new partner replaces the old one on both sides.
            for t in [i, o] {
                if let Some(old) = self.links.remove(&t) {
                    self.links.remove(&old);
                }
            }
            self.links.insert(i, o);
            self.links.insert(o, i);
        }
    }
}

/// Whether face box `f` lies in the head region of person box `p`: its centre inside the
/// person's width and upper 40 %, and no wider than the person.
fn face_in_person(f: &[f32; 4], p: &[f32; 4]) -> bool {
    let (cx, cy) = ((f[0] + f[2]) / 2.0, (f[1] + f[3]) / 2.0);
    cx >= p[0]
        && cx <= p[2]
        && cy >= p[1]
        && cy <= p[1] + 0.4 * (p[3] - p[1])
        && f[2] - f[0] <= p[2] - p[0]
}

/// Whether plate box `pl` lies inside vehicle box `v` (its centre, with a 10 % margin).
fn plate_on_vehicle(pl: &[f32; 4], v: &[f32; 4]) -> bool {
    let (cx, cy) = ((pl[0] + pl[2]) / 2.0, (pl[1] + pl[3]) / 2.0);
    let (mx, my) = ((v[2] - v[0]) * 0.1, (v[3] - v[1]) * 0.1);
    cx >= v[0] - mx && cx <= v[2] + mx && cy >= v[1] - my && cy <= v[3] + my
}

/// Longer side of an evidence crop (object, face), pixels at most.
const EVIDENCE_CROP_SIDE: u32 = 480;
/// Longer side of the evidence scene thumbnail, pixels at most.
const EVIDENCE_FRAME_SIDE: u32 = 960;

/// The models the analysis stage runs.
struct Models {
    detector: Box<dyn FaceDetector>,
    embedder: Option<Box<dyn FaceEmbedder>>,
    objects: Option<Box<dyn ObjectDetector>>,
    plates: Option<PlateReader>,
}

/// The analysis stage: models and per-camera trackers; hands outputs on.
struct Analysis<'a> {
    cfg: &'a AgentConfig,
    models: Models,
    cams: Vec<CameraState>,
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
    /// Detects, tracks, links and embeds one frame; false once the publisher is gone.
    fn frame(&mut self, f: Frame) -> bool {
        self.take_watchlists();
        let cam = f.camera;
        let _span = info_span!("analyse", camera = %self.cfg.cameras[cam].id).entered();
        let m = &self.metrics.cameras[cam];
        let t0 = Instant::now();
        let mut faces = match self.models.detector.detect(&f.image) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "face detection failed on a frame; skipped");
                return true;
            }
        };
        add(&m.detect_us, t0.elapsed().as_micros() as u64);
        let objects = match self.models.objects.as_mut() {
            Some(d) => {
                let t0 = Instant::now();
                let r = d.detect(&f.image);
                add(&m.object_us, t0.elapsed().as_micros() as u64);
                r.unwrap_or_else(|e| {
                    warn!(error = %e, "object detection failed on a frame; faces only");
                    Vec::new()
                })
            }
            None => Vec::new(),
        };
        add(&m.objects, objects.len() as u64);
        if self.cfg.face_detector.cascade {
            let t0 = Instant::now();
            let persons = infer::person_boxes(&objects);
            match cascade::head_faces(self.models.detector.as_mut(), &f.image, &persons, &faces) {
                Ok(extra) => {
                    add(&m.cascade_faces, extra.len() as u64);
                    faces.extend(extra);
                }
                Err(e) => warn!(error = %e, "small-face cascade failed on a frame"),
            }
            add(&m.detect_us, t0.elapsed().as_micros() as u64);
        }
        add(&m.detections, faces.len() as u64);
        inc(&m.frames_analysed);

        let t0 = Instant::now();
        let state = &mut self.cams[cam];
        state.size = (f.image.width, f.image.height);
        state.last_ms = f.capture_ms;
        let mut outputs: Vec<(ObjectClass, TrackOutput)> = state
            .faces
            .update(&detections(&faces, |d| (d.bbox, d.score)), f.capture_ms)
            .into_iter()
            .map(|o| (ObjectClass::Face, o))
            .collect();
        let (mut persons, mut vehicles) = (Vec::new(), Vec::new());
        let mut tracked: Vec<(ObjectClass, u64, [f32; 4])> = Vec::new();
        for (class, tracker) in &mut state.objects {
            let idx: Vec<usize> = (0..objects.len())
                .filter(|&i| objects[i].class == *class)
                .collect();
            let dets = detections(&idx, |&i| (objects[i].bbox, objects[i].score));
            let o = tracker.update(&dets, f.capture_ms);
            outputs.extend(o.into_iter().map(|o| (*class, o)));
            let seen = tracker.assigned().map(|(t, d)| (t, dets[d].bbox));
            tracked.extend(tracker.assigned().map(|(t, d)| (*class, t, dets[d].bbox)));
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
        outputs.extend(self.read_plates(cam, &f, &objects, &vehicles));
        self.take_thumbs(cam, &f, &vehicles);
        let alerts = self.apply_rules(cam, f.capture_ms, Some(&f), &face_boxes, &tracked);
        self.send(cam, Some(f.capture_ms), outputs, alerts)
    }

    /// Applies new watchlists, if the aggregator published some, to every camera's rules.
    fn take_watchlists(&mut self) {
        if !self.watchlists.has_changed().unwrap_or(false) {
            return;
        }
        let Some(w) = self.watchlists.borrow_and_update().clone() else {
            return;
        };
        for c in &mut self.cams {
            c.rules.set_watchlists(w.clone());
        }
        self.metrics.watchlist_version_plus_one.store(
            w.version().saturating_add(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        info!(version = w.version(), "watchlists applied");
    }

    /// Feeds the rules this frame's tracked objects (faces, persons, vehicles, plates, with
    /// their best faces and voted plates); encodes the evidence they ask for from `f` and
    /// returns the alerts to publish, evidence attached. Without a frame (a camera that
    /// stopped) the rules only see time pass.
    fn apply_rules(
        &mut self,
        cam: usize,
        now_ms: i64,
        f: Option<&Frame>,
        faces: &[(u64, [f32; 4])],
        tracked: &[(ObjectClass, u64, [f32; 4])],
    ) -> Vec<Alert> {
        let s = &mut self.cams[cam];
        let (best, links, votes) = (&s.best, &s.links, &s.votes);
        let face_of = |t: u64| {
            best.get(&t).and_then(|b| {
                b.embedding.as_ref().map(|e| FaceSeen {
                    embedding: e.into(),
                    version: b.ts_ms,
                })
            })
        };
        let readings: Vec<(u64, [f32; 4], String, f32)> = s
            .plates_seen
            .iter()
            .filter_map(|&(t, b)| {
                votes
                    .get(&t)
                    .and_then(PlateVote::best)
                    .map(|(text, c)| (t, b, text, c))
            })
            .collect();
        let mut objects: Vec<TrackedObject<'_>> =
            Vec::with_capacity(faces.len() + tracked.len() + readings.len());
        objects.extend(faces.iter().map(|&(t, bbox)| TrackedObject {
            track: t,
            class: ObjectClass::Face,
            bbox,
            face: face_of(t),
            plate: None,
            link: links.get(&t).copied(),
        }));
        objects.extend(tracked.iter().map(|&(class, t, bbox)| {
            let link = links.get(&t).copied();
            TrackedObject {
                track: t,
                class,
                bbox,
                // A person carries its face's best, else the one it kept.
                face: match class {
                    ObjectClass::Person => link.and_then(face_of).or_else(|| face_of(t)),
                    _ => None,
                },
                plate: None,
                link,
            }
        }));
        objects.extend(readings.iter().map(|(t, bbox, text, c)| TrackedObject {
            track: *t,
            class: ObjectClass::Plate,
            bbox: *bbox,
            face: None,
            plate: Some(PlateSeen {
                text,
                confidence: *c,
            }),
            link: links.get(t).copied(),
        }));
        self.rule_out.clear();
        s.rules.update_into(&objects, now_ms, &mut self.rule_out);
        drop(objects);
        let mut alerts = Vec::new();
        for out in self.rule_out.drain(..) {
            match out {
                RuleOutput::Evidence(req) => {
                    let Some(f) = f else { continue };
                    let entry = s
                        .evidence
                        .entry(req.alert_id.clone())
                        .or_insert_with(|| (req.ts_ms, Vec::new()));
                    entry.0 = req.ts_ms;
                    let crop_role = if entry.1.iter().any(|e| e.role == "crop") {
                        "linked"
                    } else {
                        "crop"
                    };
                    let b = req.bbox;
                    let (mx, my) = ((b[2] - b[0]) * 0.15, (b[3] - b[1]) * 0.15);
                    let mut images: Vec<(&str, Result<Vec<u8>, infer::InferError>)> =
                        Vec::with_capacity(3);
                    if let Some((crop, _, _)) =
                        f.image.crop([b[0] - mx, b[1] - my, b[2] + mx, b[3] + my])
                    {
                        images.push((crop_role, crop.to_jpeg(EVIDENCE_CROP_SIDE, 85)));
                    }
                    if !entry.1.iter().any(|e| e.role == "frame") {
                        images.push(("frame", f.image.to_jpeg(EVIDENCE_FRAME_SIDE, 75)));
                    }
                    if req.best_face {
                        let own = best.get(&req.track);
                        let linked = links.get(&req.track).and_then(|l| best.get(l));
                        if let Some(bf) = own.or(linked) {
                            images.push(("face", bf.crop.to_jpeg(EVIDENCE_CROP_SIDE, 90)));
                        }
                    }
                    for (role, jpeg) in images {
                        match jpeg {
                            Ok(data) => {
                                entry.1.retain(|e| e.role != role);
                                entry.1.push(Evidence {
                                    role: role.into(),
                                    mime: "image/jpeg".into(),
                                    data,
                                });
                            }
                            Err(e) => warn!(error = %e, "evidence image could not be encoded"),
                        }
                    }
                }
                RuleOutput::Alert(mut a) => {
                    a.evidence = s
                        .evidence
                        .remove(&a.alert_id)
                        .map(|(_, e)| e)
                        .unwrap_or_default();
                    alerts.push(a);
                }
            }
        }
        // Evidence of a decision the rules dropped (e.g. the patient's entry was removed)
        // never finds its alert: forget it after a while.
        let keep_ms = 2 * 1000 * self.cfg.rules.face_watchlist.companion_window_s as i64 + 10_000;
        s.evidence.retain(|_, (ts, _)| now_ms - *ts <= keep_ms);
        alerts
    }

    /// Keeps each face track's best face (by [`FaceQuality`]), embedding it when it beats the
    /// previous best by 10 % and `face_embedder.min_interval_ms` has passed.
    fn choose_best_faces(
        &mut self,
        cam: usize,
        f: &Frame,
        faces: &[FaceDetection],
        seen: &[(u64, usize)],
    ) {
        let m = &self.metrics.cameras[cam];
        let state = &mut self.cams[cam];
        let min_interval = self.cfg.face_embedder.min_interval_ms;
        let t0 = Instant::now();
        for &(track, di) in seen {
            let face = &faces[di];
            let previous = state.best.get(&track);
            // Within the interval nothing can replace the best face: skip the pixel work too.
            if previous.is_some_and(|b| f.capture_ms - b.ts_ms < min_interval) {
                continue;
            }
            let quality = face_quality(&f.image, face);
            if previous.is_some_and(|b| quality.total() <= b.quality.total() * 1.1) {
                continue;
            }
            let embedding = match self.models.embedder.as_mut() {
                Some(e) => match e.embed(&f.image, &face.landmarks) {
                    Ok(v) => {
                        inc(&m.embeddings);
                        Some(QEmbedding::quantize(&v))
                    }
                    Err(e) => {
                        warn!(error = %e, "embedding failed; the track keeps its previous face");
                        continue;
                    }
                },
                None => None,
            };
            let b = face.bbox;
            let (mx, my) = ((b[2] - b[0]) * 0.2, (b[3] - b[1]) * 0.2);
            let Some((crop, _, _)) = f.image.crop([b[0] - mx, b[1] - my, b[2] + mx, b[3] + my])
            else {
                continue;
            };
            state.best.insert(
                track,
                BestFace {
                    quality,
                    embedding,
                    crop,
                    ts_ms: f.capture_ms,
                },
            );
        }
        add(&m.embed_us, t0.elapsed().as_micros() as u64);
    }

    /// Takes the best shots due on `f` (see [`ThumbState`]): faces whose best was replaced on
    /// this frame (for the face track and its person), the camera's vehicles `vehicles` and
    /// the plates read on it.
    fn take_thumbs(&mut self, cam: usize, f: &Frame, vehicles: &[(u64, [f32; 4])]) {
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

    /// Reads plates on `f` (at most every `plate_reader.interval_ms` per camera) inside the
    /// vehicles found and the camera's `plate_regions`, and, with `plate_reader.whole_frame` or when there are none, in the
    /// whole frame; tracks them, adds the readings to
    /// their tracks' votes and links each plate with its vehicle.
    fn read_plates(
        &mut self,
        cam: usize,
        f: &Frame,
        objects: &[ObjectDetection],
        vehicles: &[(u64, [f32; 4])],
    ) -> Vec<(ObjectClass, TrackOutput)> {
        self.cams[cam].plates_seen.clear();
        let Some(reader) = self.models.plates.as_mut() else {
            return Vec::new();
        };
        let state = &mut self.cams[cam];
        let due = state.last_plate_ms.is_none_or(|t| {
            f.capture_ms - t >= self.cfg.plate_reader.interval_ms as i64 || f.capture_ms < t
        });
        if !due {
            return Vec::new();
        }
        state.last_plate_ms = Some(f.capture_ms);
        let m = &self.metrics.cameras[cam];
        let _span = info_span!("plates").entered();
        let t0 = Instant::now();
        let mut regions = infer::plate_regions(objects);
        regions.extend_from_slice(&self.cfg.cameras[cam].plate_regions);
        let read = match reader.read(&f.image, &regions, self.cfg.plate_reader.whole_frame) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "plate reading failed on a frame; skipped");
                return Vec::new();
            }
        };
        add(&m.plate_us, t0.elapsed().as_micros() as u64);
        inc(&m.plate_frames);
        add(&m.plates_read, read.len() as u64);
        let outputs = state.plates.update(
            &detections(&read, |p| (p.bbox, p.locator_score)),
            f.capture_ms,
        );
        let seen: Vec<(u64, usize)> = state.plates.assigned().collect();
        for &(track, di) in &seen {
            state
                .votes
                .entry(track)
                .or_default()
                .add(&read[di].text, &read[di].char_confidences);
        }
        let plates: Vec<(u64, [f32; 4])> = seen.iter().map(|&(t, d)| (t, read[d].bbox)).collect();
        state.link(&plates, vehicles, plate_on_vehicle);
        state.plates_seen = plates;
        outputs
            .into_iter()
            .map(|o| (ObjectClass::Plate, o))
            .collect()
    }

    /// Ends the tracks of cameras that stopped delivering frames; false once the publisher is gone.
    fn expire(&mut self, now_ms: i64) -> bool {
        self.take_watchlists();
        for cam in 0..self.cams.len() {
            let s = &mut self.cams[cam];
            if now_ms - s.last_ms > self.cfg.tracker.max_age_ms {
                let outputs = if s.live() > 0 {
                    s.without_detections(Some(now_ms))
                } else {
                    Vec::new()
                };
                // The rules see time pass (never backwards: a file analysed faster than real
                // time runs ahead of the wall clock), so a waiting face decision goes out.
                let rules_ms = now_ms.max(s.last_ms);
                let alerts = self.apply_rules(cam, rules_ms, None, &[], &[]);
                if (!outputs.is_empty() || !alerts.is_empty())
                    && !self.send(cam, None, outputs, alerts)
                {
                    return false;
                }
            }
        }
        true
    }

    /// Ends every track.
    fn flush(&mut self) {
        for cam in 0..self.cams.len() {
            let outputs = self.cams[cam].without_detections(None);
            if !outputs.is_empty() {
                self.send(cam, None, outputs, Vec::new());
            }
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

/// The analysis thread: takes frames round-robin, detects, tracks, embeds, hands outputs on.
fn analysis_loop(
    cfg: &AgentConfig,
    models: Models,
    rules: Vec<Rules>,
    watchlists: WatchlistFeed,
    slots: &FrameSlots,
    tx: &mpsc::Sender<Analysed>,
    metrics: &Metrics,
) {
    let first_id = sharpeyes_wire::now_ms().max(0) as u64 * 1000;
    let cams = rules
        .into_iter()
        .map(|r| CameraState::new(cfg, TrackIds::new(first_id), r))
        .collect();
    let mut a = Analysis {
        cfg,
        models,
        cams,
        tx,
        metrics,
        watchlists,
        rule_out: Vec::new(),
    };
    loop {
        let open = match slots.take(Duration::from_millis(250)) {
            Take::Frame(f) => a.frame(f),
            Take::Timeout => a.expire(sharpeyes_wire::now_ms()),
            Take::Finished => break,
        };
        if !open {
            break;
        }
    }
    a.flush();
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

    #[test]
    fn faces_link_to_the_person_whose_head_region_holds_them() {
        let person = [100.0, 100.0, 200.0, 400.0];
        assert!(face_in_person(&[130.0, 110.0, 170.0, 160.0], &person));
        // At the person's feet, beside the person, or wider than the person: not theirs.
        assert!(!face_in_person(&[130.0, 330.0, 170.0, 380.0], &person));
        assert!(!face_in_person(&[210.0, 110.0, 250.0, 160.0], &person));
        assert!(!face_in_person(&[50.0, 110.0, 260.0, 160.0], &person));
        // Plates link to the vehicle around them (a little outside the box still counts).
        let car = [0.0, 0.0, 400.0, 300.0];
        assert!(plate_on_vehicle(&[150.0, 250.0, 250.0, 310.0], &car));
        assert!(!plate_on_vehicle(&[500.0, 250.0, 600.0, 310.0], &car));
    }

    fn test_rules(cfg: &AgentConfig) -> Rules {
        Rules::new(&cfg.rules, "s", "cam", &Default::default(), "sface", 1).unwrap()
    }

    #[test]
    fn links_are_mutual_and_a_new_partner_replaces_the_old() {
        let cfg = AgentConfig::default();
        let mut s = CameraState::new(&cfg, TrackIds::new(1), test_rules(&cfg));
        assert_eq!(s.objects.len(), 6, "one tracker per reported class");
        let (p1, p2) = ([0.0, 0.0, 100.0, 300.0], [200.0, 0.0, 300.0, 300.0]);
        // Face 10 inside person 1; face 11 inside person 2; the smaller of two nested persons wins.
        s.link(
            &[
                (10, [30.0, 10.0, 70.0, 50.0]),
                (11, [230.0, 10.0, 270.0, 50.0]),
            ],
            &[(1, p1), (2, p2), (3, [0.0, 0.0, 150.0, 900.0])],
            face_in_person,
        );
        assert_eq!(s.links.get(&10), Some(&1));
        assert_eq!(s.links.get(&1), Some(&10));
        assert_eq!(s.links.get(&11), Some(&2));
        // Face 10 now shows up in person 2's head region: 2 drops face 11, 1 drops face 10.
        s.link(
            &[(10, [230.0, 10.0, 270.0, 50.0])],
            &[(2, p2)],
            face_in_person,
        );
        assert_eq!(s.links.get(&10), Some(&2));
        assert_eq!(s.links.get(&2), Some(&10));
        assert_eq!(s.links.get(&1), None);
        assert_eq!(s.links.get(&11), None);
        // A face outside every person links to nothing.
        s.link(
            &[(12, [900.0, 900.0, 950.0, 950.0])],
            &[(2, p2)],
            face_in_person,
        );
        assert_eq!(s.links.get(&12), None);
    }

    #[test]
    fn object_trackers_start_at_track_score_and_continue_down_to_the_class_threshold() {
        let mut cfg = AgentConfig::default();
        cfg.object_detector.thresholds = [(ObjectClass::Person, 0.3)].into_iter().collect();
        cfg.object_detector.track_score = 0.5;
        cfg.tracker.min_hits = 1;
        let mut s = CameraState::new(&cfg, TrackIds::new(1), test_rules(&cfg));
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
