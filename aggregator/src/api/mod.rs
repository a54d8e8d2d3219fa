//! The analysts' HTTP API: `/api/v1` on `api.listen` (axum), next to the ops endpoint.
//!
//! - **Routes** are listed once, in [`access::ROUTES`] (method, path, roles, purpose): the
//!   router is built from that table, the OpenAPI document ([`openapi`]) describes exactly
//!   those routes, and the role × endpoint test walks it.
//! - **Every request** goes through one gate ([`gate`]): the route is looked up; a token
//!   (`Authorization: Bearer se_…`, stored hashed, see [`access`]) is checked (unknown,
//!   revoked, expired → 401), its rate limit taken (429 with `Retry-After`), its role
//!   checked against the table (403), the purpose headers checked where the table asks
//!   (400 `purpose-required`); then the handler runs and the request — refused or not — is
//!   appended to the hash-chained audit log (`store::audit`) with who (the token's name and
//!   role whenever the token is known, refused or not), purpose, case, parameters, result
//!   count and status **before** the answer leaves (a query that cannot be audited is not
//!   answered). A route that changes something (acknowledging, enrolling, removing, tokens)
//!   appends its entry in the same transaction as the change ([`Store::audited`]): both are
//!   committed or neither. Requests are counted in `/metrics`
//!   (`api_requests{route,status}`, `api_rejected{reason}`).
//! - **Purpose headers** (`X-Purpose`, `X-Case`) are UTF-8, sent raw (`X-Purpose: 盗窃案调查`)
//!   or percent-encoded (decoded when the value holds a `%XX` escape; see
//!   [`params::header_text`]); they are stored decoded. Lengths count characters.
//! - **Live streams** (`/alerts/stream`) check their token every `api.stream_check_ms` and
//!   before each event; a revoked or expired token ends the stream (`event: end`).
//! - **Errors** are `application/problem+json` ([`problem`]); store errors are logged, the
//!   caller gets a generic 500.
//! - **The store** is synchronous: queries run in `spawn_blocking` on a small pool of reader
//!   connections; writes (acknowledgements, enrollment, tokens, audit) on one writer
//!   connection of their own.
//! - **Live alerts**: the subscriber publishes every new alert on a broadcast channel
//!   ([`AlertEvents`]), acknowledgements through the API too; `/alerts/stream` relays them
//!   as Server-Sent Events.

pub mod config;

pub mod access;
mod handlers;
pub mod multipart;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod tiles;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::access::{Caller, RateLimiter, Refused, RouteSpec};
use self::problem::{Problem, Rejected};
use crate::config::{AggregatorConfig, ApiConfig, CameraPlace, WatchlistConfig};
use crate::metrics::{Metrics, inc};
use crate::service::ServiceError;
use crate::store::audit::AuditEntry;
use crate::store::{AlertRow, Location, Store, StoreError};

/// Something the live alert stream relays.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    /// A new alert was stored.
    Alert(Box<AlertRow>),
    /// An alert was acknowledged through the API.
    Ack(AckEvent),
}

/// An acknowledgement, as `/alerts/stream` sends it (`event: ack`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AckEvent {
    /// Agent id.
    pub agent: String,
    /// Alert id.
    pub alert_id: String,
    /// The token name that acknowledged it.
    pub acked_by: String,
    /// When, UTC ms.
    pub acked_ms: i64,
    /// The note.
    pub note: String,
}

/// The channel new alerts and acknowledgements travel on (to every open stream).
pub type AlertEvents = broadcast::Sender<AlertEvent>;

/// A channel for [`AlertEvents`] (a slow stream that falls 1024 events behind skips them
/// and is told so).
pub fn alert_events() -> AlertEvents {
    broadcast::channel(1024).0
}

/// Why the API could not start.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The address is unusable.
    #[error("api: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("api: {0}")]
    Store(#[from] StoreError),
    /// `api.site_geojson` is unreadable or not a FeatureCollection.
    #[error("api.site_geojson {path}: {reason}")]
    SiteGeojson {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `store.postgres_url` cannot be read (its file, variable or credential).
    #[error(transparent)]
    Secret(#[from] sharpeyes_common::secret::SecretError),
    /// `api.tiles_file` cannot be used.
    #[error("api.tiles_file {0}")]
    Tiles(#[from] tiles::TilesError),
    /// `api.time_zone` is not a time zone.
    #[error("api.time_zone: {0}")]
    TimeZone(#[from] crate::sitetime::ZoneError),
}

/// Reader connections, reused (at most `MAX_IDLE` kept idle).
struct Pool {
    at: Location,
    idle: Mutex<Vec<Store>>,
}

const MAX_IDLE: usize = 32;

impl Drop for Pool {
    /// Closes the idle connections on a thread of their own: the PostgreSQL client blocks on
    /// a runtime of its own when it closes, which an async thread (where the server's state
    /// is dropped) may not do.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || drop(idle));
        }
    }
}

impl Pool {
    fn with<T>(&self, f: impl FnOnce(&Store) -> T) -> Result<T, StoreError> {
        let s = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let s = match s {
            Some(s) => s,
            None => Store::open_reader(&self.at)?,
        };
        let out = f(&s);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(s);
        }
        Ok(out)
    }
}

/// What the handlers share.
pub(crate) struct AppState {
    cfg: ApiConfig,
    cameras: Vec<CameraPlace>,
    watchlist: WatchlistConfig,
    model: String,
    readers: Pool,
    writer: Mutex<Store>,
    enroller: Mutex<Option<crate::watchlist::Enroller>>,
    limiter: RateLimiter,
    metrics: Arc<Metrics>,
    events: AlertEvents,
    site: Option<serde_json::Value>,
    /// The offline basemap (`api.tiles_file`).
    tiles: Option<Arc<tiles::Tiles>>,
    /// The site's time zone (`api.time_zone`).
    zone: crate::sitetime::SiteZone,
    /// The face embedder's verification threshold
    /// (`watchlist.face_embedder.match_threshold`).
    face_threshold: f32,
    /// The live face index (`face_search.live_index`); without it each face search reads
    /// the faces from the store.
    faces: Option<crate::facesearch::LiveFaces>,
    shutdown: CancellationToken,
    routes: HashMap<(Method, String), &'static RouteSpec>,
}

impl AppState {
    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        what: &'static str,
        f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Problem::internal(what, &e))?
    }

    /// Runs a query on a reader connection.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Problem> {
        let st = self.clone();
        Self::blocking(what, move || {
            st.readers
                .with(f)
                .and_then(|r| r)
                .map_err(|e| Problem::store(what, &e))
        })
        .await
    }

    /// Runs a query of the service layer on a reader connection; its answer, or the problem
    /// its failure is.
    async fn service<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl FnOnce(&Store) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, Problem> {
        let st = self.clone();
        Self::blocking(what, move || match st.readers.with(f) {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(ServiceError::Search(e))) => Err(Problem::unprocessable(e.to_string())),
            Ok(Err(ServiceError::Unavailable(e))) => Err(Problem::unavailable(e)),
            Ok(Err(ServiceError::Store(e))) | Err(e) => Err(Problem::store(what, &e)),
        })
        .await
    }

    /// Runs `f` on the writer connection.
    async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl FnOnce(&mut Store) -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        let st = self.clone();
        Self::blocking(what, move || {
            let mut w = st.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut w)
        })
        .await
    }
}

/// The axum form of a route path (`{id}` → `:id`).
fn axum_path(path: &str) -> String {
    let p = path.replace('{', ":").replace('}', "");
    format!("{}{p}", access::PREFIX)
}

/// Starts the API on `config.api.listen` over `config.store`; serves until `shutdown`.
/// Returns the bound address. Face searches read the faces from the store for each search
/// ([`serve_with`] gives them the live index).
pub async fn serve(
    config: &AggregatorConfig,
    metrics: Arc<Metrics>,
    events: AlertEvents,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ApiError> {
    serve_with(config, metrics, events, None, shutdown).await
}

/// [`serve`], searching faces in `faces` (the running aggregator's live index).
pub async fn serve_with(
    config: &AggregatorConfig,
    metrics: Arc<Metrics>,
    events: AlertEvents,
    faces: Option<crate::facesearch::LiveFaces>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ApiError> {
    let cfg = config.api.clone();
    let at = config.store.location()?;
    let site = match &cfg.site_geojson {
        Some(p) => Some(load_site(p)?),
        None => None,
    };
    let zone = crate::sitetime::SiteZone::resolve(&cfg.time_zone)?;
    let tiles = match cfg.tiles_file.clone() {
        Some(p) => Some(Arc::new(
            tokio::task::spawn_blocking(move || tiles::Tiles::open(&p))
                .await
                .map_err(|e| StoreError::Internal(e.to_string()))??,
        )),
        None => None,
    };
    let writer = {
        let at = at.clone();
        tokio::task::spawn_blocking(move || Store::open_at(&at))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))??
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let state = Arc::new(AppState {
        limiter: RateLimiter::new(cfg.rate_per_s, cfg.rate_burst),
        cameras: config.cameras.clone(),
        watchlist: config.watchlist.clone(),
        model: config.fusion.persons.embedding_model.clone(),
        readers: Pool {
            at,
            idle: Mutex::new(Vec::new()),
        },
        writer: Mutex::new(writer),
        enroller: Mutex::new(None),
        metrics,
        events,
        site,
        tiles,
        zone,
        face_threshold: config.watchlist.face_embedder.match_threshold,
        faces,
        shutdown: shutdown.clone(),
        routes: access::ROUTES
            .iter()
            .filter_map(|r| Some(((r.method.parse::<Method>().ok()?, axum_path(r.path)), r)))
            .collect(),
        cfg,
    });
    let app = router(state.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "the API stopped");
        }
    });
    Ok(addr)
}

/// What `run` does with `[api]`: serves it when enabled, logging where, or why not (a taken
/// port does not stop the aggregator: storing what the agents send matters more).
pub async fn start(
    config: &AggregatorConfig,
    metrics: Arc<Metrics>,
    events: AlertEvents,
    faces: Option<crate::facesearch::LiveFaces>,
    shutdown: CancellationToken,
) -> Option<SocketAddr> {
    if !config.api.enabled {
        return None;
    }
    match serve_with(config, metrics, events, faces, shutdown).await {
        Ok(a) => {
            info!(addr = %a, "serving the HTTP API at /api/v1");
            Some(a)
        }
        Err(e) => {
            warn!(error = %e, "running without the HTTP API");
            None
        }
    }
}

fn load_site(p: &std::path::Path) -> Result<serde_json::Value, ApiError> {
    let bad = |reason: String| ApiError::SiteGeojson {
        path: p.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(p).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if v.get("type").and_then(|t| t.as_str()) != Some("FeatureCollection")
        || !v.get("features").is_some_and(|f| f.is_array())
    {
        return Err(bad("not a GeoJSON FeatureCollection".into()));
    }
    Ok(v)
}

/// The router: every route of [`access::ROUTES`], behind [`gate`].
fn router(state: Arc<AppState>) -> Router {
    let mut by_path: std::collections::BTreeMap<
        String,
        axum::routing::MethodRouter<Arc<AppState>>,
    > = Default::default();
    for r in access::ROUTES {
        let h = handlers::endpoint(r.id);
        let p = axum_path(r.path);
        let m = match by_path.remove(&p) {
            Some(m) => m.merge(h),
            None => h,
        };
        by_path.insert(p, m);
    }
    let mut app = Router::new();
    for (p, m) in by_path {
        app = app.route(&p, m);
    }
    let limit = state.cfg.max_body_bytes;
    let app = app.fallback(|| async { Problem::not_found("no such route").into_response() });
    app.layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// How many results a response carried (a response extension the gate audits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultCount(pub u64);

/// The audit entry of an admitted request as the gate made it (who, role, action, purpose,
/// case, parameters): a request extension for the write routes, which complete it and
/// append it in the transaction of their change ([`Store::audited`]).
#[derive(Debug, Clone)]
pub(crate) struct AuditDraft(pub AuditEntry);

/// A response extension: the handler appended the request's audit entry already (with its
/// change); the gate does not append another.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Audited;

/// The request's parameters as the audit log records them: path parameters and the query
/// string's pairs (an undecodable query string is kept as text, cut at 512 bytes).
fn audit_params(path: Option<&RawPathParams>, query: Option<&str>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(p) = path {
        for (k, v) in p.iter() {
            m.insert(k.to_string(), v.into());
        }
    }
    if let Some(q) = query {
        match serde_urlencoded::from_str::<Vec<(String, String)>>(q) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    m.entry(k).or_insert(v.into());
                }
            }
            Err(_) => {
                let cut: String = q.chars().take(512).collect();
                m.insert("_query".into(), cut.into());
            }
        }
    }
    serde_json::Value::Object(m)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The gate every request passes (see the module docs).
async fn gate(
    State(st): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    path_params: Option<RawPathParams>,
    mut req: Request,
    next: Next,
) -> Response {
    let spec = match &matched {
        Some(m) => st
            .routes
            .get(&(req.method().clone(), m.as_str().to_string()))
            .copied(),
        None => None,
    };
    let Some(spec) = spec else {
        // Not an API route: the web page's files (`aggregator::web`), unless `api.web = false`.
        let path = req.uri().path();
        if matched.is_none() && st.cfg.web && path != "/api" && !path.starts_with("/api/") {
            return crate::web::serve(req.method(), path, req.headers());
        }
        let p = if matched.is_some() {
            Problem::method_not_allowed(format!("{} is not allowed here", req.method()))
        } else {
            Problem::not_found("no such route")
        };
        return finish(&st, "unmatched", p.into_response());
    };
    if spec.public() {
        let resp = next.run(req).await;
        return finish(&st, spec.id, resp);
    }
    let now = sharpeyes_wire::now_ms();
    let mut entry = AuditEntry {
        ts_ms: now,
        who: "-".into(),
        role: "-".into(),
        action: spec.id.into(),
        purpose: None,
        case_ref: None,
        params: audit_params(path_params.as_ref(), req.uri().query()),
        result_count: None,
        status: 0,
    };
    let token: Option<String> = header(req.headers(), header::AUTHORIZATION.as_str())
        .and_then(access::bearer)
        .map(str::to_string);
    // What was sent, decoded (raw or percent-encoded UTF-8), recorded even where refused or
    // not required (cut to the lengths the purpose check allows).
    let (purpose, case) = {
        let h = req.headers();
        let text = |name: &str| h.get(name).map(|v| params::header_text(v.as_bytes()));
        (text("x-purpose"), text("x-case"))
    };
    let sent = |v: &Option<Result<String, String>>, max: usize| match v {
        Some(Ok(t)) => Some(
            t.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(max)
                .collect(),
        ),
        Some(Err(_)) => Some("(not UTF-8)".to_string()),
        None => None,
    };
    entry.purpose = sent(&purpose, 200);
    entry.case_ref = sent(&case, 64);
    let checked: Result<Caller, Problem> = async {
        let row = match token {
            None => None,
            Some(t) => {
                let h = access::hash_token(&t);
                let row = st
                    .read("token lookup", move |s| s.token_by_hash(&h))
                    .await?;
                Some(row)
            }
        };
        // A known token is recorded even when refused (revoked, expired, rate-limited,
        // the wrong role, no purpose).
        if let Some(Some(r)) = &row {
            entry.who = r.name.clone();
            entry.role = r.role.clone();
        }
        let caller = match row {
            None => Err(Refused::Missing),
            Some(row) => access::check(row, now),
        }
        .map_err(|r| Problem::unauthorized(r.detail()))?;
        st.limiter
            .take(&caller.name, std::time::Instant::now())
            .map_err(Problem::rate_limited)?;
        if !spec.allows(caller.role) {
            return Err(Problem::forbidden(format!(
                "the role {} may not use {} {}",
                caller.role.as_str(),
                spec.method,
                spec.full_path()
            )));
        }
        Ok(caller)
    }
    .await;
    let resp = match checked {
        Err(p) => p.into_response(),
        Ok(caller) => {
            let decoded = |v: Option<Result<String, String>>| v.and_then(Result::ok);
            match params::purpose(decoded(purpose).as_deref(), decoded(case).as_deref()) {
                Err(e) if spec.purpose => Problem::purpose_required(e).into_response(),
                _ => {
                    req.extensions_mut().insert(caller);
                    // Write routes append it themselves, in the transaction of their change.
                    req.extensions_mut().insert(AuditDraft(entry.clone()));
                    next.run(req).await
                }
            }
        }
    };
    if resp.extensions().get::<Audited>().is_some() {
        inc(&st.metrics.audit_entries);
        return finish(&st, spec.id, resp);
    }
    entry.status = resp.status().as_u16();
    entry.result_count = resp.extensions().get::<ResultCount>().map(|c| c.0);
    let audited = st
        .write("audit", move |w| {
            w.audit_append(&entry)
                .map_err(|e| Problem::internal("audit", &e))
        })
        .await;
    let resp = match audited {
        Ok(_) => {
            inc(&st.metrics.audit_entries);
            resp
        }
        // Not audited, not answered.
        Err(p) => p.into_response(),
    };
    finish(&st, spec.id, resp)
}

/// Counts the answer; a client error that axum itself produced (a path it could not
/// decode, a method not allowed) becomes a problem too.
fn finish(st: &AppState, route: &'static str, resp: Response) -> Response {
    let problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    let resp = if resp.status().is_client_error() && !problem {
        let s = resp.status();
        let p = match s.as_u16() {
            404 => Problem::not_found("no such route"),
            405 => Problem::method_not_allowed("method not allowed here"),
            413 => Problem::too_large(st.cfg.max_body_bytes),
            _ => Problem::bad_request(format!("the request is malformed ({})", s.as_u16())),
        };
        p.into_response()
    } else {
        resp
    };
    st.metrics.api_requests.inc(route, resp.status().as_u16());
    if let Some(Rejected(reason)) = resp.extensions().get::<Rejected>() {
        st.metrics.api_rejected.inc(reason);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_geojson_is_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("site.geojson");
        std::fs::write(
            &p,
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":null,"properties":{}}]}"#,
        )
        .unwrap();
        assert_eq!(
            load_site(&p).unwrap()["features"].as_array().unwrap().len(),
            1
        );
        std::fs::write(&p, r#"{"type":"Feature"}"#).unwrap();
        assert!(
            load_site(&p)
                .unwrap_err()
                .to_string()
                .contains("FeatureCollection")
        );
        std::fs::write(&p, "{").unwrap();
        assert!(
            load_site(&p)
                .unwrap_err()
                .to_string()
                .contains("api.site_geojson")
        );
        assert!(load_site(&dir.path().join("none")).is_err());
    }

    #[test]
    fn axum_paths_of_the_table() {
        assert_eq!(
            axum_path("/alerts/{agent}/{alert_id}/ack"),
            "/api/v1/alerts/:agent/:alert_id/ack"
        );
        for r in access::ROUTES {
            assert!(!axum_path(r.path).contains(['{', '}']));
        }
    }
}
