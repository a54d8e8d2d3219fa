//! Aggregator configuration (TOML). Every field has a doc comment and a default; the
//! commented example printed by `aggregator print-default-config` is
//! `configs/aggregator.toml`, and a test checks it equals [`AggregatorConfig::default`].

pub use perception::config::ModelsConfig;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
pub use sharpeyes_common::config::{ConfigError, ConfigFile};
use sharpeyes_common::config::{in_range, invalid};
pub use sharpeyes_common::ops::OpsConfig;

pub use fusion::FuseConfig;

pub use crate::api::config::{ApiConfig, AuditConfig};
pub use crate::broker::config::{BrokerConfig, OPS_PORT};
pub use crate::facesearch::config::FaceSearchConfig;
pub use crate::store::config::{StoreBackend, StoreConfig};
pub use crate::subscribe::config::IngestConfig;
pub use crate::watchlist::config::{EnrollDetectorConfig, EnrollEmbedderConfig, WatchlistConfig};
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
    /// Face search: the live index of every representative face, and its snapshot.
    pub face_search: FaceSearchConfig,
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

impl ConfigFile for AggregatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.broker;
        b.endpoint()?;
        if let Some(p) = &b.password {
            p.resolve("broker.password")?;
        }
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
        self.face_search.validate()?;
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
        in_range(
            "watchlist.face_embedder.match_threshold",
            w.face_embedder.match_threshold,
            -1.0,
            1.0,
        )?;
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
    use perception::config::{FaceDetectorConfig, FaceEmbedderConfig};

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
            pg.store.location().unwrap().describe(),
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
        assert!(e("[api]\ntiles_file = ''").contains("api.tiles_file"));
        assert!(e("[api]\ntiles_file = '/nonexistent/basemap.mbtiles'").contains("api.tiles_file"));
        assert!(e("[api]\ntime_zone = 'Beijing'").contains("api.time_zone"));
        assert!(e("[api]\ntime_zone = 'UTC+8'").contains("api.time_zone"));
        assert!(
            e("[watchlist.face_embedder]\nmatch_threshold = 1.5")
                .contains("watchlist.face_embedder.match_threshold")
        );
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
