//! A camera that is not there yet: the agent retries with back-off, picks the stream up when
//! the camera appears, analyses it, and (with `at_end = "stop"`) stops at its end. Meanwhile
//! the broker is unreachable too: the agent keeps analysing and never fails for it.

use std::time::Duration;

use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use sharpeyes_e2e::clip::{Appearance, ClipSpec, default_photos, make_clip};
use sharpeyes_e2e::rtsp::RtspServer;
use sharpeyes_e2e::{free_port, models_config, testdata_dir};
use tokio_util::sync::CancellationToken;

#[test]
fn camera_that_appears_late_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("short.mp4");
    let photo = default_photos(&testdata_dir()).remove(0);
    let spec = ClipSpec {
        width: 640,
        height: 360,
        fps: 25,
        duration_s: 4.0,
        face_px: 80,
        speed_px_s: 30.0,
        appearances: vec![Appearance {
            photo,
            start_s: 0.5,
            end_s: 3.5,
        }],
        plates: Vec::new(),
        background: None,
    };
    make_clip(&spec, &clip, &models_config()).unwrap();

    let port = free_port();
    let cfg = AgentConfig {
        models: models_config(),
        cameras: vec![CameraConfig {
            id: "late".into(),
            uri: format!("rtsp://127.0.0.1:{port}/late"),
            analysis_fps: 5.0,
            at_end: AtEnd::Stop,
            reconnect_min_ms: 200,
            reconnect_max_ms: 1000,
            ..CameraConfig::default()
        }],
        broker: edge_agent::config::BrokerConfig {
            port: free_port(),
            ..Default::default()
        },
        publish: edge_agent::config::PublishConfig {
            spool_dir: dir.path().join("spool"),
            ..Default::default()
        },
        ..AgentConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = CancellationToken::new();
    let agent = rt.spawn(edge_agent::run(cfg, stop.clone()));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !agent.is_finished(),
        "the agent must keep retrying a missing camera"
    );
    let server = RtspServer::start_on(port, &[("late", &clip)]).unwrap();
    let guard = stop.clone();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        guard.cancel();
    });
    let summary = rt.block_on(agent).unwrap().unwrap();
    drop(server);
    drop(watchdog);
    println!("{summary:?}");
    assert!(
        !stop.is_cancelled(),
        "the agent did not stop at the end of the stream by itself"
    );
    assert!(
        summary.reconnects >= 2,
        "reconnects: {}",
        summary.reconnects
    );
    assert!(
        summary.frames_analysed >= 10,
        "frames analysed: {}",
        summary.frames_analysed
    );
    assert!(
        summary.track_updates >= 2,
        "a face was in the clip: {summary:?}"
    );
    assert_eq!(
        summary.published, 0,
        "no broker was there to acknowledge anything"
    );
}
