//! The operations endpoint every binary serves: `GET /metrics` (Prometheus text format 0.0.4)
//! and `GET /health` (200 when healthy, 503 otherwise, with a one-line reason). Anything else
//! is 404. It listens on loopback by default; a failure to bind is reported and the binary
//! keeps running without it (the pipeline matters more than its dashboard).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// The operations endpoint's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Serve `/metrics` and `/health`. Default `true`.
    pub enabled: bool,
    /// Address to listen on. Default `127.0.0.1` (`0.0.0.0` lets a scraper on another host in).
    pub host: IpAddr,
    /// Port. Default `0`: the binary's own (edge-agent 9464, aggregator 9465).
    pub port: u16,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
        }
    }
}

impl OpsConfig {
    /// The address to listen on, `default_port` standing in for port 0.
    pub fn addr(&self, default_port: u16) -> SocketAddr {
        let port = if self.port == 0 {
            default_port
        } else {
            self.port
        };
        SocketAddr::new(self.host, port)
    }
}

/// Why the endpoint could not start.
#[derive(Debug, Error)]
pub enum OpsError {
    /// The address is unusable (taken, not local...).
    #[error("ops endpoint: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether the binary is healthy, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// All is well.
    Ok,
    /// Something needs attention (the text says what).
    Unhealthy(String),
}

/// What the endpoint shows: metrics text and health, computed on each request.
pub trait OpsSource: Send + Sync + 'static {
    /// The metrics, in Prometheus text format ([`Exposition`] writes it).
    fn metrics(&self) -> String;
    /// The health.
    fn health(&self) -> Health;
}

/// Binds `listen` and serves until `shutdown`; returns the bound address (port 0 picks one)
/// once listening.
pub async fn serve(
    listen: SocketAddr,
    source: Arc<dyn OpsSource>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, OpsError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| OpsError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| OpsError::Bind {
        addr: listen,
        source,
    })?;
    let (m, h) = (source.clone(), source);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    m.metrics(),
                )
            }),
        )
        .route(
            "/health",
            get(move || async move {
                match h.health() {
                    Health::Ok => (StatusCode::OK, "ok\n".to_string()).into_response(),
                    Health::Unhealthy(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("unhealthy: {why}\n"),
                    )
                        .into_response(),
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "the ops endpoint stopped");
        }
    });
    Ok(addr)
}

/// What a binary does with its `[ops]` section: serves `source` on `cfg.addr(default_port)`
/// when enabled, logging where, or why not (a taken port does not stop the binary). The
/// endpoint stops when the returned guard is dropped.
pub async fn start(
    cfg: &OpsConfig,
    default_port: u16,
    source: Arc<dyn OpsSource>,
) -> tokio_util::sync::DropGuard {
    let stop = CancellationToken::new();
    if cfg.enabled {
        match serve(cfg.addr(default_port), source, stop.clone()).await {
            Ok(a) => tracing::info!(addr = %a, "serving /metrics and /health"),
            Err(e) => tracing::warn!(error = %e, "running without the ops endpoint"),
        }
    }
    stop.drop_guard()
}

/// Writes metrics in the Prometheus text format, one family at a time.
#[derive(Debug, Default)]
pub struct Exposition(String);

/// A metric family's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets at restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// One family: `# HELP`, `# TYPE`, then a sample per `(labels, value)`; labels are
    /// `(name, value)` pairs, values escaped.
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, f64)>,
    ) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = write!(self.0, "{name}");
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(self.0, "{{{}}}", inner.join(","));
            }
            let _ = writeln!(self.0, " {value}");
        }
        self
    }

    /// One family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: f64) -> &mut Self {
        self.family(name, help, kind, [(Vec::new(), value)])
    }

    /// The text.
    pub fn finish(self) -> String {
        self.0
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_loopback_on_the_binary_port() {
        let c = OpsConfig::default();
        assert!(c.enabled && c.addr(9464) == SocketAddr::from(([127, 0, 0, 1], 9464)));
        let c = OpsConfig { port: 8000, ..c };
        assert_eq!(c.addr(9464).port(), 8000);
    }

    #[test]
    fn exposition_is_prometheus_text() {
        let mut e = Exposition::new();
        e.single("x_total", "Things.", Kind::Counter, 3.0).family(
            "y",
            "Per camera.",
            Kind::Gauge,
            [
                (vec![("camera", "a\"b".to_string())], 1.5),
                (vec![("camera", "c".to_string())], 0.0),
            ],
        );
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n\
             # HELP y Per camera.\n# TYPE y gauge\ny{camera=\"a\\\"b\"} 1.5\ny{camera=\"c\"} 0\n"
        );
    }

    struct Fixed(bool);
    impl OpsSource for Fixed {
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
        fn health(&self) -> Health {
            match self.0 {
                true => Health::Ok,
                false => Health::Unhealthy("broker down".into()),
            }
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_health_and_refuses_the_rest() {
        let stop = CancellationToken::new();
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let addr = serve(any, Arc::new(Fixed(true)), stop.clone())
            .await
            .unwrap();
        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200") && m.ends_with("m 1\n"), "{m}");
        assert!(m.contains("text/plain; version=0.0.4"));
        assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(addr, "/../../etc/passwd")
                .await
                .starts_with("HTTP/1.1 404")
        );
        let sick = serve(any, Arc::new(Fixed(false)), stop.clone())
            .await
            .unwrap();
        let h = get(sick, "/health").await;
        assert!(
            h.starts_with("HTTP/1.1 503") && h.contains("broker down"),
            "{h}"
        );
        // A taken address is a clear error, not a crash.
        let err = serve(addr, Arc::new(Fixed(true)), stop.clone())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot listen"), "{err}");
        stop.cancel();
    }
}
