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
//! After each commit the writer acknowledges what it is done with to its agents, end to end
//! ([`acks`]): stored and duplicate track batches and alerts, dead letters, and messages
//! rejected for a value (their agent matched their topic); then to the broker. An agent keeps
//! a batch in its spool until then.
//!
//! A payload that cannot be used (foreign topic, undecodable, too complex to decode, agent
//! id differing from the topic's, body kind not matching the topic, or any value failing
//! [`sharpeyes_wire::validate`]: a non-finite number, a time outside the `ingest` window
//! around this aggregator's clock, a NUL or control character in a text, a box outside its
//! frame, a list over its bound) is rejected: logged, counted by reason, acknowledged (so
//! the broker does not redeliver it forever) and never stored. Everything else keeps flowing.
//!
//! **Poison never blocks.** A transaction that fails is looked at ([`StoreError::scope`]):
//! - a store-wide failure (database unreachable, disk full, busy) is retried with back-off
//!   (1 s doubling up to `ingest.retry_max_ms`); nothing is acknowledged meanwhile, so the
//!   broker keeps every message;
//! - any other failure is one message's: the batch is committed again with each message in
//!   a savepoint ([`Store::commit_batch_isolating`]); a message the store still refuses is
//!   kept with its raw bytes as a dead letter ([`crate::store::deadletter`]), acknowledged
//!   and counted, and the others are stored. `aggregator replay ID` asks this writer to apply
//!   a dead letter again (it is picked up within a second, and goes through the same checks
//!   and fusion as a message from the broker).
//!
//! **Bounded.** The subscriber hands messages to the writer through a bounded queue
//! (`ingest.queue`): when the store is slower than the agents, the subscriber stops reading
//! from the broker, which holds the messages (QoS 1), instead of the queue growing. A writer
//! thread that dies (a panic) cancels the aggregator, which then exits with an error.

pub mod config;

pub mod acks;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use sharpeyes_wire::validate::{Invalid, Limits};
use sharpeyes_wire::{Body, Codec, DecodeError, Envelope, Topic, TopicError, Topics};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::AggregatorConfig;
use crate::metrics::{Metrics, inc};
use crate::store::fusion::output_kind;
use crate::store::{
    Applied, Dialect, Fusion, Outcome, Replay, RetentionPolicy, Scope, Store, StoreError,
};
use fusion::{FuseInput, FuseOutput, Fuser};

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
    /// A value of the message is not usable (see [`sharpeyes_wire::validate`]).
    #[error("agent {agent:?} seq {seq}: {invalid}")]
    Invalid {
        /// The sending agent.
        agent: String,
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        invalid: Invalid,
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
            Rejection::Invalid { invalid, .. } => invalid.kind(),
        }
    }
}

/// Decodes a payload and checks it against its topic and every value against `limits`.
pub fn check(
    codec: &Codec,
    topics: &Topics,
    topic: &str,
    payload: &[u8],
    limits: &Limits,
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
    // Last: a message rejected for a value is its topic's agent's own (its agent may be told).
    if let Err(invalid) = sharpeyes_wire::validate::check_envelope(&env, limits) {
        return Err(Rejection::Invalid {
            agent: env.agent,
            seq: env.seq,
            invalid,
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
                o.set_credentials(u.clone(), p.resolve("broker.password")?);
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
    to_writer: mpsc::Sender<Publish>,
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
                // A full queue waits here: the event loop is not polled meanwhile, so no more
                // is read from the broker (which keeps the messages) until the writer catches up.
                let sent = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = to_writer.send(p) => r,
                };
                if sent.is_err() {
                    // The writer is gone (it died): stop; the aggregator reports it.
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
    /// What is accepted from the agents, and the retry back-off.
    pub ingest: crate::config::IngestConfig,
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
    /// transaction, then acknowledges every message of the batch. A store-wide failure is
    /// retried with back-off (nothing is acknowledged before its commit); a message the store
    /// refuses goes to the dead letters (see the [module docs](self)). When the thread ends
    /// by a panic, `died` is cancelled so the aggregator stops and reports it.
    pub fn run(self, rx: mpsc::Receiver<Publish>, died: CancellationToken) {
        let guard = DiedGuard(Some(died));
        writer_loop(self, rx);
        guard.disarm();
    }
}

/// Cancels its token when dropped armed: during a panic's unwinding.
struct DiedGuard(Option<CancellationToken>);

impl DiedGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DiedGuard {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            error!("the store writer thread died; stopping the aggregator");
            t.cancel();
        }
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
    faces: Option<crate::facesearch::LiveFaces>,
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
            faces: None,
        }
    }

    /// Hands the fusion outputs of each committed transaction to the live face index.
    pub fn with_faces(mut self, faces: Option<crate::facesearch::LiveFaces>) -> Self {
        self.faces = faces;
        self
    }

    /// `r`, the result of an owner's commit; once committed, its outputs go to the face
    /// index.
    fn committed<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_ok()
            && let Some(f) = &self.faces
        {
            f.feed(&self.pending);
        }
        r
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
        let (outputs, fused) = fuse(fuser, store, valid, &from_inbox, tick, metrics);
        self.pending = outputs;
        // What this owner fused from the batch itself leaves the inbox too, should another
        // writer have queued it meanwhile; a stored message it did not fuse stays there.
        self.consumed.extend(fused);
    }

    /// Whether [`commit`](Self::commit) has anything to write besides `valid`.
    pub fn has_work(&self) -> bool {
        !self.pending.is_empty() || !self.consumed.is_empty()
    }

    /// The fusion outputs the last [`prepare`](Self::prepare) computed.
    pub fn outputs(&self) -> &[FuseOutput] {
        &self.pending
    }

    /// [`commit`](Self::commit) with each message in a savepoint: what the store refuses
    /// becomes a dead letter ([`Store::commit_batch_isolating`]).
    pub fn commit_isolating(
        &mut self,
        store: &mut Store,
        valid: &[(Envelope, String, usize)],
        raws: &[&[u8]],
        metrics: &Metrics,
    ) -> Result<crate::store::Isolated, StoreError> {
        if self.fuser.is_some() {
            match store.commit_batch_isolating(
                valid,
                raws,
                &self.pending,
                Fusion::Fused(&self.consumed),
            ) {
                Err(StoreError::NotFusionOwner) => self.lose(metrics),
                r => return self.committed(r),
            }
        }
        store.commit_batch_isolating(valid, raws, &[], Fusion::Queue)
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
                r => return self.committed(r),
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
) -> (Vec<FuseOutput>, Vec<(String, u64)>) {
    let t0 = Instant::now();
    let now = sharpeyes_wire::now_ms();
    let mut out = Vec::new();
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    // A stored message was fused already, or waits in the inbox (then it is fused below,
    // from there): not marked as seen. One query for the whole batch.
    let keys: Vec<(&str, u64)> = valid
        .iter()
        .filter(|(env, _, _)| matches!(env.body, Body::Tracks(_)))
        .map(|(env, _, _)| (env.agent.as_str(), env.seq))
        .collect();
    let stored = store.messages_stored(&keys).unwrap_or_else(|e| {
        // Fused anyway: the fuser ignores an observation it has seen.
        warn!(error = %e, "could not check for stored messages before fusing");
        HashSet::new()
    });
    for (env, _, _) in valid {
        let Body::Tracks(b) = &env.body else {
            continue;
        };
        let key = (env.agent.as_str(), env.seq);
        if seen.contains(&key) || stored.contains(&key) {
            continue;
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
    let fused = seen
        .into_iter()
        .map(|(agent, seq)| (agent.to_string(), seq))
        .collect();
    (out, fused)
}

/// Where a message for the writer came from.
enum Origin {
    /// The broker: acknowledged after its commit.
    Broker(Publish),
    /// A dead letter to apply again (`aggregator replay`).
    Replay(u64),
}

/// Dead letters whose replay was asked for, taken per tick at most.
const REPLAYS_PER_TICK: usize = 64;

fn writer_loop(w: Writer, mut rx: mpsc::Receiver<Publish>) {
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
        ingest,
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
    let retry_max = Duration::from_millis(ingest.retry_max_ms);
    let mut last_tick = Instant::now();
    loop {
        metrics.heartbeat.beat();
        // (The timer is made inside the runtime: it needs its time driver.)
        let next = runtime.block_on(async { tokio::time::timeout(TICK, rx.recv()).await });
        let first = match next {
            Ok(Some(p)) => Some(p),
            Ok(None) => break,
            Err(_) => None, // a second without messages
        };
        let mut batch: Vec<Origin> = first.into_iter().map(Origin::Broker).collect();
        while !batch.is_empty() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(Origin::Broker(p)),
                Err(_) => break,
            }
        }
        let tick = last_tick.elapsed() >= TICK;
        if tick {
            last_tick = Instant::now();
            fusion.retention(&store, &retention, retention_every, &metrics);
        }
        // Replays asked for by `aggregator replay` (their payloads, kept here by id).
        let mut replays: Vec<Replay> = Vec::new();
        if tick {
            match store.replays_requested(REPLAYS_PER_TICK) {
                Ok(r) => replays = r,
                Err(e) => warn!(error = %e, "cannot read the dead letters to replay"),
            }
            batch.extend(replays.iter().map(|r| Origin::Replay(r.id)));
        }
        let limits = ingest.limits(sharpeyes_wire::now_ms());
        // (envelope, topic, size) of each usable message, and where it came from.
        let mut valid: Vec<(Envelope, String, usize)> = Vec::with_capacity(batch.len());
        let mut raws: Vec<&[u8]> = Vec::with_capacity(batch.len());
        let mut origins: Vec<&Origin> = Vec::with_capacity(batch.len());
        for o in &batch {
            let (topic, payload): (&str, &[u8]) = match o {
                Origin::Broker(p) => (&p.topic, &p.payload),
                Origin::Replay(id) => match replays.iter().find(|r| r.id == *id) {
                    Some(r) => (&r.topic, &r.payload),
                    None => continue,
                },
            };
            match check(&codec, &topics, topic, payload, &limits) {
                Ok(env) => {
                    valid.push((env, topic.to_string(), payload.len()));
                    raws.push(payload);
                    origins.push(o);
                }
                Err(r) => {
                    metrics.rejected.inc(r.kind());
                    warn!(topic = %topic, bytes = payload.len(), reason = %r, "rejected payload");
                    // Settled for good (a re-send would be rejected again): its agent may let go.
                    if let Rejection::Invalid { agent, seq, .. } = &r {
                        agent_acks.done(agent, *seq);
                    }
                    if let Origin::Replay(id) = o
                        && let Err(e) = store.replay_refused(
                            *id,
                            &format!("rejected: {r}"),
                            sharpeyes_wire::now_ms(),
                        )
                    {
                        warn!(error = %e, dead_letter = id, "cannot record a refused replay");
                    }
                }
            }
        }
        // Fused once, before the transaction: a retry writes the same outputs.
        fusion.prepare(&store, &valid, tick, &metrics);
        if valid.is_empty() && !fusion.has_work() {
            agent_acks.flush();
            for o in &batch {
                if let Origin::Broker(p) = o {
                    ack(p);
                }
            }
            continue;
        }
        let mut delay = Duration::from_secs(1);
        let outcomes: Vec<Outcome> = loop {
            let t0 = std::time::Instant::now();
            let result = commit(&mut fusion, &mut store, &valid, &raws, &metrics);
            metrics
                .commit_us
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            inc(&metrics.commits);
            match result {
                Ok(o) => break o,
                Err(e) => {
                    inc(&metrics.store_errors);
                    error!(
                        error = %e,
                        "the store is failing as a whole; retrying in {delay:?} (nothing is \
                         acknowledged meanwhile: the broker keeps the messages). Check that the \
                         database is reachable and its disk has room"
                    );
                    if shutdown.is_cancelled() {
                        return; // unacknowledged: the broker redelivers them later
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(retry_max);
                }
            }
        };
        for ((outcome, (env, topic, _)), origin) in outcomes.into_iter().zip(&valid).zip(&origins) {
            let replayed = match origin {
                Origin::Replay(id) => Some(*id),
                Origin::Broker(_) => None,
            };
            match outcome {
                Outcome::Applied(a) => {
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
                    if let Some(id) = replayed {
                        inc(&metrics.replayed);
                        info!(dead_letter = id, agent = %env.agent, seq = env.seq, "dead letter replayed and stored");
                        if let Err(e) = store.remove_dead_letter(id) {
                            warn!(error = %e, dead_letter = id, "replayed, but cannot remove the dead letter (a later replay finds it stored)");
                        }
                    }
                }
                Outcome::DeadLettered { id, error } => {
                    inc(&metrics.dead_lettered);
                    warn!(
                        agent = %env.agent, seq = env.seq, kind = env.body.kind(),
                        %topic, dead_letter = id, %error,
                        "the store refused a message: kept as dead letter {id} and acknowledged \
                         (list with `aggregator dead-letters`; after a fix, `aggregator replay {id}`)"
                    );
                }
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
        // Stored, duplicates and dead letters alike: the agents may let go of them.
        agent_acks.committed(valid.iter().map(|(env, _, _)| env));
        agent_acks.flush();
        for o in &batch {
            if let Origin::Broker(p) = o {
                ack(p);
            }
        }
    }
}

/// One try at committing `valid`: in one transaction; when that fails for a reason that is
/// not store-wide, again with each message isolated (see the [module docs](self)). An error
/// is a store-wide failure (to retry).
fn commit(
    fusion: &mut FusionStage,
    store: &mut Store,
    valid: &[(Envelope, String, usize)],
    raws: &[&[u8]],
    metrics: &Metrics,
) -> Result<Vec<Outcome>, StoreError> {
    let e = match fusion.commit(store, valid, metrics) {
        Ok(applied) => return Ok(applied.into_iter().map(Outcome::Applied).collect()),
        Err(e) => e,
    };
    if e.scope() == Scope::Store {
        return Err(e);
    }
    inc(&metrics.store_errors);
    warn!(error = %e, messages = valid.len(), "a transaction failed for a message's reason; committing its messages one by one");
    let isolated = fusion.commit_isolating(store, valid, raws, metrics)?;
    if let Some(fe) = &isolated.fusion_error {
        inc(&metrics.fusion_write_errors);
        error!(error = %fe, "the fusion results of a transaction could not be written (its messages were stored); the fuser rebuilds them from the store at the next start");
    }
    Ok(isolated.outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharpeyes_wire::TrackBatch;

    const T0: i64 = 1_800_000_000_000;

    fn payload(agent: &str, camera: &str) -> Vec<u8> {
        let env = Envelope::new(
            agent,
            1,
            T0,
            Body::Tracks(TrackBatch {
                site: "s".into(),
                camera: camera.into(),
                frame_w: 1,
                frame_h: 1,
                from_ms: T0,
                to_ms: T0,
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
        let l = Limits::around(T0, 86_400_000, 60_000);
        assert!(check(&c, &t, &topic, &payload("a1", "cam"), &l).is_ok());
        let kind = |topic: &str, p: &[u8]| check(&c, &t, topic, p, &l).unwrap_err().kind();
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
    fn a_writer_thread_that_panics_cancels_the_aggregator() {
        let died = CancellationToken::new();
        let d = died.clone();
        let r = std::thread::spawn(move || {
            let guard = DiedGuard(Some(d));
            if guard.0.is_some() {
                panic!("a bug in the writer");
            }
            guard.disarm();
        })
        .join();
        assert!(r.is_err());
        assert!(died.is_cancelled(), "the panic cancelled the aggregator");
        // A writer that ends normally (shutdown) cancels nothing.
        let ok = CancellationToken::new();
        DiedGuard(Some(ok.clone())).disarm();
        assert!(!ok.is_cancelled());
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
