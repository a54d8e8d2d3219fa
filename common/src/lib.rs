//! What every Sharp Eyes binary shares, in one place: configuration files (TOML, validated,
//! errors that name the field), logging set-up, shutdown on SIGINT / SIGTERM, systemd
//! readiness and watchdog ([`notify`]), the operations endpoint (`/metrics`, `/health`), TLS
//! for MQTT.

pub use sharpeyes_core::{config, geo};
pub mod notify;
pub mod ops;
pub mod redact;
pub mod secret;
pub mod tls;

use std::ffi::OsStr;

use tokio_util::sync::CancellationToken;

/// How log lines are written (`--log-format`, `SHARPEYES_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event; coloured only on a terminal (see [`use_colour`]).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level (for journald / Loki / Elasticsearch pipelines).
    Json,
}

/// The environment variable that chooses the log format when `--log-format` is not given.
pub const LOG_FORMAT_ENV: &str = "SHARPEYES_LOG_FORMAT";

/// A log format that is neither `text` nor `json`.
#[derive(Debug, thiserror::Error)]
pub enum LogFormatError {
    /// On the command line.
    #[error("unknown log format {0:?}: use text or json")]
    Unknown(String),
    /// In `SHARPEYES_LOG_FORMAT`.
    #[error("{LOG_FORMAT_ENV}={0:?} is not a log format: set it to text or json, or unset it")]
    Env(String),
}

impl std::str::FromStr for LogFormat {
    type Err = LogFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(LogFormatError::Unknown(s.to_string())),
        }
    }
}

/// The log format: `flag` (`--log-format`) when given, else `env` (the value of
/// `SHARPEYES_LOG_FORMAT`) when set and non-empty, else text.
pub fn choose_log_format(
    flag: Option<LogFormat>,
    env: Option<&OsStr>,
) -> Result<LogFormat, LogFormatError> {
    if let Some(f) = flag {
        return Ok(f);
    }
    match env {
        None => Ok(LogFormat::Text),
        Some(v) if v.is_empty() => Ok(LogFormat::Text),
        Some(v) => v
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| LogFormatError::Env(v.to_string_lossy().into_owned())),
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Whether text logs get ANSI colours: only on a terminal, and not when `NO_COLOR` is set to
/// anything non-empty (<https://no-color.org>) or `TERM` is `dumb`.
pub fn use_colour(is_terminal: bool, no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    is_terminal
        && no_color.is_none_or(|v| v.is_empty())
        && term.is_none_or(|t| t != OsStr::new("dumb"))
}

/// Logs text to stderr; `RUST_LOG` overrides `default_filter` (e.g. `info,rumqttd=warn`).
/// Known harmless broker lines are left out whatever the filter ([`QuietRumqttd`]).
pub fn init_logging(default_filter: &str) {
    init_logging_as(default_filter, LogFormat::Text);
}

/// Logs to stderr in `format`; `RUST_LOG` overrides `default_filter`. Text is coloured only
/// when stderr is a terminal and neither `NO_COLOR` nor `TERM=dumb` says otherwise.
pub fn init_logging_as(default_filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    );
    let _ = log_subscriber(filter, std::io::stderr, format, colour).try_init();
}

/// What [`init_logging_as`] installs, writing to `writer`.
fn log_subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    format: LogFormat,
    colour: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(colour).finish().with(QuietRumqttd)),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .flatten_event(true)
                .finish()
                .with(QuietRumqttd),
        ),
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
            super::LogFormat::Text,
            false,
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

    fn capture(format: super::LogFormat, colour: bool, log: impl FnOnce()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = super::log_subscriber(
            tracing_subscriber::EnvFilter::new("info"),
            move || out.clone(),
            format,
            colour,
        );
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_dumb_term() {
        use super::use_colour;
        use std::ffi::OsStr;
        let s = |v: &'static str| Some(OsStr::new(v));
        assert!(use_colour(true, None, s("xterm-256color")));
        assert!(use_colour(true, None, None));
        assert!(
            !use_colour(false, None, s("xterm-256color")),
            "a file or journald"
        );
        assert!(!use_colour(true, s("1"), s("xterm")));
        assert!(
            !use_colour(true, s("false"), s("xterm")),
            "any non-empty value"
        );
        assert!(
            use_colour(true, s(""), s("xterm")),
            "empty NO_COLOR is unset"
        );
        assert!(!use_colour(true, None, s("dumb")));
    }

    #[test]
    fn log_formats_parse_and_bad_ones_say_what_to_use() {
        use super::LogFormat;
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let e = "xml".parse::<LogFormat>().unwrap_err().to_string();
        assert_eq!(e, "unknown log format \"xml\": use text or json");
        // The flag wins over the environment, which wins over the default.
        use super::choose_log_format as choose;
        let json = Some(std::ffi::OsStr::new("json"));
        let bad = Some(std::ffi::OsStr::new("xml"));
        assert_eq!(choose(None, None).unwrap(), LogFormat::Text);
        assert_eq!(choose(None, Some("".as_ref())).unwrap(), LogFormat::Text);
        assert_eq!(choose(None, json).unwrap(), LogFormat::Json);
        assert_eq!(
            choose(Some(LogFormat::Text), json).unwrap(),
            LogFormat::Text
        );
        assert_eq!(choose(Some(LogFormat::Json), bad).unwrap(), LogFormat::Json);
        let e = choose(None, bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "SHARPEYES_LOG_FORMAT=\"xml\" is not a log format: set it to text or json, or unset it"
        );
    }

    #[test]
    fn text_without_a_terminal_has_no_escape_codes() {
        let log = || tracing::warn!(camera = "东门", n = 3, "stream stalled");
        let plain = capture(super::LogFormat::Text, false, log);
        assert!(
            plain.contains("WARN") && plain.contains("stream stalled"),
            "{plain}"
        );
        assert!(
            plain.contains("camera=\"东门\"") || plain.contains("camera=东门"),
            "{plain}"
        );
        assert!(!plain.contains("\x1b["), "{plain:?}");
        // The same with colour does have them (so the check above can fail).
        let coloured = capture(super::LogFormat::Text, true, log);
        assert!(coloured.contains("\x1b["), "{coloured:?}");
    }

    #[test]
    fn json_lines_parse_with_the_message_and_fields() {
        let text = capture(super::LogFormat::Json, true, || {
            tracing::info!(camera = "东门", n = 3, "stream started");
            tracing::warn!(target: "rumqttd::router::routing", "no-connection id 1 is already gone");
            tracing::error!(error = "boom", "broker lost");
        });
        assert!(!text.contains("\x1b["), "{text:?}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "the broker race is left out: {text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "stream started");
        assert_eq!(lines[0]["camera"], "东门");
        assert_eq!(lines[0]["n"], 3);
        assert!(lines[0]["timestamp"].is_string() && lines[0]["target"].is_string());
        assert_eq!(
            (&lines[1]["level"], &lines[1]["error"]),
            (&serde_json::json!("ERROR"), &serde_json::json!("boom"))
        );
    }
}
