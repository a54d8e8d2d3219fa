//! The aggregator's counters, in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the subscribe → store path.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Turns of the store writer's loop (a batch, or a tick without messages): systemd's
    /// watchdog is pinged only while it advances (`sharpeyes_common::notify`).
    pub heartbeat: sharpeyes_common::notify::Heartbeat,
    /// Publishes received from the broker.
    pub received: AtomicU64,
    /// Messages stored (first time seen).
    pub stored: AtomicU64,
    /// New alerts stored (updates of an open alert not counted).
    pub alerts: AtomicU64,
    /// Alert hook runs.
    pub hook_runs: AtomicU64,
    /// Alert hook runs that failed (non-zero exit, timeout, could not start).
    pub hook_failures: AtomicU64,
    /// New alerts not passed to the hook because its queue was full.
    pub hook_skipped: AtomicU64,
    /// Messages whose `(agent, seq)` was already stored.
    pub duplicates: AtomicU64,
    /// Messages acknowledged to the broker.
    pub acked: AtomicU64,
    /// End-to-end acknowledgement messages published to agents (`{prefix}/acks/{agent}`).
    pub agent_acks_published: AtomicU64,
    /// Agent messages (track batches, alerts) acknowledged end to end after their commit.
    pub agent_acked: AtomicU64,
    /// End-to-end acknowledgements that could not be published (the agents send those
    /// messages again).
    pub agent_acks_failed: AtomicU64,
    /// Store transactions that failed (their messages are not acknowledged).
    pub store_errors: AtomicU64,
    /// Messages the store refused for a reason of their own, kept as dead letters
    /// (`aggregator dead-letters`) and acknowledged.
    pub dead_lettered: AtomicU64,
    /// Dead letters replayed (`aggregator replay`) and stored.
    pub replayed: AtomicU64,
    /// Transactions whose fusion outputs could not be written (the messages were stored).
    pub fusion_write_errors: AtomicU64,
    /// Broker connection errors.
    pub broker_errors: AtomicU64,
    /// Subscriptions the broker confirmed (SUBACKs; three per connection).
    pub subscribed: AtomicU64,
    /// Store transactions run (each commits up to `store.max_batch` messages).
    pub commits: AtomicU64,
    /// Microseconds spent in store transactions, summed.
    pub commit_us: AtomicU64,
    /// 1 while connected to the broker (a gauge).
    pub broker_connected: AtomicU64,
    /// Client connections the embedded broker's gate let through.
    pub gate_connections: AtomicU64,
    /// Client connections the gate holds now, from TCP accept to close (a gauge; at most
    /// `broker.max_connections`).
    pub gate_open: AtomicU64,
    /// Clients the embedded broker's gate turned away, by reason (see `broker::gate::Refusal`).
    pub refused: ByReason,
    /// Times the gate stopped reading a client because its unacknowledged publishes reached
    /// `broker.max_inflight_messages` / `max_inflight_bytes` (back-pressure, nothing dropped).
    pub gate_inflight_waits: AtomicU64,
    /// Rejected payloads by reason (`bad_magic`, `corrupt`, `agent_mismatch`, `topic`...).
    pub rejected: ByReason,
    /// Watchlists published (retained), at start, on every reconnection and on every change.
    pub watchlist_published: AtomicU64,
    /// Version of the watchlist last published (a gauge; 0 before the first).
    pub watchlist_version: AtomicU64,
    /// Fusion outputs stored, by kind (`new_vehicle`, `vehicle_sighting`, `link`...; see
    /// `store::fusion::output_kind`).
    pub fusion: ByReason,
    /// Microseconds spent fusing (observations and ticks), summed.
    pub fusion_us: AtomicU64,
    /// 1 while this aggregator is the fusion owner of its store (a gauge; see `store`).
    pub fusion_owner: AtomicU64,
    /// Track batches queued in the store's fusion inbox for another aggregator, the owner.
    pub fusion_queued: AtomicU64,
    /// Queued track batches this aggregator, as the owner, took from the inbox and fused.
    pub fusion_dequeued: AtomicU64,
    /// Rows deleted by retention, by kind (`sightings`, `tracks`, `messages`, `alerts`,
    /// `evidence`...).
    pub retention_deleted: ByReason,
    /// PostgreSQL time partitions dropped by retention.
    pub retention_partitions_dropped: AtomicU64,
    /// Retention steps that failed (retried at the next interval).
    pub retention_errors: AtomicU64,
    /// Evidence images (track best shots, alert images) left out of stored messages: not an
    /// image of their declared type, too large, or a bad role (the rest of each message was
    /// stored).
    pub evidence_refused: AtomicU64,
    /// What the start rebuilt from the store (`fusion.restore_hours`), by kind
    /// (`vehicles`, `persons`, `representatives`, `aliases`, `links`, `sightings`).
    pub fusion_restored: ByReason,
    /// Microseconds the start spent rebuilding fusion identities from the store.
    pub fusion_restore_us: AtomicU64,
    /// Live face index (`face_search`) loads, by how: `snapshot` (the snapshot file, brought
    /// up to date from the store), `missing` / `corrupt` (no usable snapshot: rebuilt from
    /// the store).
    pub face_index_loads: ByReason,
    /// Microseconds the last load of the face index took (snapshot and catch-up, or store).
    pub face_index_load_us: AtomicU64,
    /// Faces in the live index (a gauge).
    pub face_index_faces: AtomicU64,
    /// Bytes the live index holds, about (a gauge).
    pub face_index_bytes: AtomicU64,
    /// Face index snapshots written.
    pub face_index_snapshots: AtomicU64,
    /// Face index failures, by kind (`snapshot`, `store`, `load`, `refresh`, `apply`).
    pub face_index_errors: ByReason,
    /// Searches of the live face index.
    pub face_searches: AtomicU64,
    /// Searches of the live face index refused (unusable query embedding).
    pub face_search_errors: AtomicU64,
    /// HTTP API requests answered, by route id and status.
    pub api_requests: ByRouteStatus,
    /// HTTP API requests refused, by reason (`unauthorized`, `forbidden`,
    /// `purpose_required`, `bad_request`, `too_large`, `rate_limited`, `not_found`).
    pub api_rejected: ByReason,
    /// Entries appended to the audit log.
    pub audit_entries: AtomicU64,
    /// Signed audit checkpoints stored (`witness`).
    pub audit_checkpoints: AtomicU64,
    /// Audit checkpoints that could not be made or written to a witness.
    pub audit_witness_failures: AtomicU64,
    /// Live alert streams ended because their token was revoked or expired.
    pub streams_ended_token: AtomicU64,
}

/// A counter per (route, status) pair.
#[derive(Debug, Default)]
pub struct ByRouteStatus(Mutex<BTreeMap<(&'static str, u16), u64>>);

impl ByRouteStatus {
    /// Counts one.
    pub fn inc(&self, route: &'static str, status: u16) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
    }

    /// The counts.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The count of one pair.
    pub fn get(&self, route: &str, status: u16) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((r, s), _)| *r == route && *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

/// A counter per reason (the `reason` label of a Prometheus family).
#[derive(Debug, Default)]
pub struct ByReason(Mutex<BTreeMap<&'static str, u64>>);

impl ByReason {
    /// Counts one for `reason`.
    pub fn inc(&self, reason: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Counts `n` for `reason`.
    pub fn add(&self, reason: &'static str, n: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += n;
    }

    /// The counts by reason.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The sum over reasons.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    fn samples(&self) -> impl Iterator<Item = (Vec<(&'static str, String)>, f64)> {
        self.samples_labelled("reason")
    }

    /// The counts as samples of a family whose label is `label`.
    fn samples_labelled(
        &self,
        label: &'static str,
    ) -> impl Iterator<Item = (Vec<(&'static str, String)>, f64)> {
        self.snapshot()
            .into_iter()
            .map(move |(reason, n)| (vec![(label, reason.to_string())], n as f64))
    }
}

/// The ops endpoint shows these counters (`/metrics`) and the health they imply (`/health`).
impl sharpeyes_common::ops::OpsSource for Metrics {
    /// The Prometheus exposition of every counter.
    fn metrics(&self) -> String {
        use sharpeyes_common::ops::{Exposition, Kind};
        let mut e = Exposition::new();
        for (name, help, kind, c) in [
            (
                "sharpeyes_aggregator_received_total",
                "Publishes received from the broker.",
                Kind::Counter,
                &self.received,
            ),
            (
                "sharpeyes_aggregator_stored_total",
                "Messages stored (first time seen).",
                Kind::Counter,
                &self.stored,
            ),
            (
                "sharpeyes_aggregator_alerts_total",
                "New alerts stored (updates of an open alert not counted).",
                Kind::Counter,
                &self.alerts,
            ),
            (
                "sharpeyes_aggregator_alert_hook_runs_total",
                "Alert hook runs.",
                Kind::Counter,
                &self.hook_runs,
            ),
            (
                "sharpeyes_aggregator_alert_hook_failures_total",
                "Alert hook runs that failed (non-zero exit, timeout, could not start).",
                Kind::Counter,
                &self.hook_failures,
            ),
            (
                "sharpeyes_aggregator_alert_hook_skipped_total",
                "New alerts not passed to the hook because its queue was full.",
                Kind::Counter,
                &self.hook_skipped,
            ),
            (
                "sharpeyes_aggregator_duplicates_total",
                "Messages whose (agent, seq) was already stored.",
                Kind::Counter,
                &self.duplicates,
            ),
            (
                "sharpeyes_aggregator_acked_total",
                "Messages acknowledged to the broker after their commit.",
                Kind::Counter,
                &self.acked,
            ),
            (
                "sharpeyes_aggregator_agent_acks_published_total",
                "End-to-end acknowledgement messages published to agents after a commit.",
                Kind::Counter,
                &self.agent_acks_published,
            ),
            (
                "sharpeyes_aggregator_agent_acked_total",
                "Agent messages acknowledged end to end (stored or found stored).",
                Kind::Counter,
                &self.agent_acked,
            ),
            (
                "sharpeyes_aggregator_agent_acks_failed_total",
                "End-to-end acknowledgements that could not be published (agents re-send).",
                Kind::Counter,
                &self.agent_acks_failed,
            ),
            (
                "sharpeyes_aggregator_store_errors_total",
                "Store transactions that failed (store-wide failures are retried with back-off, nothing acknowledged meanwhile).",
                Kind::Counter,
                &self.store_errors,
            ),
            (
                "sharpeyes_aggregator_dead_lettered_total",
                "Messages the store refused, kept as dead letters and acknowledged.",
                Kind::Counter,
                &self.dead_lettered,
            ),
            (
                "sharpeyes_aggregator_replayed_total",
                "Dead letters replayed and stored.",
                Kind::Counter,
                &self.replayed,
            ),
            (
                "sharpeyes_aggregator_fusion_write_errors_total",
                "Transactions whose fusion outputs could not be written (messages stored).",
                Kind::Counter,
                &self.fusion_write_errors,
            ),
            (
                "sharpeyes_aggregator_broker_errors_total",
                "Broker connection errors.",
                Kind::Counter,
                &self.broker_errors,
            ),
            (
                "sharpeyes_aggregator_broker_connected",
                "1 while connected to the broker.",
                Kind::Gauge,
                &self.broker_connected,
            ),
            (
                "sharpeyes_aggregator_broker_gate_connections_total",
                "Client connections the embedded broker's gate let through.",
                Kind::Counter,
                &self.gate_connections,
            ),
            (
                "sharpeyes_aggregator_broker_gate_open_connections",
                "Client connections the broker gate holds now.",
                Kind::Gauge,
                &self.gate_open,
            ),
            (
                "sharpeyes_aggregator_broker_inflight_waits_total",
                "Times the broker gate paused reading a client at its in-flight cap.",
                Kind::Counter,
                &self.gate_inflight_waits,
            ),
            (
                "sharpeyes_aggregator_store_commits_total",
                "Store transactions run.",
                Kind::Counter,
                &self.commits,
            ),
            (
                "sharpeyes_aggregator_watchlist_published_total",
                "Watchlists published (retained): at start, on reconnection, on every change.",
                Kind::Counter,
                &self.watchlist_published,
            ),
            (
                "sharpeyes_aggregator_watchlist_version",
                "Version of the watchlist last published.",
                Kind::Gauge,
                &self.watchlist_version,
            ),
            (
                "sharpeyes_aggregator_fusion_owner",
                "1 while this aggregator assigns identities for its store.",
                Kind::Gauge,
                &self.fusion_owner,
            ),
            (
                "sharpeyes_aggregator_fusion_queued_total",
                "Track batches queued for the fusion owner (another aggregator).",
                Kind::Counter,
                &self.fusion_queued,
            ),
            (
                "sharpeyes_aggregator_fusion_dequeued_total",
                "Queued track batches fused by this aggregator as the owner.",
                Kind::Counter,
                &self.fusion_dequeued,
            ),
            (
                "sharpeyes_aggregator_retention_partitions_dropped_total",
                "Time partitions dropped by retention (PostgreSQL).",
                Kind::Counter,
                &self.retention_partitions_dropped,
            ),
            (
                "sharpeyes_aggregator_audit_entries_total",
                "Entries appended to the audit log.",
                Kind::Counter,
                &self.audit_entries,
            ),
            (
                "sharpeyes_aggregator_audit_checkpoints_total",
                "Signed audit checkpoints stored.",
                Kind::Counter,
                &self.audit_checkpoints,
            ),
            (
                "sharpeyes_aggregator_audit_witness_failures_total",
                "Audit checkpoints that could not be made or written to a witness.",
                Kind::Counter,
                &self.audit_witness_failures,
            ),
            (
                "sharpeyes_aggregator_streams_ended_token_total",
                "Live alert streams ended because their token was revoked or expired.",
                Kind::Counter,
                &self.streams_ended_token,
            ),
            (
                "sharpeyes_aggregator_retention_errors_total",
                "Retention steps that failed.",
                Kind::Counter,
                &self.retention_errors,
            ),
            (
                "sharpeyes_aggregator_evidence_refused_total",
                "Evidence images left out of stored messages (not an image of their type, too large, bad role).",
                Kind::Counter,
                &self.evidence_refused,
            ),
        ] {
            e.single(name, help, kind, get(c) as f64);
        }
        e.single(
            "sharpeyes_aggregator_store_commit_seconds_total",
            "Time spent in store transactions.",
            Kind::Counter,
            get(&self.commit_us) as f64 / 1e6,
        );
        e.single(
            "sharpeyes_aggregator_fusion_seconds_total",
            "Time spent fusing tracks into identities (observations and ticks).",
            Kind::Counter,
            get(&self.fusion_us) as f64 / 1e6,
        );
        e.family(
            "sharpeyes_aggregator_fusion_outputs_total",
            "Fusion outputs stored, by kind.",
            Kind::Counter,
            self.fusion.samples_labelled("kind"),
        );
        e.single(
            "sharpeyes_aggregator_fusion_restore_seconds",
            "Time the start spent rebuilding fusion identities from the store.",
            Kind::Gauge,
            get(&self.fusion_restore_us) as f64 / 1e6,
        );
        e.family(
            "sharpeyes_aggregator_fusion_restored",
            "What the start rebuilt from the store (fusion.restore_hours), by kind.",
            Kind::Gauge,
            self.fusion_restored.samples_labelled("kind"),
        );
        e.family(
            "sharpeyes_aggregator_face_index_loads_total",
            "Live face index loads, by how (snapshot, missing, corrupt).",
            Kind::Counter,
            self.face_index_loads.samples_labelled("how"),
        );
        e.single(
            "sharpeyes_aggregator_face_index_load_seconds",
            "Time the last load of the face index took.",
            Kind::Gauge,
            get(&self.face_index_load_us) as f64 / 1e6,
        );
        e.single(
            "sharpeyes_aggregator_face_index_faces",
            "Faces in the live face index.",
            Kind::Gauge,
            get(&self.face_index_faces) as f64,
        );
        e.single(
            "sharpeyes_aggregator_face_index_bytes",
            "Memory the live face index holds, about.",
            Kind::Gauge,
            get(&self.face_index_bytes) as f64,
        );
        e.single(
            "sharpeyes_aggregator_face_index_snapshots_total",
            "Face index snapshots written.",
            Kind::Counter,
            get(&self.face_index_snapshots) as f64,
        );
        e.family(
            "sharpeyes_aggregator_face_index_errors_total",
            "Face index failures, by kind.",
            Kind::Counter,
            self.face_index_errors.samples_labelled("kind"),
        );
        e.single(
            "sharpeyes_aggregator_face_searches_total",
            "Searches of the live face index.",
            Kind::Counter,
            get(&self.face_searches) as f64,
        );
        e.single(
            "sharpeyes_aggregator_face_search_errors_total",
            "Searches of the live face index refused (unusable query embedding).",
            Kind::Counter,
            get(&self.face_search_errors) as f64,
        );
        e.family(
            "sharpeyes_aggregator_retention_deleted_total",
            "Rows deleted by retention, by kind.",
            Kind::Counter,
            self.retention_deleted.samples_labelled("kind"),
        );
        e.family(
            "sharpeyes_aggregator_rejected_total",
            "Payloads rejected, by reason.",
            Kind::Counter,
            self.rejected.samples(),
        );
        e.family(
            "sharpeyes_aggregator_api_requests_total",
            "HTTP API requests answered, by route and status.",
            Kind::Counter,
            self.api_requests
                .snapshot()
                .into_iter()
                .map(|((route, status), n)| {
                    (
                        vec![("route", route.to_string()), ("status", status.to_string())],
                        n as f64,
                    )
                }),
        );
        e.family(
            "sharpeyes_aggregator_api_rejected_total",
            "HTTP API requests refused, by reason.",
            Kind::Counter,
            self.api_rejected.samples(),
        );
        e.family(
            "sharpeyes_aggregator_broker_refused_total",
            "Clients the embedded broker's gate turned away, by reason.",
            Kind::Counter,
            self.refused.samples(),
        );
        e.finish()
    }

    /// Healthy while connected to the broker.
    fn health(&self) -> sharpeyes_common::ops::Health {
        use sharpeyes_common::ops::Health;
        if get(&self.broker_connected) == 0 {
            return Health::Unhealthy("not connected to the broker".into());
        }
        Health::Ok
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
