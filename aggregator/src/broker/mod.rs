//! The embedded MQTT broker (rumqttd), for a district that needs no separate broker.
//!
//! rumqttd's `Broker::start` blocks forever, so it gets its own thread; the broker lives
//! until the process exits (rumqttd has no stop). [`start`] returns once the listener
//! accepts connections.
//!
//! Without `tls_cert`, `password_file` and `acl_file`, rumqttd listens on `broker.listen`
//! itself and lets anyone in (keep it on loopback). With any of them, the [`gate`] listens
//! there instead and rumqttd only on an internal loopback port that takes the gate's own
//! random credentials; the aggregator's client connects there too. The gate also binds
//! client ids to users, guards shared-subscription groups and caps connections, CONNECT
//! size and in-flight publishes per client (see [`gate`]).

pub mod config;

pub mod acl;
pub mod gate;
pub mod passwd;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::mqttbytes::v4::Login;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::BrokerConfig;
use crate::metrics::Metrics;

/// Embedded broker failures.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The listen address is taken or not allowed.
    #[error("embedded broker cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The broker thread could not start or did not come up.
    #[error("embedded broker did not start: {0}")]
    Start(String),
    /// The TLS certificate or key cannot be used.
    #[error("embedded broker TLS: {0}")]
    Tls(#[from] sharpeyes_common::tls::TlsError),
    /// The password file cannot be used.
    #[error(transparent)]
    Passwd(#[from] passwd::PasswdError),
    /// The ACL file cannot be used.
    #[error(transparent)]
    Acl(#[from] acl::AclError),
}

/// A running embedded broker: where the aggregator's own client connects.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Host and port for the aggregator's client.
    pub endpoint: (String, u16),
    /// The log-in the aggregator's client uses there, if one is needed.
    pub login: Option<(String, String)>,
}

fn config(listen: SocketAddr, max_payload: usize, auth: Option<HashMap<String, String>>) -> Config {
    let server = ServerSettings {
        name: "v4-1".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload,
            max_inflight_count: 500,
            auth,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    }
}

/// Starts rumqttd on `listen` in its own thread; returns when it accepts connections.
fn start_rumqttd(
    listen: SocketAddr,
    max_payload: usize,
    auth: Option<HashMap<String, String>>,
) -> Result<(), BrokerError> {
    // rumqttd only logs a failed bind from inside its thread: check the address first.
    drop(
        TcpListener::bind(listen).map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?,
    );
    let mut broker = Broker::new(config(listen, max_payload, auth));
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::Start(format!(
        "nothing listens on {listen} after 10 s"
    )))
}

/// Starts the embedded broker as `cfg` says (behind the gate when it has TLS, a password
/// file or an ACL); the gate stops with `shutdown`, rumqttd with the process.
pub async fn start(
    cfg: &BrokerConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<Embedded, BrokerError> {
    let max = cfg.max_payload_bytes;
    if !cfg.gated() {
        let listen = cfg.listen;
        tokio::task::spawn_blocking(move || start_rumqttd(listen, max, None))
            .await
            .map_err(|e| BrokerError::Start(e.to_string()))??;
        if !listen.ip().is_loopback() {
            warn!(%listen, "the embedded broker lets anyone in: set broker.password_file (and tls_cert, acl_file) when it listens beyond loopback");
        }
        info!(%listen, "embedded MQTT broker listening");
        let host = if listen.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            listen.ip().to_string()
        };
        return Ok(Embedded {
            endpoint: (host, listen.port()),
            login: None,
        });
    }
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
            sharpeyes_common::tls::server_config(cert, key)?,
        )),
        _ => None,
    };
    let passwords = cfg
        .password_file
        .as_deref()
        .map(passwd::PasswordFile::load)
        .transpose()?;
    let acl = cfg.acl_file.as_deref().map(acl::Acl::load).transpose()?;
    // The internal listener: a free loopback port, the gate's random credentials.
    let internal = {
        let probe = TcpListener::bind(("127.0.0.1", 0)).map_err(|source| BrokerError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        probe
            .local_addr()
            .map_err(|e| BrokerError::Start(e.to_string()))?
    };
    let login = Login::new("gate", passwd::random_password(32)?);
    let auth = HashMap::from([(login.username.clone(), login.password.clone())]);
    tokio::task::spawn_blocking(move || start_rumqttd(internal, max, Some(auth)))
        .await
        .map_err(|e| BrokerError::Start(e.to_string()))??;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| BrokerError::Bind {
            addr: cfg.listen,
            source,
        })?;
    info!(
        listen = %cfg.listen,
        tls = tls.is_some(),
        users = passwords.as_ref().map_or(0, |p| p.len()),
        acl = acl.is_some(),
        "embedded MQTT broker listening behind the gate"
    );
    let gate = Arc::new(gate::Gate {
        tls,
        passwords,
        acl,
        reserved_ids: vec![cfg.client_id.clone()],
        limits: gate::Limits {
            max_packet: max + 64 * 1024,
            max_connect: cfg.max_connect_bytes,
            max_connections: cfg.max_connections,
            max_inflight_messages: cfg.max_inflight_messages,
            max_inflight_bytes: cfg.max_inflight_bytes,
        },
        upstream: internal,
        upstream_login: login.clone(),
        metrics,
    });
    tokio::spawn(gate::serve(gate, listener, shutdown));
    Ok(Embedded {
        endpoint: (internal.ip().to_string(), internal.port()),
        login: Some((login.username, login.password)),
    })
}
