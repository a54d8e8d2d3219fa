//! Publish: batches each camera's track outputs (every `batch_interval_ms`), encodes them with
//! the wire codec and publishes them at QoS 1; keeps the retained status topic current (with
//! an `online: false` last will); reconnects to the broker with exponential back-off.
//!
//! Every track batch goes to the disk spool (`spool`) before it is handed to the MQTT client,
//! and leaves the spool when the broker's PUBACK for it arrives: broker outages of any length
//! (up to the spool's byte cap) and agent restarts lose nothing; a batch whose PUBACK was lost
//! is sent again and the aggregator drops the duplicate by `(agent, seq)`. Status messages are
//! not spooled (only the newest matters; it is retained).
//!
//! Linking PUBACKs to spool records: records are handed to the client in spool order, and the
//! event loop reports each first transmission as `Outgoing::Publish(pkid)` in that same order;
//! a retransmission after a reconnect reuses its packet id, which is already linked.
//!
//! Sequence numbers: `seq = agent start time (UTC ms) × 1000 + n`, so they stay monotonic
//! across restarts without any state on disk (up to 1000 messages per ms of uptime).

pub mod spool;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
}

/// What links spool records to the MQTT client's packets; shared by the publisher and the
/// event loop.
#[derive(Debug)]
pub struct Link {
    spool: spool::Spool,
    /// Handed to the client, not yet transmitted: a spool id, or None for a status message.
    handed: VecDeque<Option<u64>>,
    /// Transmitted, awaiting PUBACK, by packet id.
    by_pkid: HashMap<u16, Option<u64>>,
}

impl Link {
    /// Payloads not yet acknowledged by the broker: spooled records plus status messages
    /// in flight.
    pub fn unacked(&self) -> usize {
        self.spool.len()
            + self.handed.iter().filter(|e| e.is_none()).count()
            + self.by_pkid.values().filter(|e| e.is_none()).count()
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
    seq: u64,
    started_ms: i64,
    batches: Vec<PendingBatch>,
    link: SharedLink,
    /// Spool ids below this were handed to the client in this run.
    cursor: u64,
}

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
        o.set_credentials(u.clone(), p.clone());
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
    let topics = Topics::new(&cfg.broker.topic_prefix);
    let codec = Codec::new(cfg.publish.zstd_level);
    let started_ms = sharpeyes_wire::now_ms();
    let opts = mqtt_options(cfg, &topics, &codec, started_ms)?;
    let (client, eventloop) = AsyncClient::new(opts, cfg.publish.max_pending);
    let p = &cfg.publish;
    let dir = p.spool_dir.join(&cfg.agent_id);
    let spool = spool::Spool::open(
        &dir,
        spool::SpoolLimits {
            max_bytes: p.spool_max_bytes,
            segment_bytes: SEGMENT_BYTES,
            fsync: p.fsync,
        },
    )?;
    if !spool.is_empty() || spool.cut_bytes() > 0 {
        info!(
            pending = spool.len(),
            bytes = spool.pending_bytes(),
            cut_bytes = spool.cut_bytes(),
            dir = %dir.display(),
            "spool holds batches from a previous run; replaying them"
        );
    }
    let link = Arc::new(Mutex::new(Link {
        spool,
        handed: VecDeque::new(),
        by_pkid: HashMap::new(),
    }));
    let publisher = Publisher {
        cfg: cfg.clone(),
        topics,
        codec,
        metrics,
        client,
        seq: started_ms as u64 * 1000,
        started_ms,
        batches: (0..cfg.cameras.len())
            .map(|_| PendingBatch::default())
            .collect(),
        link,
        cursor: 0,
    };
    Ok((publisher, eventloop))
}

/// Drives the MQTT event loop until `stop`: counts PUBACKs, reconnects with back-off.
/// `connected` receives a message on every (re)connection.
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
    let min = Duration::from_millis(cfg.broker.reconnect_min_ms);
    let max = Duration::from_millis(cfg.broker.reconnect_max_ms);
    let mut backoff = min;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(host = %cfg.broker.host, port = cfg.broker.port, "connected to broker");
                metrics
                    .broker_connected
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                backoff = min;
                let _ = connected.send(());
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic == watchlist_topic {
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
                    // An evicted record may still be acknowledged: nothing to remove then.
                    if let Some(id) = entry
                        && let Err(e) = l.spool.ack(id)
                        && !matches!(e, spool::SpoolError::Unknown(_))
                    {
                        warn!(error = %e, "could not remove an acknowledged batch from the spool");
                    }
                    metrics.spool_gauges(&l.spool);
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
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
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
        let seq = self.next_seq();
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
            l.spool.append(&topic, &payload, spool == Spool::Alert)?;
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

    /// Hands spooled records the client has not got yet to it, oldest first, until its queue
    /// is full (the rest wait in the spool for the next call).
    pub fn pump(&mut self) -> Result<(), PublishError> {
        let mut l = lock(&self.link);
        loop {
            let ids = l.spool.pending_from(self.cursor, 64);
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let rec = l.spool.read(id)?;
                match self
                    .client
                    .try_publish(rec.topic, QoS::AtLeastOnce, false, rec.payload)
                {
                    Ok(()) => {
                        inc(&self.metrics.sent);
                        l.handed.push_back(Some(id));
                        self.cursor = id + 1;
                    }
                    Err(_) => return Ok(()),
                }
            }
        }
        self.metrics.spool_gauges(&l.spool);
        Ok(())
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

    /// Payloads not yet acknowledged by the broker (spooled ones included).
    pub fn unacked(&self) -> u64 {
        lock(&self.link).unacked() as u64
    }

    /// Waits (up to `timeout`) until every sent payload is acknowledged, then disconnects.
    pub async fn close(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.unacked() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.unacked() > 0 {
            warn!(
                unacked = self.unacked(),
                "stopping with payloads the broker has not acknowledged (spooled ones are sent at the next start)"
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
                    publisher.subscribe_watchlists();
                    publisher.publish_status(true)?;
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
