//! The analyst web page, compiled into the binary.
//!
//! `web/` is an npm project (Leaflet, bundled by esbuild; `npm ci && npm run build`, which
//! `scripts/setup.sh` runs) whose output `web/dist` is embedded at compile time by
//! `aggregator/build.rs`. Nothing is fetched from a CDN: the page talks only to this
//! aggregator's `/api/v1` (and to a tile server when `api.tile_url` names one).
//!
//! [`handler`] serves the files: `/` is `index.html` (`Cache-Control: no-cache` with an ETag),
//! the bundled files carry a content hash in their names and are served
//! `immutable` for a year; each with its content type, `X-Content-Type-Options: nosniff` and a
//! Content-Security-Policy that allows scripts, styles and connections only from this origin.
//! When the aggregator was compiled without `web/dist`, every page path answers 503 with the
//! commands that build it. Paths under `/api/` are not the page's: they answer a
//! `application/problem+json` 404.
//!
//! The API server ([`crate::api`]) serves it at `/` when `api.web` is on: its gate hands
//! every request that matches no API route, outside `/api/`, to [`serve`]:
//!
//! ```ignore
//! // in api::gate, where no route matched:
//! let path = req.uri().path();
//! if matched.is_none() && st.cfg.web && path != "/api" && !path.starts_with("/api/") {
//!     return crate::web::serve(req.method(), path, req.headers());
//! }
//! ```
//!
//! ([`router`] and [`handler`] are the same as an axum router / fallback for other servers.)

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// One embedded file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Path inside `web/dist` (`index.html`, `main-XXXXXXXX.js`).
    pub path: &'static str,
    /// `Content-Type` to send.
    pub content_type: &'static str,
    /// `Cache-Control` to send.
    pub cache_control: &'static str,
    /// Strong ETag (quoted) of the content.
    pub etag: &'static str,
    /// The content.
    pub bytes: &'static [u8],
}

/// Content-Security-Policy of the page: code, styles and requests only from this origin;
/// images also from `blob:` (evidence fetched with the token) and any http(s) origin (the
/// configurable tile server).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' blob: data: http: https:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Whether the page was embedded at compile time (`web/dist` existed).
pub fn built() -> bool {
    !ASSETS.is_empty()
}

/// Every embedded file, by path inside `web/dist`.
pub fn assets() -> impl Iterator<Item = Asset> {
    ASSETS.iter().map(|(p, e, b)| make(p, e, b))
}

/// The embedded file for a request path (`/` and `/index.html` are the page); `None` for
/// anything else, including `..` tricks (only exact embedded names match).
pub fn asset(path: &str) -> Option<Asset> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == rel)
        .map(|(p, e, b)| make(p, e, b))
}

fn make(path: &'static str, etag: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        path,
        content_type: content_type(path),
        cache_control: cache_control(path),
        etag,
        bytes,
    }
}

/// Content type by extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// `index.html` must be revalidated (it names the current bundle); files whose names carry
/// esbuild's content hash (`name-HASH8.ext`) never change.
fn cache_control(path: &str) -> &'static str {
    let stem = path.split('.').next().unwrap_or(path);
    let hashed = stem.rsplit_once('-').is_some_and(|(_, h)| {
        h.len() == 8
            && h.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// A router that serves the page for every path (its fallback is [`handler`]). Mount it
/// where nothing else has a fallback (`api.merge(web::router())`), or use [`handler`] as
/// the fallback of the API router.
pub fn router() -> Router {
    Router::new().fallback(handler)
}

/// Serves the embedded page (see the module docs): GET and HEAD only.
pub async fn handler(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    serve(&method, uri.path(), &headers)
}

/// [`handler`] without the extractors (for other servers and tests).
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if path == "/api" || path.starts_with("/api/") {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no such API route (see /api/v1/openapi.json)",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if !built() {
        return not_built();
    }
    let Some(a) = asset(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found\n",
        )
            .into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    let status = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if fresh || method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(a.bytes)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(a.cache_control),
    );
    h.insert(header::ETAG, HeaderValue::from_static(a.etag));
    if !fresh {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.bytes.len()));
    }
    security_headers(h);
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The page of a binary compiled without `web/dist`.
fn not_built() -> Response {
    const PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
        <title>Sharp Eyes: web page not built</title>\
        <h1>The web page is not built into this aggregator</h1>\
        <p>It was compiled without <code>web/dist</code>. Build the page, then the aggregator:</p>\
        <pre>scripts/setup.sh            # installs Node.js and npm (Debian), runs npm ci + npm run build\n\
# or by hand:\ncd web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ..\ncargo build -p aggregator</pre>\
        <p>The HTTP API under <code>/api/v1</code> works without it.</p></html>\n";
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response();
    security_headers(r.headers_mut());
    r
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_by_name() {
        assert_eq!(cache_control("index.html"), "no-cache");
        assert_eq!(
            cache_control("main-NQFHIXTT.js"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control("main-NQFHIXTT.js.LEGAL.txt"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("site-config.json"), "no-cache");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a/b-X.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("x.png"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn traversal_and_unknown_paths_find_nothing() {
        for p in [
            "/../Cargo.toml",
            "/..%2fCargo.toml",
            "/index.html/..",
            "/nope.js",
        ] {
            assert!(asset(p).is_none(), "{p}");
        }
    }

    #[test]
    fn api_paths_are_problems_and_other_methods_refused() {
        let h = HeaderMap::new();
        let r = serve(&Method::GET, "/api/v1/nope", &h);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let r = serve(&Method::POST, "/", &h);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_page_or_the_build_instructions() {
        let h = HeaderMap::new();
        let r = serve(&Method::GET, "/", &h);
        if built() {
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
            let etag = r.headers()[header::ETAG].clone();
            // Every file index.html names is embedded, with a long cache life.
            let index = std::str::from_utf8(asset("/").unwrap().bytes).unwrap();
            for a in assets().filter(|a| a.path.starts_with("main-") && !a.path.ends_with(".txt")) {
                assert!(
                    index.contains(a.path),
                    "index.html does not name {}",
                    a.path
                );
                assert_eq!(a.cache_control, "public, max-age=31536000, immutable");
            }
            // Revalidation.
            let mut h2 = HeaderMap::new();
            h2.insert(header::IF_NONE_MATCH, etag);
            assert_eq!(
                serve(&Method::GET, "/", &h2).status(),
                StatusCode::NOT_MODIFIED
            );
        } else {
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }
}
