//! The aggregator's counters, in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the subscribe → store path.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Publishes received from the broker.
    pub received: AtomicU64,
    /// Messages stored (first time seen).
    pub stored: AtomicU64,
    /// Messages whose `(agent, seq)` was already stored.
    pub duplicates: AtomicU64,
    /// Messages acknowledged to the broker.
    pub acked: AtomicU64,
    /// Store transactions that failed (their messages are not acknowledged).
    pub store_errors: AtomicU64,
    /// Broker connection errors.
    pub broker_errors: AtomicU64,
    /// Subscriptions the broker confirmed (SUBACKs; three per connection).
    pub subscribed: AtomicU64,
    /// Rejected payloads by reason (`bad_magic`, `corrupt`, `agent_mismatch`, `topic`...).
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts one rejected payload.
    pub fn reject(&self, reason: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Rejections by reason.
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected().values().sum()
    }
}

/// Adds one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
