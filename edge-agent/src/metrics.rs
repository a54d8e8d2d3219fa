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
    /// Analysed frames the person / vehicle detector ran on (`analysis.object_interval`).
    pub object_passes: AtomicU64,
    /// Analysed frames the face detector searched whole (`analysis.face_interval`).
    pub face_full_passes: AtomicU64,
    /// Analysed frames the face detector searched only in regions (heads, face tracks, motion).
    pub face_region_passes: AtomicU64,
    /// Analysed frames on which nothing moved and nothing was tracked: no detector ran.
    pub frames_still: AtomicU64,
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
    /// Turns of the analysis loop (a frame, or a 250 ms wait without one): systemd's watchdog
    /// is pinged only while it advances (`sharpeyes_common::notify`).
    pub heartbeat: sharpeyes_common::notify::Heartbeat,
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
    /// Bytes of the spool's unacknowledged batches (a gauge).
    pub spool_bytes: AtomicU64,
    /// 1 while connected to the broker (a gauge).
    pub broker_connected: AtomicU64,
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
    /// Alerts (and alert updates) published.
    pub alerts: AtomicU64,
    /// Messages on the watchlist topic that were not valid watchlists (ignored).
    pub watchlists_rejected: AtomicU64,
    /// Version of the watchlists the rules apply, plus one (0: none received yet).
    pub watchlist_version_plus_one: AtomicU64,
    /// Acknowledgement messages received from an aggregator.
    pub acks_received: AtomicU64,
    /// Spooled batches and alerts an aggregator acknowledged (they left the spool).
    pub acked: AtomicU64,
    /// Messages on the acknowledgement topic that were not acknowledgements (ignored).
    pub acks_rejected: AtomicU64,
    /// Spooled batches and alerts sent again because no acknowledgement came in time, or
    /// after a reconnect.
    pub resent: AtomicU64,
    /// Age in ms of the oldest unacknowledged spool record (a gauge; 0: none).
    pub spool_oldest_ms: AtomicU64,
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
    /// Updates the spool gauges from the spool.
    pub fn spool_gauges(&self, spool: &crate::publish::spool::Spool) {
        self.spool_pending
            .store(spool.len() as u64, Ordering::Relaxed);
        self.spool_bytes
            .store(spool.pending_bytes(), Ordering::Relaxed);
        self.spool_oldest_ms.store(
            spool.oldest_age().map_or(0, |d| d.as_millis() as u64),
            Ordering::Relaxed,
        );
    }
}

/// The ops endpoint shows these counters (`/metrics`) and the health they imply (`/health`).
impl sharpeyes_common::ops::OpsSource for Metrics {
    /// The Prometheus exposition of every counter.
    fn metrics(&self) -> String {
        use sharpeyes_common::ops::{Exposition, Kind};
        let mut e = Exposition::new();
        let per_camera = |f: fn(&CameraMetrics) -> f64| {
            self.cameras
                .iter()
                .map(move |c| (vec![("camera", c.id.clone())], f(c)))
                .collect::<Vec<_>>()
        };
        fn n(c: &AtomicU64) -> f64 {
            get(c) as f64
        }
        fn secs(us: &AtomicU64) -> f64 {
            get(us) as f64 / 1e6
        }
        for (name, help, f) in [
            (
                "sharpeyes_agent_frames_decoded_total",
                "Frames that reached the analysis input.",
                (|c| n(&c.frames_decoded)) as fn(&CameraMetrics) -> f64,
            ),
            (
                "sharpeyes_agent_frames_analysed_total",
                "Frames analysed.",
                |c| n(&c.frames_analysed),
            ),
            (
                "sharpeyes_agent_frames_dropped_total",
                "Frames replaced before analysis because analysis was behind.",
                |c| n(&c.frames_dropped),
            ),
            (
                "sharpeyes_agent_stream_restarts_total",
                "Stream restarts after an error, a stall or an end.",
                |c| n(&c.reconnects),
            ),
            (
                "sharpeyes_agent_faces_total",
                "Faces detected (whole frame and cascade).",
                |c| n(&c.detections),
            ),
            (
                "sharpeyes_agent_cascade_faces_total",
                "Faces only the small-face cascade found.",
                |c| n(&c.cascade_faces),
            ),
            (
                "sharpeyes_agent_object_passes_total",
                "Analysed frames the person / vehicle detector ran on.",
                |c| n(&c.object_passes),
            ),
            (
                "sharpeyes_agent_face_full_passes_total",
                "Analysed frames the face detector searched whole.",
                |c| n(&c.face_full_passes),
            ),
            (
                "sharpeyes_agent_face_region_passes_total",
                "Analysed frames the face detector searched only in regions (heads, face tracks, motion).",
                |c| n(&c.face_region_passes),
            ),
            (
                "sharpeyes_agent_frames_still_total",
                "Analysed frames on which nothing moved and nothing was tracked: no detector ran.",
                |c| n(&c.frames_still),
            ),
            (
                "sharpeyes_agent_objects_total",
                "Persons and vehicles detected.",
                |c| n(&c.objects),
            ),
            (
                "sharpeyes_agent_embeddings_total",
                "Face embeddings computed.",
                |c| n(&c.embeddings),
            ),
            (
                "sharpeyes_agent_plates_read_total",
                "Plates read (grammatical readings).",
                |c| n(&c.plates_read),
            ),
            (
                "sharpeyes_agent_face_detect_seconds_total",
                "Time in face detection.",
                |c| secs(&c.detect_us),
            ),
            (
                "sharpeyes_agent_object_detect_seconds_total",
                "Time in person / vehicle detection.",
                |c| secs(&c.object_us),
            ),
            (
                "sharpeyes_agent_embed_seconds_total",
                "Time in face quality and embeddings.",
                |c| secs(&c.embed_us),
            ),
            (
                "sharpeyes_agent_plate_seconds_total",
                "Time finding and reading plates.",
                |c| secs(&c.plate_us),
            ),
            (
                "sharpeyes_agent_track_seconds_total",
                "Time tracking and linking.",
                |c| secs(&c.track_us),
            ),
        ] {
            e.family(name, help, Kind::Counter, per_camera(f));
        }
        e.family(
            "sharpeyes_agent_camera_playing",
            "1 while the camera's stream is playing.",
            Kind::Gauge,
            self.cameras.iter().map(|c| {
                (
                    vec![("camera", c.id.clone())],
                    (c.state() == "playing") as u8 as f64,
                )
            }),
        );
        for (name, help, kind, c) in [
            (
                "sharpeyes_agent_published_total",
                "Payloads the broker acknowledged (PUBACK: in flight to the aggregator).",
                Kind::Counter,
                &self.published,
            ),
            (
                "sharpeyes_agent_acks_received_total",
                "Acknowledgement messages received from an aggregator.",
                Kind::Counter,
                &self.acks_received,
            ),
            (
                "sharpeyes_agent_acked_total",
                "Spooled batches and alerts an aggregator acknowledged as committed.",
                Kind::Counter,
                &self.acked,
            ),
            (
                "sharpeyes_agent_acks_rejected_total",
                "Messages on the acknowledgement topic that were not acknowledgements.",
                Kind::Counter,
                &self.acks_rejected,
            ),
            (
                "sharpeyes_agent_resent_total",
                "Spooled batches and alerts sent again (no acknowledgement in time, or a reconnect).",
                Kind::Counter,
                &self.resent,
            ),
            (
                "sharpeyes_agent_sent_total",
                "Payloads handed to the MQTT client (retransmissions included).",
                Kind::Counter,
                &self.sent,
            ),
            (
                "sharpeyes_agent_spooled_total",
                "Track batches appended to the spool.",
                Kind::Counter,
                &self.spooled,
            ),
            (
                "sharpeyes_agent_spool_evicted_total",
                "Track batches evicted from the full spool.",
                Kind::Counter,
                &self.spool_evicted,
            ),
            (
                "sharpeyes_agent_spool_pending",
                "Track batches in the spool awaiting acknowledgement.",
                Kind::Gauge,
                &self.spool_pending,
            ),
            (
                "sharpeyes_agent_spool_bytes",
                "Bytes of the spool's unacknowledged batches.",
                Kind::Gauge,
                &self.spool_bytes,
            ),
            (
                "sharpeyes_agent_broker_errors_total",
                "Broker connection errors (each one a reconnect attempt).",
                Kind::Counter,
                &self.broker_errors,
            ),
            (
                "sharpeyes_agent_broker_connected",
                "1 while connected to the broker.",
                Kind::Gauge,
                &self.broker_connected,
            ),
            (
                "sharpeyes_agent_encode_errors_total",
                "Messages that could not be encoded.",
                Kind::Counter,
                &self.encode_errors,
            ),
            (
                "sharpeyes_agent_status_dropped_total",
                "Status messages dropped because the MQTT queue was full.",
                Kind::Counter,
                &self.dropped_pending,
            ),
            (
                "sharpeyes_agent_track_updates_total",
                "Track updates produced.",
                Kind::Counter,
                &self.track_updates,
            ),
            (
                "sharpeyes_agent_track_bytes_total",
                "Bytes of track-batch payloads.",
                Kind::Counter,
                &self.track_bytes,
            ),
            (
                "sharpeyes_agent_alerts_total",
                "Alerts and alert updates published.",
                Kind::Counter,
                &self.alerts,
            ),
            (
                "sharpeyes_agent_watchlists_rejected_total",
                "Messages on the watchlist topic that were not valid watchlists (ignored).",
                Kind::Counter,
                &self.watchlists_rejected,
            ),
        ] {
            e.single(name, help, kind, get(c) as f64);
        }
        e.single(
            "sharpeyes_agent_spool_oldest_unacked_seconds",
            "Age of the oldest spool record no aggregator acknowledged yet (0: none).",
            Kind::Gauge,
            get(&self.spool_oldest_ms) as f64 / 1e3,
        );
        e.single(
            "sharpeyes_agent_publish_seconds_total",
            "Time batching, encoding, spooling and handing batches to MQTT.",
            Kind::Counter,
            get(&self.publish_us) as f64 / 1e6,
        );
        e.single(
            "sharpeyes_agent_watchlist_version",
            "Version of the watchlists the rules apply (-1: none received yet).",
            Kind::Gauge,
            self.watchlist_version().map_or(-1.0, |v| v as f64),
        );
        e.finish()
    }

    /// Healthy while connected to the broker (the spool covers short outages, but a field
    /// engineer must hear of long ones) and while some enabled camera plays.
    fn health(&self) -> sharpeyes_common::ops::Health {
        use sharpeyes_common::ops::Health;
        if get(&self.broker_connected) == 0 {
            return Health::Unhealthy(format!(
                "not connected to the broker ({} batches spooled)",
                get(&self.spool_pending)
            ));
        }
        let enabled: Vec<&CameraMetrics> = self
            .cameras
            .iter()
            .filter(|c| c.state() != "disabled")
            .collect();
        if !enabled.is_empty() && enabled.iter().all(|c| c.state() != "playing") {
            return Health::Unhealthy("no camera is playing".into());
        }
        Health::Ok
    }
}

impl Metrics {
    /// Counters for these cameras.
    pub fn new<'a>(camera_ids: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            cameras: camera_ids.into_iter().map(CameraMetrics::new).collect(),
            ..Default::default()
        }
    }

    /// Version of the watchlists the rules apply, if any arrived.
    pub fn watchlist_version(&self) -> Option<u64> {
        get(&self.watchlist_version_plus_one).checked_sub(1)
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
            ("alerts", &self.alerts),
            ("watchlists_rejected", &self.watchlists_rejected),
            ("acks_received", &self.acks_received),
            ("acked", &self.acked),
            ("resent", &self.resent),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), get(v)))
        .collect()
    }
}
