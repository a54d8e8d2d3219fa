//! `[api]` and `[audit]`: the HTTP API and its audit log.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, in_range, invalid};

/// The analysts' HTTP API (`/api/v1`, see `aggregator::api`) and the web page at `/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the API. Default `true`.
    pub enabled: bool,
    /// Address to listen on (a bearer token guards every route but the OpenAPI document, the
    /// web configuration and the basemap tiles; keep it on loopback or behind a TLS proxy).
    /// Default `127.0.0.1:8080`.
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
    /// An MBTiles file (SQLite: `tiles` and `metadata`; metadata `format` png, jpg, jpeg,
    /// webp or pbf) whose tiles the API serves at `/api/v1/tiles/{z}/{x}/{y}` (no token
    /// needed) as the web page's offline basemap; when set it is used instead of `tile_url`.
    /// Opened read-only and checked at start and by `check-config`. Default: none.
    pub tiles_file: Option<PathBuf>,
    /// The site's time zone, an IANA name (`Asia/Shanghai`, `Asia/Urumqi`, `UTC`): the web
    /// page shows times in it and CSV exports add local times with its offset. Resolved from
    /// the system's tz database, else from the copy built into the binary (works without
    /// tzdata). Default `Asia/Shanghai` (Beijing time).
    pub time_zone: String,
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
            tiles_file: None,
            time_zone: crate::sitetime::DEFAULT_ZONE.to_string(),
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
                    sharpeyes_common::redact::uri(&self.tile_url)
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
        if let Some(p) = &self.tiles_file {
            if p.as_os_str().is_empty() {
                return Err(invalid(
                    "api.tiles_file",
                    "must not be empty (leave it out for no offline basemap)",
                ));
            }
            super::tiles::Tiles::open(p).map_err(|e| {
                invalid(
                    "api.tiles_file",
                    format!("{e} (or leave api.tiles_file out)"),
                )
            })?;
        }
        crate::sitetime::SiteZone::resolve(&self.time_zone)
            .map_err(|e| invalid("api.time_zone", e.to_string()))?;
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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
