//! Agent configuration (TOML). Every field has a doc comment and a default; `validate` turns
//! every mistake into a [`ConfigError`] that names the field. The commented example that
//! `edge-agent print-default-config` prints is `configs/edge-agent.toml`; a test checks that
//! it parses and equals [`AgentConfig::default`] plus its one example camera.

use std::collections::HashSet;
use std::path::PathBuf;

pub use crate::analysis::motion::MotionConfig;
pub use perception::config::{
    FaceDetectorConfig, FaceEmbedderConfig, ModelsConfig, ObjectDetectorConfig, PlateReaderConfig,
    ResizeMode,
};
use serde::{Deserialize, Serialize};
pub use sharpeyes_common::config::{ConfigError, ConfigFile};
use sharpeyes_common::config::{in_range, invalid};
pub use sharpeyes_common::ops::OpsConfig;
use sharpeyes_common::secret::Secret;
use sharpeyes_wire::Topics;

/// The commented default configuration.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../configs/edge-agent.toml");

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Agent id, unique within the site; one MQTT topic level. Default `agent-1`.
    pub agent_id: String,
    /// Site (district / street) id; one MQTT topic level. Default `site-1`.
    pub site: String,
    /// MQTT broker connection.
    pub broker: BrokerConfig,
    /// Model files and the ONNX Runtime library.
    pub models: ModelsConfig,
    /// Face detection.
    pub face_detector: FaceDetectorConfig,
    /// Face embeddings (what identifies a face across frames, cameras and watchlists).
    pub face_embedder: FaceEmbedderConfig,
    /// Person and vehicle detection.
    pub object_detector: ObjectDetectorConfig,
    /// Licence plate reading (localiser + Chinese OCR + plate grammar).
    pub plate_reader: PlateReaderConfig,
    /// Per-camera tracking.
    pub tracker: TrackerConfig,
    /// How the gateway's analysis is scheduled: inference workers, detection intervals.
    pub analysis: AnalysisConfig,
    /// Batching and publishing.
    pub publish: PublishConfig,
    /// The operations endpoint: `/metrics` (Prometheus) and `/health`; port 0 means 9464.
    pub ops: OpsConfig,
    /// Alert rules: loitering, the face and plate watchlists, police units.
    pub rules: crate::rules::RulesConfig,
    /// The cameras. Default: none (the agent then only publishes its status).
    pub cameras: Vec<CameraConfig>,
}

/// The agent's default ops port.
pub const OPS_PORT: u16 = 9464;

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            agent_id: "agent-1".into(),
            site: "site-1".into(),
            broker: BrokerConfig::default(),
            models: ModelsConfig::default(),
            face_detector: FaceDetectorConfig::default(),
            face_embedder: FaceEmbedderConfig::default(),
            object_detector: ObjectDetectorConfig::default(),
            plate_reader: PlateReaderConfig::default(),
            tracker: TrackerConfig::default(),
            analysis: AnalysisConfig::default(),
            publish: PublishConfig::default(),
            ops: OpsConfig::default(),
            rules: crate::rules::RulesConfig::default(),
            cameras: Vec::new(),
        }
    }
}

/// MQTT broker connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker host name or address. Default `127.0.0.1`.
    pub host: String,
    /// Broker TCP port. Default `1883` (use `8883`, the MQTT-over-TLS port, with `tls`).
    pub port: u16,
    /// Speak MQTT over TLS, trusting only `ca_file`. Default `false`.
    pub tls: bool,
    /// CA certificate (PEM) that signed the broker's certificate; needed with `tls`.
    /// Default: none.
    pub ca_file: Option<PathBuf>,
    /// Topic prefix. Default `sharpeyes/v1`.
    pub topic_prefix: String,
    /// MQTT client id. Default: empty, meaning the agent id. The aggregator's embedded broker,
    /// with a password file, accepts only the log-in's user name or `{user}-{suffix}` (see
    /// `aggregator::broker::gate`), so a custom id must start with `{agent_id}-`.
    pub client_id: String,
    /// User name, if the broker requires one: the agent id, for the shipped ACL
    /// (`configs/mosquitto/acl`) lets a user publish only under its own agent id.
    /// Default: none.
    pub username: Option<String>,
    /// Password, if the broker requires one: a string, or where to read it at start-up
    /// (`{ file = "/etc/sharpeyes/broker-password" }`, `{ env = "NAME" }`, or
    /// `{ credential = "broker-password" }` for systemd's `LoadCredential=`; see
    /// [`sharpeyes_common::secret`]). Validation reads it, so a missing file or variable is a
    /// configuration error. Default: none.
    pub password: Option<Secret>,
    /// MQTT keep-alive in seconds (5..=600). Default `30`.
    pub keep_alive_s: u64,
    /// First reconnect delay after losing the broker, in ms (doubles up to `reconnect_max_ms`). Default `500`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in ms. Default `10000`.
    pub reconnect_max_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            tls: false,
            ca_file: None,
            topic_prefix: sharpeyes_wire::DEFAULT_PREFIX.into(),
            client_id: String::new(),
            username: None,
            password: None,
            keep_alive_s: 30,
            reconnect_min_ms: 500,
            reconnect_max_ms: 10_000,
        }
    }
}

/// How the gateway's analysis is scheduled. Inference workers are shared by all cameras;
/// between detections the trackers' predictions carry the boxes (DL Streamer's
/// `inference-interval`, DeepStream's `interval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Inference workers, each with its own model sessions, shared by all cameras (a camera's
    /// frames go to one worker at a time, in order); 0 means one per CPU core (0..=64).
    /// Default `0`.
    pub workers: usize,
    /// Persons and vehicles are detected on every Nth analysed frame of a camera (1..=30);
    /// between, their tracks' predicted boxes stand in (a new object is detected again on the
    /// next frame until its track is confirmed; one about to leave the frame, on every frame).
    /// Default `2`.
    pub object_interval: u32,
    /// The face detector searches the whole frame on every Nth analysed frame of a camera
    /// (1..=30); between, it searches only where faces can be: the head regions of the
    /// tracked persons, around the live face tracks and in motion no track explains.
    /// Default `3`.
    pub face_interval: u32,
    /// With `plate_reader.whole_frame`, the plate reader searches the whole frame on every Nth
    /// reading of a camera (1..=30); the others search the vehicles, the camera's
    /// `plate_regions` and around the live plate tracks (and are skipped when there are
    /// none). Default `1`.
    pub plate_interval: u32,
    /// A camera on which nothing moved and nothing is tracked is searched whole only this
    /// often, seconds (0..=3600; 0: every analysed frame); its other frames cost the motion
    /// gate only. Default `10`.
    pub still_interval_s: u32,
    /// The motion gate: which parts of each analysed frame changed (`[analysis.motion]`).
    pub motion: MotionConfig,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            object_interval: 2,
            face_interval: 3,
            plate_interval: 1,
            still_interval_s: 10,
            motion: MotionConfig::default(),
        }
    }
}

impl AnalysisConfig {
    /// The number of inference workers to start: `workers`, or one per CPU core.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Per-camera tracking (ByteTrack-style: Kalman prediction, high/low score association).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections scoring at least this are "high": they are associated first and may start
    /// tracks (0..1). Default `0.6`.
    pub high_score: f32,
    /// Detections scoring below `high_score` but at least this only continue existing tracks
    /// (an occluded or blurred face); lower ones are ignored (0..high_score). The agent runs the
    /// face detector down to this score. Default `0.3`.
    pub low_score: f32,
    /// Minimum IoU between a track's predicted box and a high detection (0..1). Default `0.2`.
    pub match_iou: f32,
    /// Minimum IoU between a track's predicted box and a low detection (0..1). Default `0.5`.
    pub low_match_iou: f32,
    /// A tentative (unreported, one sighting) track has no velocity yet: it matches a
    /// detection whose centre is within this many box heights (0.1..=10). Default `1.5`.
    pub new_match_dist: f32,
    /// How far a tentative track may move per second of capture time, in box heights
    /// (0.1..=100): when its next detection comes later (a plate read every
    /// `plate_reader.interval_ms`, a low `analysis_fps`), the centre-distance gate widens to
    /// `max(new_match_dist, new_match_speed × gap in s)`. Default `7.5` (1.5 box heights per
    /// frame at 5 fps).
    pub new_match_speed: f32,
    /// Detections needed before a track is reported (its `start`). Default `2`.
    pub min_hits: u32,
    /// A track without a detection for this long ends, in ms (its prediction keeps moving
    /// meanwhile, so a briefly occluded object keeps its track). Default `1500`.
    pub max_age_ms: i64,
    /// Interval between `update` events of a live track, in ms. Default `1000`.
    pub update_interval_ms: i64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.6,
            low_score: 0.3,
            match_iou: 0.2,
            low_match_iou: 0.5,
            new_match_dist: 1.5,
            new_match_speed: 7.5,
            min_hits: 2,
            max_age_ms: 1500,
            update_interval_ms: 1000,
        }
    }
}

/// Batching and publishing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// A camera's track updates are sent as one batch at most this often, in ms (50..=60000). Default `500`.
    pub batch_interval_ms: u64,
    /// Status message interval, in seconds (1..=3600). Default `10`.
    pub status_interval_s: u64,
    /// zstd level (1..=19). Default `3`.
    pub zstd_level: i32,
    /// Payloads handed to the MQTT client at once (its queue); the rest wait in the spool.
    /// Default `1000`.
    pub max_pending: usize,
    /// Directory of the disk spool (one sub-directory per agent id, which also holds the
    /// persisted message sequence). Default `spool`.
    pub spool_dir: PathBuf,
    /// Bytes of unacknowledged track batches the spool keeps at most (1 MiB..=1 TiB); beyond
    /// it the oldest are evicted and counted (`spool_evicted`). Default `1073741824` (1 GiB).
    pub spool_max_bytes: u64,
    /// `always`: fsync every spool write (survives power loss); `never`: leave it to the OS
    /// (survives an agent crash). Default `always`.
    pub fsync: crate::publish::spool::Fsync,
    /// A spooled batch or alert stays in the spool until an aggregator acknowledges it as
    /// committed (topic `{prefix}/acks/{agent}`); one without acknowledgement this long after
    /// the broker took it (or after it was handed to the MQTT client) is sent again, the wait
    /// doubling with each re-send of it up to 8×; after a reconnect, what the broker had
    /// taken is sent again at once. In ms (500..=3600000). Default `30000`.
    pub ack_timeout_ms: u64,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            batch_interval_ms: 500,
            status_interval_s: 10,
            zstd_level: 3,
            max_pending: 1000,
            spool_dir: "spool".into(),
            spool_max_bytes: 1 << 30,
            fsync: Default::default(),
            ack_timeout_ms: 30_000,
        }
    }
}

/// One camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// Camera id, unique within the agent; one MQTT topic level. Required.
    pub id: String,
    /// Stream URI: `rtsp://`, `rtsps://`, `http(s)://` or `file:///absolute/path`. Required,
    /// unless `source` is set. Logs and errors show it with its credentials masked
    /// (`rtsp://***@host/…`). With `source`, the agent does not open it: it is then only the
    /// camera's label (any `scheme://…`, e.g. `v4l2:///dev/video0`; may be left empty), and a
    /// `file://` one still makes the camera a file for `realtime`, `lossless` and `at_end`.
    pub uri: String,
    /// Which video decoder the agent uses: `auto` (the best GStreamer ranks: a hardware decoder
    /// when an installed one ranks above the software ones, else software), `software` (never
    /// a hardware decoder), `vaapi` (only VA-API decoders: `vah264dec`/`vah265dec` from
    /// gstreamer1.0-plugins-bad or `vaapih264dec`/`vaapih265dec` from gstreamer1.0-vaapi,
    /// with a VA driver), or `nvdec` (only NVIDIA's: `nvh264dec`/`nvh265dec` from
    /// gstreamer1.0-plugins-bad, with the NVIDIA driver's libnvcuvid). When `vaapi` or `nvdec`
    /// is not installed, `check-config` fails naming this field, and at run time this camera
    /// fails (state `failed`) while the others run. A decoder written into `source` is not
    /// affected. Default `auto`.
    pub decoder: Decoder,
    /// A custom GStreamer source, used instead of opening `uri`: a `gst-launch-1.0`
    /// description whose last element has one unlinked, always-present source pad giving
    /// either encoded video that GStreamer can decode (H.264/H.265 from a parser or
    /// depayloader, e.g. `rtspsrc location=rtsp://… latency=200 protocols=tcp ! rtph264depay
    /// ! h264parse`, or `filesrc location=/v.mp4 ! qtdemux ! h264parse`: end a demuxer with a
    /// parser) or raw video (`v4l2src device=/dev/video0`, a vendor SDK element; caps at the
    /// end are written `capsfilter caps=video/x-raw,width=1280,height=720`). The agent
    /// appends decoding (per `decoder`; raw video passes through), conversion and its frame
    /// sink; stall detection and reconnection work as for `uri`. `check-config` parses it.
    /// Default: none (open `uri`).
    pub source: Option<String>,
    /// Frames per second to analyse (0.1..=60); the stream is decimated to it. Default `5`.
    pub analysis_fps: f32,
    /// Whether to run this camera. Default `true`.
    pub enabled: bool,
    /// For files: play at the file's own speed like a live camera (`true`) or as fast as it
    /// decodes (`false`). Ignored for live streams. Default `true`.
    pub realtime: bool,
    /// For files played with `realtime = false`: hand every offered frame (after
    /// `analysis_fps` decimation) to analysis, holding decoding back while analysis is busy,
    /// instead of keeping only the newest frame. For evaluating and benchmarking on recorded
    /// footage. Ignored for live streams and real-time files. Default `false`.
    pub lossless: bool,
    /// What to do when the stream ends: `auto` (stop for files, reconnect for live streams),
    /// `stop`, or `restart`. Default `auto`.
    pub at_end: AtEnd,
    /// The capture time the agent stamps on each frame, which tracking, plate reading and the
    /// rules (dwell, companion window) run on: `wall` (the agent's clock when the frame
    /// arrives), `stream` (the wall clock when the stream started plus the frame's timestamp,
    /// so a recording runs on its own time at any processing speed; a restarted or looping
    /// stream goes on from where it stopped, never backwards), or `auto` (`stream` for files,
    /// `wall` for live streams). Default `auto`.
    pub clock: Clock,
    /// Restart the stream when no frame arrived for this long, in seconds (2..=600). Default `10`.
    pub stall_timeout_s: u64,
    /// First delay before reconnecting after an error, in ms (doubles up to `reconnect_max_ms`). Default `500`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in ms. Default `30000`.
    pub reconnect_max_ms: u64,
    /// Areas where plates are read besides the detected vehicles, `[x1, y1, x2, y2]` in pixels
    /// of the camera's frames (a gate lane, a car park entry): small ones are enlarged like
    /// distant vehicles. Default: none.
    pub plate_regions: Vec<[f32; 4]>,
    /// The camera's position `[lat, lon]` (WGS 84 degrees): alerts carry it and name the
    /// nearest of `rules.police_units`. Default: none.
    pub geo: Option<[f64; 2]>,
    /// Loitering zones of this camera (e.g. a fishing-ban bank): `[[cameras.zones]]` with
    /// `id`, `polygon` (pixels of the analysed frames), optional `geo` and `threshold_s`.
    /// Default: none.
    pub zones: Vec<crate::rules::ZoneConfig>,
}

impl CameraConfig {
    /// The camera's part of the rules configuration.
    pub fn rules(&self) -> crate::rules::CameraRulesConfig {
        crate::rules::CameraRulesConfig {
            geo: self.geo,
            zones: self.zones.clone(),
        }
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            uri: String::new(),
            decoder: Decoder::Auto,
            source: None,
            analysis_fps: 5.0,
            enabled: true,
            realtime: true,
            lossless: false,
            at_end: AtEnd::Auto,
            clock: Clock::Auto,
            stall_timeout_s: 10,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            plate_regions: Vec::new(),
            geo: None,
            zones: Vec::new(),
        }
    }
}

/// Which video decoder a camera uses (see [`CameraConfig::decoder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoder {
    /// The decoder GStreamer ranks best (hardware when an installed one ranks above software).
    #[default]
    Auto,
    /// Software decoders only (none whose element class says `Hardware`).
    Software,
    /// VA-API decoders only (Intel and AMD GPUs).
    Vaapi,
    /// NVIDIA NVDEC decoders only.
    Nvdec,
}

impl Decoder {
    /// The configuration name (`auto`, `software`, `vaapi`, `nvdec`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Software => "software",
            Self::Vaapi => "vaapi",
            Self::Nvdec => "nvdec",
        }
    }
}

/// What a camera does at the end of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtEnd {
    /// Stop for files, reconnect for live streams.
    #[default]
    Auto,
    /// Stop the camera (its tracks end; the agent exits once every camera has stopped).
    Stop,
    /// Start the stream again.
    Restart,
}

/// Which clock stamps a camera's frames (see [`CameraConfig::clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// `stream` for files, `wall` for live streams.
    #[default]
    Auto,
    /// The agent's clock when the frame arrives.
    Wall,
    /// The stream's start (wall clock) plus the frame's timestamp.
    Stream,
}

impl CameraConfig {
    /// Whether the camera's frames are stamped from their timestamps (footage time) rather
    /// than the agent's clock.
    pub fn stream_clock(&self) -> bool {
        match self.clock {
            Clock::Auto => self.is_file(),
            Clock::Wall => false,
            Clock::Stream => true,
        }
    }

    /// Whether the URI names a file (finite stream).
    pub fn is_file(&self) -> bool {
        self.uri.starts_with("file://")
    }

    /// Whether the camera stops (rather than restarts) at the end of its stream.
    pub fn stops_at_end(&self) -> bool {
        match self.at_end {
            AtEnd::Auto => self.is_file(),
            AtEnd::Stop => true,
            AtEnd::Restart => false,
        }
    }
}

fn check_id(field: &str, id: &str) -> Result<(), ConfigError> {
    Topics::check_id("id", id).map_err(|_| {
        invalid(
            field,
            format!("{id:?} must be non-empty and free of '/', '+', '#' and NUL"),
        )
    })
}

impl AgentConfig {
    /// The MQTT client id to use.
    pub fn client_id(&self) -> String {
        if self.broker.client_id.is_empty() {
            self.agent_id.clone()
        } else {
            self.broker.client_id.clone()
        }
    }
}

impl ConfigFile for AgentConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_id("agent_id", &self.agent_id)?;
        check_id("site", &self.site)?;
        let b = &self.broker;
        if b.host.trim().is_empty() {
            return Err(invalid("broker.host", "must not be empty"));
        }
        if b.port == 0 {
            return Err(invalid("broker.port", "must not be 0"));
        }
        if b.topic_prefix.is_empty() || b.topic_prefix.contains(['+', '#']) {
            return Err(invalid(
                "broker.topic_prefix",
                "must be non-empty and free of '+' and '#'",
            ));
        }
        if b.tls && b.ca_file.is_none() {
            return Err(invalid(
                "broker.ca_file",
                "broker.tls needs the CA certificate that signed the broker's",
            ));
        }
        if b.username.is_some() != b.password.is_some() {
            return Err(invalid(
                "broker.username",
                "username and password go together",
            ));
        }
        if let Some(p) = &b.password {
            p.resolve("broker.password")?;
        }
        in_range("broker.keep_alive_s", b.keep_alive_s, 5, 600)?;
        in_range("broker.reconnect_min_ms", b.reconnect_min_ms, 10, 600_000)?;
        in_range(
            "broker.reconnect_max_ms",
            b.reconnect_max_ms,
            b.reconnect_min_ms,
            600_000,
        )?;
        perception::config::validate(
            &self.models,
            &self.face_detector,
            &self.face_embedder,
            &self.object_detector,
            &self.plate_reader,
        )?;
        let an = &self.analysis;
        in_range("analysis.workers", an.workers, 0, 64)?;
        in_range("analysis.object_interval", an.object_interval, 1, 30)?;
        in_range("analysis.face_interval", an.face_interval, 1, 30)?;
        in_range("analysis.plate_interval", an.plate_interval, 1, 30)?;
        in_range("analysis.still_interval_s", an.still_interval_s, 0, 3600)?;
        an.motion.validate("analysis.motion")?;
        let t = &self.tracker;
        in_range("tracker.high_score", t.high_score, 0.0, 1.0)?;
        in_range("tracker.low_score", t.low_score, 0.0, t.high_score)?;
        in_range("tracker.match_iou", t.match_iou, 0.0, 1.0)?;
        in_range("tracker.low_match_iou", t.low_match_iou, 0.0, 1.0)?;
        in_range("tracker.new_match_dist", t.new_match_dist, 0.1, 10.0)?;
        in_range("tracker.new_match_speed", t.new_match_speed, 0.1, 100.0)?;
        in_range("tracker.min_hits", t.min_hits, 1, 100)?;
        in_range("tracker.max_age_ms", t.max_age_ms, 1, 600_000)?;
        in_range(
            "tracker.update_interval_ms",
            t.update_interval_ms,
            100,
            600_000,
        )?;
        let p = &self.publish;
        in_range("publish.batch_interval_ms", p.batch_interval_ms, 50, 60_000)?;
        in_range("publish.status_interval_s", p.status_interval_s, 1, 3600)?;
        in_range("publish.zstd_level", p.zstd_level, 1, 19)?;
        in_range("publish.max_pending", p.max_pending, 1, 1_000_000)?;
        in_range("publish.ack_timeout_ms", p.ack_timeout_ms, 500, 3_600_000)?;
        in_range(
            "publish.spool_max_bytes",
            p.spool_max_bytes,
            1 << 20,
            1 << 40,
        )?;
        if p.spool_dir.as_os_str().is_empty() {
            return Err(invalid("publish.spool_dir", "must not be empty"));
        }
        self.rules.validate()?;
        self.rules.face_threshold(&self.face_embedder.family)?;
        let mut seen = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let field = |name: &str| format!("cameras[{i}].{name}");
            check_id(&field("id"), &c.id)?;
            if !seen.insert(c.id.as_str()) {
                return Err(invalid(
                    field("id"),
                    format!("duplicate camera id {:?}", c.id),
                ));
            }
            let scheme_ok = ["rtsp://", "rtsps://", "http://", "https://", "file:///"]
                .iter()
                .any(|s| c.uri.starts_with(s));
            if let Some(source) = &c.source {
                if source.trim().is_empty() {
                    return Err(invalid(
                        field("source"),
                        "must not be empty (leave it out to open `uri`)",
                    ));
                }
                let label_ok = c.uri.is_empty()
                    || c.uri.split_once("://").is_some_and(|(scheme, _)| {
                        !scheme.is_empty()
                            && scheme
                                .chars()
                                .all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
                    });
                if !label_ok {
                    return Err(invalid(
                        field("uri"),
                        format!(
                            "{:?}: with `source` the uri is only the camera's label: leave it empty or write it as scheme://…",
                            sharpeyes_common::redact::uri(&c.uri)
                        ),
                    ));
                }
            } else if !scheme_ok {
                return Err(invalid(
                    field("uri"),
                    format!(
                        "{:?} must start with rtsp://, rtsps://, http(s):// or file:/// (absolute path), or set `source`",
                        sharpeyes_common::redact::uri(&c.uri)
                    ),
                ));
            }
            if c.uri.contains(['"', '\n', ' ']) {
                return Err(invalid(
                    field("uri"),
                    "must not contain quotes, spaces or newlines (percent-encode them)",
                ));
            }
            in_range(&field("analysis_fps"), c.analysis_fps, 0.1, 60.0)?;
            in_range(&field("stall_timeout_s"), c.stall_timeout_s, 2, 600)?;
            for r in &c.plate_regions {
                if !(r.iter().all(|v| v.is_finite() && *v >= 0.0) && r[0] < r[2] && r[1] < r[3]) {
                    return Err(invalid(
                        field("plate_regions"),
                        format!("{r:?} is not [x1, y1, x2, y2] with 0 <= x1 < x2 and 0 <= y1 < y2"),
                    ));
                }
            }
            c.rules().validate(&format!("cameras[{i}]"))?;
            in_range(&field("reconnect_min_ms"), c.reconnect_min_ms, 10, 600_000)?;
            in_range(
                &field("reconnect_max_ms"),
                c.reconnect_max_ms,
                c.reconnect_min_ms,
                600_000,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_config_is_the_default() {
        let cfg = AgentConfig::from_toml(DEFAULT_CONFIG_TOML).unwrap();
        let expected = AgentConfig {
            cameras: cfg.cameras.clone(),
            ..AgentConfig::default()
        };
        assert_eq!(cfg, expected);
        assert_eq!(cfg.cameras.len(), 1);
        assert_eq!(
            cfg.cameras[0].analysis_fps,
            CameraConfig::default().analysis_fps
        );
    }

    #[test]
    fn files_run_on_stream_time_and_live_streams_on_the_wall_clock_unless_set() {
        let cam = |uri: &str, clock: Clock| CameraConfig {
            id: "c".into(),
            uri: uri.into(),
            clock,
            ..CameraConfig::default()
        };
        assert!(cam("file:///v.mp4", Clock::Auto).stream_clock());
        assert!(!cam("rtsp://h/s", Clock::Auto).stream_clock());
        assert!(!cam("file:///v.mp4", Clock::Wall).stream_clock());
        assert!(cam("rtsp://h/s", Clock::Stream).stream_clock());
        let parsed =
            AgentConfig::from_toml("[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\nclock = 'stream'")
                .unwrap();
        assert_eq!(parsed.cameras[0].clock, Clock::Stream);
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(AgentConfig::from_toml("").unwrap(), AgentConfig::default());
    }

    fn err(toml: &str) -> String {
        AgentConfig::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_name_the_field() {
        assert!(err("agent_id = 'a/b'").contains("agent_id"));
        assert!(err("agnet_id = 'x'").contains("unknown field"));
        assert!(err("[broker]\nport = 0").contains("broker.port"));
        assert!(err("[publish]\nack_timeout_ms = 10").contains("publish.ack_timeout_ms"));
        assert!(
            err("[face_detector]\nscore_threshold = 1.5").contains("face_detector.score_threshold")
        );
        assert!(err("[face_detector]\nfamily = 'retina'").contains("unknown family"));
        assert!(
            err("[plate_reader]\nlocator_family = 'yolo'").contains("plate_reader.locator_family")
        );
        assert!(
            err("[plate_reader]\nreader_family = 'crnn'").contains("plate_reader.reader_family")
        );
        assert!(err("[plate_reader]\ninterval_ms = 70000").contains("plate_reader.interval_ms"));
        assert!(err("[[cameras]]\nid = 'c'\nuri = 'ftp://x'").contains("cameras[0].uri"));
        assert!(
            err("[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\nanalysis_fps = 0")
                .contains("cameras[0].analysis_fps")
        );
        let dup =
            "[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\n[[cameras]]\nid = 'c'\nuri = 'rtsp://y'";
        assert!(err(dup).contains("duplicate camera id"));
        assert!(err("[tracker]\nmax_age_ms = 'long'").contains("invalid type"));
        assert!(
            err(
                "[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\nplate_regions = [[10.0, 10.0, 5.0, 20.0]]"
            )
            .contains("cameras[0].plate_regions")
        );
        assert!(err("[object_detector]\nfamily = 'yolo'").contains("object_detector.family"));
        assert!(
            err("[object_detector.thresholds]\nface = 0.5").contains("object_detector.thresholds")
        );
        assert!(
            err("[object_detector.thresholds]\nperson = 1.5")
                .contains("object_detector.thresholds")
        );
        assert!(err("[object_detector]\ntiles = [0, 1]").contains("object_detector.tiles"));
        assert!(
            err("[object_detector]\ntile_overlap = 0.9").contains("object_detector.tile_overlap")
        );
        assert!(err("[object_detector]\nresize = 'crop'").contains("unknown variant"));
        assert!(
            err("[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\nclock = 'gps'")
                .contains("unknown variant")
        );
        assert!(err("[tracker]\nnew_match_speed = 0").contains("tracker.new_match_speed"));
        assert!(
            err("[face_embedder]\nmin_interval_ms = -1").contains("face_embedder.min_interval_ms")
        );
        // Listing classes chooses them: only persons.
        let only_persons =
            AgentConfig::from_toml("[object_detector.thresholds]\nperson = 0.4").unwrap();
        assert_eq!(
            only_persons
                .object_detector
                .threshold(sharpeyes_wire::ObjectClass::Person),
            Some(0.4)
        );
        assert_eq!(
            only_persons
                .object_detector
                .threshold(sharpeyes_wire::ObjectClass::Car),
            None
        );
    }
}
