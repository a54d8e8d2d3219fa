//! The live face index through the real aggregator (embedded broker, SQLite, HTTP API): a
//! person's face sent by an agent, fused and committed by the writer, is found by
//! `POST /api/v1/faces/search` without a restart; hostile query embeddings get clear 4xx
//! problems; after a restart the index comes from its snapshot (counted as such, not
//! rebuilt) and faces committed after it are found too.

mod common;

use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::api::access::create_token;
use aggregator::config::CameraPlace;
use aggregator::metrics::get;
use aggregator::store::Store;
use common::http::{self, Resp};
use common::{free_port, wait};
use rumqttc::QoS;
use sharpeyes_wire::{
    Body, Codec, Envelope, ObjectClass, QBox, QEmbedding, Topics, TrackBatch, TrackEvent,
    TrackUpdate,
};

const PURPOSE: [(&str, &str); 2] = [("x-purpose", "寻找走失老人"), ("x-case", "2026/0042")];

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Person `k`'s face: a smooth pattern of its own (persons are nearly orthogonal).
fn face(k: usize) -> Vec<f32> {
    unit(
        (0..128)
            .map(|i| ((i * (k + 3)) as f32 * 0.37 + k as f32).sin())
            .collect(),
    )
}

/// One agent batch: a person track (start and end) carrying `face`.
fn batch(seq: u64, track: u64, ts_ms: i64, face: &[f32]) -> (String, Vec<u8>) {
    let updates: Vec<TrackUpdate> = [(TrackEvent::Start, ts_ms), (TrackEvent::End, ts_ms + 4000)]
        .into_iter()
        .map(|(event, ts_ms)| TrackUpdate {
            track,
            class: ObjectClass::Person,
            event,
            ts_ms,
            bbox: QBox::from_pixels([200.0, 400.0, 300.0, 900.0], 1920, 1080),
            score: 0.9,
            embedding: Some(QEmbedding::quantize(face)),
            plate: None,
            link: None,
            thumb: None,
        })
        .collect();
    let env = Envelope::new(
        "agent-a",
        seq,
        ts_ms + 4000,
        Body::Tracks(TrackBatch {
            site: "s1".into(),
            camera: "cam-1".into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: ts_ms,
            to_ms: ts_ms + 4000,
            frames: 10,
            updates,
        }),
    );
    (
        Topics::default().tracks("s1", "agent-a", "cam-1"),
        Codec::default().encode(&env).unwrap(),
    )
}

async fn search(addr: std::net::SocketAddr, token: &str, q: &str, ct: &str, body: Vec<u8>) -> Resp {
    let auth = format!("Bearer {token}");
    let mut h: Vec<(&str, &str)> = PURPOSE.to_vec();
    h.push(("authorization", &auth));
    h.push(("content-type", ct));
    http::request(addr, "POST", &format!("/api/v1/faces/search{q}"), &h, body).await
}

fn json_query(v: &[f32]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "embedding": v })).unwrap()
}

/// Polls the API until `face` finds a person with its own face (similarity > 0.95): the
/// answer.
async fn found(addr: std::net::SocketAddr, token: &str, face: &[f32]) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..500 {
        let r = search(
            addr,
            token,
            "?min_similarity=-1",
            "application/json",
            json_query(face),
        )
        .await;
        if r.status == 200 {
            last = r.json();
            if last["results"][0]["similarity"]
                .as_f64()
                .is_some_and(|s| s > 0.95)
            {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the face was not found within 10 s: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_searches_the_live_index_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let port = free_port();
    let api = free_port();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = db.clone();
    cfg.ops.enabled = false;
    cfg.api.listen = ([127, 0, 0, 1], api).into();
    cfg.cameras = vec![CameraPlace {
        site: "s1".into(),
        agent: "agent-a".into(),
        camera: "cam-1".into(),
        lat: 30.657,
        lon: 104.065,
        heading_deg: None,
        fov_deg: None,
        grid: None,
    }];
    let token = {
        let s = Store::open(&db).unwrap();
        create_token(&s, "analyst", "analyst", None, sharpeyes_wire::now_ms())
            .unwrap()
            .0
    };
    let addr = cfg.api.listen;
    let t0 = sharpeyes_wire::now_ms() - 3_600_000;

    let (agg, stop, metrics) = common::start(cfg.clone()).await;
    assert!(
        wait(Duration::from_secs(20), || metrics.face_index_loads.total()
            >= 1)
        .await
    );
    assert_eq!(metrics.face_index_loads.snapshot().get("missing"), Some(&1));
    let client = common::client(port);
    let (topic, payload) = batch(1, 1, t0, &face(0));
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    assert!(wait(Duration::from_secs(20), || get(&metrics.acked) >= 1).await);
    let r = found(addr, &token, &face(0)).await;
    assert_eq!(r["index"], "live", "{r:#}");
    let first = &r["results"][0];
    let person = first["person"].as_u64().unwrap();
    assert_eq!(first["match"], true, "{r:#}");
    assert!(first["similarity"].as_f64().unwrap() > 0.95, "{r:#}");
    assert_eq!(first["face"]["camera"], "cam-1");
    // A stranger matches nobody at the default floor (the verification threshold).
    let r = search(addr, &token, "", "application/json", json_query(&face(7))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"], serde_json::json!([]), "{}", r.text());

    // Hostile query embeddings: 4xx problems that say what is wrong.
    let problem = |r: &Resp, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
        assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
    };
    let r = search(addr, &token, "", "application/json", json_query(&[0.5; 7])).await;
    problem(&r, 422, "7 values, the index holds 128");
    let r = search(
        addr,
        &token,
        "",
        "application/json",
        json_query(&[0.0; 128]),
    )
    .await;
    problem(&r, 422, "zero or not finite");
    let nan = br#"{"embedding": [NaN, 1.0]}"#.to_vec();
    let r = search(addr, &token, "", "application/json", nan).await;
    problem(&r, 400, "embedding");
    let huge = format!("{{\"embedding\": [{}]}}", vec!["1e39"; 128].join(","));
    let r = search(addr, &token, "", "application/json", huge.into_bytes()).await;
    problem(&r, 422, "zero or not finite");
    let r = search(addr, &token, "", "text/plain", b"hello".to_vec()).await;
    problem(&r, 415, "application/json");
    assert_eq!(get(&metrics.face_search_errors), 3);

    stop.cancel();
    agg.await.unwrap().unwrap();
    assert!(
        dir.path().join("agg.db.faces").exists(),
        "snapshot at shutdown"
    );

    // Restarted (on fresh ports: the old listeners may linger a moment): loaded from the
    // snapshot, not rebuilt; new faces are found too.
    let port = free_port();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.api.listen = ([127, 0, 0, 1], free_port()).into();
    let addr = cfg.api.listen;
    let (agg, stop, metrics) = common::start(cfg.clone()).await;
    assert!(
        wait(Duration::from_secs(20), || metrics.face_index_loads.total()
            >= 1)
        .await
    );
    assert_eq!(
        metrics.face_index_loads.snapshot().get("snapshot"),
        Some(&1),
        "{:?}",
        metrics.face_index_loads.snapshot()
    );
    let r = found(addr, &token, &face(0)).await;
    assert_eq!(r["results"][0]["person"].as_u64(), Some(person));
    let client = common::client(port);
    let (topic, payload) = batch(2, 2, t0 + 600_000, &face(1));
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    assert!(wait(Duration::from_secs(20), || get(&metrics.acked) >= 1).await);
    let r = found(addr, &token, &face(1)).await;
    let second = r["results"][0]["person"].as_u64().unwrap();
    assert_ne!(second, person, "{r:#}");
    assert!(
        wait(Duration::from_secs(5), || get(&metrics.face_index_faces)
            == 2)
        .await
    );
    stop.cancel();
    agg.await.unwrap().unwrap();
}
