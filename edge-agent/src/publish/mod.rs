//! Publish: batches each camera's track outputs (every `batch_interval_ms`), encodes them with
//! the wire codec and publishes them at QoS 1; keeps the retained status topic current (with
//! an `online: false` last will); reconnects to the broker with exponential back-off.
//!
//! Every track batch and alert goes to the disk spool (`spool`) before it is handed to the
//! MQTT client, and leaves the spool only when an aggregator acknowledged it end to end: the
//! aggregator publishes the `seq`s it committed (stored, or found stored already) on
//! `{prefix}/acks/{agent}` (QoS 1), which the agent subscribes to on every connection. The
//! broker's PUBACK only means "in flight": a broker that dies with what it took (the
//! aggregator's embedded rumqttd keeps messages in memory), an aggregator killed before its
//! commit, or an acknowledgement lost on the way, all end in a re-send. A record is sent again
//! when no acknowledgement came `publish.ack_timeout_ms` after it was handed to the client or
//! PUBACKed (the wait doubling with each re-send of it, up to 8×), and at once after every
//! reconnect if the broker had PUBACKed it. The aggregator keeps each `(agent, seq)` once, so
//! a re-send costs bandwidth, never a duplicate. Broker outages of any length (up to the
//! spool's byte cap), agent restarts and aggregator crashes lose nothing. Status messages are
//! not spooled (only the newest matters; it is retained).
//!
//! Linking PUBACKs to spool records: records are handed to the client in spool order, and the
//! event loop reports each first transmission as `Outgoing::Publish(pkid)` in that same order;
//! a retransmission after a reconnect reuses its packet id, which is already linked.
//!
//! Sequence numbers come from [`seq::Sequence`], persisted in the spool directory: unique
//! across restarts even when the clock goes backwards.

pub mod seq;
pub mod spool;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use sharpeyes_wire::{
    AgentStatus, Body, Codec, Envelope, QBox, QEmbedding, Topics, TrackBatch, TrackUpdate,
};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::AgentConfig;
use crate::metrics::{Metrics, add, inc};
use crate::track::TrackOutput;

/// Publishing failures that stop the agent (broker trouble is retried, never fatal).
#[derive(Debug, Error)]
pub enum PublishError {
    /// A message could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] sharpeyes_wire::EncodeError),
    /// The spool failed (disk full, permissions...).
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// The broker's CA file cannot be used.
    #[error("broker.ca_file: {0}")]
    Tls(#[from] sharpeyes_common::tls::TlsError),
    /// The persisted sequence cannot be written.
    #[error(transparent)]
    Seq(#[from] seq::SeqError),
    /// The broker password cannot be read (its file, variable or credential).
    #[error(transparent)]
    Secret(#[from] sharpeyes_common::secret::SecretError),
}

/// A spooled record handed to the client in this run, not yet acknowledged by an aggregator.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    /// When it is sent again if no acknowledgement came.
    due: Instant,
    /// Times handed to the client in this run.
    sends: u32,
    /// Whether the broker PUBACKed its last transmission.
    pubacked: bool,
}

/// What links spool records to the MQTT client's packets and to the aggregator's
/// acknowledgements; shared by the publisher and the event loop.
#[derive(Debug)]
pub struct Link {
    spool: spool::Spool,
    /// Handed to the client, not yet transmitted: a spool id, or None for a status message.
    handed: VecDeque<Option<u64>>,
    /// Transmitted, awaiting PUBACK, by packet id.
    by_pkid: HashMap<u16, Option<u64>>,
    /// Spool records handed to the client in this run and not acknowledged, by spool id.
    out: BTreeMap<u64, Outstanding>,
    /// `publish.ack_timeout_ms`.
    ack_timeout: Duration,
}

/// Longest wait for an acknowledgement before a re-send, in multiples of the timeout.
const MAX_BACKOFF: u32 = 8;

impl Link {
    /// Payloads not yet acknowledged end to end: spooled records (until an aggregator
    /// acknowledged them) plus status messages the broker has not PUBACKed.
    pub fn unacked(&self) -> usize {
        self.spool.len()
            + self.handed.iter().filter(|e| e.is_none()).count()
            + self.by_pkid.values().filter(|e| e.is_none()).count()
    }

    /// How long to wait for the acknowledgement of a record sent `sends` times.
    fn wait(&self, sends: u32) -> Duration {
        self.ack_timeout * (1u32 << sends.saturating_sub(1).min(3)).min(MAX_BACKOFF)
    }

    /// Record `id` was handed to the client (again).
    fn handed_over(&mut self, id: u64, now: Instant) {
        let sends = self.out.get(&id).map_or(0, |o| o.sends) + 1;
        let due = now + self.wait(sends);
        self.out.insert(
            id,
            Outstanding {
                due,
                sends,
                pubacked: false,
            },
        );
    }

    /// The broker PUBACKed record `id`: the wait for the aggregator starts now.
    fn pubacked(&mut self, id: u64, now: Instant) {
        let wait = self.out.get(&id).map(|o| self.wait(o.sends));
        if let (Some(o), Some(wait)) = (self.out.get_mut(&id), wait) {
            o.due = now + wait;
            o.pubacked = true;
        }
    }

    /// After a reconnect: what the broker had PUBACKed may have died with it (an embedded
    /// broker keeps it in memory), so it is due at once. What it had not PUBACKed the MQTT
    /// client retransmits itself.
    fn reconnected(&mut self, now: Instant) {
        for o in self.out.values_mut().filter(|o| o.pubacked) {
            o.due = now;
        }
    }

    /// The aggregator acknowledged `acks`: those records leave the spool. Returns how many.
    fn acknowledged(&mut self, acks: &sharpeyes_wire::Acks) -> Result<u64, spool::SpoolError> {
        let mut n = 0;
        for &[first, last] in &acks.ranges {
            for id in self.spool.ack_seqs(first, last)? {
                self.out.remove(&id);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records due for a re-send, oldest first; forgets those no longer in the spool
    /// (evicted).
    fn due(&mut self, now: Instant) -> Vec<u64> {
        let spool = &self.spool;
        self.out.retain(|id, _| spool.seq_of(*id).is_some());
        self.out
            .iter()
            .filter(|(_, o)| o.due <= now)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A [`Link`] shared between tasks.
pub type SharedLink = Arc<Mutex<Link>>;

fn lock(link: &SharedLink) -> MutexGuard<'_, Link> {
    link.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the analysis stage sends to the publisher.
#[derive(Debug, Clone)]
pub struct Analysed {
    /// Camera index.
    pub camera: usize,
    /// Frame size.
    pub frame_w: u32,
    /// Frame size.
    pub frame_h: u32,
    /// Capture time of the analysed frame (None: outputs of a flush, no frame).
    pub capture_ms: Option<i64>,
    /// Track outputs of that frame.
    pub outputs: Vec<Output>,
    /// Alerts the rules raised or updated on that frame, evidence attached.
    pub alerts: Vec<sharpeyes_wire::Alert>,
}

/// The watchlists the agent applies, as the aggregator last published them (None until the
/// first arrives); the analysis stage watches it.
pub type WatchlistFeed =
    tokio::sync::watch::Receiver<Option<Arc<crate::rules::PreparedWatchlists>>>;

/// One track output with what the track has gathered so far.
#[derive(Debug, Clone)]
pub struct Output {
    /// The tracked object's class.
    pub class: sharpeyes_wire::ObjectClass,
    /// What the tracker said.
    pub track: TrackOutput,
    /// The track's best face embedding, if it has one.
    pub embedding: Option<QEmbedding>,
    /// The track's voted plate, if it has one.
    pub plate: Option<sharpeyes_wire::PlateReading>,
    /// The linked track of another class (a person's face, a plate's vehicle...).
    pub link: Option<u64>,
    /// The track's best shot, when a new one is due (a small JPEG).
    pub thumb: Option<sharpeyes_wire::Evidence>,
}

#[derive(Debug, Default)]
struct PendingBatch {
    frame_w: u32,
    frame_h: u32,
    from_ms: Option<i64>,
    to_ms: i64,
    frames: u32,
    updates: Vec<TrackUpdate>,
}

/// How a message is kept until the broker has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spool {
    /// Not spooled (status: only the newest matters, and it is retained).
    No,
    /// Spooled; evicted first when the spool is full.
    Batch,
    /// Spooled; evicted last.
    Alert,
}

/// Batches, encodes and publishes; owns the MQTT client.
pub struct Publisher {
    cfg: AgentConfig,
    topics: Topics,
    codec: Codec,
    metrics: Arc<Metrics>,
    client: AsyncClient,
    seq: seq::Sequence,
    started_ms: i64,
    batches: Vec<PendingBatch>,
    link: SharedLink,
    /// Spool ids below this were handed to the client in this run.
    cursor: u64,
    /// When [`Publisher::pump`] last looked for overdue records.
    last_scan: Option<Instant>,
}

/// How often [`Publisher::pump`] looks for records to send again at most.
const RESEND_SCAN: Duration = Duration::from_millis(250);

/// Size at which the spool starts a new segment file.
const SEGMENT_BYTES: u64 = 8 << 20;

/// MQTT options of the agent, with its last will.
fn mqtt_options(
    cfg: &AgentConfig,
    topics: &Topics,
    codec: &Codec,
    started_ms: i64,
) -> Result<MqttOptions, PublishError> {
    let b = &cfg.broker;
    let mut o = MqttOptions::new(cfg.client_id(), b.host.clone(), b.port);
    o.set_keep_alive(Duration::from_secs(b.keep_alive_s));
    o.set_max_packet_size(8 << 20, 8 << 20);
    o.set_clean_session(false);
    if b.tls {
        o.set_transport(sharpeyes_common::tls::mqtt_transport(b.ca_file.as_deref())?);
    }
    if let (Some(u), Some(p)) = (&b.username, &b.password) {
        o.set_credentials(u.clone(), p.resolve("broker.password")?);
    }
    let will = Envelope::new(
        cfg.agent_id.clone(),
        0,
        started_ms,
        Body::Status(AgentStatus {
            site: cfg.site.clone(),
            online: false,
            version: env!("CARGO_PKG_VERSION").into(),
            started_ms,
            cameras: vec![],
            watchlist_version: None,
            counters: Default::default(),
        }),
    );
    o.set_last_will(LastWill::new(
        topics.status(&cfg.site, &cfg.agent_id),
        codec.encode(&will)?,
        QoS::AtLeastOnce,
        true,
    ));
    Ok(o)
}

/// Connects (lazily: the event loop connects on first poll) and returns the publisher and
/// the event loop to drive with [`drive`].
pub fn connect(
    cfg: &AgentConfig,
    metrics: Arc<Metrics>,
) -> Result<(Publisher, EventLoop), PublishError> {
    connect_at(cfg, metrics, sharpeyes_wire::now_ms())
}

/// [`connect`] with the wall clock reading `started_ms` (tests: a clock set back).
pub fn connect_at(
    cfg: &AgentConfig,
    metrics: Arc<Metrics>,
    started_ms: i64,
) -> Result<(Publisher, EventLoop), PublishError> {
    let topics = Topics::new(&cfg.broker.topic_prefix);
    let codec = Codec::new(cfg.publish.zstd_level);
    let opts = mqtt_options(cfg, &topics, &codec, started_ms)?;
    let (client, eventloop) = AsyncClient::new(opts, cfg.publish.max_pending);
    let p = &cfg.publish;
    let dir = p.spool_dir.join(&cfg.agent_id);
    let mut spool = spool::Spool::open(
        &dir,
        spool::SpoolLimits {
            max_bytes: p.spool_max_bytes,
            segment_bytes: SEGMENT_BYTES,
            fsync: p.fsync,
        },
    )?;
    adopt_older_records(&mut spool, &metrics)?;
    let floor = spool
        .pending()
        .into_iter()
        .filter_map(|id| spool.seq_of(id))
        .max()
        .unwrap_or(0);
    let seq = seq::Sequence::open(&dir, started_ms, floor)?;
    if !spool.is_empty() || spool.cut_bytes() > 0 {
        info!(
            pending = spool.len(),
            bytes = spool.pending_bytes(),
            cut_bytes = spool.cut_bytes(),
            dir = %dir.display(),
            "spool holds batches from a previous run; replaying them"
        );
    }
    metrics.spool_gauges(&spool);
    let link = Arc::new(Mutex::new(Link {
        spool,
        handed: VecDeque::new(),
        by_pkid: HashMap::new(),
        out: BTreeMap::new(),
        ack_timeout: Duration::from_millis(p.ack_timeout_ms),
    }));
    let publisher = Publisher {
        cfg: cfg.clone(),
        topics,
        codec,
        metrics,
        client,
        seq,
        started_ms,
        batches: (0..cfg.cameras.len())
            .map(|_| PendingBatch::default())
            .collect(),
        link,
        cursor: 0,
        last_scan: None,
    };
    Ok((publisher, eventloop))
}

/// Records of an older spool carry no `seq` in their header (spool invariant 6): read it from
/// the payload so acknowledgements find them. One that does not decode could never be
/// acknowledged (the aggregator cannot tell whose it is): it is dropped, counted as evicted.
fn adopt_older_records(spool: &mut spool::Spool, metrics: &Metrics) -> Result<(), PublishError> {
    let codec = Codec::default();
    for id in spool.pending_without_seq() {
        match spool.read(id).map(|r| codec.decode(&r.payload)) {
            Ok(Ok(env)) => spool.set_seq(id, env.seq)?,
            Ok(Err(e)) => {
                warn!(id, error = %e, "an undecodable record in the spool is dropped");
                spool.ack(id)?;
                inc(&metrics.spool_evicted);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// After `stop`, polls the event loop until the DISCONNECT that [`Publisher::close`] queued
/// has gone out, at most 2 s. What was queued before it (the final `online: false` status)
/// goes out first; and a connection closed without DISCONNECT makes the broker publish the
/// last will (retained, no watchlist version) over that status. Stops early on a connection
/// error (then there is nothing to send on).
async fn send_queued_disconnect(eventloop: &mut EventLoop) {
    let sent = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), sent).await;
}

/// Drives the MQTT event loop until `stop`: links PUBACKs, applies the aggregator's
/// acknowledgements, reconnects with back-off. `connected` receives a message on every
/// (re)connection.
pub async fn drive(
    mut eventloop: EventLoop,
    cfg: AgentConfig,
    metrics: Arc<Metrics>,
    link: SharedLink,
    connected: mpsc::UnboundedSender<()>,
    watchlists: tokio::sync::watch::Sender<Option<Arc<crate::rules::PreparedWatchlists>>>,
    stop: CancellationToken,
) {
    let codec = Codec::default();
    let watchlist_topic = Topics::new(&cfg.broker.topic_prefix).watchlists();
    let ack_topic = Topics::new(&cfg.broker.topic_prefix).acks(&cfg.agent_id);
    let min = Duration::from_millis(cfg.broker.reconnect_min_ms);
    let max = Duration::from_millis(cfg.broker.reconnect_max_ms);
    let mut backoff = min;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => {
                send_queued_disconnect(&mut eventloop).await;
                break;
            }
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(host = %cfg.broker.host, port = cfg.broker.port, "connected to broker");
                metrics
                    .broker_connected
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                backoff = min;
                lock(&link).reconnected(Instant::now());
                let _ = connected.send(());
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    warn!(
                        "the broker refused a subscription: its ACL must let each agent read \
                         {{prefix}}/config/# and {{prefix}}/acks/{{agent}} (configs/mosquitto/acl); \
                         without acknowledgements the agent keeps its spool and re-sends"
                    );
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic == ack_topic {
                    receive_acks(&codec, &p.payload, &link, &metrics);
                } else if p.topic == watchlist_topic {
                    receive_watchlists(&codec, &p.payload, &watchlists, &metrics);
                } else {
                    warn!(topic = %p.topic, "message on a topic the agent did not subscribe to; ignored");
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                let mut l = lock(&link);
                // A packet id already linked is a retransmission.
                if !l.by_pkid.contains_key(&pkid)
                    && let Some(entry) = l.handed.pop_front()
                {
                    l.by_pkid.insert(pkid, entry);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let mut l = lock(&link);
                if let Some(entry) = l.by_pkid.remove(&ack.pkid) {
                    inc(&metrics.published);
                    // In flight: the record stays in the spool until the aggregator
                    // acknowledges it (an acknowledged or evicted one is no longer there).
                    if let Some(id) = entry {
                        l.pubacked(id, Instant::now());
                    }
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
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

/// Applies an acknowledgement message: the records whose `seq`s it names leave the spool.
/// Anything else on the topic is counted and ignored (the records stay and are re-sent).
fn receive_acks(codec: &Codec, payload: &[u8], link: &SharedLink, metrics: &Metrics) {
    match codec.decode(payload) {
        Ok(Envelope {
            body: Body::Acks(acks),
            ..
        }) => {
            inc(&metrics.acks_received);
            let mut l = lock(link);
            match l.acknowledged(&acks) {
                Ok(n) => add(&metrics.acked, n),
                Err(e) => {
                    warn!(error = %e, "could not remove acknowledged records from the spool; they are sent again")
                }
            }
            metrics.spool_gauges(&l.spool);
        }
        Ok(env) => {
            inc(&metrics.acks_rejected);
            warn!(
                kind = env.body.kind(),
                "not an acknowledgement on the acknowledgement topic; ignored"
            );
        }
        Err(e) => {
            inc(&metrics.acks_rejected);
            warn!(error = %e, bytes = payload.len(), "undecodable acknowledgement; ignored");
        }
    }
}

/// Decodes a watchlists message and hands it to the analysis stage (prepared once for all
/// cameras); anything else is counted and ignored, keeping the watchlists applied.
fn receive_watchlists(
    codec: &Codec,
    payload: &[u8],
    feed: &tokio::sync::watch::Sender<Option<Arc<crate::rules::PreparedWatchlists>>>,
    metrics: &Metrics,
) {
    match codec.decode(payload) {
        Ok(Envelope {
            body: Body::Watchlists(w),
            ..
        }) => {
            // Applied even when its version is the one held (the retained copy again after a
            // reconnect, or a rebuilt aggregator store counting from 0 again): re-applying
            // the same lists keeps every open alert.
            let prepared = crate::rules::PreparedWatchlists::new(&w);
            info!(version = w.version, summary = ?prepared.summary(), "watchlists received");
            feed.send_replace(Some(Arc::new(prepared)));
        }
        Ok(env) => {
            inc(&metrics.watchlists_rejected);
            warn!(
                kind = env.body.kind(),
                "not a watchlist on the watchlist topic; ignored"
            );
        }
        Err(e) => {
            inc(&metrics.watchlists_rejected);
            warn!(error = %e, bytes = payload.len(), "undecodable watchlist message; the previous watchlists stay");
        }
    }
}

impl Publisher {
    fn next_seq(&mut self) -> Result<u64, PublishError> {
        Ok(self.seq.next_seq()?)
    }

    /// Adds one analysed frame's outputs to its camera's batch and publishes its alerts at
    /// once (spooled, evicted last).
    pub fn add(&mut self, a: Analysed) -> Result<(), PublishError> {
        for alert in a.alerts {
            let topic = self
                .topics
                .alerts(&self.cfg.site, &self.cfg.agent_id, &alert.camera);
            info!(alert = %alert.alert_id, kind = alert.kind.as_str(), priority = alert.priority.as_str(), summary = %alert.summary, "alert");
            self.send(topic, Body::Alert(alert), false, Spool::Alert)?;
            inc(&self.metrics.alerts);
        }
        let b = &mut self.batches[a.camera];
        b.frame_w = a.frame_w;
        b.frame_h = a.frame_h;
        if let Some(t) = a.capture_ms {
            b.from_ms.get_or_insert(t);
            b.to_ms = b.to_ms.max(t);
            b.frames += 1;
        }
        for Output {
            class,
            track: o,
            embedding,
            plate,
            link,
            thumb,
        } in a.outputs
        {
            b.from_ms.get_or_insert(o.ts_ms);
            b.to_ms = b.to_ms.max(o.ts_ms);
            b.updates.push(TrackUpdate {
                track: o.track,
                class,
                event: o.event,
                ts_ms: o.ts_ms,
                bbox: QBox::from_pixels(o.bbox, a.frame_w, a.frame_h),
                score: o.score,
                embedding,
                plate,
                link,
                thumb,
            });
        }
        Ok(())
    }

    /// Publishes every camera batch that holds updates.
    pub fn flush(&mut self) -> Result<(), PublishError> {
        let t0 = std::time::Instant::now();
        let r = self.flush_batches();
        crate::metrics::add(&self.metrics.publish_us, t0.elapsed().as_micros() as u64);
        r
    }

    fn flush_batches(&mut self) -> Result<(), PublishError> {
        for cam in 0..self.batches.len() {
            if self.batches[cam].updates.is_empty() {
                continue;
            }
            let b = std::mem::take(&mut self.batches[cam]);
            let camera = self.cfg.cameras[cam].id.clone();
            let n = b.updates.len() as u64;
            let body = Body::Tracks(TrackBatch {
                site: self.cfg.site.clone(),
                camera: camera.clone(),
                frame_w: b.frame_w,
                frame_h: b.frame_h,
                from_ms: b.from_ms.unwrap_or(b.to_ms),
                to_ms: b.to_ms,
                frames: b.frames,
                updates: b.updates,
            });
            let topic = self
                .topics
                .tracks(&self.cfg.site, &self.cfg.agent_id, &camera);
            let len = self.send(topic, body, false, Spool::Batch)?;
            add(&self.metrics.track_updates, n);
            add(&self.metrics.track_bytes, len as u64);
        }
        Ok(())
    }

    /// Publishes the retained status.
    pub fn publish_status(&mut self, online: bool) -> Result<(), PublishError> {
        let body = Body::Status(AgentStatus {
            site: self.cfg.site.clone(),
            online,
            version: env!("CARGO_PKG_VERSION").into(),
            started_ms: self.started_ms,
            cameras: self.metrics.cameras.iter().map(|c| c.status()).collect(),
            watchlist_version: self.metrics.watchlist_version(),
            counters: self.metrics.counters(),
        });
        let topic = self.topics.status(&self.cfg.site, &self.cfg.agent_id);
        self.send(topic, body, true, Spool::No).map(|_| ())
    }

    /// Encodes one message; a spooled one is appended to the spool, then everything the spool
    /// holds that the client has not got yet is handed over. Returns the payload size.
    fn send(
        &mut self,
        topic: String,
        body: Body,
        retain: bool,
        spool: Spool,
    ) -> Result<usize, PublishError> {
        let seq = self.next_seq()?;
        let env = Envelope::new(
            self.cfg.agent_id.clone(),
            seq,
            sharpeyes_wire::now_ms(),
            body,
        );
        let payload = match self.codec.encode(&env) {
            Ok(p) => p,
            Err(e) => {
                inc(&self.metrics.encode_errors);
                return Err(e.into());
            }
        };
        let len = payload.len();
        if spool != Spool::No {
            let mut l = lock(&self.link);
            let before = l.spool.evicted();
            l.spool
                .append(&topic, &payload, spool == Spool::Alert, Some(seq))?;
            inc(&self.metrics.spooled);
            let evicted = l.spool.evicted() - before;
            if evicted > 0 {
                add(&self.metrics.spool_evicted, evicted);
                warn!(evicted, "spool full: the oldest batches were evicted");
            }
            drop(l);
            self.pump()?;
        } else {
            let mut l = lock(&self.link);
            match self
                .client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            {
                Ok(()) => {
                    inc(&self.metrics.sent);
                    l.handed.push_back(None);
                }
                Err(e) => {
                    inc(&self.metrics.dropped_pending);
                    warn!(error = %e, seq, "MQTT client queue full; status message dropped");
                }
            }
        }
        Ok(len)
    }

    /// Hands spooled records the client has not got yet to it, oldest first, then (while
    /// connected) those whose acknowledgement is overdue, until its queue is full (the rest
    /// wait in the spool for the next call).
    pub fn pump(&mut self) -> Result<(), PublishError> {
        let mut l = lock(&self.link);
        let now = Instant::now();
        self.metrics.spool_gauges(&l.spool);
        loop {
            let ids = l.spool.pending_from(self.cursor, 64);
            if ids.is_empty() {
                break;
            }
            for id in ids {
                if !self.hand(&mut l, id, now)? {
                    return Ok(());
                }
                self.cursor = id + 1;
            }
        }
        // Re-sends wait for a connection (what the client holds it transmits itself), and
        // the scan over what is outstanding runs at most every RESEND_SCAN.
        if self.metrics.broker_connected.load(Ordering::Relaxed) == 0
            || self.last_scan.is_some_and(|t| now - t < RESEND_SCAN)
        {
            return Ok(());
        }
        self.last_scan = Some(now);
        for id in l.due(now) {
            if !self.hand(&mut l, id, now)? {
                break;
            }
            inc(&self.metrics.resent);
        }
        Ok(())
    }

    /// Hands spool record `id` to the client; false when its queue is full.
    fn hand(&self, l: &mut Link, id: u64, now: Instant) -> Result<bool, PublishError> {
        let rec = l.spool.read(id)?;
        match self
            .client
            .try_publish(rec.topic, QoS::AtLeastOnce, false, rec.payload)
        {
            Ok(()) => {
                inc(&self.metrics.sent);
                l.handed.push_back(Some(id));
                l.handed_over(id, now);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Subscribes to this agent's acknowledgement topic (again on every connection: a broker
    /// that restarted lost the subscription).
    pub fn subscribe_acks(&mut self) {
        let topic = self.topics.acks(&self.cfg.agent_id);
        if let Err(e) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
            warn!(error = %e, "could not subscribe to the acknowledgements; retried at the next connection");
        }
    }

    /// Subscribes to the retained watchlists (again on every connection: the broker then
    /// sends the current copy).
    pub fn subscribe_watchlists(&mut self) {
        let topic = self.topics.watchlists();
        if let Err(e) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
            warn!(error = %e, "could not subscribe to the watchlists; retried at the next connection");
        }
    }

    /// The link the event loop needs ([`drive`]).
    pub fn link(&self) -> SharedLink {
        self.link.clone()
    }

    /// Payloads not yet acknowledged end to end (spooled ones until an aggregator
    /// acknowledged them; status messages until the broker did).
    pub fn unacked(&self) -> u64 {
        lock(&self.link).unacked() as u64
    }

    /// Waits (up to `timeout`) until every sent payload is acknowledged, re-sending overdue
    /// ones, then disconnects.
    pub async fn close(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_pump = tokio::time::Instant::now();
        while self.unacked() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if last_pump.elapsed() >= Duration::from_millis(200) {
                last_pump = tokio::time::Instant::now();
                if let Err(e) = self.pump() {
                    warn!(error = %e, "could not re-send from the spool while stopping");
                }
            }
        }
        if self.unacked() > 0 {
            warn!(
                unacked = self.unacked(),
                "stopping with payloads no aggregator has acknowledged yet (spooled ones are sent at the next start)"
            );
        }
        let _ = self.client.disconnect().await;
    }
}

/// The publisher's task: batches what analysis sends, publishes on a timer, keeps the status
/// fresh, and on the end of input (analysis finished) flushes, publishes `online: false`
/// and waits for the broker's acknowledgements.
pub async fn publish_loop(
    mut publisher: Publisher,
    mut input: mpsc::Receiver<Analysed>,
    mut connected: mpsc::UnboundedReceiver<()>,
) -> Result<(), PublishError> {
    let cfg = publisher.cfg.clone();
    let mut batch_tick =
        tokio::time::interval(Duration::from_millis(cfg.publish.batch_interval_ms));
    let mut status_tick = tokio::time::interval(Duration::from_secs(cfg.publish.status_interval_s));
    batch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    async {
        // Subscribed before anything is sent, so no acknowledgement goes unheard.
        publisher.subscribe_acks();
        publisher.pump()?;
        loop {
            tokio::select! {
                a = input.recv() => match a {
                    Some(a) => publisher.add(a)?,
                    None => break,
                },
                _ = batch_tick.tick() => {
                    publisher.flush()?;
                    publisher.pump()?;
                }
                _ = status_tick.tick() => publisher.publish_status(true)?,
                Some(()) = connected.recv() => {
                    publisher.subscribe_acks();
                    publisher.subscribe_watchlists();
                    publisher.publish_status(true)?;
                    publisher.pump()?;
                }
            }
        }
        publisher.flush()?;
        publisher.publish_status(false)?;
        debug!(
            unacked = publisher.unacked(),
            "input finished; waiting for acknowledgements"
        );
        publisher.close(Duration::from_secs(10)).await;
        Ok(())
    }
    .instrument(info_span!("publish", agent = %cfg.agent_id))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(dir: &std::path::Path) -> Link {
        Link {
            spool: spool::Spool::open(
                dir,
                spool::SpoolLimits {
                    max_bytes: 1 << 20,
                    segment_bytes: 1 << 16,
                    fsync: spool::Fsync::Never,
                },
            )
            .unwrap(),
            handed: VecDeque::new(),
            by_pkid: HashMap::new(),
            out: BTreeMap::new(),
            ack_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn unacknowledged_records_are_due_after_the_timeout_with_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = link(dir.path());
        let a = l.spool.append("t", b"a", false, Some(10)).unwrap();
        let b = l.spool.append("t", b"b", true, Some(11)).unwrap();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        l.handed_over(a, t0);
        l.handed_over(b, t0);
        assert!(l.due(t0 + 9 * s).is_empty());
        assert_eq!(l.due(t0 + 10 * s), vec![a, b]);
        // The broker took `a` at 5 s: its wait for the aggregator starts there.
        l.pubacked(a, t0 + 5 * s);
        assert_eq!(l.due(t0 + 14 * s), vec![b]);
        assert_eq!(l.due(t0 + 15 * s), vec![a, b]);
        // A reconnect makes what the broker took due at once, not what the client holds.
        l.reconnected(t0 + 6 * s);
        assert_eq!(l.due(t0 + 6 * s), vec![a]);
        // Each re-send doubles the wait, up to 8×.
        for (n, wait) in [(2, 20), (3, 40), (4, 80), (5, 80)] {
            l.handed_over(a, t0);
            assert_eq!(l.out[&a].sends, n);
            assert!(!l.due(t0 + (wait - 1) * s).contains(&a));
            assert!(l.due(t0 + wait * s).contains(&a));
        }
        // The acknowledgement of seq 10 (and of seqs the agent does not hold) removes `a`.
        let acks = sharpeyes_wire::Acks {
            ranges: vec![[1, 10], [12, u64::MAX]],
        };
        assert_eq!(l.acknowledged(&acks).unwrap(), 1);
        assert_eq!(l.spool.pending(), vec![b]);
        assert_eq!(l.unacked(), 1);
        assert_eq!(l.due(t0 + 1000 * s), vec![b]);
        // A record gone from the spool otherwise (evicted) is forgotten.
        l.spool.ack(b).unwrap();
        assert!(l.due(t0 + 1000 * s).is_empty() && l.out.is_empty());
    }
}
