//! One camera's RTSP server goes away and comes back while another camera streams: the lost
//! camera is analysed again within 5 s of its return, and the other camera's analysis rate
//! does not drop meanwhile. Frame counts are read from the agent's `/metrics`, as a field
//! engineer's dashboard would.

use std::time::{Duration, Instant};

use edge_agent::config::{AgentConfig, CameraConfig};
use sharpeyes_e2e::rtsp::RtspServer;
use sharpeyes_e2e::{demo_clip, free_port, http_get, models_config, wait_until};
use tokio_util::sync::CancellationToken;

/// How long camera `a` is away.
const OUTAGE: Duration = Duration::from_secs(4);
/// The bound: analysed again within this long after the camera returns.
const BACK_WITHIN: Duration = Duration::from_secs(5);

/// Frames analysed by `camera`, from the agent's `/metrics` (which lists every camera, 0 until
/// its first frame). Fails the test if the endpoint does not answer.
fn analysed(rt: &tokio::runtime::Runtime, port: u16, camera: &str) -> f64 {
    let text = rt
        .block_on(http_get(port, "/metrics"))
        .expect("the agent's /metrics answers");
    let prefix = format!("sharpeyes_agent_frames_analysed_total{{camera=\"{camera}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame count for camera {camera} in:\n{text}"))
}

#[test]
fn a_camera_that_restarts_is_analysed_again_and_the_other_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    demo_clip(&clip).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let server_a = RtspServer::start_on(port_a, &[("a", &clip)]).unwrap();
    let _server_b = RtspServer::start_on(port_b, &[("b", &clip)]).unwrap();
    let camera = |id: &str, port: u16| CameraConfig {
        id: id.into(),
        uri: format!("rtsp://127.0.0.1:{port}/{id}"),
        analysis_fps: 4.0,
        stall_timeout_s: 2,
        reconnect_min_ms: 200,
        reconnect_max_ms: 1000,
        ..CameraConfig::default()
    };
    let ops = free_port();
    let mut cfg = AgentConfig {
        models: models_config(),
        cameras: vec![camera("a", port_a), camera("b", port_b)],
        ..AgentConfig::default()
    };
    cfg.broker.port = free_port(); // no broker: the spool keeps the batches
    cfg.publish.spool_dir = dir.path().join("spool");
    cfg.ops.port = ops;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = CancellationToken::new();
    let agent = rt.spawn(edge_agent::run(cfg, stop.clone()));

    assert!(
        rt.block_on(wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", ops)).is_ok()
        })),
        "the agent's ops endpoint did not come up"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && (analysed(&rt, ops, "a") < 4.0 || analysed(&rt, ops, "b") < 4.0)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Camera b's rate before the outage, over as long as the outage will last.
    let (b0, t0) = (analysed(&rt, ops, "b"), Instant::now());
    std::thread::sleep(OUTAGE);
    let rate_before = (analysed(&rt, ops, "b") - b0) / t0.elapsed().as_secs_f64();

    drop(server_a);
    let (a1, b1, t1) = (
        analysed(&rt, ops, "a"),
        analysed(&rt, ops, "b"),
        Instant::now(),
    );
    std::thread::sleep(OUTAGE);
    let rate_during = (analysed(&rt, ops, "b") - b1) / t1.elapsed().as_secs_f64();
    let a_during = analysed(&rt, ops, "a");

    let _server_a = RtspServer::start_on(port_a, &[("a", &clip)]).unwrap();
    let back = Instant::now();
    let mut back_after = None;
    while back.elapsed() < Duration::from_secs(15) {
        if analysed(&rt, ops, "a") > a_during + 1.0 {
            back_after = Some(back.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.cancel();
    let summary = rt.block_on(agent).unwrap().unwrap();
    println!(
        "camera a: {a1} frames before the outage, {a_during} at its end, analysed again {back_after:?} after its return; camera b: {rate_before:.2} frames/s before, {rate_during:.2} during; {} stream restarts",
        summary.reconnects
    );
    // While a was away at most the frames already in flight were analysed.
    assert!(
        a_during - a1 <= 2.0,
        "camera a analysed {a_during} frames while away"
    );
    let back_after = back_after.expect("camera a was not analysed again within 15 s");
    assert!(
        back_after <= BACK_WITHIN,
        "camera a back after {back_after:?}"
    );
    assert!(
        rate_during >= 0.85 * rate_before,
        "camera b slowed from {rate_before:.2} to {rate_during:.2} frames/s"
    );
    assert!(summary.reconnects >= 1);
}
