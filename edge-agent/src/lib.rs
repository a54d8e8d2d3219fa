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
//! counted) → inference workers (`analysis.workers`, one per core by default, each with its
//! own model sessions, shared by all cameras; a camera's frames go to one worker at a time,
//! in order) → a bounded channel →
//! the publisher task (batches, encodes, QoS 1) and the MQTT event loop task.
//!
//! Layout: this file holds [`run`] alone, with its error ([`AgentError`]) and its
//! [`RunSummary`]: it loads the models, starts the stages, waits for them and sums up.
//! The analysis stage lives in `analysis/`, split by concern:
//!
//! - `analysis/mod.rs`: the workers' loop, the per-camera state (one tracker per
//!   class, links, best faces, plate votes, best shots, pending evidence) and one frame's
//!   orchestration (detect → track → link → best faces → plates → best shots → rules →
//!   hand-off), ending the tracks of cameras that went quiet and every track at shutdown,
//!   and handing each camera's outputs to the publisher;
//! - `analysis/detect.rs`: which detectors a frame needs (detection intervals, the motion
//!   gate, regions of interest), face, person and vehicle detection and the small-face
//!   cascade;
//! - `analysis/motion.rs`: the motion gate (which parts of a frame changed);
//! - `analysis/link.rs`: person ↔ face and vehicle ↔ plate links;
//! - `analysis/faces.rs`: each face track's best face ([`BestFace`]) and its embedding;
//! - `analysis/plates.rs`: plate reading, plate tracks and their votes;
//! - `analysis/thumbs.rs`: each track's best shots (the small JPEGs that ride on its updates);
//! - `analysis/rules.rs`: watchlists applied, the rules fed, the evidence they ask for
//!   encoded and attached to the alerts.
//!
//! The other stages are modules of their own: `ingest`, `publish`, and the I/O-free `track`
//! and `rules`; `metrics` and `probe` beside them.

mod analysis;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod probe;
pub mod publish;
pub mod rules;
pub mod track;

/// Inference (its own crate, `perception`, which the aggregator's enrollment shares).
pub use perception as infer;

use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use crate::analysis::BestFace;
use crate::analysis::{AnalysisInputs, Models, run_analysis};
pub use crate::config::AgentConfig;
use crate::config::ConfigFile;
use crate::ingest::FrameSlots;
use crate::metrics::{Metrics, get};
use crate::rules::Rules;

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
    /// Analysed frames on which nothing moved (no detector ran), all cameras.
    pub frames_still: u64,
    /// Analysed frames the person / vehicle detector ran on, all cameras.
    pub object_passes: u64,
    /// Analysed frames the face detector searched whole, all cameras.
    pub face_full_passes: u64,
    /// Analysed frames the face detector searched only in regions, all cameras.
    pub face_region_passes: u64,
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

/// The models one analysis worker runs, as the configuration names them.
fn load_models(config: &AgentConfig) -> Result<Models, AgentError> {
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
    Ok(Models {
        detector,
        embedder,
        objects,
        plates,
    })
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
    // Each inference worker has its own sessions (a session runs one call at a time).
    let workers = config.analysis.worker_count();
    let models = (0..workers)
        .map(|_| load_models(&config))
        .collect::<Result<Vec<_>, _>>()?;
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
    info!(agent = %config.agent_id, site = %config.site, cameras = ingest_threads.len(), workers, "edge agent started");

    let analysis = {
        let (cfg, slots, metrics) = (config.clone(), slots.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("analysis".into())
            .spawn(move || {
                let inputs = AnalysisInputs {
                    cfg: &cfg,
                    rules,
                    watchlists,
                    slots: &slots,
                    tx: &tx,
                    metrics: &metrics,
                };
                run_analysis(inputs, models)
            })
            .map_err(|e| AgentError::Thread(e.to_string()))?
    };
    // systemd (Type=notify): ready now; the watchdog is pinged while the analysis loop turns.
    let _serving = sharpeyes_common::notify::serving(
        &format!("analysing {} cameras", ingest_threads.len()),
        metrics.heartbeat.clone(),
        shutdown.clone(),
    );
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
        frames_still: sum(|c| &c.frames_still),
        object_passes: sum(|c| &c.object_passes),
        face_full_passes: sum(|c| &c.face_full_passes),
        face_region_passes: sum(|c| &c.face_region_passes),
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
