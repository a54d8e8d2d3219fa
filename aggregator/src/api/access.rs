//! Who may do what: the roles, the one route table (method, path, roles allowed, whether a
//! purpose is required) that the router, the OpenAPI document and the role × endpoint test
//! all read, and the bearer tokens (made here, stored hashed by `store::tokens`).

use serde::Serialize;

use crate::store::tokens::TokenRow;
use crate::store::{Store, StoreError};

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Cameras, alerts (list, stream, evidence), `/me`.
    Viewer,
    /// Viewer + every search, trajectory, link and sighting query, exports, acknowledging.
    Analyst,
    /// Viewer + watchlist reading and enrollment.
    Enroller,
    /// Everything, with the audit log and token administration.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Analyst, Role::Enroller, Role::Admin];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Enroller => "enroller",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

const ANYONE: &[Role] = &[];
const VIEW: &[Role] = &[Role::Viewer, Role::Analyst, Role::Enroller, Role::Admin];
const ANALYST: &[Role] = &[Role::Analyst, Role::Admin];
const ENROLL: &[Role] = &[Role::Enroller, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];

/// One route of `/api/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// Its id: the audit log's `action`, the metrics' `route` label, the OpenAPI
    /// `operationId`.
    pub id: &'static str,
    /// HTTP method (upper case).
    pub method: &'static str,
    /// Path below `/api/v1`, parameters as `{name}` (OpenAPI's form).
    pub path: &'static str,
    /// Roles allowed; empty: no token needed.
    pub roles: &'static [Role],
    /// Whether `X-Purpose` and `X-Case` are required.
    pub purpose: bool,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
}

impl RouteSpec {
    /// Whether `role` may use it.
    pub fn allows(&self, role: Role) -> bool {
        self.roles.is_empty() || self.roles.contains(&role)
    }

    /// Whether it needs a token.
    pub fn public(&self) -> bool {
        self.roles.is_empty()
    }

    /// The full path, `/api/v1…`.
    pub fn full_path(&self) -> String {
        format!("{PREFIX}{}", self.path)
    }
}

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

const fn r(
    id: &'static str,
    method: &'static str,
    path: &'static str,
    roles: &'static [Role],
    purpose: bool,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        id,
        method,
        path,
        roles,
        purpose,
        summary,
    }
}

/// Every route, and who may use it: the permission table.
pub const ROUTES: &[RouteSpec] = &[
    r(
        "openapi",
        "GET",
        "/openapi.json",
        ANYONE,
        false,
        "This OpenAPI 3.1 document",
    ),
    r(
        "web_config",
        "GET",
        "/web-config",
        ANYONE,
        false,
        "Map settings for the web page",
    ),
    r(
        "tiles",
        "GET",
        "/tiles/{z}/{x}/{y}",
        ANYONE,
        false,
        "A basemap tile of api.tiles_file (XYZ; y may end in .png, .jpg, .webp or .pbf)",
    ),
    r(
        "site",
        "GET",
        "/site.geojson",
        VIEW,
        false,
        "The site as GeoJSON (configured file, else cameras and grid outlines)",
    ),
    r(
        "me",
        "GET",
        "/me",
        VIEW,
        false,
        "The caller's token name, role and expiry",
    ),
    r(
        "cameras",
        "GET",
        "/cameras",
        VIEW,
        false,
        "Configured cameras and whether their agent is online",
    ),
    r(
        "vehicles",
        "GET",
        "/vehicles",
        ANALYST,
        true,
        "Vehicles with a plate (exact, read so, or one confusable character off)",
    ),
    r(
        "vehicles.trajectory",
        "GET",
        "/vehicles/trajectory",
        ANALYST,
        true,
        "Sightings of the vehicles with a plate, in time order",
    ),
    r(
        "vehicles.id.trajectory",
        "GET",
        "/vehicles/{id}/trajectory",
        ANALYST,
        true,
        "Sightings of a vehicle by its id, in time order, with its plate and flags",
    ),
    r(
        "persons.trajectory",
        "GET",
        "/persons/{id}/trajectory",
        ANALYST,
        true,
        "Sightings of a person, in time order",
    ),
    r(
        "faces.search",
        "POST",
        "/faces/search",
        ANALYST,
        true,
        "Persons whose faces look like the face in the uploaded photo",
    ),
    r(
        "links",
        "GET",
        "/links",
        ANALYST,
        true,
        "Person–vehicle links of a person or plate",
    ),
    r(
        "sightings",
        "GET",
        "/sightings",
        ANALYST,
        true,
        "Sightings in a grid or box during a time window",
    ),
    r(
        "alerts",
        "GET",
        "/alerts",
        VIEW,
        false,
        "Alerts, newest first",
    ),
    r(
        "alerts.stream",
        "GET",
        "/alerts/stream",
        VIEW,
        false,
        "Live alerts and acknowledgements (Server-Sent Events)",
    ),
    r(
        "alerts.ack",
        "POST",
        "/alerts/{agent}/{alert_id}/ack",
        ANALYST,
        false,
        "Acknowledge an alert",
    ),
    r(
        "alerts.evidence",
        "GET",
        "/alerts/{agent}/{alert_id}/evidence/{role}",
        VIEW,
        false,
        "An alert's evidence image",
    ),
    r(
        "evidence",
        "GET",
        "/evidence/{sha256}",
        ANALYST,
        true,
        "An evidence image by its SHA-256 (a sighting's best shot, an alert's image)",
    ),
    r(
        "watchlist",
        "GET",
        "/watchlist",
        ENROLL,
        false,
        "The watchlist: faces (without embeddings), plates, version",
    ),
    r(
        "watchlist.plates.add",
        "POST",
        "/watchlist/plates",
        ENROLL,
        false,
        "Enroll a wanted plate",
    ),
    r(
        "watchlist.plates.remove",
        "DELETE",
        "/watchlist/plates/{plate}",
        ENROLL,
        false,
        "Remove a wanted plate",
    ),
    r(
        "watchlist.faces.add",
        "POST",
        "/watchlist/faces",
        ENROLL,
        false,
        "Enroll a patient or guardian (multipart, photos)",
    ),
    r(
        "watchlist.faces.remove",
        "DELETE",
        "/watchlist/faces/{id}",
        ENROLL,
        false,
        "Remove an enrolled face",
    ),
    r(
        "audit",
        "GET",
        "/audit",
        ADMIN,
        false,
        "The audit log, newest first",
    ),
    r(
        "tokens",
        "GET",
        "/tokens",
        ADMIN,
        false,
        "API tokens (never their secret)",
    ),
    r(
        "tokens.create",
        "POST",
        "/tokens",
        ADMIN,
        false,
        "Make a token (shown once)",
    ),
    r(
        "tokens.revoke",
        "DELETE",
        "/tokens/{name}",
        ADMIN,
        false,
        "Revoke a token",
    ),
];

/// The route with this id.
pub fn route(id: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.id == id)
}

/// Whether `role` may use the route `id` (unknown routes: no one).
pub fn allowed(role: Role, id: &str) -> bool {
    route(id).is_some_and(|r| r.allows(role))
}

/// Why a token could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A name outside `[A-Za-z0-9._@-]{1,64}`.
    #[error("token name {0:?} must be 1..=64 of A-Z a-z 0-9 . _ @ -")]
    BadName(String),
    /// An unknown role.
    #[error("unknown role {0:?} (viewer, analyst, enroller, admin)")]
    BadRole(String),
    /// An expiry in the past.
    #[error("the expiry must be in the future")]
    Expired,
    /// No random bytes.
    #[error("no randomness available")]
    Random,
    /// The store failed or refused (a name in use).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `s` is a token name.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// The SHA-256 (hex) of a token, as stored.
pub fn hash_token(token: &str) -> String {
    crate::store::evidence::sha256_hex(token.as_bytes())
}

/// Makes and stores a token: 32 random bytes shown as `se_<base64url>`; returns it (the only
/// time it is seen) with its row.
pub fn create_token(
    store: &Store,
    name: &str,
    role: &str,
    expires_ms: Option<i64>,
    now_ms: i64,
) -> Result<(String, TokenRow), TokenError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    if !valid_name(name) {
        return Err(TokenError::BadName(name.to_string()));
    }
    let role = Role::parse(role).ok_or_else(|| TokenError::BadRole(role.to_string()))?;
    if expires_ms.is_some_and(|e| e <= now_ms) {
        return Err(TokenError::Expired);
    }
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| TokenError::Random)?;
    let token = format!(
        "se_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let row = TokenRow {
        name: name.to_string(),
        role: role.as_str().to_string(),
        created_ms: now_ms,
        expires_ms,
        revoked_ms: None,
    };
    store.create_token(&row, &hash_token(&token))?;
    Ok((token, row))
}

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No `Authorization: Bearer` header, or not a token's shape.
    Missing,
    /// No such token.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl Refused {
    /// What the caller is told.
    pub fn detail(self) -> &'static str {
        match self {
            Refused::Missing => "send Authorization: Bearer <token> (aggregator token create)",
            Refused::Unknown => "the token is not known",
            Refused::Revoked => "the token was revoked",
            Refused::Expired => "the token has expired",
        }
    }
}

/// The caller a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Token name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its expiry, UTC ms.
    pub expires_ms: Option<i64>,
}

/// The token of an `Authorization` header value, if it has a token's shape.
pub fn bearer(header: &str) -> Option<&str> {
    let t = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?
        .trim();
    (t.starts_with("se_") && (4..=128).contains(&t.len())).then_some(t)
}

/// Checks a stored token row at `now_ms`.
pub fn check(row: Option<TokenRow>, now_ms: i64) -> Result<Caller, Refused> {
    let row = row.ok_or(Refused::Unknown)?;
    if row.revoked_ms.is_some() {
        return Err(Refused::Revoked);
    }
    if row.expires_ms.is_some_and(|e| e <= now_ms) {
        return Err(Refused::Expired);
    }
    let role = Role::parse(&row.role).ok_or(Refused::Unknown)?;
    Ok(Caller {
        name: row.name,
        role,
        expires_ms: row.expires_ms,
    })
}

/// A token bucket per token: `rate` requests per second on average, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// A limiter.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            buckets: Default::default(),
        }
    }

    /// Takes one request for `who` at `now`: `Ok`, or how many seconds until one is free.
    pub fn take(&self, who: &str, now: std::time::Instant) -> Result<(), u64> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = b.entry(who.to_string()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_ids_and_paths_are_unique() {
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(ids.insert(r.id), "{} twice", r.id);
            assert!(
                keys.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(
                !r.purpose || !r.public(),
                "{}: a purpose needs a caller",
                r.id
            );
        }
    }

    #[test]
    fn roles_as_intended() {
        assert!(allowed(Role::Viewer, "alerts"));
        assert!(!allowed(Role::Viewer, "vehicles.trajectory"));
        assert!(!allowed(Role::Viewer, "alerts.ack"));
        assert!(allowed(Role::Analyst, "alerts.ack"));
        assert!(!allowed(Role::Analyst, "watchlist"));
        assert!(allowed(Role::Enroller, "watchlist.faces.add"));
        assert!(!allowed(Role::Enroller, "sightings"));
        assert!(ROUTES.iter().all(|r| r.allows(Role::Admin)));
        assert!(!allowed(Role::Admin, "nope"));
    }

    #[test]
    fn buckets_refill() {
        let l = RateLimiter::new(2.0, 3);
        let t = std::time::Instant::now();
        for _ in 0..3 {
            assert!(l.take("a", t).is_ok());
        }
        assert_eq!(l.take("a", t), Err(1));
        assert!(l.take("b", t).is_ok(), "per token");
        assert!(
            l.take("a", t + std::time::Duration::from_millis(600))
                .is_ok()
        );
    }

    #[test]
    fn bearer_and_checks() {
        assert_eq!(bearer("Bearer se_abc"), Some("se_abc"));
        assert_eq!(bearer("Basic se_abc"), None);
        assert_eq!(bearer("Bearer xyz"), None);
        let row = TokenRow {
            name: "n".into(),
            role: "analyst".into(),
            created_ms: 0,
            expires_ms: Some(100),
            revoked_ms: None,
        };
        assert_eq!(check(Some(row.clone()), 50).unwrap().role, Role::Analyst);
        assert_eq!(check(Some(row.clone()), 100), Err(Refused::Expired));
        let revoked = TokenRow {
            revoked_ms: Some(1),
            ..row
        };
        assert_eq!(check(Some(revoked), 50), Err(Refused::Revoked));
        assert_eq!(check(None, 50), Err(Refused::Unknown));
        assert!(valid_name("ana.li@x-1") && !valid_name("a b") && !valid_name(""));
        assert_eq!(hash_token("se_x").len(), 64);
    }
}
