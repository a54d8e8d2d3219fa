//! The agent's counters, in one place. Cheap atomics, shared by every stage; the status
//! message and the logs read them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sharpeyes_wire::CameraStatus;

/// Counters of one camera.
#[derive(Debug, Default)]
pub struct CameraMetrics {
    /// Camera id.
    pub id: String,
    /// Frames that reached the analysis input.
    pub frames_decoded: AtomicU64,
    /// Frames analysed.
    pub frames_analysed: AtomicU64,
    /// Frames replaced before analysis because analysis was behind.
    pub frames_dropped: AtomicU64,
    /// Stream (re)starts after an error, a stall or an end of stream.
    pub reconnects: AtomicU64,
    /// Faces detected (the whole-frame pass and the cascade).
    pub detections: AtomicU64,
    /// Faces only the small-face cascade found.
    pub cascade_faces: AtomicU64,
    /// Microseconds spent in detection, summed.
    pub detect_us: AtomicU64,
    /// Microseconds spent computing face embeddings, summed.
    pub embed_us: AtomicU64,
    /// Face embeddings computed.
    pub embeddings: AtomicU64,
    /// Persons and vehicles detected.
    pub objects: AtomicU64,
    /// Microseconds spent in person / vehicle detection, summed.
    pub object_us: AtomicU64,
    /// Microseconds spent tracking and linking, summed.
    pub track_us: AtomicU64,
    /// Frames the plate reader ran on.
    pub plate_frames: AtomicU64,
    /// Plates read (grammatical readings).
    pub plates_read: AtomicU64,
    /// Microseconds spent finding and reading plates, summed.
    pub plate_us: AtomicU64,
    state: Mutex<&'static str>,
}

impl CameraMetrics {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: Mutex::new("starting"),
            ..Default::default()
        }
    }

    /// Sets the stream state (`starting`, `playing`, `reconnecting`, `ended`).
    pub fn set_state(&self, s: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// The stream state.
    pub fn state(&self) -> &'static str {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The camera's part of a status message.
    pub fn status(&self) -> CameraStatus {
        CameraStatus {
            id: self.id.clone(),
            state: self.state().to_string(),
            frames_decoded: get(&self.frames_decoded),
            frames_analysed: get(&self.frames_analysed),
            frames_dropped: get(&self.frames_dropped),
            reconnects: get(&self.reconnects),
        }
    }
}

/// Agent-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per camera, in config order.
    pub cameras: Vec<CameraMetrics>,
    /// Payloads the broker acknowledged (PUBACK).
    pub published: AtomicU64,
    /// Payloads handed to the MQTT client.
    pub sent: AtomicU64,
    /// Status messages dropped because the MQTT client's queue was full.
    pub dropped_pending: AtomicU64,
    /// Track batches appended to the spool.
    pub spooled: AtomicU64,
    /// Track batches evicted from the full spool.
    pub spool_evicted: AtomicU64,
    /// Track batches in the spool, not yet acknowledged (a gauge).
    pub spool_pending: AtomicU64,
    /// Messages that could not be encoded.
    pub encode_errors: AtomicU64,
    /// Broker connection errors.
    pub broker_errors: AtomicU64,
    /// Track updates produced.
    pub track_updates: AtomicU64,
    /// Bytes of track-batch payloads sent.
    pub track_bytes: AtomicU64,
    /// Microseconds spent batching, encoding, spooling and handing track batches to the MQTT
    /// client, summed.
    pub publish_us: AtomicU64,
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    /// Counters for these cameras.
    pub fn new<'a>(camera_ids: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            cameras: camera_ids.into_iter().map(CameraMetrics::new).collect(),
            ..Default::default()
        }
    }

    /// Agent-wide counters by name, for the status message.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        [
            ("published", &self.published),
            ("sent", &self.sent),
            ("dropped_pending", &self.dropped_pending),
            ("spooled", &self.spooled),
            ("spool_evicted", &self.spool_evicted),
            ("spool_pending", &self.spool_pending),
            ("encode_errors", &self.encode_errors),
            ("broker_errors", &self.broker_errors),
            ("track_updates", &self.track_updates),
            ("track_bytes", &self.track_bytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), get(v)))
        .collect()
    }
}
