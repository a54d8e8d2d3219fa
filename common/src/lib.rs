//! What every Sharp Eyes binary shares, in one place: configuration files (TOML, validated,
//! errors that name the field), logging set-up, shutdown on SIGINT / SIGTERM, and the
//! operations endpoint (`/metrics`, `/health`), TLS for MQTT.

pub mod config;
pub mod geo;
pub mod ops;
pub mod tls;

use tokio_util::sync::CancellationToken;

/// Logs to stderr; `RUST_LOG` overrides `default_filter` (e.g. `info,rumqttd=warn`).
/// rumqttd's known harmless races are left out whatever the filter ([`QuietRumqttd`]).
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = log_subscriber(filter, std::io::stderr).try_init();
}

/// What [`init_logging`] installs, writing to `writer`.
fn log_subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
        .with(QuietRumqttd)
}

/// Leaves out the embedded broker's (rumqttd 0.20) ERROR lines about its own harmless
/// races, so that a healthy run logs no ERROR or WARN line.
///
/// rumqttd's router learns of a disconnection twice when a client sends DISCONNECT and then
/// closes its socket (every orderly MQTT client, and the broker gate, which forwards the
/// DISCONNECT and then closes), and may get a client's last packets after it was removed;
/// each time it logs `no-connection id N is already gone` / `Connection is already
/// disconnected` at ERROR and ignores the event, which is right: the connection is gone,
/// its session state was saved at the first disconnection. Every other rumqttd line passes
/// as the filter says (`rumqttd=warn` by default in the aggregator and the demo). The lines
/// are matched by target and text, so a rumqttd upgrade that rewords them shows them again
/// rather than hiding something new.
pub struct QuietRumqttd;

/// Beginnings of the rumqttd messages [`QuietRumqttd`] leaves out.
const RUMQTTD_BENIGN: [&str; 2] = [
    "no-connection id ",
    "Connection is already disconnected",
];

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QuietRumqttd {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let m = event.metadata();
        if !m.target().starts_with("rumqttd::") || *m.level() > tracing::Level::WARN {
            return true;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0.push_str(value);
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !RUMQTTD_BENIGN.iter().any(|b| message.0.starts_with(b))
    }
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

#[cfg(test)]
mod logging_tests {
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rumqttd_races_are_left_out_and_everything_else_passes() {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = super::log_subscriber(
            tracing_subscriber::EnvFilter::new("info,rumqttd=warn"),
            move || out.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rumqttd::router::routing", "no-connection id {} is already gone", 1);
            tracing::error!(target: "rumqttd::router::routing", "Connection is already disconnected");
            tracing::error!(target: "rumqttd::router::routing", "no space for new connection");
            tracing::warn!(target: "rumqttd::server::broker", error = "x", "disconnected");
            tracing::info!(target: "rumqttd::router::routing", "Disconnecting connection");
            tracing::error!(target: "aggregator", "no-connection id 2 is already gone");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("no-connection id 1"), "{text}");
        assert!(!text.contains("already disconnected"), "{text}");
        assert!(text.contains("no space for new connection"), "{text}");
        assert!(text.contains("disconnected"), "{text}");
        assert!(!text.contains("Disconnecting connection"), "below rumqttd=warn: {text}");
        assert!(text.contains("no-connection id 2"), "another target: {text}");
    }
}
