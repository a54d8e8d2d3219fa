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

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

pub use crate::config::AgentConfig;
use crate::config::ConfigFile;
use crate::infer::FaceDetector;
use crate::ingest::{FrameSlots, Take};
use crate::metrics::{Metrics, add, get, inc};
use crate::publish::Analysed;
use crate::track::{Detection, IouTracker};

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
    /// Track updates published.
    pub track_updates: u64,
    /// Bytes of track-batch payloads.
    pub track_bytes: u64,
    /// Payloads acknowledged by the broker.
    pub published: u64,
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
    let detector = infer::face_detector(&config.models, &config.face_detector)?;
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
            .spawn(move || analysis_loop(&cfg, detector, &slots, &tx, &metrics))
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
        track_updates: get(&metrics.track_updates),
        track_bytes: get(&metrics.track_bytes),
        published: get(&metrics.published),
    };
    info!(?summary, "edge agent stopped");
    Ok(summary)
}

/// The analysis thread: takes frames round-robin, detects, tracks, hands outputs on.
fn analysis_loop(
    cfg: &AgentConfig,
    mut detector: Box<dyn FaceDetector>,
    slots: &FrameSlots,
    tx: &mpsc::Sender<Analysed>,
    metrics: &Metrics,
) {
    let first_id = sharpeyes_wire::now_ms().max(0) as u64 * 1000;
    let mut trackers: Vec<IouTracker> = cfg
        .cameras
        .iter()
        .map(|_| IouTracker::new(cfg.tracker.clone(), first_id))
        .collect();
    let mut sizes = vec![(0u32, 0u32); cfg.cameras.len()];
    let mut last_ms = vec![0i64; cfg.cameras.len()];
    loop {
        match slots.take(Duration::from_millis(250)) {
            Take::Frame(f) => {
                let cam = f.camera;
                let _span = info_span!("analyse", camera = %cfg.cameras[cam].id).entered();
                let m = &metrics.cameras[cam];
                let t0 = Instant::now();
                let faces = match detector.detect(&f.image) {
                    Ok(v) => v,
                    Err(e) => {
                        warn!(error = %e, "detection failed on a frame; skipped");
                        continue;
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
                let outputs = trackers[cam].update(&dets, f.capture_ms);
                sizes[cam] = (f.image.width, f.image.height);
                last_ms[cam] = f.capture_ms;
                let a = Analysed {
                    camera: cam,
                    frame_w: f.image.width,
                    frame_h: f.image.height,
                    capture_ms: Some(f.capture_ms),
                    outputs,
                };
                if tx.blocking_send(a).is_err() {
                    break;
                }
            }
            Take::Timeout => {
                // A camera that stopped delivering still ends its tracks on time.
                let now = sharpeyes_wire::now_ms();
                for (cam, t) in trackers.iter_mut().enumerate() {
                    if t.live() > 0 && now - last_ms[cam] > cfg.tracker.max_age_ms {
                        let outputs = t.update(&[], now);
                        if !outputs.is_empty() {
                            let (frame_w, frame_h) = sizes[cam];
                            let _ = tx.blocking_send(Analysed {
                                camera: cam,
                                frame_w,
                                frame_h,
                                capture_ms: None,
                                outputs,
                            });
                        }
                    }
                }
            }
            Take::Finished => break,
        }
    }
    for (cam, t) in trackers.iter_mut().enumerate() {
        let outputs = t.flush();
        if !outputs.is_empty() {
            let (frame_w, frame_h) = sizes[cam];
            let _ = tx.blocking_send(Analysed {
                camera: cam,
                frame_w,
                frame_h,
                capture_ms: None,
                outputs,
            });
        }
    }
}
