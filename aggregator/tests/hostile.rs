//! The aggregator against foreign and hostile payloads on a real broker (the embedded one):
//! each is rejected and counted, nothing of it is stored, good payloads around it are stored
//! exactly once, and the CLI reads and decodes what was stored.

mod common;

use common::{free_port, wait};

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::metrics::{Metrics, get};
use aggregator::store::{Store, TrackFilter};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sharpeyes_wire::{
    Body, Codec, Envelope, ObjectClass, QBox, Topics, TrackBatch, TrackEvent, TrackUpdate,
};
use tokio_util::sync::CancellationToken;

fn batch(agent: &str, camera: &str, seq: u64, track: u64) -> Envelope {
    Envelope::new(
        agent,
        seq,
        1_700_000_000_000,
        Body::Tracks(TrackBatch {
            site: "s1".into(),
            camera: camera.into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: 1_700_000_000_000,
            to_ms: 1_700_000_000_000,
            frames: 1,
            updates: vec![TrackUpdate {
                track,
                class: ObjectClass::Face,
                event: TrackEvent::Start,
                ts_ms: 1_700_000_000_000,
                bbox: QBox::from_pixels([100.0, 100.0, 160.0, 170.0], 1920, 1080),
                score: 0.9,
                embedding: None,
                plate: None,
                link: None,
                thumb: None,
            }],
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_payloads_are_rejected_counted_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = dir.path().join("agg.db");
    // The test's times are fixed dates of the past: accept them.
    cfg.ingest.max_age_days = 36_500;
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let agg = tokio::spawn(aggregator::run_with_metrics(
        cfg.clone(),
        stop.clone(),
        metrics.clone(),
    ));
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.subscribed) >= 3).await,
        "aggregator did not subscribe"
    );

    let mut o = MqttOptions::new("tester", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 100);
    let pubacks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = pubacks.clone();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = ev {
                p2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let t = Topics::default();
    let codec = Codec::default();
    let topic = t.tracks("s1", "agent-1", "cam-1");
    let good = codec.encode(&batch("agent-1", "cam-1", 1, 7)).unwrap();
    let mut sends: Vec<(String, Vec<u8>)> = vec![
        (topic.clone(), good.clone()),
        (topic.clone(), good.clone()), // duplicate
        (topic.clone(), b"{\"json\":\"not ours\"}".to_vec()), // foreign
        (topic.clone(), good[..good.len() / 2].to_vec()), // truncated
        (topic.clone(), vec![]),       // empty
        (
            topic.clone(),
            codec.encode(&batch("agent-2", "cam-1", 1, 8)).unwrap(),
        ), // another agent's
        (
            topic.clone(),
            codec.encode(&batch("agent-1", "cam-9", 2, 9)).unwrap(),
        ), // another camera's
        (
            t.alerts("s1", "agent-1", "cam-1"),
            codec.encode(&batch("agent-1", "cam-1", 3, 10)).unwrap(),
        ), // wrong kind
    ];
    let mut future_version = good.clone();
    future_version[2] = 99;
    sends.push((topic.clone(), future_version));
    let mut corrupt = good.clone();
    let n = corrupt.len();
    corrupt[n - 4] ^= 0xff;
    sends.push((topic.clone(), corrupt));
    sends.push((
        topic.clone(),
        codec.encode(&batch("agent-1", "cam-1", 4, 11)).unwrap(),
    )); // good again
    let total = sends.len() as u64;
    for (topic, payload) in sends {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.acked) >= total).await,
        "acked {} of {total}, received {}, rejected {:?}",
        get(&metrics.acked),
        get(&metrics.received),
        metrics.rejected.snapshot()
    );
    stop.cancel();
    agg.await.unwrap().unwrap();

    let rejected = metrics.rejected.snapshot();
    println!("rejected: {rejected:?}");
    assert_eq!(get(&metrics.stored), 2);
    assert_eq!(get(&metrics.duplicates), 1);
    for reason in [
        "bad_magic",
        "truncated",
        "agent_mismatch",
        "camera_mismatch",
        "kind_mismatch",
        "unsupported_version",
    ] {
        assert!(
            rejected.get(reason).copied().unwrap_or(0) >= 1,
            "no {reason} in {rejected:?}"
        );
    }
    assert_eq!(metrics.rejected.total(), 8, "{rejected:?}");
    let store = Store::open(&cfg.store.path).unwrap();
    assert_eq!(
        store.message_keys().unwrap(),
        vec![("agent-1".to_string(), 1), ("agent-1".to_string(), 4)]
    );
    let tracks = store.tracks(&TrackFilter::default()).unwrap();
    assert_eq!(
        tracks.iter().map(|t| t.track).collect::<Vec<_>>(),
        vec![7, 11]
    );
    drop(store);

    // The CLI reads the same store.
    let bin = env!("CARGO_BIN_EXE_aggregator");
    let out = Command::new(bin)
        .args(["tracks", "--camera", "cam-1", "--json", "--db"])
        .arg(&cfg.store.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["camera"], "cam-1");
    let b = rows[0]["box"].as_array().unwrap();
    assert!((b[0].as_f64().unwrap() - 100.0).abs() < 0.1);
    let out = Command::new(bin)
        .args(["tracks", "--since", "1h", "--db"])
        .arg(&cfg.store.path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 track(s)"),
        "the test batches are from 2023"
    );

    // decode: a file and stdin; garbage is refused with the typed reason.
    let f = dir.path().join("payload.bin");
    std::fs::write(&f, &good).unwrap();
    let out = Command::new(bin).arg("decode").arg(&f).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agent"], "agent-1");
    assert_eq!(v["body"]["tracks"]["updates"][0]["event"], "start");
    let mut child = Command::new(bin)
        .args(["decode", "-", "--compact"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&good).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    std::fs::write(&f, b"garbage!").unwrap();
    let out = Command::new(bin).arg("decode").arg(&f).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Sharp Eyes payload"));
}
