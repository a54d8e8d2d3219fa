//! What every Sharp Eyes binary shares, in one place: configuration files (TOML, validated,
//! errors that name the field), logging set-up, shutdown on SIGINT / SIGTERM, and the
//! operations endpoint (`/metrics`, `/health`), TLS for MQTT.

pub mod config;
pub mod geo;
pub mod ops;
pub mod tls;

use tokio_util::sync::CancellationToken;

/// Logs to stderr; `RUST_LOG` overrides `default_filter` (e.g. `info,rumqttd=warn`).
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Cancels `token` on Ctrl-C or SIGTERM (call inside a Tokio runtime).
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} },
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        token.cancel();
    });
}
