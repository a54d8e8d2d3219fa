//! Fusion through a real broker (the embedded one): two agents, four placed cameras. A car
//! (川A12345) seen at camera 1, then camera 2 minutes later, then read as 川A1234S (one
//! confusable character) at camera 3 is one vehicle with a three-sighting trajectory; the same
//! plate 100 km away 10 s later is flagged as a possible clone, not merged; a person seen at
//! two cameras is one person; the person who got into the car at camera 1 is linked with it.
//! A redelivered message changes nothing. The CLI answers it all (table, JSON, GeoJSON).

mod common;

use common::{free_port, wait};

use std::process::Command;
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::config::CameraPlace;
use aggregator::metrics::get;
use rumqttc::QoS;
use serde_json::Value;
use sharpeyes_wire::{
    Body, Codec, Envelope, ObjectClass, PlateReading, QBox, QEmbedding, Topics, TrackBatch,
    TrackEvent, TrackUpdate,
};

const W: u32 = 1920;
const H: u32 = 1080;

fn place(agent: &str, camera: &str, lat: f64, lon: f64, grid: &str) -> CameraPlace {
    CameraPlace {
        site: "s1".into(),
        agent: agent.into(),
        camera: camera.into(),
        lat,
        lon,
        heading_deg: None,
        fov_deg: None,
        grid: Some(grid.into()),
    }
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Person A's face, slightly different each time (`noise`), and person B's (orthogonal).
fn face_a(noise: f32) -> QEmbedding {
    QEmbedding::quantize(&unit(
        (0..128)
            .map(|i| {
                let i = i as f32;
                if i < 64.0 {
                    (i * 0.7 + 0.3).sin() + noise * (i * 1.3).cos()
                } else {
                    noise * (i * 0.4).sin()
                }
            })
            .collect(),
    ))
}

fn face_b() -> QEmbedding {
    QEmbedding::quantize(&unit(
        (0..128)
            .map(|i| if i < 64 { 0.0 } else { (i as f32 * 0.9).sin() })
            .collect(),
    ))
}

/// A track's start and end updates.
struct Track {
    id: u64,
    class: ObjectClass,
    from: i64,
    to: i64,
    start_box: [f32; 4],
    end_box: [f32; 4],
    plate: Option<(&'static str, f32)>,
    face: Option<QEmbedding>,
}

impl Track {
    fn updates(&self) -> Vec<TrackUpdate> {
        [
            (TrackEvent::Start, self.from, self.start_box),
            (TrackEvent::End, self.to, self.end_box),
        ]
        .into_iter()
        .map(|(event, ts_ms, b)| TrackUpdate {
            track: self.id,
            class: self.class,
            event,
            ts_ms,
            bbox: QBox::from_pixels(b, W, H),
            score: 0.9,
            embedding: self.face.clone(),
            plate: self.plate.map(|(text, confidence)| PlateReading {
                text: text.into(),
                confidence,
            }),
            link: None,
            thumb: None,
        })
        .collect()
    }
}

fn car(id: u64, from: i64, plate: &'static str) -> Track {
    Track {
        id,
        class: ObjectClass::Car,
        from,
        to: from + 5000,
        start_box: [950.0, 500.0, 1400.0, 900.0],
        end_box: [300.0, 500.0, 750.0, 900.0],
        plate: Some((plate, 0.9)),
        face: None,
    }
}

fn person(id: u64, from: i64, face: QEmbedding) -> Track {
    Track {
        id,
        class: ObjectClass::Person,
        from,
        to: from + 5000,
        start_box: [200.0, 400.0, 300.0, 900.0],
        end_box: [900.0, 450.0, 1000.0, 900.0],
        plate: None,
        face: Some(face),
    }
}

fn batch(agent: &str, seq: u64, camera: &str, tracks: &[Track]) -> (String, Vec<u8>) {
    let updates: Vec<TrackUpdate> = tracks.iter().flat_map(Track::updates).collect();
    let from_ms = updates.iter().map(|u| u.ts_ms).min().unwrap();
    let to_ms = updates.iter().map(|u| u.ts_ms).max().unwrap();
    let env = Envelope::new(
        agent,
        seq,
        to_ms,
        Body::Tracks(TrackBatch {
            site: "s1".into(),
            camera: camera.into(),
            frame_w: W,
            frame_h: H,
            from_ms,
            to_ms,
            frames: 10,
            updates,
        }),
    );
    (
        Topics::default().tracks("s1", agent, camera),
        Codec::default().encode(&env).unwrap(),
    )
}

fn cli(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn cli_json(args: &[&str]) -> Value {
    let out = cli(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cars_and_people_become_trajectories_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = dir.path().join("agg.db");
    cfg.ops.enabled = false;
    // Chengdu: cameras 1–3 about 3 km apart; "far" about 95 km north of camera 3.
    cfg.cameras = vec![
        place("agent-a", "cam-1", 30.6570, 104.0650, "g-1"),
        place("agent-a", "cam-2", 30.6800, 104.0800, "g-1"),
        place("agent-b", "cam-3", 30.7000, 104.1000, "g-2"),
        place("agent-b", "cam-far", 31.5600, 104.0650, "g-9"),
    ];
    let (agg, stop, metrics) = common::start(cfg.clone()).await;
    let client = common::client(port);

    let t0 = sharpeyes_wire::now_ms() - 2 * 3600 * 1000;
    let min = 60_000;
    let first = batch(
        "agent-a",
        1,
        "cam-1",
        // Person A walks to the car and is gone 2 s before the car drives off.
        &[person(1, t0, face_a(0.0)), car(2, t0 + 7000, "川A12345")],
    );
    let phases = vec![
        vec![first.clone()],
        vec![batch(
            "agent-a",
            2,
            "cam-2",
            &[car(3, t0 + 5 * min, "川A12345")],
        )],
        vec![batch(
            "agent-b",
            1,
            "cam-3",
            &[car(1, t0 + 10 * min, "川A1234S")],
        )],
        // 10 s after camera 3 and 95 km away: cannot be the same car.
        vec![batch(
            "agent-b",
            2,
            "cam-far",
            &[car(2, t0 + 10 * min + 15_000, "川A12345")],
        )],
        vec![
            batch("agent-a", 3, "cam-2", &[person(4, t0 + 7 * min, face_b())]),
            batch(
                "agent-b",
                3,
                "cam-3",
                &[person(5, t0 + 15 * min, face_a(0.15))],
            ),
        ],
        // A redelivery: stored once, fused once.
        vec![first],
    ];
    let mut sent = 0;
    for phase in phases {
        for (topic, payload) in phase {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            sent += 1;
        }
        assert!(
            wait(Duration::from_secs(20), || get(&metrics.acked) >= sent).await,
            "acked {} of {sent}",
            get(&metrics.acked)
        );
    }
    stop.cancel();
    agg.await.unwrap().unwrap();
    assert_eq!(get(&metrics.duplicates), 1);
    let fused = metrics.fusion.snapshot();
    assert_eq!(fused.get("new_vehicle"), Some(&2), "{fused:?}");
    assert_eq!(fused.get("vehicle_sighting"), Some(&4), "{fused:?}");
    assert_eq!(fused.get("plate_flagged"), Some(&1), "{fused:?}");
    assert_eq!(fused.get("new_person"), Some(&2), "{fused:?}");
    assert_eq!(fused.get("person_sighting"), Some(&3), "{fused:?}");
    assert_eq!(fused.get("link"), Some(&1), "{fused:?}");

    let db = cfg.store.path.to_str().unwrap();
    // The plate: two vehicles, the second a possible clone of the first.
    let t = cli_json(&["trajectory", "--plate", "川A12345", "--json", "--db", db]);
    let vehicles = t["vehicles"].as_array().unwrap();
    assert_eq!(vehicles.len(), 2, "{t:#}");
    let v1 = vehicles[0]["vehicle"].as_u64().unwrap();
    let v2 = vehicles[1]["vehicle"].as_u64().unwrap();
    assert_eq!(vehicles[1]["clone_of"].as_u64(), Some(v1));
    assert_eq!(t["flags"][0]["reason"], "possible_clone");
    assert_eq!(t["flags"][0]["evidence"], "agent-b/cam-far/2");
    assert_eq!(t["flags"][0]["gate"]["result"], "infeasible");
    let sightings = t["sightings"].as_array().unwrap();
    let mine: Vec<(&str, &str, i64)> = sightings
        .iter()
        .filter(|s| s["identity"].as_u64() == Some(v1))
        .map(|s| {
            (
                s["camera"].as_str().unwrap(),
                s["plate"].as_str().unwrap(),
                s["first_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        vec![
            ("cam-1", "川A12345", t0 + 7000),
            ("cam-2", "川A12345", t0 + 5 * min),
            ("cam-3", "川A1234S", t0 + 10 * min),
        ],
        "one vehicle, in time order: {t:#}"
    );
    let third = sightings.iter().find(|s| s["camera"] == "cam-3").unwrap();
    assert_eq!(third["why"]["rule"], "confusable_plate");
    assert_eq!(third["why"]["gate"]["result"], "feasible");
    assert_eq!(third["evidence"], "agent-b/cam-3/1");
    assert!((third["lat"].as_f64().unwrap() - 30.7).abs() < 1e-9);
    let far: Vec<&Value> = sightings
        .iter()
        .filter(|s| s["identity"].as_u64() == Some(v2))
        .collect();
    assert_eq!(far.len(), 1);
    assert_eq!(far[0]["camera"], "cam-far");
    // The misread plate finds the same vehicle through its reading.
    let misread = cli_json(&["trajectory", "--plate", "川A1234S", "--json", "--db", db]);
    assert_eq!(misread["vehicles"][0]["vehicle"].as_u64(), Some(v1));
    assert_eq!(misread["vehicles"][0]["matched"], "reading");

    // GeoJSON: the first vehicle's path, then a point per sighting.
    let g = cli_json(&["trajectory", "--plate", "川A12345", "--geojson", "--db", db]);
    assert_eq!(g["type"], "FeatureCollection");
    let features = g["features"].as_array().unwrap();
    assert_eq!(features.len(), 5, "one line and four points: {g:#}");
    assert_eq!(features[0]["geometry"]["type"], "LineString");
    assert_eq!(
        features[0]["geometry"]["coordinates"],
        serde_json::json!([[104.065, 30.657], [104.08, 30.68], [104.1, 30.7]])
    );
    assert_eq!(features[1]["geometry"]["type"], "Point");
    assert_eq!(features[1]["properties"]["camera"], "s1/agent-a/cam-1");
    assert_eq!(features[1]["properties"]["evidence"], "agent-a/cam-1/2");
    let table = cli(&["trajectory", "--plate", "川A12345", "--db", db]);
    assert!(
        table.contains(&format!("possible clone of V-{v1}")) && table.contains("4 sighting(s)"),
        "{table}"
    );
    println!("{table}");

    // The person seen at two cameras, and the one seen once.
    let links = cli_json(&["links", "--plate", "川A12345", "--json", "--db", db]);
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:#?}");
    assert_eq!(links[0]["vehicle"].as_u64(), Some(v1));
    assert_eq!(links[0]["evidence"][0]["rule"], "got_in");
    assert_eq!(links[0]["evidence"][0]["gap_ms"], 2000);
    let p1 = links[0]["person"].as_u64().unwrap();
    let pt = cli_json(&[
        "trajectory",
        "--person",
        &format!("P-{p1}"),
        "--json",
        "--db",
        db,
    ]);
    let cams: Vec<&str> = pt["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["camera"].as_str().unwrap())
        .collect();
    assert_eq!(cams, vec!["cam-1", "cam-3"], "{pt:#}");
    assert_eq!(pt["sightings"][1]["why"]["rule"], "similar_face");
    assert!(pt["sightings"][1]["why"]["similarity"].as_f64().unwrap() > 0.8);
    println!(
        "{}",
        cli(&["trajectory", "--person", &p1.to_string(), "--db", db])
    );
    let by_person = cli(&["links", "--person", &format!("P-{p1}"), "--db", db]);
    assert!(
        by_person.contains("川A12345") && by_person.contains("1 link(s)"),
        "{by_person}"
    );
    println!("{by_person}");

    // Sightings of grid g-1 (cameras 1 and 2) in the last three hours: the person and the
    // car at camera 1, the car and the other person at camera 2.
    let s = cli_json(&[
        "sightings",
        "--grid",
        "g-1",
        "--from",
        "3h",
        "--to",
        "0s",
        "--json",
        "--db",
        db,
    ]);
    let got: Vec<(&str, u64)> = s["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["camera"].as_str().unwrap(), s["track"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![("cam-1", 1), ("cam-1", 2), ("cam-2", 3), ("cam-2", 4)]
    );
    // A box around the city, without the far camera.
    let s = cli_json(&[
        "sightings",
        "--bbox",
        "30.6,104.0,30.8,104.2",
        "--from",
        "3h",
        "--geojson",
        "--db",
        db,
    ]);
    let points = s["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["geometry"]["type"] == "Point")
        .count();
    assert_eq!(points, 6, "{s:#}");
    println!(
        "{}",
        cli(&["sightings", "--grid", "g-1", "--from", "3h", "--db", db])
    );

    // A restart rebuilds the identities from the store: the car seen again joins its
    // vehicle, person A seen again joins its person; nothing new is founded. (A new port:
    // the embedded broker of the first run keeps its listener in this process.)
    let port = free_port();
    let mut cfg2 = cfg.clone();
    cfg2.broker.listen = ([127, 0, 0, 1], port).into();
    let (agg, stop, metrics) = common::start(cfg2).await;
    let restored = metrics.fusion_restored.snapshot();
    assert_eq!(restored.get("vehicles"), Some(&2), "{restored:?}");
    assert_eq!(restored.get("persons"), Some(&2), "{restored:?}");
    assert_eq!(restored.get("links"), Some(&1), "{restored:?}");
    assert!(restored.get("representatives") >= Some(&2), "{restored:?}");
    let client = common::client(port);
    for (topic, payload) in [
        batch("agent-a", 4, "cam-1", &[car(6, t0 + 40 * min, "川A12345")]),
        batch(
            "agent-a",
            5,
            "cam-2",
            &[person(7, t0 + 45 * min, face_a(0.1))],
        ),
    ] {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.acked) >= 2).await,
        "acked {} of 2 after the restart",
        get(&metrics.acked)
    );
    stop.cancel();
    agg.await.unwrap().unwrap();
    let fused = metrics.fusion.snapshot();
    assert_eq!(fused.get("new_vehicle"), None, "{fused:?}");
    assert_eq!(fused.get("new_person"), None, "{fused:?}");
    assert_eq!(fused.get("vehicle_sighting"), Some(&1), "{fused:?}");
    assert_eq!(fused.get("person_sighting"), Some(&1), "{fused:?}");
    let traj = cli_json(&["trajectory", "--plate", "川A12345", "--json", "--db", db]);
    let tracks: Vec<u64> = traj["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["identity"] == traj["vehicles"][0]["vehicle"])
        .map(|s| s["track"].as_u64().unwrap())
        .collect();
    assert_eq!(tracks, vec![2, 3, 1, 6], "{traj:#}");
}
