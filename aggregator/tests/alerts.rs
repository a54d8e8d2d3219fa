//! Alerts through a real broker (the embedded one): a new alert is stored with its evidence and
//! runs the hook once; a repeated sighting (same alert id, later time) updates it and runs
//! nothing; a redelivered message changes nothing; the CLI lists, acknowledges and exports.

mod common;

use common::{free_port, wait};

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::metrics::get;
use aggregator::store::{AlertFilter, Store};
use rumqttc::QoS;
use sharpeyes_wire::{Alert, AlertKind, Body, Codec, Envelope, Evidence, Priority, Topics};

fn alert(seq: u64, id: &str, ts_ms: i64, priority: Priority, summary: &str) -> Envelope {
    Envelope::new(
        "agent-1",
        seq,
        ts_ms,
        Body::Alert(Alert {
            site: "s1".into(),
            camera: "cam-1".into(),
            alert_id: id.into(),
            kind: AlertKind::FaceWatchlist,
            priority,
            ts_ms,
            track: Some(7),
            summary: summary.into(),
            details: BTreeMap::from([("patient".to_string(), "p-1".to_string())]),
            evidence: vec![Evidence {
                role: "crop".into(),
                mime: "image/jpeg".into(),
                data: vec![0xff, 0xd8, seq as u8, 0xff, 0xd9],
            }],
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_stored_updated_hooked_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hooked = dir.path().join("hooked");
    std::fs::create_dir(&hooked).unwrap();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = dir.path().join("agg.db");
    // The test's times are fixed dates of the past: accept them.
    cfg.ingest.max_age_days = 36_500;
    cfg.ops.enabled = false;
    // The hook writes what it was given: stdin and the environment.
    cfg.alerts.hook = vec![
        "sh".into(),
        "-c".into(),
        format!(
            "cat > {0}/$SHARPEYES_ALERT_ID.json && echo \"$SHARPEYES_ALERT_PRIORITY $SHARPEYES_ALERT_KIND $SHARPEYES_ALERT_CAMERA\" > {0}/$SHARPEYES_ALERT_ID.env",
            hooked.display()
        ),
    ];
    let (agg, stop, metrics) = common::start(cfg.clone()).await;

    let client = common::client(port);
    let topic = Topics::default().alerts("s1", "agent-1", "cam-1");
    let codec = Codec::default();
    let t0 = 1_790_000_000_000;
    for env in [
        alert(
            1,
            "cam-1-face-1",
            t0,
            Priority::High,
            "patient p-1 seen alone",
        ),
        alert(
            1,
            "cam-1-face-1",
            t0,
            Priority::High,
            "patient p-1 seen alone",
        ), // redelivery
        alert(
            2,
            "cam-1-face-1",
            t0 + 4_000,
            Priority::Low,
            "patient p-1 seen with guardian g-1",
        ),
        alert(
            3,
            "cam-1-face-2",
            t0 + 900_000,
            Priority::High,
            "patient p-1 seen alone",
        ),
    ] {
        client
            .publish(&topic, QoS::AtLeastOnce, false, codec.encode(&env).unwrap())
            .await
            .unwrap();
    }
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.acked) >= 4).await,
        "acked {}",
        get(&metrics.acked)
    );
    assert!(wait(Duration::from_secs(10), || get(&metrics.hook_runs) >= 2).await);
    // Let a wrongly repeated hook run show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    agg.await.unwrap().unwrap();

    assert_eq!(get(&metrics.alerts), 2, "two new alerts, one update");
    assert_eq!(get(&metrics.duplicates), 1);
    assert_eq!(get(&metrics.hook_runs), 2);
    assert_eq!(get(&metrics.hook_failures), 0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hooked.join("cam-1-face-1.json")).unwrap())
            .unwrap();
    assert_eq!(json["agent"], "agent-1");
    assert_eq!(json["alert_id"], "cam-1-face-1");
    assert_eq!(json["priority"], "high");
    assert_eq!(json["evidence_roles"], serde_json::json!(["crop"]));
    assert!(
        json.get("evidence").is_none(),
        "evidence bytes stay out of the hook"
    );
    assert_eq!(
        std::fs::read_to_string(hooked.join("cam-1-face-1.env")).unwrap(),
        "high face_watchlist cam-1\n"
    );

    let store = Store::open(&cfg.store.path).unwrap();
    let rows = store.alerts(&AlertFilter::default()).unwrap();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let first = rows.iter().find(|r| r.alert_id == "cam-1-face-1").unwrap();
    assert_eq!(first.sightings, 2);
    assert_eq!((first.first_ms, first.last_ms), (t0, t0 + 4_000));
    assert_eq!(
        first.priority, "low",
        "the update (a guardian came) lowers it"
    );
    assert_eq!(first.summary, "patient p-1 seen with guardian g-1");
    assert_eq!(first.evidence, vec!["crop".to_string()]);
    let (mime, data) = store
        .alert_evidence("agent-1", "cam-1-face-1", "crop")
        .unwrap()
        .unwrap();
    assert_eq!(
        (mime.as_str(), data[2]),
        ("image/jpeg", 2),
        "the newest evidence"
    );
    drop(store);

    // The CLI: list open, acknowledge, list again, export evidence.
    let bin = env!("CARGO_BIN_EXE_aggregator");
    let db = cfg.store.path.to_str().unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(bin).args(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&["alerts", "--open", "--db", db]);
    assert!(ok, "{err}");
    assert!(
        out.contains("agent-1/cam-1-face-1") && out.contains("2 alert(s)"),
        "{out}"
    );
    let (ok, _, err) = run(&[
        "alerts",
        "ack",
        "agent-1/cam-1-face-1",
        "--by",
        "officer-9",
        "--note",
        "family called",
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "alerts",
        "ack",
        "agent-1/cam-1-face-1",
        "--by",
        "officer-9",
        "--db",
        db,
    ]);
    assert!(
        !ok && err.contains("no open alert"),
        "acknowledged twice: {err}"
    );
    let (ok, out, _) = run(&["alerts", "--open", "--json", "--db", db]);
    assert!(ok);
    let open: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["alert_id"], "cam-1-face-2");
    let jpg = dir.path().join("crop.jpg");
    let (ok, _, err) = run(&[
        "alerts",
        "evidence",
        "agent-1/cam-1-face-2",
        "--out",
        jpg.to_str().unwrap(),
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(&jpg).unwrap(),
        vec![0xff, 0xd8, 3, 0xff, 0xd9]
    );
    let (ok, _, err) = run(&["alerts", "evidence", "nonsense", "--out", "x", "--db", db]);
    assert!(!ok && err.contains("AGENT/ALERT_ID"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_hook_is_counted_and_storing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = dir.path().join("agg.db");
    // The test's times are fixed dates of the past: accept them.
    cfg.ingest.max_age_days = 36_500;
    cfg.ops.enabled = false;
    // Fails on the first alert, hangs past its time on the second.
    cfg.alerts.hook = vec![
        "sh".into(),
        "-c".into(),
        "case $SHARPEYES_ALERT_ID in *-1) exit 3;; *) sleep 30;; esac".into(),
    ];
    cfg.alerts.hook_timeout_ms = 300;
    let (agg, stop, metrics) = common::start(cfg.clone()).await;
    let client = common::client(port);
    let topic = Topics::default().alerts("s1", "agent-1", "cam-1");
    let codec = Codec::default();
    for (seq, id) in [(1, "cam-1-face-1"), (2, "cam-1-face-2")] {
        let env = alert(seq, id, 1_790_000_000_000, Priority::High, "x");
        client
            .publish(&topic, QoS::AtLeastOnce, false, codec.encode(&env).unwrap())
            .await
            .unwrap();
    }
    assert!(wait(Duration::from_secs(20), || get(&metrics.hook_failures) >= 2).await);
    assert_eq!(get(&metrics.alerts), 2);
    stop.cancel();
    agg.await.unwrap().unwrap();
}
