//! A gateway without a real-time clock boots at the same wrong time every day: its agent's
//! `seq`s must not repeat, or the aggregator drops its new messages as duplicates of the old
//! ones (`(agent, seq)` is the idempotency key).
//!
//! The agent's real publishing path runs three times on one spool directory against an
//! aggregator with its embedded broker: at clock T, again at the very same T (a reboot of an
//! RTC-less gateway; the old start-time scheme gave the same seqs again), then a day before
//! T. Each run's seqs must all lie above the previous run's, every batch of the three runs
//! must be stored, and the aggregator must have seen no duplicate.

use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::metrics::get;
use aggregator::store::Store;
use sharpeyes_e2e::synthetic::{SyntheticAgent, synthetic_agent_config};
use sharpeyes_e2e::{free_port, start_aggregator, stored_track_batches};

const AGENT: &str = "agent-rtc-less";

#[test]
fn seqs_stay_unique_when_the_clock_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("agg.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = db.clone();
    cfg.ops.enabled = false;
    cfg.api.enabled = false;
    let agg = rt.block_on(start_aggregator(cfg)).unwrap();
    let metrics = agg.metrics.clone();
    let mut agent_cfg = synthetic_agent_config(AGENT, 2, port, &dir.path().join("spool"));
    // No re-sends (they would be duplicates of their own): only a reused seq can make one.
    agent_cfg.publish.ack_timeout_ms = 60_000;

    let t = sharpeyes_wire::now_ms();
    let mut produced = 0;
    let mut previous_max = 0u64;
    for (run, clock) in [
        ("first boot", t),
        ("same clock", t),
        ("a day back", t - 86_400_000),
    ] {
        let before: Vec<u64> = keys(&db).into_iter().map(|(_, s)| s).collect();
        let (n, left) = rt.block_on(async {
            let mut agent = SyntheticAgent::start(&agent_cfg, clock).unwrap();
            for _ in 0..20 {
                agent.frame(sharpeyes_wire::now_ms(), 3).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            agent.finish().await.unwrap()
        });
        assert_eq!(left, 0, "{run}: batches left unacknowledged");
        produced += n;
        let (_, now) = rt.block_on(stored_track_batches(&db, Duration::from_secs(10), |k| {
            k.len() as u64 >= produced
        }));
        let new: Vec<u64> = now
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| !before.contains(s))
            .collect();
        let (lo, hi) = (
            new.iter().min().copied().unwrap_or(0),
            new.iter().max().copied().unwrap_or(0),
        );
        println!(
            "{run}: clock {clock}, produced {n} track batches, {} new stored, seqs {lo}..={hi}",
            new.len()
        );
        assert_eq!(new.len() as u64, n, "{run}: lost or taken for duplicates");
        assert!(
            lo > previous_max,
            "{run}: seq {lo} not above {previous_max}"
        );
        previous_max = hi;
    }
    rt.block_on(agg.shut_down()).unwrap();
    let stored = keys(&db);
    println!(
        "three runs: produced {produced}, stored {}, duplicates {}",
        stored.len(),
        get(&metrics.duplicates)
    );
    assert_eq!(stored.len() as u64, produced);
    assert!(stored.iter().all(|(a, _)| a == AGENT));
    assert_eq!(
        get(&metrics.duplicates),
        0,
        "a new message was taken for an old one"
    );
}

fn keys(db: &std::path::Path) -> Vec<(String, u64)> {
    Store::open(db).unwrap().message_keys_of("tracks").unwrap()
}
