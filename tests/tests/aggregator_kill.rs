//! The aggregator is killed with SIGKILL several times while an agent streams: every track
//! batch the agent produced is stored exactly once in the end.
//!
//! Mosquitto (with persistence) holds the aggregator's session while it is down; the aggregator
//! (a real process, `aggregator run`) acknowledges a message only after committing it, so a
//! kill between commit and acknowledgement leads to a redelivery that the store recognises by
//! `(agent, seq)` and ignores. The agent runs in-process; its summary says what it produced.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::store::Store;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig, PublishConfig};
use sharpeyes_e2e::mosquitto::Mosquitto;
use sharpeyes_e2e::{demo_clip, free_port, models_config, wait_until, workspace_bin};
use tokio_util::sync::CancellationToken;

/// How many times the aggregator is killed during the clip.
const KILLS: usize = 3;

#[test]
fn sigkilled_aggregator_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    demo_clip(&clip).unwrap();
    let port = free_port();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let _broker = Mosquitto::start_on(&broker_dir, port, true).unwrap();

    let mut agg_cfg = AggregatorConfig::default();
    agg_cfg.broker.url = format!("mqtt://127.0.0.1:{port}");
    agg_cfg.broker.reconnect_max_ms = 500;
    // Mosquitto does not restore shared subscriptions: one aggregator subscribes plainly.
    agg_cfg.broker.shared_group.clear();
    agg_cfg.store.path = dir.path().join("agg.db");
    agg_cfg.ops.enabled = false;
    let agg_toml = dir.path().join("aggregator.toml");
    std::fs::write(&agg_toml, toml::to_string(&agg_cfg).unwrap()).unwrap();
    let start = || -> Child {
        Command::new(workspace_bin("aggregator"))
            .args(["run", "--config"])
            .arg(&agg_toml)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // The first start creates the session (and its subscriptions) that Mosquitto keeps.
    let mut agg = start();
    std::thread::sleep(Duration::from_secs(2));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut agent_cfg = AgentConfig {
        models: models_config(),
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: format!("file://{}", clip.display()),
            at_end: AtEnd::Stop,
            ..CameraConfig::default()
        }],
        publish: PublishConfig {
            spool_dir: dir.path().join("spool"),
            batch_interval_ms: 200,
            ..PublishConfig::default()
        },
        ..AgentConfig::default()
    };
    agent_cfg.broker.port = port;
    agent_cfg.ops.enabled = false;
    let agent = rt.spawn(edge_agent::run(agent_cfg, CancellationToken::new()));

    // Kill it every few seconds while the clip (17 s, real time) plays; restart after a pause.
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_secs(3));
        agg.kill().unwrap(); // SIGKILL
        agg.wait().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        agg = start();
    }
    let summary = rt.block_on(agent).unwrap().unwrap();
    let produced = summary.spooled;
    let stored_all = rt.block_on(wait_until(Duration::from_secs(30), || {
        Store::open(&agg_cfg.store.path)
            .and_then(|s| s.message_keys_of("tracks"))
            .map(|k| k.len() as u64 >= produced)
            .unwrap_or(false)
    }));
    agg.kill().unwrap();
    agg.wait().unwrap();
    let keys = Store::open(&agg_cfg.store.path)
        .unwrap()
        .message_keys_of("tracks")
        .unwrap();
    let mut unique = keys.clone();
    unique.dedup();
    println!(
        "aggregator killed {KILLS} times: produced {produced} track batches, stored {}, distinct {}",
        keys.len(),
        unique.len()
    );
    assert_eq!(
        summary.spool_pending, 0,
        "the agent left batches unacknowledged"
    );
    assert!(stored_all, "stored {} of {produced}", keys.len());
    assert_eq!(keys.len() as u64, produced, "0 lost, 0 stored twice");
    assert_eq!(unique.len(), keys.len());
}
