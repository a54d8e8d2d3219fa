//! Aggregator configuration (TOML). Every field has a doc comment and a default; the
//! commented example printed by `aggregator print-default-config` is
//! `configs/aggregator.toml`, and a test checks it equals [`AggregatorConfig::default`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::invalid;
pub use sharpeyes_common::config::{ConfigError, ConfigFile};
pub use sharpeyes_common::ops::OpsConfig;

/// The commented default configuration.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../configs/aggregator.toml");

/// The whole aggregator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatorConfig {
    /// MQTT broker (embedded or external) and subscription.
    pub broker: BrokerConfig,
    /// The store.
    pub store: StoreConfig,
    /// The operations endpoint: `/metrics` (Prometheus) and `/health`; port 0 means 9465.
    pub ops: OpsConfig,
}

/// The aggregator's default ops port.
pub const OPS_PORT: u16 = 9465;

/// MQTT broker and subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// External broker as `mqtt://host:port`; empty runs the embedded broker. Default: empty.
    pub url: String,
    /// Listen address of the embedded broker. Default `127.0.0.1:1883`.
    pub listen: SocketAddr,
    /// Largest payload the embedded broker accepts, bytes. Default `16777216` (16 MiB).
    pub max_payload_bytes: usize,
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
    /// Password, if the broker requires one. Default: none.
    pub password: Option<String>,
    /// MQTT keep-alive, seconds (5..=600). Default `30`.
    pub keep_alive_s: u64,
    /// Longest reconnect delay after losing the broker, ms (back-off starts at 200 ms). Default `5000`.
    pub reconnect_max_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_payload_bytes: 16 << 20,
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
        let rest = self
            .url
            .strip_prefix("mqtt://")
            .or_else(|| self.url.strip_prefix("tcp://"))
            .ok_or_else(|| {
                invalid(
                    "broker.url",
                    format!("{:?} must look like mqtt://host:port", self.url),
                )
            })?;
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
        let port: u16 = port
            .trim_end_matches('/')
            .parse()
            .map_err(|_| invalid("broker.url", format!("bad port in {:?}", self.url)))?;
        if host.is_empty() || port == 0 {
            return Err(invalid(
                "broker.url",
                format!("{:?} must look like mqtt://host:port", self.url),
            ));
        }
        Ok((
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        ))
    }

    /// Whether the embedded broker runs.
    pub fn embedded(&self) -> bool {
        self.url.is_empty()
    }
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file (created if missing; WAL mode). Default `sharpeyes.db`.
    pub path: PathBuf,
    /// Messages committed per transaction at most (1..=10000). Default `256`.
    pub max_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "sharpeyes.db".into(),
            max_batch: 256,
        }
    }
}

impl ConfigFile for AggregatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.broker;
        b.endpoint()?;
        if b.topic_prefix.is_empty() || b.topic_prefix.contains(['+', '#']) {
            return Err(invalid(
                "broker.topic_prefix",
                "must be non-empty and free of '+' and '#'",
            ));
        }
        if b.client_id.is_empty() {
            return Err(invalid("broker.client_id", "must not be empty"));
        }
        if b.shared_group.contains(['/', '+', '#']) {
            return Err(invalid(
                "broker.shared_group",
                "must be free of '/', '+' and '#'",
            ));
        }
        if !(1024..=256 << 20).contains(&b.max_payload_bytes) {
            return Err(invalid(
                "broker.max_payload_bytes",
                "must be within 1024..=268435456",
            ));
        }
        if !(5..=600).contains(&b.keep_alive_s) {
            return Err(invalid("broker.keep_alive_s", "must be within 5..=600"));
        }
        if !(200..=600_000).contains(&b.reconnect_max_ms) {
            return Err(invalid(
                "broker.reconnect_max_ms",
                "must be within 200..=600000",
            ));
        }
        if self.store.path.as_os_str().is_empty() {
            return Err(invalid("store.path", "must not be empty"));
        }
        if !(1..=10_000).contains(&self.store.max_batch) {
            return Err(invalid("store.max_batch", "must be within 1..=10000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_config_is_the_default() {
        assert_eq!(
            AggregatorConfig::from_toml(DEFAULT_CONFIG_TOML).unwrap(),
            AggregatorConfig::default()
        );
        assert_eq!(
            AggregatorConfig::from_toml("").unwrap(),
            AggregatorConfig::default()
        );
    }

    #[test]
    fn broker_endpoints() {
        let mut b = BrokerConfig::default();
        assert_eq!(b.endpoint().unwrap(), ("127.0.0.1".into(), 1883));
        b.url = "mqtt://broker.local:1884".into();
        assert_eq!(b.endpoint().unwrap(), ("broker.local".into(), 1884));
        b.url = "mqtt://broker.local".into();
        assert_eq!(b.endpoint().unwrap(), ("broker.local".into(), 1883));
        b.url = "http://x:1".into();
        assert!(b.endpoint().is_err());
        b.url = "mqtt://x:99999".into();
        assert!(b.endpoint().is_err());
    }

    #[test]
    fn mistakes_name_the_field() {
        let e = |t: &str| AggregatorConfig::from_toml(t).unwrap_err().to_string();
        assert!(e("[broker]\nurl = 'ftp://x'").contains("broker.url"));
        assert!(e("[broker]\nshared_group = 'a/b'").contains("broker.shared_group"));
        assert!(e("[store]\nmax_batch = 0").contains("store.max_batch"));
        assert!(e("[store]\npth = 'x'").contains("unknown field"));
        assert!(e("[broker]\nlisten = 'nowhere'").contains("listen"));
    }
}
