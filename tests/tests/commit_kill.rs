//! The store's power loss, simulated as far as a test can: the aggregator (a real process,
//! SQLite store with the default `synchronous = FULL`, embedded broker) is SIGKILLed many
//! times while its writer commits a steady stream of track batches, and restarted; every
//! batch the agent produced is stored exactly once in the end, and the database passes
//! SQLite's `integrity_check`.
//!
//! The agent is the edge agent's real publishing path (spool, persisted sequence, QoS 1,
//! end-to-end acknowledgements, re-sends) fed by four synthetic cameras at 20 batches/s
//! each, so the writer commits a transaction every few ms; the kills land at pseudo-random
//! moments. The test prints the commits and the seconds spent inside transactions that the
//! killed runs reported: on a loaded 2-core machine about 7 % of the time was inside a
//! transaction, so only some of the 12 kills hit one mid-commit (the rest hit the
//! acknowledgement path or the wait for messages); it does not force a kill inside a commit.
//!
//! What it covers: a kill at any point of the commit path (before, during and after the
//! write-ahead log write and its fsync, between the commit and the acknowledgements to the
//! agent and to the broker) loses nothing the agent produced and stores nothing twice,
//! because the agent deletes a batch only after the aggregator acknowledged it as committed
//! and re-sends everything else.
//!
//! What it cannot: a real power cut also loses what the operating system had not written to
//! the disk yet. A SIGKILL leaves the page cache intact, so this test passes with
//! `synchronous = NORMAL` too; what makes a commit survive a power cut is that `FULL` syncs
//! the log before the commit returns (and so before the acknowledgement), which only
//! cutting the machine's power (or a fault-injecting block device) would exercise.

use std::time::Duration;

use aggregator::AggregatorConfig;
use sharpeyes_e2e::synthetic::{
    AggregatorProcess, SyntheticAgent, synthetic_agent_config, wait_for_batches,
};
use sharpeyes_e2e::{free_port, scrape_metric};

/// How many times the aggregator is killed.
const KILLS: u64 = 12;

#[test]
fn aggregator_killed_while_committing_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("agg.db");
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = db.clone();
    let mut agg = AggregatorProcess::start(cfg, dir.path()).unwrap();
    let up = |port: u16| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    assert!(up(port), "the aggregator's broker did not come up");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent_cfg = synthetic_agent_config("agent-commit", 4, port, &dir.path().join("spool"));
    let stream = rt.spawn(async move {
        let mut agent = SyntheticAgent::start(&agent_cfg, sharpeyes_wire::now_ms()).unwrap();
        // A frame every 50 ms (one per batch) with 4 tracks per camera, for 20 s.
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < until {
            agent.frame(sharpeyes_wire::now_ms(), 4).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let resent = edge_agent::metrics::get(&agent.metrics.resent);
        let (produced, left) = agent.finish().await.unwrap();
        (produced, left, resent)
    });

    std::thread::sleep(Duration::from_secs(2));
    let (mut commits, mut commit_s) = (0.0, 0.0);
    for i in 0..KILLS {
        // 300..900 ms of streaming between kills, a different moment of the commit each time.
        std::thread::sleep(Duration::from_millis(300 + (i * 397) % 600));
        let seen = rt.block_on(agg.duplicates_now());
        let port = agg.ops_port();
        commits += rt
            .block_on(scrape_metric(
                port,
                "sharpeyes_aggregator_store_commits_total",
            ))
            .unwrap_or(0.0);
        commit_s += rt
            .block_on(scrape_metric(
                port,
                "sharpeyes_aggregator_store_commit_seconds_total",
            ))
            .unwrap_or(0.0);
        agg.kill(seen); // SIGKILL
        std::thread::sleep(Duration::from_millis(200));
        agg.restart().unwrap();
        assert!(up(port), "the aggregator did not come back after kill {i}");
    }
    let (produced, left, resent) = rt.block_on(stream).unwrap();
    let keys = rt.block_on(wait_for_batches(&db, produced, Duration::from_secs(30)));
    let seen = rt.block_on(agg.duplicates_now());
    agg.kill(seen);
    let integrity: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    println!(
        "aggregator SIGKILLed {KILLS} times while committing ({commits} commits, {commit_s:.1} s \
         inside transactions, reported just before the kills): \
         produced {produced} track batches, stored {}, duplicates recognised {} (at least), \
         re-sent by the agent {resent}, left in the spool {left}, integrity_check {integrity}",
        keys.len(),
        agg.duplicates(),
    );
    assert!(produced > 100, "the agent produced too little: {produced}");
    assert_eq!(left, 0, "the agent left batches unacknowledged");
    assert_eq!(integrity, "ok");
    assert!(
        keys.iter().all(|(agent, _)| agent == "agent-commit"),
        "{keys:?}"
    );
    assert_eq!(distinct.len(), keys.len(), "a key stored twice");
    assert_eq!(keys.len() as u64, produced, "0 lost, 0 stored twice");
}
