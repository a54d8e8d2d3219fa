//! Subscribe: receives the agents' payloads (QoS 1, manual acknowledgements), checks them,
//! stores them, and acknowledges each one only after the transaction holding it committed.
//!
//! The writer thread also owns the [`Fuser`]: the track batches of a transaction are fused
//! before it (each message once: those already stored are redeliveries and skipped), and
//! the fusion results are written in the same transaction as the messages, so a retried
//! transaction writes the same results and a crash loses both or neither. When no message
//! comes for a second the fuser gets a tick (timeouts, eviction, re-clustering), whose
//! results get a transaction of their own.
//!
//! After each commit the writer acknowledges the committed track batches and alerts to their
//! agents end to end ([`acks`]), then to the broker.
//!
//! A payload that cannot be used (foreign topic, undecodable, agent id differing from the
//! topic's, body kind not matching the topic) is rejected: logged, counted by reason,
//! acknowledged (so the broker does not redeliver it forever) and never stored. Everything
//! else keeps flowing.

pub mod acks;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use sharpeyes_wire::{Body, Codec, DecodeError, Envelope, Topic, TopicError, Topics};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::AggregatorConfig;
use crate::fuse::{FuseInput, FuseOutput, Fuser};
use crate::metrics::{Metrics, inc};
use crate::store::fusion::output_kind;
use crate::store::{Applied, Dialect, Fusion, RetentionPolicy, Store, StoreError};

/// Why a payload was rejected.
#[derive(Debug, Error)]
pub enum Rejection {
    /// The topic is not one of ours.
    #[error("topic: {0}")]
    Topic(#[from] TopicError),
    /// The payload does not decode.
    #[error("payload: {0}")]
    Decode(#[from] DecodeError),
    /// The payload names another agent than its topic.
    #[error("payload of agent {payload:?} on a topic of agent {topic:?}")]
    AgentMismatch {
        /// Agent of the topic.
        topic: String,
        /// Agent in the payload.
        payload: String,
    },
    /// The body does not belong on this topic.
    #[error("a {body} message on a {topic} topic")]
    KindMismatch {
        /// Kind of topic.
        topic: &'static str,
        /// Kind of body.
        body: &'static str,
    },
    /// The body's camera differs from the topic's camera.
    #[error("camera {payload:?} in the payload, {topic:?} in the topic")]
    CameraMismatch {
        /// Camera of the topic.
        topic: String,
        /// Camera in the payload.
        payload: String,
    },
}

impl Rejection {
    /// A stable short name, used as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Topic(_) => "topic",
            Rejection::Decode(e) => e.kind(),
            Rejection::AgentMismatch { .. } => "agent_mismatch",
            Rejection::KindMismatch { .. } => "kind_mismatch",
            Rejection::CameraMismatch { .. } => "camera_mismatch",
        }
    }
}

/// Decodes a payload and checks it against its topic.
pub fn check(
    codec: &Codec,
    topics: &Topics,
    topic: &str,
    payload: &[u8],
) -> Result<Envelope, Rejection> {
    let t = topics.parse(topic)?;
    let env = codec.decode(payload)?;
    if let Some(agent) = t.agent()
        && agent != env.agent
    {
        return Err(Rejection::AgentMismatch {
            topic: agent.to_string(),
            payload: env.agent,
        });
    }
    let (topic_kind, camera) = match &t {
        Topic::Tracks { camera, .. } => ("tracks", Some(camera)),
        Topic::Alerts { camera, .. } => ("alert", Some(camera)),
        Topic::Status { .. } => ("status", None),
        Topic::Watchlists => ("watchlists", None),
        Topic::Acks { .. } => ("acks", None),
    };
    if env.body.kind() != topic_kind {
        return Err(Rejection::KindMismatch {
            topic: topic_kind,
            body: env.body.kind(),
        });
    }
    let body_camera = match &env.body {
        Body::Tracks(b) => Some(&b.camera),
        Body::Alert(a) => Some(&a.camera),
        _ => None,
    };
    if let (Some(tc), Some(bc)) = (camera, body_camera)
        && tc != bc
    {
        return Err(Rejection::CameraMismatch {
            topic: tc.clone(),
            payload: bc.clone(),
        });
    }
    Ok(env)
}

/// MQTT options of the aggregator: persistent session, manual acknowledgements; to the
/// `embedded` broker's internal listener when it runs, else to `broker.url`.
pub fn mqtt_options(
    cfg: &AggregatorConfig,
    embedded: Option<&crate::broker::Embedded>,
) -> Result<MqttOptions, crate::AggregatorError> {
    let b = &cfg.broker;
    let (host, port) = match embedded {
        Some(e) => e.endpoint.clone(),
        None => b.endpoint()?,
    };
    let mut o = MqttOptions::new(b.client_id.clone(), host, port);
    if embedded.is_none() && b.external_tls() {
        o.set_transport(sharpeyes_common::tls::mqtt_transport(b.ca_file.as_deref())?);
    }
    o.set_keep_alive(Duration::from_secs(b.keep_alive_s));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    // Outgoing: acknowledgements, subscriptions and the watchlists, which grow with the
    // enrolled faces (about 150 bytes per photo).
    o.set_max_packet_size(b.max_payload_bytes + 4096, b.max_payload_bytes + 4096);
    match embedded.and_then(|e| e.login.as_ref()) {
        Some((u, p)) => {
            o.set_credentials(u.clone(), p.clone());
        }
        None => {
            if let (Some(u), Some(p)) = (&b.username, &b.password) {
                o.set_credentials(u.clone(), p.clone());
            }
        }
    }
    Ok(o)
}

/// The topic filters to subscribe to. Track batches and alerts go through shared groups
/// (if configured) so several aggregators split them; status is retained, which shared
/// subscriptions do not deliver, so every aggregator subscribes to it plainly.
///
/// Each filter gets its own group (`{group}_tracks`, `{group}_alerts`): rumqttd 0.20 keys a
/// shared group by name alone, so two filters in one group share a cursor and one of them
/// loses messages. Per-filter groups split the load the same way on every broker.
pub fn filters(cfg: &AggregatorConfig) -> Vec<String> {
    let topics = Topics::new(&cfg.broker.topic_prefix);
    let g = &cfg.broker.shared_group;
    let share = |kind: &str, f: String| {
        if g.is_empty() {
            f
        } else {
            format!("$share/{g}_{kind}/{f}")
        }
    };
    vec![
        share("tracks", topics.all_tracks()),
        share("alerts", topics.all_alerts()),
        topics.all_status(),
    ]
}

/// Polls the broker until `shutdown`: (re)subscribes on every connection, hands publishes to
/// the writer, backs off on errors.
pub async fn subscribe_loop(
    cfg: AggregatorConfig,
    client: AsyncClient,
    mut eventloop: EventLoop,
    to_writer: mpsc::UnboundedSender<Publish>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let min = Duration::from_millis(200);
    let max = Duration::from_millis(cfg.broker.reconnect_max_ms);
    let mut backoff = min;
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = min;
                metrics
                    .broker_connected
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                info!(
                    session_present = ack.session_present,
                    "connected to broker; subscribing"
                );
                for f in filters(&cfg) {
                    if let Err(e) = client.subscribe(f.clone(), QoS::AtLeastOnce).await {
                        error!(error = %e, filter = %f, "subscribe request failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => inc(&metrics.subscribed),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                inc(&metrics.received);
                if to_writer.send(p).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                inc(&metrics.broker_errors);
                metrics
                    .broker_connected
                    .store(0, std::sync::atomic::Ordering::Relaxed);
                warn!(error = %e, "broker connection lost; retrying in {backoff:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
    // Let the writer finish and send its last acknowledgements before disconnecting.
    drop(to_writer);
    let _ = client.disconnect().await;
    let flush = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
}

/// The store writer: everything the writer thread needs.
pub struct Writer {
    /// The store it writes.
    pub store: Store,
    /// The MQTT client, for acknowledgements.
    pub client: AsyncClient,
    /// Topic scheme.
    pub topics: Topics,
    /// Payload decoder.
    pub codec: Codec,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Messages per transaction at most.
    pub max_batch: usize,
    /// The async runtime, to wait for acknowledgements when the client's queue is full.
    pub runtime: tokio::runtime::Handle,
    /// Stops retrying failed transactions.
    pub shutdown: CancellationToken,
    /// Runs the alert hook for new alerts, if one is configured.
    pub hook: Option<crate::hook::Hook>,
    /// Where new alerts are announced (the API's live stream); sending never blocks.
    pub events: Option<crate::api::AlertEvents>,
    /// Fuses the track batches into vehicles, persons and links (as the fusion owner), or
    /// queues them for the owner.
    pub fusion: FusionStage,
    /// What retention deletes (run by the fusion owner).
    pub retention: RetentionPolicy,
    /// How often retention runs.
    pub retention_every: Duration,
    /// The aggregator's MQTT client id (the sender of its acknowledgements to agents).
    pub client_id: String,
}

impl Writer {
    /// The writer thread: takes what arrived (up to `max_batch` at once), stores it in one
    /// transaction, then acknowledges every message of the batch. A failed transaction is
    /// retried (nothing is acknowledged before its commit).
    pub fn run(self, rx: mpsc::UnboundedReceiver<Publish>) {
        writer_loop(self, rx)
    }
}

/// How often the fuser gets a tick when no message keeps it busy (and how often a writer
/// that is not the fusion owner tries to become it).
const TICK: Duration = Duration::from_secs(1);

/// Queued batches the owner takes from the fusion inbox per transaction at most.
const INBOX_BATCH: usize = 256;

/// Makes the fuser when this writer becomes the fusion owner (next ids from the store).
pub type NewFuser = Box<dyn Fn(&Store) -> Result<Fuser, StoreError> + Send>;

/// The writer's part in fusion. The store's fusion owner (SQLite: always this writer;
/// PostgreSQL: the writer whose session holds the owner lock, see [`crate::store`]) fuses
/// what it receives and what other writers queued, and commits the results with the
/// messages; any other writer queues its new track batches for the owner in the same
/// transaction that stores them.
///
/// [`prepare`](Self::prepare) fuses once per batch; [`commit`](Self::commit) writes (and
/// may be retried: it writes the same results). An owner that lost its lock finds out in the
/// commit's transaction, drops its fuser and stores the batch as a non-owner.
pub struct FusionStage {
    new_fuser: NewFuser,
    fuser: Option<Fuser>,
    last_try: Option<Instant>,
    pending: Vec<FuseOutput>,
    consumed: Vec<(String, u64)>,
    last_retention: Option<Instant>,
    retention_left: bool,
}

impl FusionStage {
    /// A stage that makes its fuser with `new_fuser` when it becomes the owner.
    pub fn new(new_fuser: NewFuser) -> Self {
        Self {
            new_fuser,
            fuser: None,
            last_try: None,
            pending: Vec::new(),
            consumed: Vec::new(),
            last_retention: None,
            retention_left: false,
        }
    }

    /// Whether this writer is the fusion owner now (as far as it knows).
    pub fn is_owner(&self) -> bool {
        self.fuser.is_some()
    }

    /// Becomes the owner if the store says so (tried at most once per [`TICK`]); the start
    /// calls it once before the first message, so the fuser's restore happens at start.
    pub fn claim(&mut self, store: &Store, metrics: &Metrics) {
        if self.fuser.is_some() || self.last_try.is_some_and(|t| t.elapsed() < TICK) {
            return;
        }
        self.last_try = Some(Instant::now());
        match store.fusion_owner() {
            Ok(true) => match (self.new_fuser)(store) {
                Ok(f) => {
                    if store.dialect() == Dialect::Postgres {
                        info!("this aggregator is now the fusion owner of the store");
                    }
                    self.fuser = Some(f);
                    metrics.fusion_owner.store(1, Ordering::Relaxed);
                }
                Err(e) => {
                    error!(error = %e, "cannot start the fuser; retrying");
                    let _ = store.release_fusion_owner();
                }
            },
            Ok(false) => {}
            Err(e) => warn!(error = %e, "cannot tell whether this writer is the fusion owner"),
        }
    }

    fn lose(&mut self, metrics: &Metrics) {
        warn!("no longer the fusion owner; queueing track batches for the new owner");
        self.fuser = None;
        self.pending.clear();
        self.consumed.clear();
        metrics.fusion_owner.store(0, Ordering::Relaxed);
    }

    /// Fuses `valid` (and, as the owner, a share of the fusion inbox) once, before the
    /// transaction; with `tick`, time passes for the fuser.
    pub fn prepare(
        &mut self,
        store: &Store,
        valid: &[(Envelope, String, usize)],
        tick: bool,
        metrics: &Metrics,
    ) {
        self.claim(store, metrics);
        self.pending.clear();
        self.consumed.clear();
        let Some(fuser) = self.fuser.as_mut() else {
            return;
        };
        let mut queued = Vec::new();
        if store.dialect() == Dialect::Postgres {
            match store.fusion_inbox(INBOX_BATCH) {
                Ok(q) => queued = q,
                Err(e) => warn!(error = %e, "cannot read the fusion inbox"),
            }
        }
        let mut from_inbox: Vec<(Envelope, String, usize)> = Vec::new();
        for q in queued {
            match q.envelope {
                Ok(env) => from_inbox.push((env, String::new(), 0)),
                Err(reason) => {
                    metrics.rejected.inc("inbox_corrupt");
                    warn!(agent = %q.agent, seq = q.seq, %reason, "dropping an undecodable fusion inbox entry");
                }
            }
            self.consumed.push((q.agent, q.seq));
        }
        metrics
            .fusion_dequeued
            .fetch_add(from_inbox.len() as u64, Ordering::Relaxed);
        self.pending = fuse(fuser, store, valid, &from_inbox, tick, metrics);
    }

    /// Whether [`commit`](Self::commit) has anything to write besides `valid`.
    pub fn has_work(&self) -> bool {
        !self.pending.is_empty() || !self.consumed.is_empty()
    }

    /// The fusion outputs the last [`prepare`](Self::prepare) computed.
    pub fn outputs(&self) -> &[FuseOutput] {
        &self.pending
    }

    /// Stores `valid` with what [`prepare`](Self::prepare) fused (or queues its track batches
    /// when not the owner), in one transaction.
    pub fn commit(
        &mut self,
        store: &mut Store,
        valid: &[(Envelope, String, usize)],
        metrics: &Metrics,
    ) -> Result<Vec<Applied>, StoreError> {
        if self.fuser.is_some() {
            match store.commit_batch(valid, &self.pending, Fusion::Fused(&self.consumed)) {
                Err(StoreError::NotFusionOwner) => self.lose(metrics),
                r => return r,
            }
        }
        let applied = store.commit_batch(valid, &[], Fusion::Queue)?;
        let queued = applied
            .iter()
            .zip(valid)
            .filter(|(a, (env, _, _))| {
                **a == Applied::Stored && matches!(env.body, Body::Tracks(_))
            })
            .count();
        metrics
            .fusion_queued
            .fetch_add(queued as u64, Ordering::Relaxed);
        Ok(applied)
    }

    /// As the owner, one bounded retention step when due (every `every`, and each tick
    /// while expired rows are left).
    pub fn retention(
        &mut self,
        store: &Store,
        policy: &RetentionPolicy,
        every: Duration,
        metrics: &Metrics,
    ) {
        if self.fuser.is_none()
            || (!self.retention_left && self.last_retention.is_some_and(|t| t.elapsed() < every))
        {
            return;
        }
        if !self.retention_left {
            self.last_retention = Some(Instant::now());
            if let Err(e) = store.create_partitions_ahead(sharpeyes_wire::now_ms(), 2) {
                warn!(error = %e, "cannot create the coming days' partitions");
            }
        }
        match store.retention_step(policy, sharpeyes_wire::now_ms()) {
            Ok(r) => {
                for (kind, n) in &r.deleted {
                    metrics.retention_deleted.add(kind, *n);
                }
                metrics
                    .retention_partitions_dropped
                    .fetch_add(r.partitions_dropped.len() as u64, Ordering::Relaxed);
                if r.total() > 0 || !r.partitions_dropped.is_empty() {
                    info!(deleted = ?r.deleted, partitions_dropped = ?r.partitions_dropped, done = r.done, "retention");
                }
                self.retention_left = !r.done;
            }
            Err(e) => {
                inc(&metrics.retention_errors);
                warn!(error = %e, "retention step failed; retried at the next interval");
                self.retention_left = false;
            }
        }
    }
}

/// Fuses the track batches of `valid` that are not stored yet (nor repeated within `valid`),
/// then those taken from the fusion inbox, and, when a tick is due, lets time pass; the
/// outputs to store with them.
fn fuse(
    fuser: &mut Fuser,
    store: &Store,
    valid: &[(Envelope, String, usize)],
    from_inbox: &[(Envelope, String, usize)],
    tick: bool,
    metrics: &Metrics,
) -> Vec<FuseOutput> {
    let t0 = Instant::now();
    let now = sharpeyes_wire::now_ms();
    let mut out = Vec::new();
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    for (env, _, _) in valid {
        let Body::Tracks(b) = &env.body else {
            continue;
        };
        let key = (env.agent.as_str(), env.seq);
        if seen.contains(&key) {
            continue;
        }
        // A stored message was fused already, or waits in the inbox (then it is fused
        // below, from there): not marked as seen.
        match store.message_stored(&env.agent, env.seq) {
            Ok(true) => continue,
            Ok(false) => {}
            // Fused anyway: the fuser ignores an observation it has seen.
            Err(e) => warn!(error = %e, "could not check for a stored message before fusing"),
        }
        seen.insert(key);
        out.extend(fuser.observe_batch(&env.agent, b, now));
    }
    for (env, _, _) in from_inbox {
        if let Body::Tracks(b) = &env.body
            && seen.insert((env.agent.as_str(), env.seq))
        {
            out.extend(fuser.observe_batch(&env.agent, b, now));
        }
    }
    if tick {
        fuser.update_into(FuseInput::Tick, now, &mut out);
    }
    metrics
        .fusion_us
        .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    out
}

fn writer_loop(w: Writer, mut rx: mpsc::UnboundedReceiver<Publish>) {
    let Writer {
        mut store,
        client,
        topics,
        codec,
        metrics,
        max_batch,
        runtime,
        shutdown,
        hook,
        events,
        mut fusion,
        retention,
        retention_every,
        client_id,
    } = w;
    let mut agent_acks = acks::AckPublisher::new(
        client.clone(),
        topics.clone(),
        &client_id,
        runtime.clone(),
        metrics.clone(),
    );
    let ack = |p: &Publish| {
        if client.try_ack(p).is_err() {
            let _ = runtime.block_on(client.ack(p));
        }
        inc(&metrics.acked);
    };
    let mut last_tick = Instant::now();
    loop {
        // (The timer is made inside the runtime: it needs its time driver.)
        let next = runtime.block_on(async { tokio::time::timeout(TICK, rx.recv()).await });
        let first = match next {
            Ok(Some(p)) => Some(p),
            Ok(None) => break,
            Err(_) => None, // a second without messages
        };
        let mut batch: Vec<Publish> = first.into_iter().collect();
        while !batch.is_empty() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut valid: Vec<(Envelope, String, usize)> = Vec::with_capacity(batch.len());
        for p in &batch {
            match check(&codec, &topics, &p.topic, &p.payload) {
                Ok(env) => valid.push((env, p.topic.clone(), p.payload.len())),
                Err(r) => {
                    metrics.rejected.inc(r.kind());
                    warn!(topic = %p.topic, bytes = p.payload.len(), reason = %r, "rejected payload");
                }
            }
        }
        let tick = last_tick.elapsed() >= TICK;
        if tick {
            last_tick = Instant::now();
            fusion.retention(&store, &retention, retention_every, &metrics);
        }
        // Fused once, before the transaction: a retry writes the same outputs.
        fusion.prepare(&store, &valid, tick, &metrics);
        if valid.is_empty() && !fusion.has_work() {
            for p in &batch {
                ack(p);
            }
            continue;
        }
        loop {
            let t0 = std::time::Instant::now();
            let result = fusion.commit(&mut store, &valid, &metrics);
            metrics
                .commit_us
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            inc(&metrics.commits);
            match result {
                Ok(applied) => {
                    for (a, (env, _, _)) in applied.into_iter().zip(&valid) {
                        match a {
                            Applied::Stored => inc(&metrics.stored),
                            Applied::NewAlert => {
                                inc(&metrics.stored);
                                inc(&metrics.alerts);
                                if let (Some(h), Body::Alert(alert)) = (&hook, &env.body) {
                                    h.send(&env.agent, alert);
                                }
                                if let (Some(tx), Body::Alert(alert)) = (&events, &env.body) {
                                    // No receiver (no open stream) is fine.
                                    let _ = tx.send(crate::api::AlertEvent::Alert(Box::new(
                                        crate::store::AlertRow::from_wire(
                                            &env.agent,
                                            alert,
                                            sharpeyes_wire::now_ms(),
                                        ),
                                    )));
                                }
                            }
                            Applied::Duplicate => inc(&metrics.duplicates),
                        }
                    }
                    for o in fusion.outputs() {
                        metrics.fusion.inc(output_kind(o));
                    }
                    metrics
                        .evidence_refused
                        .fetch_add(store.take_evidence_refused(), Ordering::Relaxed);
                    debug!(
                        messages = batch.len(),
                        fusion_outputs = fusion.outputs().len(),
                        "committed"
                    );
                    break;
                }
                Err(e) => {
                    inc(&metrics.store_errors);
                    error!(error = %e, "store transaction failed; retrying in 1 s");
                    if shutdown.is_cancelled() {
                        return; // unacknowledged: the broker redelivers them later
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        agent_acks.committed(valid.iter().map(|(env, _, _)| env));
        agent_acks.flush();
        for p in &batch {
            ack(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharpeyes_wire::TrackBatch;

    fn payload(agent: &str, camera: &str) -> Vec<u8> {
        let env = Envelope::new(
            agent,
            1,
            0,
            Body::Tracks(TrackBatch {
                site: "s".into(),
                camera: camera.into(),
                frame_w: 1,
                frame_h: 1,
                from_ms: 0,
                to_ms: 0,
                frames: 0,
                updates: vec![],
            }),
        );
        Codec::default().encode(&env).unwrap()
    }

    #[test]
    fn checks_payload_against_topic() {
        let (c, t) = (Codec::default(), Topics::default());
        let topic = t.tracks("s", "a1", "cam");
        assert!(check(&c, &t, &topic, &payload("a1", "cam")).is_ok());
        let kind = |topic: &str, p: &[u8]| check(&c, &t, topic, p).unwrap_err().kind();
        assert_eq!(kind(&topic, &payload("a2", "cam")), "agent_mismatch");
        assert_eq!(kind(&topic, &payload("a1", "other")), "camera_mismatch");
        assert_eq!(
            kind(&t.alerts("s", "a1", "cam"), &payload("a1", "cam")),
            "kind_mismatch"
        );
        assert_eq!(kind("elsewhere/x", &payload("a1", "cam")), "topic");
        assert_eq!(kind(&topic, b"{\"hello\":1}"), "bad_magic");
        assert_eq!(kind(&topic, b"SE"), "truncated");
    }

    #[test]
    fn shared_group_applies_to_tracks_and_alerts_only() {
        let mut cfg = AggregatorConfig::default();
        let f = filters(&cfg);
        assert_eq!(f[0], "$share/aggregators_tracks/sharpeyes/v1/+/+/+/tracks");
        assert_eq!(f[1], "$share/aggregators_alerts/sharpeyes/v1/+/+/+/alerts");
        assert_eq!(f[2], "sharpeyes/v1/+/+/status");
        cfg.broker.shared_group.clear();
        assert_eq!(filters(&cfg)[0], "sharpeyes/v1/+/+/+/tracks");
    }
}
