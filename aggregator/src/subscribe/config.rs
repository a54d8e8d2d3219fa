//! `[ingest]`: what the writer accepts and how it waits when the store fails.

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, in_range};

/// What the writer accepts from the agents (checked at decode, before anything is stored or
/// fused: see `sharpeyes_wire::validate`), and how it waits for the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Oldest capture time accepted, days before the aggregator's clock (1..=36500); older
    /// messages are rejected (`invalid_time`). Keep it at least as long as the agents' spools
    /// can hold data through an outage. Default `30`.
    pub max_age_days: u32,
    /// Newest capture time accepted, seconds after the aggregator's clock (0..=86400): the
    /// clock skew allowed between gateways and the aggregator. Default `300`.
    pub max_ahead_s: u32,
    /// MessagePack values one payload may hold (1000..=16777216); a payload with more is
    /// rejected before it is decoded (`too_complex`): a few kB of zstd can hold millions of
    /// tiny values. Default `1048576`.
    pub max_values: usize,
    /// Messages waiting for the writer at most (16..=100000). When the queue is full the
    /// subscriber stops reading from the broker (which then holds the messages) instead of
    /// growing. Default `512`.
    pub queue: usize,
    /// Longest wait between retries while the store as a whole fails (database unreachable,
    /// disk full), ms (1000..=600000); the wait doubles from 1 s up to it. Nothing is
    /// acknowledged meanwhile. Default `30000`.
    pub retry_max_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_age_days: 30,
            max_ahead_s: 300,
            max_values: sharpeyes_wire::DEFAULT_MAX_VALUES,
            queue: 512,
            retry_max_ms: 30_000,
        }
    }
}

impl IngestConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        in_range("ingest.max_age_days", self.max_age_days, 1, 36_500)?;
        in_range("ingest.max_ahead_s", self.max_ahead_s, 0, 86_400)?;
        in_range("ingest.max_values", self.max_values, 1000, 16 << 20)?;
        in_range("ingest.queue", self.queue, 16, 100_000)?;
        in_range("ingest.retry_max_ms", self.retry_max_ms, 1000, 600_000)?;
        Ok(())
    }

    /// The time window around `now_ms`.
    pub fn limits(&self, now_ms: i64) -> sharpeyes_wire::validate::Limits {
        sharpeyes_wire::validate::Limits::around(
            now_ms,
            i64::from(self.max_age_days) * 86_400_000,
            i64::from(self.max_ahead_s) * 1000,
        )
    }
}
