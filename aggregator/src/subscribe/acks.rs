//! End-to-end acknowledgements to the agents.
//!
//! An agent keeps every track batch and alert in its disk spool until an aggregator says the
//! message is in the store: the broker's PUBACK only means the broker took it, and the
//! embedded broker keeps what it took in memory (an aggregator crash would lose it). After
//! each committed transaction the writer reports every `(agent, seq)` it is done with to an
//! [`AckPublisher`] ([`AckPublisher::done`], or [`AckPublisher::committed`] for a batch of
//! decoded messages), then calls [`AckPublisher::flush`], which publishes one
//! [`sharpeyes_wire::Acks`] per agent on `{prefix}/acks/{agent}` (QoS 1, not retained), the
//! seqs compacted into ranges.
//!
//! "Done" means the agent must not send it again: stored now, found stored already (a replay
//! after a lost acknowledgement), and likewise anything the writer has settled for good, such
//! as a message dead-lettered or rejected for a reason of its own whose agent and seq are
//! known. Never report a message before the transaction holding it committed: the agent then
//! deletes its only other copy.
//!
//! Several aggregators on one PostgreSQL store: whichever committed a message acknowledges
//! it. An acknowledgement that gets lost (the aggregator dies between commit and publish, the
//! broker restarts) costs a re-send, which the store recognises as a duplicate and
//! acknowledges again.

use std::collections::BTreeMap;
use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use sharpeyes_wire::{Acks, Body, Codec, Envelope, Topics};
use tracing::{debug, warn};

use crate::metrics::{Metrics, inc};

/// Ranges per acknowledgement message at most (a few KiB; a transaction of
/// `store.max_batch` messages of one agent needs at most that many ranges).
const MAX_RANGES: usize = 4096;

/// Collects what the writer is done with and publishes it to the agents.
pub struct AckPublisher {
    client: AsyncClient,
    topics: Topics,
    codec: Codec,
    /// The envelope's sender: the aggregator's MQTT client id.
    sender: String,
    /// Counts this aggregator's acknowledgement messages (the envelope's `seq`).
    seq: u64,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    done: BTreeMap<String, Vec<u64>>,
}

impl AckPublisher {
    /// Publishes with `client` under `topics`' prefix, as `sender` (the aggregator's client
    /// id); `runtime` waits for room when the client's queue is full.
    pub fn new(
        client: AsyncClient,
        topics: Topics,
        sender: &str,
        runtime: tokio::runtime::Handle,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            topics,
            codec: Codec::default(),
            sender: sender.to_string(),
            seq: 0,
            runtime,
            metrics,
            done: BTreeMap::new(),
        }
    }

    /// The writer is done with `(agent, seq)` (committed: stored or duplicate; or settled
    /// otherwise for good): acknowledged at the next [`flush`](Self::flush).
    pub fn done(&mut self, agent: &str, seq: u64) {
        match self.done.get_mut(agent) {
            Some(v) => v.push(seq),
            None => {
                self.done.insert(agent.to_string(), vec![seq]);
            }
        }
    }

    /// [`done`](Self::done) for every message of a committed transaction that its agent
    /// spools (track batches and alerts; a status is never spooled, so never acknowledged).
    pub fn committed<'a>(&mut self, envelopes: impl IntoIterator<Item = &'a Envelope>) {
        for env in envelopes {
            if matches!(env.body, Body::Tracks(_) | Body::Alert(_)) {
                self.done(&env.agent, env.seq);
            }
        }
    }

    /// Publishes what was reported since the last flush: one message per agent (more for a
    /// very fragmented set). An agent id that cannot be a topic level is skipped (no broker
    /// would have delivered a message of it); a message that cannot be handed to the client
    /// is counted and left to the agent's re-send.
    pub fn flush(&mut self) {
        let done = std::mem::take(&mut self.done);
        for (agent, seqs) in done {
            if Topics::check_id("agent", &agent).is_err() {
                debug!(%agent, "no acknowledgement for an agent id that is no topic level");
                continue;
            }
            let acks = Acks::from_seqs(seqs);
            for ranges in acks.ranges.chunks(MAX_RANGES) {
                self.publish(&agent, ranges);
            }
        }
    }

    fn publish(&mut self, agent: &str, ranges: &[[u64; 2]]) {
        self.seq += 1;
        let count = ranges.iter().fold(0u64, |n, [a, b]| {
            n.saturating_add((b - a).saturating_add(1))
        });
        let env = Envelope::new(
            self.sender.clone(),
            self.seq,
            sharpeyes_wire::now_ms(),
            Body::Acks(Acks {
                ranges: ranges.to_vec(),
            }),
        );
        let payload = match self.codec.encode(&env) {
            Ok(p) => p,
            Err(e) => {
                inc(&self.metrics.agent_acks_failed);
                warn!(error = %e, %agent, "cannot encode an acknowledgement; the agent sends those messages again");
                return;
            }
        };
        let topic = self.topics.acks(agent);
        let sent =
            match self
                .client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            {
                Ok(()) => Ok(()),
                Err(_) => self.runtime.block_on(self.client.publish(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )),
            };
        match sent {
            Ok(()) => {
                inc(&self.metrics.agent_acks_published);
                self.metrics
                    .agent_acked
                    .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                inc(&self.metrics.agent_acks_failed);
                warn!(error = %e, %agent, "cannot publish an acknowledgement; the agent sends those messages again");
            }
        }
    }
}
