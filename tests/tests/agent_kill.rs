//! The edge agent is killed with SIGKILL while its broker is away, then restarted: the batches
//! it had spooled (fsync on every write) are replayed and stored, none lost, none twice.
//!
//! The first run publishes to a port where no broker listens yet, so everything it produces
//! stays in its spool; it is killed mid-clip (a real process, `edge-agent run`). The spool is
//! then read as the restarted agent will read it (a torn last record is cut). The aggregator
//! with its embedded broker starts, the agent is started again on the same clip and spool,
//! plays it to the end and stops. Every batch the first run left behind must be in the store,
//! and the second run must leave nothing unacknowledged.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use aggregator::metrics::get;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig, PublishConfig};
use edge_agent::publish::spool::{Fsync, Spool, SpoolLimits};
use sharpeyes_e2e::{
    demo_clip, free_port, models_config, start_aggregator, stored_track_batches, workspace_bin,
};
use sharpeyes_wire::Codec;

const AGENT: &str = "agent-kill";

/// (agent, seq) of every batch in the agent's spool.
fn spooled(spool_dir: &std::path::Path) -> Vec<(String, u64)> {
    let spool = Spool::open(
        &spool_dir.join(AGENT),
        SpoolLimits {
            max_bytes: u64::MAX / 2,
            segment_bytes: 1 << 20,
            fsync: Fsync::Never,
        },
    )
    .unwrap();
    let codec = Codec::default();
    spool
        .pending()
        .into_iter()
        .map(|id| {
            let env = codec.decode(&spool.read(id).unwrap().payload).unwrap();
            (env.agent, env.seq)
        })
        .collect()
}

#[test]
fn sigkilled_agent_replays_its_spool_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    demo_clip(&clip).unwrap();
    let port = free_port();
    let spool_dir = dir.path().join("spool");
    let mut cfg = AgentConfig {
        agent_id: AGENT.into(),
        models: models_config(),
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: format!("file://{}", clip.display()),
            at_end: AtEnd::Stop,
            ..CameraConfig::default()
        }],
        publish: PublishConfig {
            spool_dir: spool_dir.clone(),
            fsync: Fsync::Always,
            batch_interval_ms: 200,
            ..PublishConfig::default()
        },
        ..AgentConfig::default()
    };
    cfg.broker.port = port;
    cfg.broker.reconnect_max_ms = 500;
    cfg.ops.enabled = false;
    let cfg_path = dir.path().join("agent.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let run = || {
        Command::new(workspace_bin("edge-agent"))
            .args(["run", "--config"])
            .arg(&cfg_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // Run 1: no broker. Kill it once the first person's track has been spooled for a while.
    let mut first = run();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let bytes: u64 = std::fs::read_dir(spool_dir.join(AGENT))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if bytes > 2000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let left = spooled(&spool_dir);
    println!("run 1 killed with {} batches in its spool", left.len());
    assert!(left.len() >= 3, "run 1 spooled too little: {left:?}");

    // The aggregator and its embedded broker come up; run 2 replays, then plays the clip.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut agg_cfg = AggregatorConfig::default();
    agg_cfg.broker.listen = ([127, 0, 0, 1], port).into();
    let db = dir.path().join("agg.db");
    agg_cfg.store.path = db.clone();
    agg_cfg.ops.enabled = false;
    let agg = rt.block_on(start_aggregator(agg_cfg)).unwrap();
    let metrics = agg.metrics.clone();
    let status = run().wait().unwrap();
    assert!(status.success(), "run 2 failed: {status}");
    assert!(
        spooled(&spool_dir).is_empty(),
        "run 2 left batches unacknowledged"
    );
    let (stored_all, keys) = rt.block_on(stored_track_batches(&db, Duration::from_secs(30), |k| {
        left.iter().all(|l| k.contains(l))
    }));
    rt.block_on(agg.shut_down()).unwrap();
    let lost: Vec<_> = left.iter().filter(|l| !keys.contains(l)).collect();
    println!(
        "spooled by the killed run {}, lost {}; track batches stored in all {}; duplicates ignored {}",
        left.len(),
        lost.len(),
        keys.len(),
        get(&metrics.duplicates)
    );
    assert!(
        stored_all && lost.is_empty(),
        "lost after the restart: {lost:?}"
    );
    // Run 1 never reached a broker, so nothing may arrive twice: a replay of a batch that was
    // already delivered would be counted here (the store's (agent, seq) key hides it).
    assert_eq!(get(&metrics.duplicates), 0, "a batch was delivered twice");
    assert!(keys.len() > left.len(), "run 2 stored nothing of its own");
}
