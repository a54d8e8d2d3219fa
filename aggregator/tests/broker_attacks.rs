//! Attacks on the embedded broker's gate by clients that have a valid log-in: a real
//! aggregator with its embedded broker, a password file and the shipped ACL, real MQTT
//! clients (rumqttc). Each attack is refused and counted, nothing is delivered to the
//! attacker, and every batch a legitimate agent publishes meanwhile is stored.
//!
//! - an agent connecting with the aggregator's client id (with `clean_session = false`, it
//!   would take over the aggregator's session) or another agent's id;
//! - an agent joining the aggregator's shared-subscription group (rumqttd 0.20 keys groups by
//!   name, so any readable filter would do);
//! - more connections than `broker.max_connections`, a CONNECT over
//!   `broker.max_connect_bytes`;
//! - a client publishing faster than the broker acknowledges (the in-flight cap pushes back,
//!   nothing is lost).

mod common;

use common::{free_port, wait};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::broker::passwd;
use aggregator::metrics::get;
use aggregator::store::Store;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
};
use sharpeyes_wire::{
    Body, Codec, Envelope, ObjectClass, QBox, Topics, TrackBatch, TrackEvent, TrackUpdate,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORDS: [(&str, &str); 3] = [
    ("agent-1", "agent-1-secret"),
    ("agent-2", "agent-2-secret"),
    ("aggregator", "aggregator-secret"),
];

fn password(user: &str) -> &'static str {
    PASSWORDS.iter().find(|(u, _)| *u == user).unwrap().1
}

/// An aggregator configuration with the embedded broker behind the gate: the users above,
/// the shipped ACL, the default client id (`aggregator-1`) and shared group (`aggregators`).
fn config(dir: &std::path::Path) -> AggregatorConfig {
    let passwd_file = dir.join("passwd");
    for (user, pw) in PASSWORDS {
        passwd::set_password(&passwd_file, user, pw).unwrap();
    }
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.broker.password_file = Some(passwd_file);
    cfg.broker.acl_file =
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/mosquitto/acl"));
    cfg.store.path = dir.join("agg.db");
    cfg.ops.enabled = false;
    cfg
}

fn port(cfg: &AggregatorConfig) -> u16 {
    cfg.broker.listen.port()
}

fn options(port: u16, user: &str, client_id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(user, password(user));
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A track batch of `agent` (site `s1`, camera `cam-1`) with sequence number `seq`.
fn batch(agent: &str, seq: u64) -> Vec<u8> {
    let t = sharpeyes_wire::now_ms() - 60_000 + seq as i64;
    Codec::default()
        .encode(&Envelope::new(
            agent,
            seq,
            t,
            Body::Tracks(TrackBatch {
                site: "s1".into(),
                camera: "cam-1".into(),
                frame_w: 1920,
                frame_h: 1080,
                from_ms: t,
                to_ms: t,
                frames: 1,
                updates: vec![TrackUpdate {
                    track: seq,
                    class: ObjectClass::Face,
                    event: TrackEvent::Start,
                    ts_ms: t,
                    bbox: QBox::from_pixels([100.0, 100.0, 160.0, 170.0], 1920, 1080),
                    score: 0.9,
                    embedding: None,
                    plate: None,
                    link: None,
                    thumb: None,
                }],
            }),
        ))
        .unwrap()
}

/// A legitimate agent: connected, its event loop driven in the background, its PUBACKs and
/// any loss of its connection counted.
struct Agent {
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
    name: String,
}

impl Agent {
    async fn connect(port: u16, user: &str, client_id: &str) -> Agent {
        let mut o = options(port, user, client_id);
        o.set_clean_session(false);
        let (client, mut el) = AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicU64::new(0));
        let (a, l, c) = (acked.clone(), lost.clone(), connected.clone());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => {
                        l.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        assert!(
            wait(Duration::from_secs(10), || connected
                .load(Ordering::Relaxed)
                == 1)
            .await,
            "{user} as {client_id} did not connect"
        );
        Agent {
            client,
            acked,
            lost,
            name: user.to_string(),
        }
    }

    /// Publishes batches `seqs` (QoS 1) and waits for their PUBACKs.
    async fn publish(&self, seqs: std::ops::RangeInclusive<u64>) {
        let before = self.acked.load(Ordering::Relaxed);
        let n = seqs.clone().count() as u64;
        let topic = Topics::default().tracks("s1", &self.name, "cam-1");
        for seq in seqs {
            self.client
                .publish(&topic, QoS::AtLeastOnce, false, batch(&self.name, seq))
                .await
                .unwrap();
        }
        assert!(
            wait(Duration::from_secs(30), || self
                .acked
                .load(Ordering::Relaxed)
                >= before + n)
            .await,
            "{} of {n} acknowledged",
            self.acked.load(Ordering::Relaxed) - before
        );
    }

    /// Times its connection was lost.
    fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// What a hostile client got: how its connection ended and how many publishes reached it.
#[derive(Debug, Default)]
struct Attack {
    refused: Option<ConnectReturnCode>,
    dropped: bool,
    subscribed: bool,
    received: u64,
}

/// A hostile client running in the background: connected with `o`, subscribed to
/// `filters`; `ready` once the broker answered (refused, dropped, or CONNACK and every
/// SUBACK), and it keeps reading until it is dropped or [`Hostile::end`].
struct Hostile {
    ready: Option<tokio::sync::oneshot::Receiver<()>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Attack>,
}

impl Hostile {
    fn start(o: MqttOptions, filters: &[&str]) -> Hostile {
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let (client, mut el) = AsyncClient::new(o, 100);
            for f in &filters {
                client.subscribe(f, QoS::AtLeastOnce).await.unwrap();
            }
            let mut tx = Some(tx);
            let mut a = Attack::default();
            let mut subacks = 0;
            loop {
                let ev = tokio::select! {
                    _ = s.cancelled() => break,
                    ev = el.poll() => ev,
                };
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) if filters.is_empty() => {
                        if let Some(t) = tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subacks += 1;
                        if subacks == filters.len() {
                            a.subscribed = true;
                            if let Some(t) = tx.take() {
                                let _ = t.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(_))) => a.received += 1,
                    Ok(_) => {}
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        a.refused = Some(code);
                        break;
                    }
                    Err(_) => {
                        a.dropped = true;
                        break;
                    }
                }
            }
            a
        });
        Hostile {
            ready: Some(rx),
            stop,
            task,
        }
    }

    /// Waits (10 s at most: a guard against a hang) until the broker answered.
    async fn ready(&mut self) {
        let rx = self.ready.take().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    }

    /// Stops it (if still connected); what it got.
    async fn end(self) -> Attack {
        self.stop.cancel();
        self.task.await.unwrap()
    }

    /// Runs one to its answer and ends it.
    async fn once(o: MqttOptions, filters: &[&str]) -> Attack {
        let mut h = Hostile::start(o, filters);
        h.ready().await;
        h.end().await
    }
}

/// The `(agent, seq)` keys stored, once the aggregator has stopped.
fn stored(cfg: &AggregatorConfig) -> Vec<(String, u64)> {
    Store::open(&cfg.store.path)
        .unwrap()
        .message_keys()
        .unwrap()
}

fn keys(agent: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<(String, u64)> {
    seqs.map(|s| (agent.to_string(), s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_of_others_are_refused_and_the_aggregator_keeps_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (task, stop, metrics) = common::start(cfg.clone()).await;
    let port = port(&cfg);
    let agent1 = Agent::connect(port, "agent-1", "agent-1").await;
    agent1.publish(1..=10).await;

    // agent-2, with its own valid password, as the aggregator, with a persistent session:
    // it would take over the aggregator's subscriptions, receive every agent's batches
    // without subscribing and make them vanish with its PUBACKs. It stays connected (if
    // let in) while agent-1 publishes.
    let mut o = options(port, "agent-2", "aggregator-1");
    o.set_clean_session(false);
    let mut takeover = Hostile::start(o, &[]);
    takeover.ready().await;
    agent1.publish(11..=20).await;
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.stored) >= 20).await,
        "stored {} of 20",
        get(&metrics.stored)
    );
    let takeover = takeover.end().await;
    assert_eq!(
        takeover.refused,
        Some(ConnectReturnCode::BadClientId),
        "{takeover:?}"
    );
    assert_eq!(takeover.received, 0);
    // ... as agent-1, which would kick agent-1 off, and as one of agent-1's suffixed ids.
    for id in ["agent-1", "agent-1-spare"] {
        let mut o = options(port, "agent-2", id);
        o.set_clean_session(false);
        let a = Hostile::once(o, &[]).await;
        assert_eq!(
            a.refused,
            Some(ConnectReturnCode::BadClientId),
            "{id}: {a:?}"
        );
    }
    // Even the aggregator's own user may not use the id the aggregator uses inside.
    let a = Hostile::once(options(port, "aggregator", "aggregator-1"), &[]).await;
    assert_eq!(a.refused, Some(ConnectReturnCode::BadClientId), "{a:?}");
    agent1.publish(21..=30).await;
    // agent-2 under its own suffixed id is served.
    let agent2 = Agent::connect(port, "agent-2", "agent-2-cam").await;
    agent2.publish(1..=3).await;

    let all = 30 + 3;
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.stored) >= all).await,
        "stored {} of {all}",
        get(&metrics.stored)
    );
    let refused = metrics.refused.snapshot();
    assert_eq!(refused.get("client_id"), Some(&4), "{refused:?}");
    // Neither the aggregator nor agent-1 ever lost its broker connection.
    assert_eq!(get(&metrics.broker_errors), 0);
    assert_eq!(agent1.lost(), 0);
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut want = keys("agent-1", 1..=30);
    want.extend(keys("agent-2", 1..=3));
    let mut got = stored(&cfg);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_cannot_join_the_aggregators_shared_group() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (task, stop, metrics) = common::start(cfg.clone()).await;
    let port = port(&cfg);
    let agent1 = Agent::connect(port, "agent-1", "agent-1").await;

    // agent-2 may read the watchlists; subscribing to them through the aggregator's track
    // group would make it a member of that group (rumqttd keys groups by name) and hand it a
    // share of every agent's track batches. It stays (if let in) while agent-1 publishes.
    let join = format!(
        "$share/{}_tracks/sharpeyes/v1/config/watchlists",
        cfg.broker.shared_group
    );
    let mut joined = Hostile::start(options(port, "agent-2", "agent-2-a"), &[&join]);
    joined.ready().await;
    agent1.publish(1..=50).await;
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.stored) >= 50).await,
        "stored {} of 50",
        get(&metrics.stored)
    );
    let joined = joined.end().await;
    assert!(joined.dropped && !joined.subscribed, "{joined:?}");
    assert_eq!(joined.received, 0, "{joined:?}");
    // A group of its own is refused too.
    let own = Hostile::once(
        options(port, "agent-2", "agent-2-b"),
        &["$share/mine/sharpeyes/v1/config/#"],
    )
    .await;
    assert!(own.dropped && !own.subscribed, "{own:?}");
    // The plain subscription to the same topic is agent-2's right.
    let plain = Hostile::once(
        options(port, "agent-2", "agent-2-c"),
        &["sharpeyes/v1/config/watchlists"],
    )
    .await;
    assert!(plain.subscribed && !plain.dropped, "{plain:?}");
    // Another aggregator (the aggregator's user) may join a group: the shipped ACL grants it.
    let other = Hostile::once(
        options(port, "aggregator", "aggregator-2"),
        &["$share/audit/sharpeyes/v1/+/+/status"],
    )
    .await;
    assert!(other.subscribed && !other.dropped, "{other:?}");

    agent1.publish(51..=60).await;
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.stored) >= 60).await,
        "stored {} of 60",
        get(&metrics.stored)
    );
    let refused = metrics.refused.snapshot();
    assert_eq!(refused.get("acl_share"), Some(&2), "{refused:?}");
    assert_eq!(refused.get("acl_subscribe"), None, "{refused:?}");
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(stored(&cfg), keys("agent-1", 1..=60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_connect_size_are_capped_before_login() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.broker.max_connections = 3;
    cfg.broker.max_connect_bytes = 1024;
    let (task, stop, metrics) = common::start(cfg.clone()).await;
    let port = port(&cfg);

    // Three legitimate clients fill the gate.
    let agent1 = Agent::connect(port, "agent-1", "agent-1").await;
    let spare = Agent::connect(port, "agent-1", "agent-1-spare").await;
    let agent2 = Agent::connect(port, "agent-2", "agent-2").await;
    assert_eq!(get(&metrics.gate_open), 3);
    // A fourth is closed before a byte of it is read, log-in or not.
    let refused_before = metrics.refused.total();
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let _ = raw.write_all(&[0x10]).await;
    let mut b = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut b)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a connection over the cap stays open: {closed:?}"
    );
    let over = Hostile::once(options(port, "agent-2", "agent-2-x"), &[]).await;
    assert!(over.dropped, "{over:?}");
    assert_eq!(metrics.refused.snapshot().get("connections"), Some(&2));
    assert_eq!(metrics.refused.total(), refused_before + 2);
    // The three are still served.
    agent1.publish(1..=5).await;
    agent2.publish(1..=5).await;
    assert_eq!(agent1.lost() + spare.lost() + agent2.lost(), 0);

    // One leaves; its place is free again.
    spare.client.disconnect().await.unwrap();
    assert!(
        wait(Duration::from_secs(10), || get(&metrics.gate_open) == 2).await,
        "the gate still holds {} connections",
        get(&metrics.gate_open)
    );

    // An oversized CONNECT is refused from its fixed header: 2 MiB announced, 5 bytes sent.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    raw.write_all(&[0x10, 0x80, 0x80, 0x80, 0x01])
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut b)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    drop(raw);
    // And from a real client whose last will is too big (the log-in is valid).
    assert!(
        wait(Duration::from_secs(10), || get(&metrics.gate_open) == 2).await,
        "{}",
        get(&metrics.gate_open)
    );
    let mut o = options(port, "agent-2", "agent-2-will");
    o.set_last_will(LastWill::new(
        Topics::default().status("s1", "agent-2"),
        vec![0u8; 4096],
        QoS::AtLeastOnce,
        true,
    ));
    let big = Hostile::once(o, &[]).await;
    assert!(big.dropped && big.refused.is_none(), "{big:?}");
    assert_eq!(metrics.refused.snapshot().get("connect_size"), Some(&2));

    // A legitimate client takes the free place and is served.
    assert!(
        wait(Duration::from_secs(10), || get(&metrics.gate_open) == 2).await,
        "{}",
        get(&metrics.gate_open)
    );
    let again = Agent::connect(port, "agent-1", "agent-1-again").await;
    again.publish(6..=8).await;
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.stored) >= 13).await,
        "stored {} of 13",
        get(&metrics.stored)
    );
    let refused = metrics.refused.snapshot();
    println!("refused: {refused:?}");
    assert_eq!(refused.get("connections"), Some(&2), "{refused:?}");
    assert_eq!(refused.get("connect_size"), Some(&2), "{refused:?}");
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut want = keys("agent-1", 1..=8);
    want.extend(keys("agent-2", 1..=5));
    let mut got = stored(&cfg);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_inflight_cap_is_held_back_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.broker.max_inflight_messages = 1;
    let (task, stop, metrics) = common::start(cfg.clone()).await;
    let port = port(&cfg);
    // rumqttc keeps up to 100 publishes in flight: far over the gate's 1, so the gate reads
    // the next publish before the broker's PUBACK of the last one is back, and waits.
    let agent1 = Agent::connect(port, "agent-1", "agent-1").await;
    agent1.publish(1..=300).await;
    assert!(
        wait(Duration::from_secs(30), || get(&metrics.stored) >= 300).await,
        "stored {} of 300",
        get(&metrics.stored)
    );
    let waits = get(&metrics.gate_inflight_waits);
    println!("in-flight waits: {waits}");
    assert!(waits > 0, "the gate never had to hold the client back");
    assert_eq!(
        metrics.refused.total(),
        0,
        "{:?}",
        metrics.refused.snapshot()
    );
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(stored(&cfg), keys("agent-1", 1..=300));
}
