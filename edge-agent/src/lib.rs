//! # edge-agent
//!
//! Runs on a camera gateway: decodes each camera's stream (GStreamer, `ingest`), detects
//! faces (ONNX Runtime, `infer`), tracks them per camera (`track`), and publishes compact
//! track batches over MQTT (`publish`). [`run`] is the whole agent; `main.rs` only parses
//! the command line.
//!
//! Stages and threads: one ingest thread per camera → newest-frame slots (bounded, drops
//! counted) → one analysis thread (detector + per-camera trackers) → a bounded channel →
//! the publisher task (batches, encodes, QoS 1) and the MQTT event loop task.

pub mod config;
pub mod infer;
pub mod ingest;
pub mod metrics;
pub mod probe;
pub mod publish;
pub mod track;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sharpeyes_wire::{ObjectClass, QEmbedding};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

pub use crate::config::AgentConfig;
use crate::config::ConfigFile;
use crate::infer::{FaceDetection, FaceDetector, FaceEmbedder, PlateReader};
use crate::ingest::{Frame, FrameSlots, Take};
use crate::metrics::{Metrics, add, get, inc};
use crate::publish::{Analysed, Output};
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
    /// Payloads acknowledged by the broker.
    pub published: u64,
    /// Track batches written to the spool (every batch produced).
    pub spooled: u64,
    /// Track batches still in the spool at exit (sent at the next start).
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
    let models = Models {
        detector,
        embedder,
        plates,
    };
    let metrics = Arc::new(Metrics::new(config.cameras.iter().map(|c| c.id.as_str())));
    let slots = Arc::new(FrameSlots::new(config.cameras.len()));
    let started = Instant::now();

    let (publisher, eventloop) = publish::connect(&config, metrics.clone())?;
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let mqtt_stop = CancellationToken::new();
    let driver = tokio::spawn(publish::drive(
        eventloop,
        config.clone(),
        metrics.clone(),
        publisher.link(),
        conn_tx,
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
            .spawn(move || analysis_loop(&cfg, models, &slots, &tx, &metrics))
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
    let detect_us: u64 = metrics.cameras.iter().map(|c| get(&c.detect_us)).sum();
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
        plate_frames,
        plates_read: metrics.cameras.iter().map(|c| get(&c.plates_read)).sum(),
        plate_ms_mean: plate_us as f64 / plate_frames.max(1) as f64 / 1000.0,
        track_updates: get(&metrics.track_updates),
        track_bytes: get(&metrics.track_bytes),
        published: get(&metrics.published),
        spooled: get(&metrics.spooled),
        spool_pending: get(&metrics.spool_pending),
        broker_errors: get(&metrics.broker_errors),
    };
    info!(?summary, "edge agent stopped");
    Ok(summary)
}

/// Per-camera analysis state.
struct CameraState {
    tracker: ByteTracker,
    /// Plate tracks (their own tracker; ids drawn with `tracker`'s).
    plate_tracker: ByteTracker,
    /// Each live plate track's readings.
    votes: HashMap<u64, PlateVote>,
    /// Capture time of the last frame the plate reader ran on.
    last_plate_ms: Option<i64>,
    /// Size of the camera's last analysed frame.
    size: (u32, u32),
    /// Capture time of the camera's last analysed frame.
    last_ms: i64,
    /// Each live track's best face so far: (quality, embedding).
    best: HashMap<u64, (f32, QEmbedding)>,
}

impl CameraState {
    /// Live tracks of every class.
    fn live(&self) -> usize {
        self.tracker.live() + self.plate_tracker.live()
    }

    /// What every tracker says when a frame brings nothing: at `now_ms` (lost tracks age and
    /// may end), or, with none, at shutdown (every track ends).
    fn without_detections(&mut self, now_ms: Option<i64>) -> Vec<(ObjectClass, TrackOutput)> {
        let mut out = Vec::new();
        for (class, t) in [
            (ObjectClass::Face, &mut self.tracker),
            (ObjectClass::Plate, &mut self.plate_tracker),
        ] {
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
struct Models {
    detector: Box<dyn FaceDetector>,
    embedder: Option<Box<dyn FaceEmbedder>>,
    plates: Option<PlateReader>,
}

/// The analysis stage: models and per-camera trackers; hands outputs on.
struct Analysis<'a> {
    cfg: &'a AgentConfig,
    detector: Box<dyn FaceDetector>,
    embedder: Option<Box<dyn FaceEmbedder>>,
    plates: Option<PlateReader>,
    cams: Vec<CameraState>,
    tx: &'a mpsc::Sender<Analysed>,
    metrics: &'a Metrics,
}

/// How good a face is for identification: bigger and more confident is better.
fn face_quality(d: &FaceDetection) -> f32 {
    let side = (d.bbox[2] - d.bbox[0]).min(d.bbox[3] - d.bbox[1]).max(0.0);
    side * d.score
}

impl Analysis<'_> {
    /// Detects, tracks and embeds one frame; false once the publisher is gone.
    fn frame(&mut self, f: Frame) -> bool {
        let cam = f.camera;
        let _span = info_span!("analyse", camera = %self.cfg.cameras[cam].id).entered();
        let m = &self.metrics.cameras[cam];
        let t0 = Instant::now();
        let faces = match self.detector.detect(&f.image) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "detection failed on a frame; skipped");
                return true;
            }
        };
        add(&m.detect_us, t0.elapsed().as_micros() as u64);
        inc(&m.frames_analysed);
        add(&m.detections, faces.len() as u64);
        let dets: Vec<Detection> = faces
            .iter()
            .map(|d| Detection {
                bbox: d.bbox,
                score: d.score,
            })
            .collect();
        let state = &mut self.cams[cam];
        let outputs = state.tracker.update(&dets, f.capture_ms);
        state.size = (f.image.width, f.image.height);
        state.last_ms = f.capture_ms;
        // Embed a track's face when it is better than the best one seen so far (start and
        // about once a second after: the tracker's outputs).
        if let Some(embedder) = self.embedder.as_mut() {
            let t0 = Instant::now();
            for o in &outputs {
                let Some(face) = o.detection.and_then(|i| faces.get(i)) else {
                    continue;
                };
                let q = face_quality(face);
                if state
                    .best
                    .get(&o.track)
                    .is_some_and(|(best, _)| q <= *best * 1.1)
                {
                    continue;
                }
                match embedder.embed(&f.image, &face.landmarks) {
                    Ok(e) => {
                        state.best.insert(o.track, (q, QEmbedding::quantize(&e)));
                    }
                    Err(e) => {
                        warn!(error = %e, "embedding failed; the track keeps its previous one")
                    }
                }
            }
            add(&m.embed_us, t0.elapsed().as_micros() as u64);
        }
        let mut outputs: Vec<(ObjectClass, TrackOutput)> = outputs
            .into_iter()
            .map(|o| (ObjectClass::Face, o))
            .collect();
        outputs.extend(self.read_plates(cam, &f));
        self.send(cam, Some(f.capture_ms), outputs)
    }

    /// Reads plates on `f` (at most every `plate_reader.interval_ms` per camera), tracks them
    /// and adds the readings to their tracks' votes.
    fn read_plates(&mut self, cam: usize, f: &Frame) -> Vec<(ObjectClass, TrackOutput)> {
        let Some(reader) = self.plates.as_mut() else {
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
        let read = match reader.read(&f.image, &[]) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "plate reading failed on a frame; skipped");
                return Vec::new();
            }
        };
        add(&m.plate_us, t0.elapsed().as_micros() as u64);
        inc(&m.plate_frames);
        add(&m.plates_read, read.len() as u64);
        let dets: Vec<Detection> = read
            .iter()
            .map(|p| Detection {
                bbox: p.bbox,
                score: p.locator_score,
            })
            .collect();
        let outputs = state.plate_tracker.update(&dets, f.capture_ms);
        for o in &outputs {
            if let Some(p) = o.detection.and_then(|i| read.get(i)) {
                state
                    .votes
                    .entry(o.track)
                    .or_default()
                    .add(&p.text, &p.char_confidences);
            }
        }
        outputs
            .into_iter()
            .map(|o| (ObjectClass::Plate, o))
            .collect()
    }

    /// Ends the tracks of cameras that stopped delivering frames; false once the publisher is gone.
    fn expire(&mut self, now_ms: i64) -> bool {
        for cam in 0..self.cams.len() {
            let s = &mut self.cams[cam];
            if s.live() > 0 && now_ms - s.last_ms > self.cfg.tracker.max_age_ms {
                let outputs = s.without_detections(Some(now_ms));
                if !outputs.is_empty() && !self.send(cam, None, outputs) {
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
                self.send(cam, None, outputs);
            }
        }
    }

    /// Attaches each track's best embedding or voted plate and hands the outputs to the
    /// publisher.
    fn send(
        &mut self,
        cam: usize,
        capture_ms: Option<i64>,
        outputs: Vec<(ObjectClass, TrackOutput)>,
    ) -> bool {
        let s = &mut self.cams[cam];
        let outputs = outputs
            .into_iter()
            .map(|(class, o)| {
                let end = o.event == sharpeyes_wire::TrackEvent::End;
                let embedding = match end {
                    true => s.best.remove(&o.track).map(|b| b.1),
                    false => s.best.get(&o.track).map(|b| b.1.clone()),
                };
                let vote = match end {
                    true => s.votes.remove(&o.track).and_then(|v| v.best()),
                    false => s.votes.get(&o.track).and_then(PlateVote::best),
                };
                let plate = vote
                    .map(|(text, confidence)| sharpeyes_wire::PlateReading { text, confidence });
                Output {
                    class,
                    track: o,
                    embedding,
                    plate,
                }
            })
            .collect();
        let (frame_w, frame_h) = s.size;
        self.tx
            .blocking_send(Analysed {
                camera: cam,
                frame_w,
                frame_h,
                capture_ms,
                outputs,
            })
            .is_ok()
    }
}

/// The analysis thread: takes frames round-robin, detects, tracks, embeds, hands outputs on.
fn analysis_loop(
    cfg: &AgentConfig,
    models: Models,
    slots: &FrameSlots,
    tx: &mpsc::Sender<Analysed>,
    metrics: &Metrics,
) {
    let first_id = sharpeyes_wire::now_ms().max(0) as u64 * 1000;
    let cams = cfg
        .cameras
        .iter()
        .map(|_| TrackIds::new(first_id))
        .map(|ids| CameraState {
            tracker: ByteTracker::with_ids(cfg.tracker.clone(), ids.clone()),
            plate_tracker: ByteTracker::with_ids(cfg.tracker.clone(), ids),
            votes: HashMap::new(),
            last_plate_ms: None,
            size: (0, 0),
            last_ms: 0,
            best: HashMap::new(),
        })
        .collect();
    let mut a = Analysis {
        cfg,
        detector: models.detector,
        embedder: models.embedder,
        plates: models.plates,
        cams,
        tx,
        metrics,
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
