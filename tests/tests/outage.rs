//! The broker goes away for several seconds while a camera streams, then comes back: every
//! track batch the agent produced is stored exactly once (the spool holds them meanwhile),
//! and the stored tracks still match the clip. Mosquitto runs with persistence, as a
//! production broker does, so the aggregator's session survives the restart.

use std::time::Duration;

use aggregator::metrics::get;
use aggregator::store::{Store, TrackFilter};
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig, PublishConfig};
use sharpeyes_e2e::mosquitto::Mosquitto;
use sharpeyes_e2e::rtsp::RtspServer;
use sharpeyes_e2e::{
    check_tracks, demo_clip, free_port, models_config, mosquitto_aggregator_config,
    start_aggregator, stored_track_batches,
};
use tokio_util::sync::CancellationToken;

/// How long the broker is away (the fault suite runs longer outages).
const OUTAGE: Duration = Duration::from_secs(6);

#[test]
fn broker_outage_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let truth = demo_clip(&clip).unwrap();
    let server = RtspServer::start(&[("cam-1", &clip)]).unwrap();
    let port = free_port();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let mut broker = Some(Mosquitto::start_on(&broker_dir, port, true).unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = dir.path().join("agg.db");
    let agg = rt
        .block_on(start_aggregator(mosquitto_aggregator_config(port, &db)))
        .unwrap();
    let metrics = agg.metrics.clone();

    let mut agent_cfg = AgentConfig {
        models: models_config(),
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: server.url("cam-1"),
            at_end: AtEnd::Stop,
            ..CameraConfig::default()
        }],
        publish: PublishConfig {
            spool_dir: dir.path().join("spool"),
            ..PublishConfig::default()
        },
        ..AgentConfig::default()
    };
    agent_cfg.broker.port = port;
    agent_cfg.broker.reconnect_max_ms = 500;
    let agent = rt.spawn(edge_agent::run(agent_cfg, CancellationToken::new()));

    // The broker leaves during the first person's appearance and returns during the second's.
    std::thread::sleep(Duration::from_secs(3));
    broker.take().unwrap().stop();
    std::thread::sleep(OUTAGE);
    let _broker = Mosquitto::start_on(&broker_dir, port, true).unwrap();

    let summary = rt.block_on(agent).unwrap().unwrap();
    println!("agent: {summary:?}");
    assert!(
        summary.broker_errors >= 1,
        "the outage was not noticed: {summary:?}"
    );
    assert_eq!(
        summary.spool_pending, 0,
        "the agent left batches unacknowledged"
    );
    let (done, keys) = rt.block_on(stored_track_batches(&db, Duration::from_secs(30), |k| {
        k.len() as u64 >= summary.spooled
    }));
    rt.block_on(agg.shut_down()).unwrap();
    drop(server);
    println!(
        "produced {} track batches; stored {}; duplicates ignored {}; aggregator broker errors {}",
        summary.spooled,
        keys.len(),
        get(&metrics.duplicates),
        get(&metrics.broker_errors)
    );
    if !done {
        let log = std::fs::read_to_string(broker_dir.join("mosquitto.log")).unwrap_or_default();
        println!("broker log:\n{log}");
    }
    assert!(
        done,
        "stored {} of {} track batches",
        keys.len(),
        summary.spooled
    );
    assert_eq!(keys.len() as u64, summary.spooled, "0 lost, 0 stored twice");
    assert!(
        get(&metrics.broker_errors) >= 1,
        "the aggregator saw the outage too"
    );
    let tracks = Store::open(&db)
        .unwrap()
        .tracks(&TrackFilter::default())
        .unwrap();
    let problems = check_tracks(&truth, &tracks);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The fault: the broker is stopped for 2 minutes while 4 cameras stream, then
/// restarted. `SHARPEYES_OUTAGE_S` sets the outage (the benchmark runs 600). Every
/// (agent, seq) the agent produced must be stored once.
#[test]
fn four_cameras_through_a_long_broker_outage_lose_nothing() {
    let outage = Duration::from_secs(
        std::env::var("SHARPEYES_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    demo_clip(&clip).unwrap();
    let mounts = ["cam-1", "cam-2", "cam-3", "cam-4"];
    let files: Vec<(&str, &std::path::Path)> =
        mounts.iter().map(|m| (*m, clip.as_path())).collect();
    let server = RtspServer::start(&files).unwrap();
    let port = free_port();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let mut broker = Some(Mosquitto::start_on(&broker_dir, port, true).unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = dir.path().join("agg.db");
    let agg = rt
        .block_on(start_aggregator(mosquitto_aggregator_config(port, &db)))
        .unwrap();
    let metrics = agg.metrics.clone();

    // Live cameras: each replays the clip (a new RTSP session) when it ends.
    let mut agent_cfg = AgentConfig {
        models: models_config(),
        cameras: mounts
            .iter()
            .map(|m| CameraConfig {
                id: (*m).into(),
                uri: server.url(m),
                analysis_fps: 2.0,
                reconnect_min_ms: 200,
                reconnect_max_ms: 1000,
                ..CameraConfig::default()
            })
            .collect(),
        publish: PublishConfig {
            spool_dir: dir.path().join("spool"),
            ..PublishConfig::default()
        },
        ..AgentConfig::default()
    };
    agent_cfg.broker.port = port;
    agent_cfg.broker.reconnect_max_ms = 1000;
    agent_cfg.ops.enabled = false;
    // Plates are not what this test is about; leave the CPU to four cameras' faces and persons.
    agent_cfg.plate_reader.enabled = false;
    let stop = CancellationToken::new();
    let agent = rt.spawn(edge_agent::run(agent_cfg, stop.clone()));

    std::thread::sleep(Duration::from_secs(5));
    broker.take().unwrap().stop();
    std::thread::sleep(outage);
    let _broker = Mosquitto::start_on(&broker_dir, port, true).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    stop.cancel();
    let summary = rt.block_on(agent).unwrap().unwrap();
    let (done, keys) = rt.block_on(stored_track_batches(&db, Duration::from_secs(60), |k| {
        k.len() as u64 >= summary.spooled
    }));
    rt.block_on(agg.shut_down()).unwrap();
    drop(server);
    println!(
        "{} s outage, 4 cameras: {} frames analysed, produced {} track batches, stored {}, duplicates ignored {}, spool left {}",
        outage.as_secs(),
        summary.frames_analysed,
        summary.spooled,
        keys.len(),
        get(&metrics.duplicates),
        summary.spool_pending
    );
    assert_eq!(
        summary.spool_pending, 0,
        "the agent left batches unacknowledged"
    );
    assert!(done, "stored {} of {}", keys.len(), summary.spooled);
    assert_eq!(keys.len() as u64, summary.spooled, "0 lost, 0 stored twice");
    assert!(summary.broker_errors >= 1);
}
