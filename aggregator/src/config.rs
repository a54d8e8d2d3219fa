//! Aggregator configuration (TOML). Every field has a doc comment and a default; the
//! commented example printed by `aggregator print-default-config` is
//! `configs/aggregator.toml`, and a test checks it equals [`AggregatorConfig::default`].

use std::net::SocketAddr;
use std::path::PathBuf;

pub use perception::config::ModelsConfig;
use perception::config::{FaceDetectorConfig, FaceEmbedderConfig};
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
pub use sharpeyes_common::config::{ConfigError, ConfigFile};
use sharpeyes_common::config::{in_range, invalid};
pub use sharpeyes_common::ops::OpsConfig;

pub use fusion::FuseConfig;
use fusion::{CameraCatalog, CameraKey};

/// The commented default configuration.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../configs/aggregator.toml");

/// The whole aggregator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatorConfig {
    /// MQTT broker (embedded or external) and subscription.
    pub broker: BrokerConfig,
    /// The store.
    pub store: StoreConfig,
    /// What the writer accepts from the agents, and how it waits for the store.
    pub ingest: IngestConfig,
    /// The operations endpoint: `/metrics` (Prometheus) and `/health`; port 0 means 9465.
    pub ops: OpsConfig,
    /// What happens when a new alert arrives.
    pub alerts: AlertsConfig,
    /// Watchlist enrollment (the models that embed the photos) and publishing.
    pub watchlist: WatchlistConfig,
    /// The analysts' HTTP API (`/api/v1`) and web page.
    pub api: ApiConfig,
    /// The audit log's signed checkpoints and their witnesses.
    pub audit: AuditConfig,
    /// Fusion of the agents' tracks into vehicles, persons, links and trajectories.
    pub fusion: FuseConfig,
    /// Where the cameras are (`[[cameras]]`, one table per camera). Cameras missing here are
    /// fused too, but space-time gating cannot judge them (*unknown*: counted as feasible
    /// with lower confidence). Default: none.
    pub cameras: Vec<CameraPlace>,
    /// Shortest plausible travel times between camera pairs (`[[travel]]`), replacing
    /// distance over `fusion.gate.max_speed_kmh` for the pair (a river between them, a
    /// one-way street). Both cameras must be in `cameras`. Default: none.
    pub travel: Vec<TravelTime>,
}

/// A camera as a place: WGS 84 position, optional heading and field of view, and the grid
/// (management area) it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraPlace {
    /// Site of the camera's agent (as in its topics). Required.
    pub site: String,
    /// The agent (gateway) id. Required.
    pub agent: String,
    /// Camera id within the agent. Required.
    pub camera: String,
    /// Latitude, degrees (-90..=90). Required.
    pub lat: f64,
    /// Longitude, degrees (-180..=180). Required.
    pub lon: f64,
    /// Direction the camera looks, degrees clockwise from north (0..360). Default: none.
    #[serde(default)]
    pub heading_deg: Option<f64>,
    /// Horizontal field of view, degrees (0 < fov <= 360). Default: none.
    #[serde(default)]
    pub fov_deg: Option<f64>,
    /// The grid or area it belongs to (`aggregator sightings --grid`). Default: none.
    #[serde(default)]
    pub grid: Option<String>,
}

impl CameraPlace {
    /// Its key, as the topics name it.
    pub fn key(&self) -> CameraKey {
        CameraKey::new(
            self.site.as_str(),
            self.agent.as_str(),
            self.camera.as_str(),
        )
    }
}

/// The shortest plausible travel time between two configured cameras (both directions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelTime {
    /// One camera, as `site/agent/camera`. Required.
    pub from: String,
    /// The other camera, as `site/agent/camera`. Required.
    pub to: String,
    /// Seconds (0 < s <= 86400). Required.
    pub seconds: f64,
}

/// Watchlist enrollment and publishing. Enrollment embeds the photos with the agents' face
/// detector and embedder, so keep these in step with the agents' configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchlistConfig {
    /// How often the running aggregator checks the store's watchlist version, ms; a changed
    /// version is published (retained) at the next check (100..=600000). Default `2000`.
    pub publish_poll_ms: u64,
    /// A detection counts as a face of its own when its box is at least this share of the
    /// largest face's height (0..=1); smaller ones (people far behind, spurious detections)
    /// are ignored. Default `0.4`.
    pub min_face_ratio: f32,
    /// Photos whose face is smaller than this many pixels high are refused (8..=1024).
    /// Default `40`.
    pub min_face_px: u32,
    /// The second and later photos of one person must have at least this cosine similarity
    /// with the first (-1..=1); below it they are refused as showing someone else. A low
    /// sanity bar: same-person pairs of the test photos score at least 0.52, different
    /// people at most 0.36. Default `0.3`.
    pub min_same_person: f32,
    /// Model files and the ONNX Runtime library (the agents' `[models]`).
    pub models: ModelsConfig,
    /// The face detector (the agents' `[face_detector]`).
    pub face_detector: EnrollDetectorConfig,
    /// The face embedder (the agents' `[face_embedder]`).
    pub face_embedder: EnrollEmbedderConfig,
}

impl Default for WatchlistConfig {
    fn default() -> Self {
        Self {
            publish_poll_ms: 2000,
            min_face_ratio: 0.4,
            min_face_px: 40,
            min_same_person: 0.3,
            models: ModelsConfig::default(),
            face_detector: EnrollDetectorConfig::default(),
            face_embedder: EnrollEmbedderConfig::default(),
        }
    }
}

/// The face detector enrollment runs: the agents' settings (their defaults are these
/// defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollDetectorConfig {
    /// Model family. Default `yunet` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `yunet_2023mar_dynamic.onnx`.
    pub model: PathBuf,
    /// Minimum face score (0..1). Default `0.6`.
    pub score_threshold: f32,
    /// IoU above which overlapping faces are merged by NMS (0..1). Default `0.3`.
    pub nms_iou: f32,
    /// Photos whose longer side exceeds this are downscaled before detection (64..=4096).
    /// Default `1920`.
    pub max_side: u32,
}

impl Default for EnrollDetectorConfig {
    fn default() -> Self {
        let a = FaceDetectorConfig::default();
        Self {
            family: a.family,
            model: a.model,
            score_threshold: a.score_threshold,
            nms_iou: a.nms_iou,
            max_side: a.max_side,
        }
    }
}

impl EnrollDetectorConfig {
    /// The agent's detector configuration with these settings (no cascade: enrollment
    /// photos are close-ups).
    pub fn to_agent(&self) -> FaceDetectorConfig {
        FaceDetectorConfig {
            family: self.family.clone(),
            model: self.model.clone(),
            score_threshold: self.score_threshold,
            nms_iou: self.nms_iou,
            max_side: self.max_side,
            cascade: false,
        }
    }
}

/// The face embedder enrollment runs: the agents' family and model (their defaults are these
/// defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollEmbedderConfig {
    /// Model family. Default `sface` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `sface_2021dec_fp32fold.onnx`.
    pub model: PathBuf,
}

impl Default for EnrollEmbedderConfig {
    fn default() -> Self {
        let a = FaceEmbedderConfig::default();
        Self {
            family: a.family,
            model: a.model,
        }
    }
}

impl EnrollEmbedderConfig {
    /// The agent's embedder configuration with this family and model.
    pub fn to_agent(&self) -> FaceEmbedderConfig {
        FaceEmbedderConfig {
            family: self.family.clone(),
            model: self.model.clone(),
            ..FaceEmbedderConfig::default()
        }
    }
}

/// The analysts' HTTP API (`/api/v1`, see `aggregator::api`) and the web page at `/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the API. Default `true`.
    pub enabled: bool,
    /// Address to listen on (a bearer token guards every route but the OpenAPI document and
    /// the web configuration; keep it on loopback or behind a TLS proxy). Default
    /// `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body, bytes (1024..=268435456); larger ones get 413. Default
    /// `8388608` (8 MiB).
    pub max_body_bytes: usize,
    /// Requests per second each token may make on average (0.1..=100000). Default `20`.
    pub rate_per_s: f64,
    /// Requests a token may make at once above the average (1..=1000000). Default `40`.
    pub rate_burst: u32,
    /// Rows a page holds when the request gives no `limit` (1..=`max_page_size`).
    /// Default `100`.
    pub page_size: usize,
    /// Largest `limit` a request may ask for (1..=100000). Default `1000`.
    pub max_page_size: usize,
    /// Basemap tile URL template for the web page (`https://tile.example/{z}/{x}/{y}.png`);
    /// empty: no basemap, the site GeoJSON is drawn (works offline). Default: empty.
    pub tile_url: String,
    /// Attribution shown with the tiles. Default: empty.
    pub tile_attribution: String,
    /// GeoJSON FeatureCollection of the site (roads, areas) served at
    /// `/api/v1/site.geojson`; checked at start. Default: none (cameras and grid outlines).
    pub site_geojson: Option<PathBuf>,
    /// Serve the web page at `/`. Default `true`.
    pub web: bool,
    /// How often an open live alert stream checks that its token is still valid, ms (it
    /// checks before every event too); a revoked or expired token ends it (100..=60000).
    /// Default `5000`.
    pub stream_check_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 8 << 20,
            rate_per_s: 20.0,
            rate_burst: 40,
            page_size: 100,
            max_page_size: 1000,
            tile_url: String::new(),
            tile_attribution: String::new(),
            site_geojson: None,
            web: true,
            stream_check_ms: 5000,
        }
    }
}

impl ApiConfig {
    /// Checks every field (the first problem is returned, named `api.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        in_range("api.max_body_bytes", self.max_body_bytes, 1024, 256 << 20)?;
        if !(self.rate_per_s.is_finite() && (0.1..=100_000.0).contains(&self.rate_per_s)) {
            return Err(invalid("api.rate_per_s", "must be within 0.1..=100000"));
        }
        in_range("api.rate_burst", self.rate_burst, 1, 1_000_000)?;
        in_range("api.max_page_size", self.max_page_size, 1, 100_000)?;
        in_range("api.stream_check_ms", self.stream_check_ms, 100, 60_000)?;
        if !(1..=self.max_page_size).contains(&self.page_size) {
            return Err(invalid(
                "api.page_size",
                format!(
                    "must be within 1..={} (api.max_page_size)",
                    self.max_page_size
                ),
            ));
        }
        let t = &self.tile_url;
        let ok = t.is_empty()
            || t.starts_with("http://")
            || t.starts_with("https://")
            || t.starts_with('/');
        if !ok {
            return Err(invalid(
                "api.tile_url",
                format!(
                    "{:?} must be an http(s) URL or a path on this server",
                    self.tile_url
                ),
            ));
        }
        if let Some(p) = &self.site_geojson
            && p.as_os_str().is_empty()
        {
            return Err(invalid(
                "api.site_geojson",
                "must not be empty (leave it out instead)",
            ));
        }
        Ok(())
    }
}

/// The audit log's signed checkpoints (see `aggregator::witness`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The Ed25519 key pair (PKCS#8) that signs checkpoints, kept outside the database;
    /// created with mode 0600 on first use (or by `aggregator audit keygen`). Keep a copy of
    /// its public key (`aggregator audit public-key`) with whoever verifies. Default: none,
    /// meaning `<store.path>.audit-key` beside the SQLite file, `sharpeyes-audit.key` in the
    /// working directory with PostgreSQL (aggregators sharing a database share the key).
    pub key_file: Option<PathBuf>,
    /// How often the running aggregator stores a signed checkpoint when the log grew,
    /// seconds (one more at shutdown) (1..=86400). Default `60`.
    pub checkpoint_interval_s: u64,
    /// A JSON-lines file every checkpoint is appended to as well (put it where the
    /// database's administrators cannot rewrite it: another disk, a mounted share); `audit
    /// verify --checkpoints FILE` checks the log against it. Default: none.
    pub witness_file: Option<PathBuf>,
    /// Hand every checkpoint to `alerts.hook` too (standard input: the checkpoint as JSON;
    /// environment: `SHARPEYES_EVENT=audit_checkpoint`). Default `false`.
    pub checkpoint_hook: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            key_file: None,
            checkpoint_interval_s: 60,
            witness_file: None,
            checkpoint_hook: false,
        }
    }
}

impl AuditConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        in_range(
            "audit.checkpoint_interval_s",
            self.checkpoint_interval_s,
            1,
            86_400,
        )?;
        for (name, p) in [
            ("audit.key_file", &self.key_file),
            ("audit.witness_file", &self.witness_file),
        ] {
            if p.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(invalid(name, "must not be empty (leave it out instead)"));
            }
        }
        Ok(())
    }
}

/// What happens when a new alert arrives (updates of an open alert run nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Command run once per new alert, e.g. an SMS gateway's client, as a program and its
    /// arguments (no shell). It gets the alert as JSON on standard input (evidence left out:
    /// `aggregator alerts evidence` fetches it) and `SHARPEYES_EVENT=alert`,
    /// `SHARPEYES_ALERT_AGENT`, `_ID`, `_KIND`, `_PRIORITY`, `_CAMERA`, `_SUMMARY` in its
    /// environment (with `audit.checkpoint_hook`, audit checkpoints come too, with
    /// `SHARPEYES_EVENT=audit_checkpoint`). A webhook:
    /// `["curl", "-sf", "-H", "Content-Type: application/json", "--data-binary", "@-", URL]`.
    /// Hooks run one at a time, off the store path; a failure is logged and counted. Default:
    /// none.
    pub hook: Vec<String>,
    /// Longest a hook may run before it is killed, ms (100..=600000). Default `10000`.
    pub hook_timeout_ms: u64,
    /// New alerts waiting for the hook at most; beyond, they are counted and skipped
    /// (they are stored all the same) (1..=100000). Default `1000`.
    pub hook_queue: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            hook: Vec::new(),
            hook_timeout_ms: 10_000,
            hook_queue: 1000,
        }
    }
}

/// The aggregator's default ops port.
pub const OPS_PORT: u16 = 9465;

/// MQTT broker and subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// External broker as `mqtt://host:port`, or `mqtts://host:port` for MQTT over TLS
    /// (port 8883 when left out; needs `ca_file`); empty runs the embedded broker.
    /// Default: empty.
    pub url: String,
    /// CA certificate (PEM) trusted when connecting to an external broker over TLS.
    /// Default: none.
    pub ca_file: Option<PathBuf>,
    /// Listen address of the embedded broker. Default `127.0.0.1:1883`.
    pub listen: SocketAddr,
    /// Largest payload the embedded broker accepts, bytes. Default `16777216` (16 MiB).
    pub max_payload_bytes: usize,
    /// Certificate chain (PEM, server first) of the embedded broker: with `tls_key`, `listen`
    /// speaks MQTT over TLS only (`aggregator gen-certs` makes a CA and one for a demo).
    /// Default: none (plain TCP).
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`. Default: none.
    pub tls_key: Option<PathBuf>,
    /// Password file of the embedded broker, Mosquitto format (`mosquitto_passwd` or
    /// `aggregator passwd` write it): clients must log in with a user in it. Default: none
    /// (anyone may connect: keep `listen` on loopback).
    pub password_file: Option<PathBuf>,
    /// ACL file of the embedded broker, Mosquitto format: what each user may publish and
    /// read (`configs/mosquitto/acl` confines each agent to its own topics). Needs
    /// `password_file`. Default: none (every client may use every topic).
    pub acl_file: Option<PathBuf>,
    /// Most client connections the embedded broker's gate (`tls_cert`, `password_file` or
    /// `acl_file` set) holds at once, counted from the TCP accept, before TLS and log-in;
    /// one more is closed at once (`broker_refused_total{reason="connections"}`).
    /// 1..=10000. Default `1024`.
    pub max_connections: usize,
    /// Largest CONNECT packet the gate reads before the log-in is checked, bytes (the
    /// CONNECT carries the client id, the log-in and the last will); a larger one is
    /// refused unread (`reason="connect_size"`). 1024..=16777216. Default `65536`.
    pub max_connect_bytes: usize,
    /// Most QoS 1/2 publishes one client may have sent through the gate and not yet had
    /// acknowledged by the broker; at the cap the gate stops reading that client until
    /// acknowledgements come back (back-pressure, counted in
    /// `broker_inflight_waits_total`). 1..=65535. Default `256` (rumqttc clients, the edge
    /// agent among them, keep at most 100).
    pub max_inflight_messages: usize,
    /// Most bytes of such publishes per client (a single larger publish still passes, alone).
    /// 65536..=1073741824. Default `16777216` (16 MiB).
    pub max_inflight_bytes: usize,
    /// Topic prefix. Default `sharpeyes/v1`.
    pub topic_prefix: String,
    /// MQTT client id of this aggregator (unique per aggregator). Default `aggregator-1`.
    pub client_id: String,
    /// Shared-subscription group: aggregators in one group split the track and alert load
    /// (`$share/{group}/...`). Empty subscribes plainly. Default `aggregators`.
    ///
    /// A single aggregator behind an external Mosquitto should subscribe plainly: Mosquitto
    /// (2.0.11 tested) does not restore shared subscriptions from its persistence file, so
    /// what agents publish after a broker restart and before the aggregator reconnects would
    /// have no subscriber. Plain subscriptions of a persistent session are restored.
    pub shared_group: String,
    /// User name, if the broker requires one. Default: none.
    pub username: Option<String>,
    /// Password, if the broker requires one. Default: none.
    pub password: Option<String>,
    /// MQTT keep-alive, seconds (5..=600). Default `30`.
    pub keep_alive_s: u64,
    /// Longest reconnect delay after losing the broker, ms (back-off starts at 200 ms). Default `5000`.
    pub reconnect_max_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            ca_file: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_payload_bytes: 16 << 20,
            tls_cert: None,
            tls_key: None,
            password_file: None,
            acl_file: None,
            max_connections: 1024,
            max_connect_bytes: 64 << 10,
            max_inflight_messages: 256,
            max_inflight_bytes: 16 << 20,
            topic_prefix: sharpeyes_wire::DEFAULT_PREFIX.into(),
            client_id: "aggregator-1".into(),
            shared_group: "aggregators".into(),
            username: None,
            password: None,
            keep_alive_s: 30,
            reconnect_max_ms: 5000,
        }
    }
}

impl BrokerConfig {
    /// Host and port to connect to: the external broker's, or the embedded one's.
    pub fn endpoint(&self) -> Result<(String, u16), ConfigError> {
        if self.url.is_empty() {
            let host = if self.listen.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                self.listen.ip().to_string()
            };
            return Ok((host, self.listen.port()));
        }
        let (rest, default_port) = if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (rest, "8883")
        } else {
            let rest = self
                .url
                .strip_prefix("mqtt://")
                .or_else(|| self.url.strip_prefix("tcp://"))
                .ok_or_else(|| {
                    invalid(
                        "broker.url",
                        format!("{:?} must look like mqtt://host:port", self.url),
                    )
                })?;
            (rest, "1883")
        };
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default_port));
        let port: u16 = port
            .trim_end_matches('/')
            .parse()
            .map_err(|_| invalid("broker.url", format!("bad port in {:?}", self.url)))?;
        // `[::1]` is an IPv6 host; brackets alone (`tcp://[:4`, found by fuzzing) name none.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(invalid(
                "broker.url",
                format!("{:?} must look like mqtt://host:port", self.url),
            ));
        }
        Ok((host.to_string(), port))
    }

    /// Whether the embedded broker runs.
    pub fn embedded(&self) -> bool {
        self.url.is_empty()
    }

    /// Whether the external broker is reached over TLS (`mqtts://`).
    pub fn external_tls(&self) -> bool {
        self.url.starts_with("mqtts://")
    }

    /// Whether the embedded broker runs behind the gate (TLS, log-in or ACL).
    pub fn gated(&self) -> bool {
        self.tls_cert.is_some() || self.password_file.is_some() || self.acl_file.is_some()
    }
}

/// The store's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file (`store.path`): the embedded default, one aggregator.
    Sqlite,
    /// A PostgreSQL database (`store.postgres_url`): several aggregators may share it.
    Postgres,
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` or `postgres`. Default `sqlite`.
    pub backend: StoreBackend,
    /// SQLite database file (created if missing; WAL mode). Default `sharpeyes.db`.
    pub path: PathBuf,
    /// SQLite's `synchronous` setting: `full` syncs the write-ahead log at every commit, so a
    /// transaction the aggregator committed (and acknowledged to its agent, which then deletes
    /// its copy) survives a power cut; `normal` syncs only at checkpoints (a power cut can
    /// roll back the last commits, which are then lost). Measured with the ingest benchmark
    /// (one writer, 16 batches per transaction): `full` stores about 38 % fewer track
    /// updates per second than `normal` (3,429 vs 5,502 on a loaded 2-core machine; README
    /// "Store"). Ignored by PostgreSQL (its own `synchronous_commit`, on by default, is
    /// durable). Default `full`.
    pub sqlite_synchronous: crate::store::SqliteSynchronous,
    /// PostgreSQL connection (backend `postgres`): a URL
    /// `postgres://user:password@host:port/database` or a `key=value` string
    /// (`host=… user=… password=… dbname=…`). The database must exist; the schema is created.
    /// No TLS: reach the server over loopback or a trusted network. The password is never
    /// logged. Default: none (required with backend `postgres`).
    pub postgres_url: Option<String>,
    /// Messages committed per transaction at most (1..=10000). Default `256`.
    pub max_batch: usize,
    /// Days sightings, tracks, track points, messages and link evidence are kept
    /// (0..=36500; 0 keeps them forever). Default `30`.
    pub retention_days: u32,
    /// Days alerts and their evidence images are kept (0..=36500; 0 keeps them forever).
    /// Default `365`.
    pub alert_retention_days: u32,
    /// Days an evidence image of kind `sighting` (a track's best shot) is kept, counted from
    /// the newest capture time that referred to it; it goes only once no kept track refers
    /// to it (0..=36500; 0 keeps them forever). Default `30`.
    pub evidence_sighting_retention_days: u32,
    /// Days an evidence image of kind `alert` is kept, likewise; it goes only once no kept
    /// alert refers to it (0..=36500; 0 keeps them forever). Default `365`.
    pub evidence_alert_retention_days: u32,
    /// How often the running aggregator (the fusion owner) applies retention, seconds
    /// (10..=86400). Default `600`.
    pub retention_interval_s: u64,
    /// Rows deleted per kind and transaction at most, so retention never holds the writer up
    /// long (100..=1000000). Default `10000`.
    pub retention_chunk: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            path: "sharpeyes.db".into(),
            sqlite_synchronous: Default::default(),
            postgres_url: None,
            max_batch: 256,
            retention_days: 30,
            alert_retention_days: 365,
            evidence_sighting_retention_days: 30,
            evidence_alert_retention_days: 365,
            retention_interval_s: 600,
            retention_chunk: 10_000,
        }
    }
}

/// What the writer accepts from the agents (checked at decode, before anything is stored or
/// fused: see `sharpeyes_wire::validate`), and how it waits for the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Oldest capture time accepted, days before the aggregator's clock (1..=36500); older
    /// messages are rejected (`invalid_time`). Keep it at least as long as the agents' spools
    /// can hold data through an outage. Default `30`.
    pub max_age_days: u32,
    /// Newest capture time accepted, seconds after the aggregator's clock (0..=86400): the
    /// clock skew allowed between gateways and the aggregator. Default `300`.
    pub max_ahead_s: u32,
    /// MessagePack values one payload may hold (1000..=16777216); a payload with more is
    /// rejected before it is decoded (`too_complex`): a few kB of zstd can hold millions of
    /// tiny values. Default `1048576`.
    pub max_values: usize,
    /// Messages waiting for the writer at most (16..=100000). When the queue is full the
    /// subscriber stops reading from the broker (which then holds the messages) instead of
    /// growing. Default `512`.
    pub queue: usize,
    /// Longest wait between retries while the store as a whole fails (database unreachable,
    /// disk full), ms (1000..=600000); the wait doubles from 1 s up to it. Nothing is
    /// acknowledged meanwhile. Default `30000`.
    pub retry_max_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_age_days: 30,
            max_ahead_s: 300,
            max_values: sharpeyes_wire::DEFAULT_MAX_VALUES,
            queue: 512,
            retry_max_ms: 30_000,
        }
    }
}

impl IngestConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        in_range("ingest.max_age_days", self.max_age_days, 1, 36_500)?;
        in_range("ingest.max_ahead_s", self.max_ahead_s, 0, 86_400)?;
        in_range("ingest.max_values", self.max_values, 1000, 16 << 20)?;
        in_range("ingest.queue", self.queue, 16, 100_000)?;
        in_range("ingest.retry_max_ms", self.retry_max_ms, 1000, 600_000)?;
        Ok(())
    }

    /// The time window around `now_ms`.
    pub fn limits(&self, now_ms: i64) -> sharpeyes_wire::validate::Limits {
        sharpeyes_wire::validate::Limits::around(
            now_ms,
            i64::from(self.max_age_days) * 86_400_000,
            i64::from(self.max_ahead_s) * 1000,
        )
    }
}

impl StoreConfig {
    /// Where the store is.
    pub fn location(&self) -> crate::store::Location {
        match self.backend {
            StoreBackend::Sqlite => crate::store::Location::Sqlite(self.path.clone()),
            StoreBackend::Postgres => {
                crate::store::Location::Postgres(self.postgres_url.clone().unwrap_or_default())
            }
        }
    }

    /// The retention policy.
    pub fn retention(&self) -> crate::store::RetentionPolicy {
        crate::store::RetentionPolicy {
            days: self.retention_days,
            alert_days: self.alert_retention_days,
            evidence_sighting_days: self.evidence_sighting_retention_days,
            evidence_alert_days: self.evidence_alert_retention_days,
            chunk: self.retention_chunk,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self.backend {
            StoreBackend::Sqlite => {
                if self.path.as_os_str().is_empty() {
                    return Err(invalid("store.path", "must not be empty"));
                }
            }
            StoreBackend::Postgres => {
                let Some(url) = self
                    .postgres_url
                    .as_deref()
                    .filter(|u| !u.trim().is_empty())
                else {
                    return Err(invalid(
                        "store.postgres_url",
                        "backend \"postgres\" needs a connection URL \
                         (postgres://user:password@host:port/database)",
                    ));
                };
                // (The parser's message never quotes the password.)
                let c: postgres::Config = url.parse().map_err(|e| {
                    invalid("store.postgres_url", format!("not a PostgreSQL URL: {e}"))
                })?;
                if c.get_dbname().is_none() {
                    return Err(invalid("store.postgres_url", "name the database"));
                }
                if c.get_ssl_mode() == postgres::config::SslMode::Require {
                    return Err(invalid(
                        "store.postgres_url",
                        "sslmode=require is not supported (no TLS connector is built in)",
                    ));
                }
            }
        }
        if !(1..=10_000).contains(&self.max_batch) {
            return Err(invalid("store.max_batch", "must be within 1..=10000"));
        }
        in_range("store.retention_days", self.retention_days, 0, 36_500)?;
        in_range(
            "store.alert_retention_days",
            self.alert_retention_days,
            0,
            36_500,
        )?;
        in_range(
            "store.evidence_sighting_retention_days",
            self.evidence_sighting_retention_days,
            0,
            36_500,
        )?;
        in_range(
            "store.evidence_alert_retention_days",
            self.evidence_alert_retention_days,
            0,
            36_500,
        )?;
        in_range(
            "store.retention_interval_s",
            self.retention_interval_s,
            10,
            86_400,
        )?;
        in_range(
            "store.retention_chunk",
            self.retention_chunk,
            100,
            1_000_000,
        )?;
        Ok(())
    }
}

impl ConfigFile for AggregatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.broker;
        b.endpoint()?;
        if b.topic_prefix.is_empty() || b.topic_prefix.contains(['+', '#']) {
            return Err(invalid(
                "broker.topic_prefix",
                "must be non-empty and free of '+' and '#'",
            ));
        }
        if b.external_tls() && b.ca_file.is_none() {
            return Err(invalid(
                "broker.ca_file",
                "an mqtts:// broker needs the CA certificate to trust",
            ));
        }
        if b.tls_cert.is_some() != b.tls_key.is_some() {
            return Err(invalid(
                "broker.tls_cert",
                "tls_cert and tls_key go together",
            ));
        }
        if b.acl_file.is_some() && b.password_file.is_none() {
            return Err(invalid(
                "broker.acl_file",
                "an ACL needs users: set broker.password_file too",
            ));
        }
        if !b.embedded() && b.gated() {
            return Err(invalid(
                "broker.url",
                "tls_cert, password_file and acl_file configure the embedded broker; with an external broker configure them there",
            ));
        }
        if b.client_id.is_empty() {
            return Err(invalid("broker.client_id", "must not be empty"));
        }
        if b.shared_group.contains(['/', '+', '#']) {
            return Err(invalid(
                "broker.shared_group",
                "must be free of '/', '+' and '#'",
            ));
        }
        if !(1024..=256 << 20).contains(&b.max_payload_bytes) {
            return Err(invalid(
                "broker.max_payload_bytes",
                "must be within 1024..=268435456",
            ));
        }
        for (field, value, range) in [
            ("broker.max_connections", b.max_connections, 1..=10_000),
            (
                "broker.max_connect_bytes",
                b.max_connect_bytes,
                1024..=16 << 20,
            ),
            (
                "broker.max_inflight_messages",
                b.max_inflight_messages,
                1..=65_535,
            ),
            (
                "broker.max_inflight_bytes",
                b.max_inflight_bytes,
                64 << 10..=1 << 30,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    field,
                    format!("must be within {}..={}", range.start(), range.end()),
                ));
            }
        }
        if !(5..=600).contains(&b.keep_alive_s) {
            return Err(invalid("broker.keep_alive_s", "must be within 5..=600"));
        }
        if !(200..=600_000).contains(&b.reconnect_max_ms) {
            return Err(invalid(
                "broker.reconnect_max_ms",
                "must be within 200..=600000",
            ));
        }
        let a = &self.alerts;
        if a.hook.first().is_some_and(|p| p.trim().is_empty()) {
            return Err(invalid(
                "alerts.hook",
                "the program (first element) is empty",
            ));
        }
        if !(100..=600_000).contains(&a.hook_timeout_ms) {
            return Err(invalid(
                "alerts.hook_timeout_ms",
                "must be within 100..=600000",
            ));
        }
        if !(1..=100_000).contains(&a.hook_queue) {
            return Err(invalid("alerts.hook_queue", "must be within 1..=100000"));
        }
        self.store.validate()?;
        self.ingest.validate()?;
        self.api.validate()?;
        self.audit.validate()?;
        let w = &self.watchlist;
        in_range("watchlist.publish_poll_ms", w.publish_poll_ms, 100, 600_000)?;
        in_range("watchlist.min_face_ratio", w.min_face_ratio, 0.0, 1.0)?;
        in_range("watchlist.min_face_px", w.min_face_px, 8, 1024)?;
        in_range("watchlist.min_same_person", w.min_same_person, -1.0, 1.0)?;
        in_range(
            "watchlist.models.intra_threads",
            w.models.intra_threads,
            1,
            64,
        )?;
        if w.models.dir.as_os_str().is_empty() {
            return Err(invalid("watchlist.models.dir", "must not be empty"));
        }
        let d = &w.face_detector;
        if d.family != "yunet" {
            return Err(invalid(
                "watchlist.face_detector.family",
                format!("unknown family {:?} (known: yunet)", d.family),
            ));
        }
        in_range(
            "watchlist.face_detector.score_threshold",
            d.score_threshold,
            0.0,
            1.0,
        )?;
        in_range("watchlist.face_detector.nms_iou", d.nms_iou, 0.0, 1.0)?;
        in_range("watchlist.face_detector.max_side", d.max_side, 64, 4096)?;
        if w.face_embedder.family != "sface" {
            return Err(invalid(
                "watchlist.face_embedder.family",
                format!("unknown family {:?} (known: sface)", w.face_embedder.family),
            ));
        }
        self.fusion.validate()?;
        self.camera_catalog()?;
        Ok(())
    }
}

/// Whether `s` can be one level of a topic (and of a `site/agent/camera` name).
fn topic_level(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#']) && s.trim() == s
}

impl AggregatorConfig {
    /// The camera places and travel times as fusion uses them; checks every entry (the
    /// first problem is returned, named `cameras[i].…` or `travel[i].…`).
    pub fn camera_catalog(&self) -> Result<CameraCatalog, ConfigError> {
        let mut catalog = CameraCatalog::new();
        let mut seen: HashSet<CameraKey> = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let field = |f: &str| format!("cameras[{i}].{f}");
            for (name, v) in [
                ("site", &c.site),
                ("agent", &c.agent),
                ("camera", &c.camera),
            ] {
                if !topic_level(v) {
                    return Err(invalid(
                        field(name),
                        format!(
                            "{v:?} must be a non-empty topic level without '/', '+', '#' or surrounding spaces"
                        ),
                    ));
                }
            }
            in_range(&field("lat"), c.lat, -90.0, 90.0)?;
            in_range(&field("lon"), c.lon, -180.0, 180.0)?;
            if let Some(h) = c.heading_deg
                && !(h.is_finite() && (0.0..360.0).contains(&h))
            {
                return Err(invalid(
                    field("heading_deg"),
                    format!("{h} is outside 0..360"),
                ));
            }
            if let Some(f) = c.fov_deg
                && !(f.is_finite() && f > 0.0 && f <= 360.0)
            {
                return Err(invalid(
                    field("fov_deg"),
                    format!("{f} is outside 0 < fov <= 360"),
                ));
            }
            if let Some(g) = &c.grid
                && g.trim().is_empty()
            {
                return Err(invalid(
                    field("grid"),
                    "must not be empty (leave it out instead)",
                ));
            }
            let key = c.key();
            if !seen.insert(key.clone()) {
                return Err(invalid(
                    format!("cameras[{i}]"),
                    format!("camera {key} is listed twice"),
                ));
            }
            catalog
                .insert(key, c.lat, c.lon)
                .map_err(|e| invalid(format!("cameras[{i}]"), e.to_string()))?;
        }
        let mut pairs: HashSet<(CameraKey, CameraKey)> = HashSet::new();
        for (i, t) in self.travel.iter().enumerate() {
            let camera = |name: &str, v: &str| -> Result<CameraKey, ConfigError> {
                let field = format!("travel[{i}].{name}");
                let mut parts = v.split('/');
                let key = match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(s), Some(a), Some(c), None) => CameraKey::new(s, a, c),
                    _ => {
                        return Err(invalid(field, format!("{v:?} must be site/agent/camera")));
                    }
                };
                if !seen.contains(&key) {
                    return Err(invalid(
                        field,
                        format!(
                            "camera {v} is not in [[cameras]] (a travel time needs both positions' cameras listed)"
                        ),
                    ));
                }
                Ok(key)
            };
            let (from, to) = (camera("from", &t.from)?, camera("to", &t.to)?);
            if from == to {
                return Err(invalid(
                    format!("travel[{i}].to"),
                    "a travel time needs two different cameras",
                ));
            }
            if !(t.seconds.is_finite() && t.seconds > 0.0 && t.seconds <= 86_400.0) {
                return Err(invalid(
                    format!("travel[{i}].seconds"),
                    format!("{} is outside 0 < s <= 86400", t.seconds),
                ));
            }
            let pair = if from < to {
                (from.clone(), to.clone())
            } else {
                (to.clone(), from.clone())
            };
            if !pairs.insert(pair) {
                return Err(invalid(
                    format!("travel[{i}]"),
                    format!("the pair {from} – {to} is listed twice"),
                ));
            }
            catalog
                .set_travel_ms(&from, &to, (t.seconds * 1000.0).round() as u64)
                .map_err(|e| invalid(format!("travel[{i}]"), e.to_string()))?;
        }
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_config_is_the_default() {
        assert_eq!(
            AggregatorConfig::from_toml(DEFAULT_CONFIG_TOML).unwrap(),
            AggregatorConfig::default()
        );
        assert_eq!(
            AggregatorConfig::from_toml("").unwrap(),
            AggregatorConfig::default()
        );
    }

    #[test]
    fn broker_endpoints() {
        let mut b = BrokerConfig::default();
        assert_eq!(b.endpoint().unwrap(), ("127.0.0.1".into(), 1883));
        b.url = "mqtt://broker.local:1884".into();
        assert_eq!(b.endpoint().unwrap(), ("broker.local".into(), 1884));
        b.url = "mqtt://broker.local".into();
        assert_eq!(b.endpoint().unwrap(), ("broker.local".into(), 1883));
        b.url = "http://x:1".into();
        assert!(b.endpoint().is_err());
        b.url = "mqtt://x:99999".into();
        assert!(b.endpoint().is_err());
        b.url = "tcp://]:4".into();
        assert!(b.endpoint().is_err(), "brackets alone name no host");
        b.url = "mqtt://[::1]:1884".into();
        assert_eq!(b.endpoint().unwrap(), ("::1".into(), 1884));
        b.url = "mqtts://broker.local".into();
        assert_eq!(b.endpoint().unwrap(), ("broker.local".into(), 8883));
        assert!(b.external_tls());
    }

    #[test]
    fn mistakes_name_the_field() {
        let e = |t: &str| AggregatorConfig::from_toml(t).unwrap_err().to_string();
        assert!(e("[broker]\nurl = 'ftp://x'").contains("broker.url"));
        assert!(e("[broker]\nshared_group = 'a/b'").contains("broker.shared_group"));
        assert!(e("[store]\nmax_batch = 0").contains("store.max_batch"));
        assert!(e("[store]\npth = 'x'").contains("unknown field"));
        assert!(e("[store]\nbackend = 'postgres'").contains("store.postgres_url"));
        assert!(e("[store]\nbackend = 'mysql'").contains("unknown variant"));
        assert!(e("[store]\nsqlite_synchronous = 'off'").contains("unknown variant"));
        assert_eq!(
            AggregatorConfig::from_toml("[store]\nsqlite_synchronous = 'normal'")
                .unwrap()
                .store
                .sqlite_synchronous,
            crate::store::SqliteSynchronous::Normal
        );
        let bad =
            e("[store]\nbackend = 'postgres'\npostgres_url = 'postgres://u:s3cret@h:notaport/db'");
        assert!(
            bad.contains("store.postgres_url") && !bad.contains("s3cret"),
            "{bad}"
        );
        assert!(
            e("[store]\nbackend = 'postgres'\npostgres_url = 'postgres://u@h/db?sslmode=require'")
                .contains("sslmode")
        );
        assert!(e("[store]\nretention_chunk = 5").contains("store.retention_chunk"));
        assert!(
            e("[store]\nevidence_alert_retention_days = 40000")
                .contains("store.evidence_alert_retention_days")
        );
        assert!(
            e("[store]\nevidence_sighting_retention_days = -1")
                .contains("evidence_sighting_retention_days")
        );
        assert!(e("[store]\nretention_interval_s = 1").contains("store.retention_interval_s"));
        let pg = AggregatorConfig::from_toml(
            "[store]\nbackend = 'postgres'\npostgres_url = 'postgres://u:pw@127.0.0.1:5432/se'",
        )
        .unwrap();
        assert_eq!(
            pg.store.location().describe(),
            "postgres://u@127.0.0.1:5432/se",
            "no password in what is logged"
        );
        assert!(e("[broker]\nlisten = 'nowhere'").contains("listen"));
        assert!(e("[broker]\nurl = 'mqtts://x'").contains("broker.ca_file"));
        assert!(e("[broker]\ntls_cert = 'c.pem'").contains("broker.tls_cert"));
        assert!(e("[broker]\nacl_file = 'acl'").contains("broker.acl_file"));
        assert!(e("[broker]\nmax_connections = 0").contains("broker.max_connections"));
        assert!(e("[broker]\nmax_connect_bytes = 100").contains("broker.max_connect_bytes"));
        assert!(
            e("[broker]\nmax_inflight_messages = 65536").contains("broker.max_inflight_messages")
        );
        assert!(e("[broker]\nmax_inflight_bytes = 1").contains("broker.max_inflight_bytes"));
        assert!(e("[broker]\nurl = 'mqtt://x'\npassword_file = 'p'").contains("broker.url"));
        assert!(e("[watchlist]\npublish_poll_ms = 0").contains("watchlist.publish_poll_ms"));
        assert!(
            e("[watchlist.face_detector]\nfamily = 'mtcnn'")
                .contains("watchlist.face_detector.family")
        );
        assert!(e("[watchlist.models]\nintra_threads = 0").contains("intra_threads"));
        assert!(e("[watchlist.face_embedder]\nenabled = true").contains("unknown field"));
        assert!(e("[api]\nlisten = 'x'").contains("listen"));
        assert!(e("[api]\nmax_body_bytes = 10").contains("api.max_body_bytes"));
        assert!(e("[api]\nrate_per_s = 0.0").contains("api.rate_per_s"));
        assert!(e("[api]\nrate_burst = 0").contains("api.rate_burst"));
        assert!(e("[api]\npage_size = 2000").contains("api.page_size"));
        assert!(e("[api]\nmax_page_size = 0").contains("api.max_page_size"));
        assert!(e("[api]\ntile_url = 'ftp://x'").contains("api.tile_url"));
        assert!(e("[api]\nsite_geojson = ''").contains("api.site_geojson"));
        assert!(e("[api]\ntoken = 'x'").contains("unknown field"));
    }

    const PLACES: &str = "
[[cameras]]
site = 's1'
agent = 'a1'
camera = 'cam-1'
lat = 30.657
lon = 104.065
heading_deg = 90.0
fov_deg = 70.0
grid = 'jinjiang-07'

[[cameras]]
site = 's1'
agent = 'a1'
camera = 'cam-2'
lat = 30.68
lon = 104.08

[[travel]]
from = 's1/a1/cam-1'
to = 's1/a1/cam-2'
seconds = 240
";

    #[test]
    fn cameras_and_travel_build_the_catalog() {
        let cfg = AggregatorConfig::from_toml(PLACES).unwrap();
        assert_eq!(cfg.cameras.len(), 2);
        assert_eq!(cfg.cameras[0].grid.as_deref(), Some("jinjiang-07"));
        assert_eq!(cfg.cameras[1].heading_deg, None);
        let cat = cfg.camera_catalog().unwrap();
        assert_eq!(cat.len(), 2);
        assert_eq!(
            cat.position(&CameraKey::new("s1", "a1", "cam-2")),
            Some([30.68, 104.08])
        );
        assert!(
            AggregatorConfig::default()
                .camera_catalog()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn camera_place_mistakes_name_the_entry() {
        let e = |t: &str| AggregatorConfig::from_toml(t).unwrap_err().to_string();
        let swap = |from: &str, to: &str| PLACES.replacen(from, to, 1);
        assert!(e(&swap("lat = 30.657", "lat = 130.657")).contains("cameras[0].lat"));
        assert!(e(&swap("lon = 104.08", "lon = -190.0")).contains("cameras[1].lon"));
        assert!(e(&swap("heading_deg = 90.0", "heading_deg = 360.0")).contains("heading_deg"));
        assert!(e(&swap("fov_deg = 70.0", "fov_deg = 0.0")).contains("cameras[0].fov_deg"));
        assert!(e(&swap("grid = 'jinjiang-07'", "grid = ' '")).contains("cameras[0].grid"));
        assert!(e(&swap("camera = 'cam-1'", "camera = 'cam/1'")).contains("cameras[0].camera"));
        let twice = e(&swap("camera = 'cam-2'", "camera = 'cam-1'"));
        assert!(
            twice.contains("cameras[1]") && twice.contains("listed twice"),
            "{twice}"
        );
        let unknown = e(&swap("to = 's1/a1/cam-2'", "to = 's1/a1/cam-9'"));
        assert!(
            unknown.contains("travel[0].to") && unknown.contains("not in [[cameras]]"),
            "{unknown}"
        );
        assert!(e(&swap("to = 's1/a1/cam-2'", "to = 'cam-2'")).contains("site/agent/camera"));
        assert!(e(&swap("to = 's1/a1/cam-2'", "to = 's1/a1/cam-1'")).contains("travel[0].to"));
        assert!(e(&swap("seconds = 240", "seconds = 0")).contains("travel[0].seconds"));
        let dup = format!(
            "{PLACES}\n[[travel]]\nfrom = 's1/a1/cam-2'\nto = 's1/a1/cam-1'\nseconds = 9\n"
        );
        assert!(e(&dup).contains("listed twice"));
        assert!(e(&swap("lon = 104.08", "lon = 104.08\nheight = 3")).contains("unknown field"));
        assert!(
            e(&swap("lat = 30.68\n", "")).contains("lat"),
            "lat is required"
        );
        assert!(e("[fusion.gate]\nmax_speed_kmh = 0.0").contains("fusion.gate.max_speed_kmh"));
        assert!(e("[fusion]\nrestore_hours = 721").contains("fusion.restore_hours"));
        assert!(
            e("[fusion.persons]\nembedding_model = \"sface 2021\"")
                .contains("fusion.persons.embedding_model")
        );
        let c = AggregatorConfig::from_toml("[fusion]\nrestore_hours = 0").unwrap();
        assert_eq!(c.fusion.restore_hours, 0);
        assert_eq!(AggregatorConfig::default().fusion.restore_hours, 72);
    }

    #[test]
    fn enrollment_models_default_to_the_agents() {
        let w = WatchlistConfig::default();
        assert_eq!(w.models, ModelsConfig::default());
        let agent_detector = FaceDetectorConfig {
            cascade: false,
            ..FaceDetectorConfig::default()
        };
        assert_eq!(w.face_detector.to_agent(), agent_detector);
        assert_eq!(w.face_embedder.to_agent(), FaceEmbedderConfig::default());
    }
}
