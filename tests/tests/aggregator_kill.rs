//! The aggregator is killed with SIGKILL several times while an agent streams: every track
//! batch the agent produced is stored exactly once in the end.
//!
//! Mosquitto (with persistence) holds the aggregator's session while it is down; the aggregator
//! (a real process, `aggregator run`) acknowledges a message only after committing it, so a
//! kill between commit and acknowledgement leads to a redelivery that the store recognises by
//! `(agent, seq)` and ignores. The agent runs in-process; its summary says what it produced.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edge_agent::config::{AgentConfig, AtEnd, CameraConfig, PublishConfig};
use sharpeyes_e2e::mosquitto::Mosquitto;
use sharpeyes_e2e::{
    demo_clip, free_port, models_config, mosquitto_aggregator_config, stored_track_batches,
    workspace_bin,
};
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

    let agg_cfg = mosquitto_aggregator_config(port, &dir.path().join("agg.db"));
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
    let (stored_all, keys) = rt.block_on(stored_track_batches(
        &agg_cfg.store.path,
        Duration::from_secs(30),
        |k| k.len() as u64 >= produced,
    ));
    agg.kill().unwrap();
    agg.wait().unwrap();
    println!(
        "aggregator killed {KILLS} times: produced {produced} track batches, stored {}",
        keys.len()
    );
    assert_eq!(
        summary.spool_pending, 0,
        "the agent left batches unacknowledged"
    );
    // (agent, seq) is the store's key, so a batch stored twice would show as one row; every
    // row must be this agent's and their number what it produced: none lost, none invented.
    assert!(stored_all, "stored {} of {produced}", keys.len());
    assert!(keys.iter().all(|(agent, _)| agent == "agent-1"), "{keys:?}");
    assert_eq!(keys.len() as u64, produced, "0 lost, 0 stored twice");
}
