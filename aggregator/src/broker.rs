//! The embedded MQTT broker (rumqttd), for a district that needs no separate broker.
//!
//! rumqttd's `Broker::start` blocks forever, so it gets its own thread; the broker lives
//! until the process exits (rumqttd has no stop). [`start`] returns once the listener
//! accepts connections.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use thiserror::Error;
use tracing::{error, info};

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
}

fn config(listen: SocketAddr, max_payload: usize) -> Config {
    let server = ServerSettings {
        name: "v4-1".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload,
            max_inflight_count: 500,
            auth: None,
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

/// Starts the embedded broker on `listen`; returns when it accepts connections.
pub fn start(listen: SocketAddr, max_payload: usize) -> Result<(), BrokerError> {
    // rumqttd only logs a failed bind from inside its thread: check the address first.
    drop(
        TcpListener::bind(listen).map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?,
    );
    let mut broker = Broker::new(config(listen, max_payload));
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
            info!(%listen, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::Start(format!(
        "nothing listens on {listen} after 10 s"
    )))
}
