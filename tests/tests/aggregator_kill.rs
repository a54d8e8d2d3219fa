//! The aggregator is killed with SIGKILL three times while an agent streams four cameras:
//! every track batch the agent produced is stored exactly once in the end, on the embedded
//! broker and on Mosquitto.
//!
//! - **Embedded broker**: the broker (rumqttd, in memory) dies with the aggregator, and with
//!   it everything it had taken (PUBACKed) and not yet delivered, and the agent's session.
//!   The agent keeps every batch in its spool until the aggregator acknowledges it as
//!   committed (`{prefix}/acks/{agent}`), reconnects when the aggregator is back, and sends
//!   again what was PUBACKed but never acknowledged (at once after the reconnect, and after
//!   `publish.ack_timeout_ms`: a batch published before the restarted aggregator subscribed
//!   found no subscriber).
//! - **Mosquitto** (with persistence) holds the aggregator's session while it is down; the
//!   aggregator acknowledges a message to the broker only after committing it, so a kill
//!   between commit and acknowledgement leads to a redelivery; the agent's own re-sends add
//!   more.
//!
//! Either way the store recognises a replay by `(agent, seq)` and ignores it. The aggregator
//! is a real process (`aggregator run`); the agent runs in-process on four `file://`
//! cameras playing the demo clip in real time; its summary says what it produced.

use std::time::Duration;

use aggregator::AggregatorConfig;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig, PublishConfig};
use sharpeyes_e2e::mosquitto::Mosquitto;
use sharpeyes_e2e::synthetic::{AggregatorProcess, wait_for_batches};
use sharpeyes_e2e::{BrokerKind, demo_clip, free_port, models_config, mosquitto_aggregator_config};
use tokio_util::sync::CancellationToken;

/// How many times the aggregator is killed during the clip.
const KILLS: usize = 3;

/// Cameras streaming meanwhile.
const CAMERAS: usize = 4;

fn kill_aggregator_while_cameras_stream(broker: BrokerKind) {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    demo_clip(&clip).unwrap();
    let port = free_port();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let db = dir.path().join("agg.db");
    let (_mosquitto, agg_cfg) = match broker {
        BrokerKind::Mosquitto => (
            Some(Mosquitto::start_on(&broker_dir, port, true).unwrap()),
            mosquitto_aggregator_config(port, &db),
        ),
        BrokerKind::Embedded => {
            let mut cfg = AggregatorConfig::default();
            cfg.broker.listen = ([127, 0, 0, 1], port).into();
            cfg.store.path = db.clone();
            (None, cfg)
        }
    };
    // The first start creates the store (and, on Mosquitto, the session that it keeps).
    let mut agg = AggregatorProcess::start(agg_cfg, dir.path()).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut agent_cfg = AgentConfig {
        models: models_config(),
        cameras: (1..=CAMERAS)
            .map(|i| CameraConfig {
                id: format!("cam-{i}"),
                uri: format!("file://{}", clip.display()),
                at_end: AtEnd::Stop,
                analysis_fps: 2.0,
                ..CameraConfig::default()
            })
            .collect(),
        publish: PublishConfig {
            spool_dir: dir.path().join("spool"),
            batch_interval_ms: 200,
            ack_timeout_ms: 1000,
            ..PublishConfig::default()
        },
        ..AgentConfig::default()
    };
    agent_cfg.broker.port = port;
    agent_cfg.broker.reconnect_max_ms = 500;
    agent_cfg.ops.enabled = false;
    // Plates are not what this test is about; leave the CPU to four cameras.
    agent_cfg.plate_reader.enabled = false;
    let agent = rt.spawn(edge_agent::run(agent_cfg, CancellationToken::new()));

    // Kill it every few seconds while the clip (17 s, real time) plays; restart after a pause.
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_secs(3));
        let seen = rt.block_on(agg.duplicates_now());
        agg.kill(seen); // SIGKILL
        std::thread::sleep(Duration::from_millis(1500));
        agg.restart().unwrap();
    }
    let summary = rt.block_on(agent).unwrap().unwrap();
    let produced = summary.spooled;
    let keys = rt.block_on(wait_for_batches(&db, produced, Duration::from_secs(30)));
    let seen = rt.block_on(agg.duplicates_now());
    agg.kill(seen);
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    println!(
        "{broker:?} broker, aggregator SIGKILLed {KILLS} times while {CAMERAS} cameras streamed: \
         produced {produced} track batches, stored {}, duplicates recognised {} (at least), \
         re-sent by the agent {}, acknowledged {}, left in the spool {}",
        keys.len(),
        agg.duplicates(),
        summary.resent,
        summary.acked,
        summary.spool_pending
    );
    assert!(produced > 0, "the agent produced nothing: {summary:?}");
    assert_eq!(
        summary.spool_pending, 0,
        "the agent left batches unacknowledged"
    );
    // (agent, seq) is the store's key, so a batch stored twice would show as one row; every
    // row must be this agent's and their number what it produced: none lost, none invented.
    assert!(keys.iter().all(|(agent, _)| agent == "agent-1"), "{keys:?}");
    assert_eq!(distinct.len(), keys.len(), "a key stored twice");
    assert_eq!(keys.len() as u64, produced, "0 lost, 0 stored twice");
}

#[test]
fn sigkilled_aggregator_with_its_embedded_broker_loses_nothing() {
    kill_aggregator_while_cameras_stream(BrokerKind::Embedded);
}

#[test]
fn sigkilled_aggregator_behind_mosquitto_loses_nothing() {
    kill_aggregator_while_cameras_stream(BrokerKind::Mosquitto);
}
