//! What every Sharp Eyes binary shares, in one place: configuration files (TOML, validated,
//! errors that name the field), logging set-up, shutdown on SIGINT / SIGTERM, and the
//! operations endpoint (`/metrics`, `/health`), TLS for MQTT.

pub use sharpeyes_core::{config, geo};
pub mod ops;
pub mod redact;
pub mod tls;

use tokio_util::sync::CancellationToken;

/// Logs to stderr; `RUST_LOG` overrides `default_filter` (e.g. `info,rumqttd=warn`).
/// Known harmless broker lines are left out whatever the filter ([`QuietRumqttd`]).
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

/// Leaves out the WARN/ERROR lines that a healthy run of the embedded broker (rumqttd 0.20)
/// and its TLS gate print for events that lose nothing, so that a healthy run logs no ERROR
/// or WARN line ([`KNOWN_NOISE`] lists each, with why).
///
/// Each is matched by target, message and (where it tells harm from no harm) the `error`
/// field, so anything else from these crates still shows, and a new version that rewords a
/// line shows it again rather than hiding something new.
pub struct QuietRumqttd;

/// `(target prefix, message prefix, text the `error` field must contain)` of the lines
/// [`QuietRumqttd`] leaves out:
/// - rumqttd's router learns of a disconnection twice when a client sends DISCONNECT and then
///   closes its socket (every orderly MQTT client, and the broker gate, which forwards the
///   DISCONNECT and closes), and may get a client's last packets after removing it; it logs
///   `no-connection id N is already gone` / `Connection is already disconnected` and ignores
///   the event, rightly: the session state was saved at the first disconnection;
/// - the same orderly DISCONNECT makes the router drop the connection's channel, which its
///   network task reports as `router-drop error=Recv(Disconnected)`;
/// - a TCP connection closed before it sent a CONNECT (the aggregator's own readiness probe
///   of the broker at start, any TCP health check): `Error while handling MQTT connect
///   packet` with `ConnectionAborted`;
/// - rustls, at the gate, when a client puts an IP address in the TLS SNI extension (OpenSSL
///   clients such as `mosquitto_sub -h 192.0.2.1` do; RFC 6066 allows only names): rustls
///   ignores it, as it should, and warns.
pub const KNOWN_NOISE: [(&str, &str, &str); 5] = [
    ("rumqttd::", "no-connection id ", ""),
    ("rumqttd::", "Connection is already disconnected", ""),
    ("rumqttd::", "router-drop", "Recv(Disconnected)"),
    (
        "rumqttd::",
        "Error while handling MQTT connect packet",
        "ConnectionAborted",
    ),
    (
        "rustls::",
        "Illegal SNI extension: ignoring IP address presented as hostname",
        "",
    ),
];

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QuietRumqttd {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let m = event.metadata();
        if *m.level() > tracing::Level::WARN {
            return true;
        }
        #[derive(Default)]
        struct Fields {
            message: String,
            error: String,
            log_target: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.record_debug(field, &format_args!("{value}"));
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    // `log` records (rustls) arrive through tracing-log as `message`.
                    "message" => self.message = format!("{value:?}"),
                    "error" => self.error = format!("{value:?}"),
                    // ... with their real target here, the event's own being `log`.
                    "log.target" => self.log_target = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let from = if f.log_target.is_empty() {
            m.target()
        } else {
            &f.log_target
        };
        !KNOWN_NOISE.iter().any(|(target, message, error)| {
            from.starts_with(target) && f.message.starts_with(message) && f.error.contains(error)
        })
    }
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
            tracing::error!(target: "rumqttd::server::broker", error = "Recv(Disconnected)", "router-drop");
            tracing::error!(target: "rumqttd::server::broker", error = "Send(x)", "router-drop");
            tracing::error!(target: "rumqttd::server::broker", error = "Network(Io(Custom { kind: ConnectionAborted }))", "Error while handling MQTT connect packet");
            tracing::error!(target: "rumqttd::server::broker", error = "Network(Io(InvalidData))", "Error while handling MQTT connect packet");
            tracing::warn!(target: "rustls::msgs::handshake", "Illegal SNI extension: ignoring IP address presented as hostname (31)");
            tracing::warn!(target: "rustls::msgs::handshake", "something else");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("no-connection id 1"), "{text}");
        assert!(!text.contains("already disconnected"), "{text}");
        assert!(text.contains("no space for new connection"), "{text}");
        assert!(text.contains("disconnected"), "{text}");
        assert!(
            !text.contains("Disconnecting connection"),
            "below rumqttd=warn: {text}"
        );
        assert!(
            text.contains("no-connection id 2"),
            "another target: {text}"
        );
        // Matched on the error too: only the harmless kind is left out.
        assert_eq!(text.matches("router-drop").count(), 1, "{text}");
        assert!(text.contains("Send(x)"), "{text}");
        assert_eq!(text.matches("connect packet").count(), 1, "{text}");
        assert!(text.contains("InvalidData"), "{text}");
        assert!(!text.contains("Illegal SNI"), "{text}");
        assert!(text.contains("something else"), "{text}");
    }
}
