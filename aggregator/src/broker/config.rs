//! `[broker]`: the embedded MQTT broker (or the external one the aggregator subscribes to).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, invalid};
use sharpeyes_common::redact;
use sharpeyes_common::secret::Secret;

/// The aggregator's default ops port.
pub const OPS_PORT: u16 = 9465;

/// MQTT broker and subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// External broker as `mqtt://host:port`, or `mqtts://host:port` for MQTT over TLS
    /// (port 8883 when left out; needs `ca_file`); empty runs the embedded broker.
    /// Default: empty.
    pub url: String,
    /// CA certificate (PEM) trusted when connecting to an external broker over TLS.
    /// Default: none.
    pub ca_file: Option<PathBuf>,
    /// Listen address of the embedded broker. Default `127.0.0.1:1883`.
    pub listen: SocketAddr,
    /// Largest payload the embedded broker accepts, bytes. Default `16777216` (16 MiB).
    pub max_payload_bytes: usize,
    /// Certificate chain (PEM, server first) of the embedded broker: with `tls_key`, `listen`
    /// speaks MQTT over TLS only (`aggregator gen-certs` makes a CA and one for a demo).
    /// Default: none (plain TCP).
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`. Default: none.
    pub tls_key: Option<PathBuf>,
    /// Password file of the embedded broker, Mosquitto format (`mosquitto_passwd` or
    /// `aggregator passwd` write it): clients must log in with a user in it. Default: none
    /// (anyone may connect: keep `listen` on loopback).
    pub password_file: Option<PathBuf>,
    /// ACL file of the embedded broker, Mosquitto format: what each user may publish and
    /// read (`configs/mosquitto/acl` confines each agent to its own topics). Needs
    /// `password_file`. Default: none (every client may use every topic).
    pub acl_file: Option<PathBuf>,
    /// Most client connections the embedded broker's gate (`tls_cert`, `password_file` or
    /// `acl_file` set) holds at once, counted from the TCP accept, before TLS and log-in;
    /// one more is closed at once (`broker_refused_total{reason="connections"}`).
    /// 1..=10000. Default `1024`.
    pub max_connections: usize,
    /// Largest CONNECT packet the gate reads before the log-in is checked, bytes (the
    /// CONNECT carries the client id, the log-in and the last will); a larger one is
    /// refused unread (`reason="connect_size"`). 1024..=16777216. Default `65536`.
    pub max_connect_bytes: usize,
    /// Most QoS 1/2 publishes one client may have sent through the gate and not yet had
    /// acknowledged by the broker; at the cap the gate stops reading that client until
    /// acknowledgements come back (back-pressure, counted in
    /// `broker_inflight_waits_total`). 1..=65535. Default `256` (rumqttc clients, the edge
    /// agent among them, keep at most 100).
    pub max_inflight_messages: usize,
    /// Most bytes of such publishes per client (a single larger publish still passes, alone).
    /// 65536..=1073741824. Default `16777216` (16 MiB).
    pub max_inflight_bytes: usize,
    /// Topic prefix. Default `sharpeyes/v1`.
    pub topic_prefix: String,
    /// MQTT client id of this aggregator (unique per aggregator). Default `aggregator-1`.
    pub client_id: String,
    /// Shared-subscription group: aggregators in one group split the track and alert load
    /// (`$share/{group}/...`). Empty subscribes plainly. Default `aggregators`.
    ///
    /// A single aggregator behind an external Mosquitto should subscribe plainly: Mosquitto
    /// (2.0.11 tested) does not restore shared subscriptions from its persistence file, so
    /// what agents publish after a broker restart and before the aggregator reconnects would
    /// have no subscriber. Plain subscriptions of a persistent session are restored.
    pub shared_group: String,
    /// User name, if the broker requires one. Default: none.
    pub username: Option<String>,
    /// Password at the external broker, if it requires one: a string, or where to read it at
    /// start-up (`{ file = "/etc/sharpeyes/broker-password" }`, `{ env = "NAME" }`, or
    /// `{ credential = "broker-password" }` for systemd's `LoadCredential=`; see
    /// [`sharpeyes_common::secret`]). Validation reads it, so a missing file or variable is a
    /// configuration error. (Not `password_file`, the embedded broker's user database.)
    /// Default: none.
    pub password: Option<Secret>,
    /// MQTT keep-alive, seconds (5..=600). Default `30`.
    pub keep_alive_s: u64,
    /// Longest reconnect delay after losing the broker, ms (back-off starts at 200 ms). Default `5000`.
    pub reconnect_max_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            ca_file: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_payload_bytes: 16 << 20,
            tls_cert: None,
            tls_key: None,
            password_file: None,
            acl_file: None,
            max_connections: 1024,
            max_connect_bytes: 64 << 10,
            max_inflight_messages: 256,
            max_inflight_bytes: 16 << 20,
            topic_prefix: sharpeyes_wire::DEFAULT_PREFIX.into(),
            client_id: "aggregator-1".into(),
            shared_group: "aggregators".into(),
            username: None,
            password: None,
            keep_alive_s: 30,
            reconnect_max_ms: 5000,
        }
    }
}

impl BrokerConfig {
    /// Host and port to connect to: the external broker's, or the embedded one's.
    pub fn endpoint(&self) -> Result<(String, u16), ConfigError> {
        if self.url.is_empty() {
            let host = if self.listen.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                self.listen.ip().to_string()
            };
            return Ok((host, self.listen.port()));
        }
        let (rest, default_port) = if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (rest, "8883")
        } else {
            let rest = self
                .url
                .strip_prefix("mqtt://")
                .or_else(|| self.url.strip_prefix("tcp://"))
                .ok_or_else(|| {
                    invalid(
                        "broker.url",
                        format!(
                            "{:?} must look like mqtt://host:port",
                            redact::uri(&self.url)
                        ),
                    )
                })?;
            (rest, "1883")
        };
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default_port));
        let port: u16 = port.trim_end_matches('/').parse().map_err(|_| {
            invalid(
                "broker.url",
                format!("bad port in {:?}", redact::uri(&self.url)),
            )
        })?;
        // `[::1]` is an IPv6 host; brackets alone (`tcp://[:4`, found by fuzzing) name none.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(invalid(
                "broker.url",
                format!(
                    "{:?} must look like mqtt://host:port",
                    redact::uri(&self.url)
                ),
            ));
        }
        Ok((host.to_string(), port))
    }

    /// Whether the embedded broker runs.
    pub fn embedded(&self) -> bool {
        self.url.is_empty()
    }

    /// Whether the external broker is reached over TLS (`mqtts://`).
    pub fn external_tls(&self) -> bool {
        self.url.starts_with("mqtts://")
    }

    /// Whether the embedded broker runs behind the gate (TLS, log-in or ACL).
    pub fn gated(&self) -> bool {
        self.tls_cert.is_some() || self.password_file.is_some() || self.acl_file.is_some()
    }
}
