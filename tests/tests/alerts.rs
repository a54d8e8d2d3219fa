//! Alerts end to end on footage: real face photos and rendered plates in a clip, served over
//! RTSP, analysed by edge-agent with the watchlists the aggregator publishes (enrolled in its
//! store from photos, embedded with the agents' models), alerts stored by the aggregator.
//! Expected, each exactly once and nothing else: patient 1 seen alone (high priority),
//! patient 2 seen with their guardian (low), a wanted plate read exactly, a wanted plate read
//! one confusable character off. Decoys that must not fire: two patients not in the clip, a
//! plate not in it, a plate two confusable characters off one in it. A second test: a person
//! standing in a zone on a street scene raises one loitering alert.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aggregator::metrics::get;
use aggregator::store::{AlertFilter, Store};
use aggregator::watchlist::{Enroller, FaceRequest, enroll_face, enroll_plate};
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use sharpeyes_e2e::clip::{Appearance, ClipSpec, demo_plates, make_clip};
use sharpeyes_e2e::rtsp::RtspServer;
use sharpeyes_e2e::{free_port, models_config, start_aggregator, testdata_dir, wait_until};
use sharpeyes_wire::FaceRole;
use tokio_util::sync::CancellationToken;

/// Enrolls the watchlists into the store at `db` as `aggregator enroll` does.
fn enroll(db: &std::path::Path, people: &[(&str, FaceRole, Vec<PathBuf>, Vec<&str>)]) {
    let mut store = Store::open(db).unwrap();
    let cfg = aggregator::config::WatchlistConfig {
        models: models_config(),
        ..Default::default()
    };
    let mut enroller = Enroller::new(&cfg);
    for (id, role, photos, of) in people {
        enroll_face(
            &mut store,
            &mut enroller,
            &FaceRequest {
                id: id.to_string(),
                role: *role,
                name: format!("{id} (test)"),
                photos: photos.clone(),
                guardian_of: of.iter().map(|s| s.to_string()).collect(),
                contacts: vec![],
                consent: (*role == FaceRole::Patient).then(|| "consent-2026-001".to_string()),
            },
        )
        .unwrap();
    }
    for (plate, reason) in [
        ("粤BD12345", "stolen"),
        // One OCR-confusable character off the clip's 川A5K2M8 (8/B): a fuzzy match.
        ("川A5K2MB", "wanted"),
        // Decoys: not in the clip; two confusable characters off 川A5K2M8.
        ("京A12345", "decoy"),
        ("川ASK2MB", "decoy"),
    ] {
        enroll_plate(&mut store, plate, reason).unwrap();
    }
}

#[test]
fn each_expected_alert_fires_once_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let td = testdata_dir();
    let id = |p: &str| td.join("identities").join(p);
    let (p1, p2, g2) = (
        id("obama/obama.jpg"),
        id("deepface_p01/img1.jpg"),
        id("biden/biden.jpg"),
    );
    // Patient 1 alone (1–4 s); patient 2 from 6 s, their guardian joining at 7.5 s (both move
    // right at 150 px/s, so they are side by side, not on top of each other). The demo's two
    // vehicles: 川A5K2M8 (1–5.5 s) and 粤BD12345 (10–15.5 s).
    let spec = ClipSpec {
        width: 1280,
        height: 720,
        fps: 25,
        duration_s: 16.0,
        face_px: 110,
        speed_px_s: 150.0,
        appearances: vec![
            Appearance {
                photo: p1.clone(),
                start_s: 1.0,
                end_s: 4.0,
            },
            Appearance {
                photo: p2.clone(),
                start_s: 6.0,
                end_s: 9.5,
            },
            Appearance {
                photo: g2.clone(),
                start_s: 7.5,
                end_s: 11.0,
            },
        ],
        plates: demo_plates(),
        background: None,
    };
    let clip = dir.path().join("clip.mp4");
    make_clip(&spec, &clip, &models_config()).unwrap();
    let db = dir.path().join("sharpeyes.db");
    // Enrollment photos other than the ones in the clip where the set has them.
    enroll(
        &db,
        &[
            (
                "p-1",
                FaceRole::Patient,
                vec![id("obama/obama2.jpg")],
                vec![],
            ),
            (
                "p-2",
                FaceRole::Patient,
                vec![id("deepface_p01/img2.jpg")],
                vec![],
            ),
            ("g-2", FaceRole::Guardian, vec![g2.clone()], vec!["p-2"]),
            (
                "p-x",
                FaceRole::Patient,
                vec![id("kit_harington/john1.jpeg")],
                vec![],
            ),
            (
                "p-y",
                FaceRole::Patient,
                vec![id("John_Salley/000179_02159509.jpg")],
                vec![],
            ),
        ],
    );
    let version = Store::open(&db).unwrap().watchlist_version().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let port = free_port();
        let mut cfg = aggregator::AggregatorConfig::default();
        cfg.broker.listen = ([127, 0, 0, 1], port).into();
        cfg.store.path = db.clone();
        cfg.ops.enabled = false;
        cfg.watchlist.publish_poll_ms = 200;
        let agg = start_aggregator(cfg).await.unwrap();
        // The aggregator publishes the enrolled watchlists (retained) once connected.
        assert!(
            wait_until(Duration::from_secs(10), || {
                get(&agg.metrics.watchlist_version) == version
            })
            .await,
            "watchlists not published"
        );
        let server = RtspServer::start(&[("cam-1", &clip)]).unwrap();
        let mut agent_cfg = AgentConfig {
            models: models_config(),
            cameras: vec![CameraConfig {
                id: "cam-1".into(),
                uri: server.url("cam-1"),
                analysis_fps: 5.0,
                at_end: AtEnd::Stop,
                geo: Some([30.6571, 104.0661]),
                ..CameraConfig::default()
            }],
            ..AgentConfig::default()
        };
        agent_cfg.broker.port = port;
        agent_cfg.publish.spool_dir = dir.path().join("spool");
        agent_cfg.ops.enabled = false;
        agent_cfg.rules.police_units = vec![edge_agent::rules::PoliceUnit {
            name: "Xinhua Road station".into(),
            lat: 30.6586,
            lon: 104.0648,
        }];
        let started = Instant::now();
        let summary = edge_agent::run(agent_cfg, CancellationToken::new())
            .await
            .unwrap();
        println!("agent: {summary:?} in {:?}", started.elapsed());
        let store_has = |n: usize| {
            Store::open(&db)
                .and_then(|s| s.alerts(&AlertFilter::default()))
                .map(|a| a.len() >= n)
                .unwrap_or(false)
        };
        wait_until(Duration::from_secs(20), || store_has(4)).await;
        // Let a stray late alert arrive before judging.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let m = agg.metrics.clone();
        agg.shut_down().await.unwrap();
        drop(server);
        assert_eq!(m.rejected.total(), 0);
        assert_eq!(get(&m.alerts), 4, "new alerts stored");

        let alerts = Store::open(&db)
            .unwrap()
            .alerts(&AlertFilter::default())
            .unwrap();
        print!("{}", aggregator::query::alerts_table(&alerts));
        for a in &alerts {
            println!(
                "{} latency {} ms (capture of the deciding frame → stored) {:?}",
                a.alert_id,
                a.received_ms - a.last_ms,
                a.details
            );
        }
        let find = |kind: &str, key: &str, value: &str| -> Vec<&aggregator::store::AlertRow> {
            alerts
                .iter()
                .filter(|a| a.kind == kind && a.details.get(key).map(String::as_str) == Some(value))
                .collect()
        };
        let p1a = find("face_watchlist", "watchlist_id", "p-1");
        assert_eq!(p1a.len(), 1, "patient 1: {alerts:#?}");
        assert_eq!(p1a[0].priority, "high");
        assert_eq!(p1a[0].details["companion"], "alone");
        assert_eq!(p1a[0].details["police_unit"], "Xinhua Road station");
        let p2a = find("face_watchlist", "watchlist_id", "p-2");
        assert_eq!(p2a.len(), 1, "patient 2: {alerts:#?}");
        assert_eq!(p2a[0].priority, "low");
        assert_eq!(p2a[0].details["companion"], "accompanied");
        assert_eq!(p2a[0].details["guardian_id"], "g-2");
        let exact = find("plate_watchlist", "plate", "粤BD12345");
        assert_eq!(exact.len(), 1, "{alerts:#?}");
        assert_eq!(exact[0].details["match"], "exact");
        let fuzzy = find("plate_watchlist", "plate", "川A5K2MB");
        assert_eq!(fuzzy.len(), 1, "{alerts:#?}");
        assert_eq!(fuzzy[0].details["match"], "fuzzy");
        assert_eq!(alerts.len(), 4, "nothing else fires: {alerts:#?}");
        for a in &alerts {
            assert!(
                a.evidence.contains(&"crop".to_string())
                    && a.evidence.contains(&"frame".to_string()),
                "{} has evidence {:?}",
                a.alert_id,
                a.evidence
            );
            assert_eq!(
                a.details.get("watchlist_version").map(String::as_str),
                Some(version.to_string().as_str())
            );
        }
        // Evidence decodes as an image.
        let s = Store::open(&db).unwrap();
        let (_, jpeg) = s
            .alert_evidence(&p1a[0].agent, &p1a[0].alert_id, "crop")
            .unwrap()
            .unwrap();
        assert!(image::load_from_memory(&jpeg).is_ok());
        // The agent reported the watchlist version it applies.
        let status = s
            .agent_status("agent-1")
            .unwrap()
            .expect("agent status stored");
        assert_eq!(status.watchlist_version, Some(version));
    });
}

/// A person standing in a fishing-ban zone (time compressed: threshold 4 s) on a live-noise
/// street scene: one loitering alert for that zone, with evidence; nothing for the zone nobody
/// stands in, nothing else at all.
#[test]
fn a_person_staying_in_a_zone_raises_one_loitering_alert() {
    let dir = tempfile::tempdir().unwrap();
    // street/bus.jpg: a person stands at [53, 395, 222, 901] (foot point ≈ (137, 900)).
    let spec = ClipSpec {
        width: 810,
        height: 1080,
        fps: 25,
        duration_s: 12.0,
        face_px: 100,
        speed_px_s: 0.0,
        appearances: vec![],
        plates: vec![],
        background: Some(testdata_dir().join("street/bus.jpg")),
    };
    let clip = dir.path().join("street.mp4");
    make_clip(&spec, &clip, &models_config()).unwrap();
    let zone = |id: &str, x1: f32, y1: f32, x2: f32, y2: f32| edge_agent::rules::ZoneConfig {
        id: id.into(),
        polygon: vec![[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
        geo: None,
        threshold_s: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let port = free_port();
        let db = dir.path().join("sharpeyes.db");
        let mut cfg = aggregator::AggregatorConfig::default();
        cfg.broker.listen = ([127, 0, 0, 1], port).into();
        cfg.store.path = db.clone();
        cfg.ops.enabled = false;
        let agg = start_aggregator(cfg).await.unwrap();
        let server = RtspServer::start(&[("bank", &clip)]).unwrap();
        let mut agent_cfg = AgentConfig {
            models: models_config(),
            cameras: vec![CameraConfig {
                id: "bank".into(),
                uri: server.url("bank"),
                analysis_fps: 5.0,
                at_end: AtEnd::Stop,
                zones: vec![
                    zone("bank-1", 20.0, 820.0, 320.0, 1000.0),
                    zone("bank-2", 350.0, 960.0, 600.0, 1070.0),
                ],
                ..CameraConfig::default()
            }],
            ..AgentConfig::default()
        };
        agent_cfg.broker.port = port;
        agent_cfg.publish.spool_dir = dir.path().join("spool");
        agent_cfg.ops.enabled = false;
        agent_cfg.rules.loitering.threshold_s = 4;
        agent_cfg.rules.loitering.reminder_interval_s = 0;
        let summary = edge_agent::run(agent_cfg, CancellationToken::new())
            .await
            .unwrap();
        println!("agent: {summary:?}");
        let stored = |n: usize| {
            Store::open(&db)
                .and_then(|s| s.alerts(&AlertFilter::default()))
                .map(|a| a.len() >= n)
                .unwrap_or(false)
        };
        wait_until(Duration::from_secs(20), || stored(1)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        agg.shut_down().await.unwrap();
        drop(server);
        let alerts = Store::open(&db)
            .unwrap()
            .alerts(&AlertFilter::default())
            .unwrap();
        print!("{}", aggregator::query::alerts_table(&alerts));
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.kind, "loitering");
        assert_eq!(a.details["zone"], "bank-1");
        let dwell: f64 = a.details["dwell_s"].parse().unwrap();
        assert!((4.0..6.0).contains(&dwell), "dwell {dwell}");
        assert!(
            a.evidence.contains(&"crop".to_string()) && a.evidence.contains(&"frame".to_string())
        );
        println!(
            "alert latency (capture of the frame that crossed the threshold → stored): {} ms",
            a.received_ms - a.last_ms
        );
    });
}
