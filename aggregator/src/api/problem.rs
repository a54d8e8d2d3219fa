//! Errors as `application/problem+json` (RFC 9457): `{type, title, status, detail}`. The
//! detail says what was wrong with the request, never the store's or the server's internals
//! (those go to the log).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// The problem's slug (its `type` is `urn:sharpeyes:problem:{kind}`).
    pub kind: &'static str,
    /// Human-readable explanation, about this request.
    pub detail: String,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

/// The `api_rejected` reason a response was counted under (a response extension).
#[derive(Debug, Clone, Copy)]
pub struct Rejected(pub &'static str);

impl Problem {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400: a parameter or body is wrong.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 400: `X-Purpose` / `X-Case` missing or malformed.
    pub fn purpose_required(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "purpose-required", detail)
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 405.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail)
    }

    /// 409: the state does not allow it (an alert acknowledged already).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the body exceeds {limit} bytes (api.max_body_bytes)"),
        )
    }

    /// 415.
    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            detail,
        )
    }

    /// 422: well-formed but unusable (a photo without a face).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", detail)
    }

    /// 429.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many requests for this token; retry in {retry_after} s"),
            )
        }
    }

    /// 500: logged with the real error; the caller learns nothing more.
    pub fn internal(what: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "api: {what} failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} failed; the aggregator's log says why"),
        )
    }

    /// The answer to a store failure, by its [`ErrorKind`](crate::store::ErrorKind): 409 for
    /// a conflict, 400 for an invalid request (with the store's words), 503 when the database
    /// cannot be used now, 500 (logged) otherwise.
    pub fn store(what: &str, e: &crate::store::StoreError) -> Self {
        use crate::store::ErrorKind;
        match e.kind() {
            ErrorKind::Conflict => Self::conflict(e.to_string()),
            ErrorKind::Validation => Self::bad_request(e.to_string()),
            ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "api: {what}: the database is unavailable");
                Self::unavailable(format!(
                    "{what}: the database is unavailable now; retry later"
                ))
            }
            ErrorKind::Internal => Self::internal(what, e),
        }
    }

    /// 503.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// The `api_rejected` reason (none for server-side failures).
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self.kind {
            "purpose-required" => "purpose_required",
            "unauthorized" => "unauthorized",
            "forbidden" => "forbidden",
            "not-found" => "not_found",
            "too-large" => "too_large",
            "rate-limited" => "rate_limited",
            "internal" | "unavailable" => return None,
            _ => "bad_request",
        })
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": format!("urn:sharpeyes:problem:{}", self.kind),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(reason) = self.reason() {
            r.extensions_mut().insert(Rejected(reason));
        }
        r
    }
}
