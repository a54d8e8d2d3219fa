//! Decoding options of a camera (`decoder`, `source`), with real GStreamer decoding a real
//! H.264 clip that the test encodes first (x264enc, MP4).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_agent::config::{AgentConfig, CameraConfig, ConfigFile, Decoder};
use edge_agent::ingest::{self, DecodeReport, FrameSlots, IngestError, Take};
use edge_agent::metrics::Metrics;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio_util::sync::CancellationToken;

const W: u32 = 320;
const H: u32 = 240;

/// Encodes a 2 s, 25 fps, 320×240 H.264 MP4 clip into `dir`.
fn clip(dir: &Path) -> PathBuf {
    ingest::init().unwrap();
    let path = dir.join("clip.mp4");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=50 pattern=ball ! video/x-raw,width={W},height={H},framerate=25/1 \
         ! x264enc speed-preset=ultrafast key-int-max=25 ! h264parse ! mp4mux \
         ! filesink location=\"{}\"",
        path.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("encoding the clip timed out");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "encoding the clip: {msg:?}"
    );
    path
}

fn camera(id: &str, clip: &Path, decoder: Decoder) -> CameraConfig {
    CameraConfig {
        id: id.into(),
        uri: format!("file://{}", clip.display()),
        decoder,
        realtime: false,
        analysis_fps: 25.0,
        ..CameraConfig::default()
    }
}

fn decode(cfg: &CameraConfig) -> Result<DecodeReport, IngestError> {
    ingest::decode_sample(cfg, 10, Duration::from_secs(30))
}

/// Whether an installed video decoder of this GStreamer plugin exists.
fn plugin_has_decoder(plugins: &[&str]) -> bool {
    ingest::init().unwrap();
    gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::NONE,
    )
    .iter()
    .any(|f| {
        f.plugin_name()
            .is_some_and(|p| plugins.contains(&p.as_str()))
    })
}

fn klass(factory: &str) -> String {
    gst::ElementFactory::find(factory)
        .unwrap()
        .metadata(gst::ELEMENT_METADATA_KLASS)
        .unwrap()
        .to_string()
}

#[test]
fn auto_decodes_with_the_best_ranked_h264_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let r = decode(&camera("auto", &clip, Decoder::Auto)).unwrap();
    assert!(r.frames >= 10, "{r:?}");
    assert_eq!((r.width, r.height), (W, H));
    let chosen = r.decoder.expect("an H.264 decoder");
    // GStreamer's choice: no other installed H.264 decoder ranks above it.
    let h264 = gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .build();
    let best = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::MARGINAL,
    )
    .iter()
    .filter(|f| f.can_sink_any_caps(&h264))
    .map(|f| f.rank())
    .max()
    .unwrap();
    assert_eq!(gst::ElementFactory::find(&chosen).unwrap().rank(), best);
    assert_eq!(r.hardware, klass(&chosen).contains("Hardware"));
}

#[test]
fn software_decodes_with_a_software_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let r = decode(&camera("sw", &clip, Decoder::Software)).unwrap();
    assert!(r.frames >= 10, "{r:?}");
    assert_eq!((r.width, r.height), (W, H));
    let chosen = r.decoder.expect("an H.264 decoder");
    let class = klass(&chosen);
    assert!(
        class.contains("Decoder/Video") && !class.contains("Hardware"),
        "{chosen}: {class}"
    );
    assert!(!r.hardware);
}

#[test]
fn source_fragment_decodes_encoded_and_passes_raw_video() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let mut cfg = camera("frag", &clip, Decoder::Software);
    cfg.source = Some(format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse",
        clip.display()
    ));
    cfg.uri = String::new();
    let r = decode(&cfg).unwrap();
    assert!(r.frames >= 10, "{r:?}");
    assert_eq!((r.width, r.height), (W, H));
    assert!(r.decoder.is_some() && !r.hardware, "{r:?}");

    // Raw video: nothing to decode.
    cfg.source = Some(
        "videotestsrc num-buffers=30 ! capsfilter caps=video/x-raw,width=160,height=120".into(),
    );
    let r = decode(&cfg).unwrap();
    assert!(r.frames >= 10, "{r:?}");
    assert_eq!((r.width, r.height, r.decoder), (160, 120, None));
}

#[test]
fn missing_hardware_decoders_fail_at_once_with_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    for (kind, plugins, factory, package) in [
        (
            Decoder::Vaapi,
            &["va", "vaapi"][..],
            "vah264dec",
            "gstreamer1.0-vaapi",
        ),
        (Decoder::Nvdec, &["nvcodec"][..], "nvh264dec", "libnvcuvid"),
    ] {
        let cfg = camera("hw", &clip, kind);
        let started = Instant::now();
        let result = decode(&cfg);
        if plugin_has_decoder(plugins) {
            // This machine has it: it must then decode in hardware.
            let r = result.unwrap();
            assert!(r.frames >= 10 && r.hardware, "{r:?}");
            continue;
        }
        let e = result.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(2), "{e}");
        assert!(
            e.contains(kind.name()) && e.contains(factory) && e.contains(package),
            "{e}"
        );
    }
}

/// A camera whose decoder is missing fails (state `failed`, its slot finished) while the
/// other camera keeps decoding.
#[test]
fn a_camera_without_its_decoder_fails_alone() {
    let missing = if !plugin_has_decoder(&["nvcodec"]) {
        Decoder::Nvdec
    } else if !plugin_has_decoder(&["va", "vaapi"]) {
        Decoder::Vaapi
    } else {
        return; // Both installed: nothing is missing here.
    };
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let cams = [
        camera("hw", &clip, missing),
        camera("sw", &clip, Decoder::Software),
    ];
    let slots = Arc::new(FrameSlots::new(2));
    let metrics = Arc::new(Metrics::new(cams.iter().map(|c| c.id.as_str())));
    let shutdown = CancellationToken::new();
    let threads: Vec<_> = cams
        .iter()
        .enumerate()
        .map(|(i, c)| {
            ingest::spawn_camera(
                i,
                c.clone(),
                slots.clone(),
                metrics.clone(),
                shutdown.clone(),
            )
            .unwrap()
        })
        .collect();
    let mut frames = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames < 5 && Instant::now() < deadline {
        match slots.take(Duration::from_millis(200)) {
            Take::Frame(f) => {
                assert_eq!(f.camera, 1);
                frames += 1;
            }
            Take::Timeout => {}
            Take::Finished => break,
        }
    }
    assert!(frames >= 5, "the software camera decoded {frames} frames");
    assert_eq!(metrics.cameras[0].state(), "failed");
    assert!(threads[0].is_finished());
    shutdown.cancel();
    slots.close();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn stream_errors_do_not_show_credentials() {
    let cfg = CameraConfig {
        id: "cred".into(),
        // Nothing listens on port 1: the connection is refused at once.
        uri: "rtsp://admin:hunter2@127.0.0.1:1/stream".into(),
        ..CameraConfig::default()
    };
    let e = ingest::decode_sample(&cfg, 1, Duration::from_secs(20))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2") && !e.contains("admin"), "{e}");
}

fn check_config(dir: &Path, camera: &str) -> (bool, String) {
    let f = dir.join("agent.toml");
    std::fs::write(&f, format!("[[cameras]]\nid = 'c'\n{camera}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("check-config")
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_checks_decoder_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, err) = check_config(dir.path(), "uri = 'rtsp://x/s'\ndecoder = 'cuda'");
    assert!(!ok);
    assert!(
        err.contains("decoder") && err.contains("unknown variant") && err.contains("nvdec"),
        "{err}"
    );

    let (ok, err) = check_config(
        dir.path(),
        "source = 'filesrc location=/v.mp4 ! nosuchparser'",
    );
    assert!(!ok);
    assert!(
        err.contains("cameras[0].source") && err.contains("nosuchparser"),
        "{err}"
    );

    let (ok, err) = check_config(dir.path(), "source = 'filesrc location=/v.mp4 ! qtdemux'");
    assert!(!ok);
    assert!(
        err.contains("cameras[0].source") && err.contains("h264parse"),
        "{err}"
    );

    let (ok, err) = check_config(dir.path(), "source = 'h264parse'");
    assert!(!ok);
    assert!(
        err.contains("cameras[0].source") && err.contains("no source element"),
        "{err}"
    );

    let (ok, err) = check_config(
        dir.path(),
        "uri = 'v4l2:///dev/video0'\nsource = 'videotestsrc ! capsfilter caps=video/x-raw,width=64,height=48'\ndecoder = 'software'",
    );
    assert!(ok, "{err}");

    if !plugin_has_decoder(&["nvcodec"]) {
        let (ok, err) = check_config(dir.path(), "uri = 'rtsp://x/s'\ndecoder = 'nvdec'");
        assert!(!ok);
        assert!(
            err.contains("cameras[0].decoder") && err.contains("nvh264dec"),
            "{err}"
        );
    }
}

#[test]
fn source_changes_what_uri_must_be() {
    let cfg = |camera: &str| AgentConfig::from_toml(&format!("[[cameras]]\nid = 'c'\n{camera}"));
    // Without a source the URI is opened, so it must be a stream or file URI.
    assert!(
        cfg("uri = ''")
            .unwrap_err()
            .to_string()
            .contains("cameras[0].uri")
    );
    assert!(cfg("uri = ''\nsource = 'videotestsrc'").is_ok());
    assert!(cfg("uri = 'v4l2:///dev/video0'\nsource = 'v4l2src'").is_ok());
    let e = cfg("uri = 'cam one'\nsource = 'v4l2src'")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cameras[0].uri"), "{e}");
    let e = cfg("uri = 'rtsp://x/s'\nsource = ' '")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cameras[0].source"), "{e}");
    let e = cfg("uri = 'ftp://u:pw@x/s'").unwrap_err().to_string();
    assert!(e.contains("cameras[0].uri") && !e.contains("pw@"), "{e}");
}

/// Runs one camera until `done(metrics)` or 30 s; whether `done` came true.
fn run_camera(cfg: CameraConfig, done: impl Fn(&Metrics) -> bool) -> bool {
    let slots = Arc::new(FrameSlots::new(1));
    let metrics = Arc::new(Metrics::new([cfg.id.as_str()]));
    let shutdown = CancellationToken::new();
    let thread =
        ingest::spawn_camera(0, cfg, slots.clone(), metrics.clone(), shutdown.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&metrics) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = done(&metrics);
    shutdown.cancel();
    thread.join().unwrap();
    ok
}

/// A `source` camera restarts at the end of its stream and when no frame comes.
#[test]
fn source_cameras_reconnect_at_end_and_on_stall() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    // No file URI: a live camera, which restarts at the end of its stream.
    let mut cfg = camera("frag", &clip, Decoder::Software);
    cfg.uri = String::new();
    cfg.source = Some(format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse",
        clip.display()
    ));
    // The clip has 50 frames: more were decoded after a restart.
    assert!(run_camera(cfg, |m| {
        let c = &m.cameras[0];
        c.reconnects.load(Relaxed) >= 1 && c.frames_decoded.load(Relaxed) > 50
    }));

    // Raw video that never comes (nothing sends to the port): a stall, then a restart.
    let mut cfg = camera("stall", &clip, Decoder::Software);
    cfg.uri = String::new();
    cfg.stall_timeout_s = 2;
    cfg.source =
        Some("udpsrc port=0 caps=video/x-raw,format=BGR,width=64,height=48,framerate=25/1".into());
    let started = Instant::now();
    assert!(run_camera(cfg, |m| m.cameras[0].reconnects.load(Relaxed) >= 1));
    assert!(started.elapsed() >= Duration::from_secs(2));
}
