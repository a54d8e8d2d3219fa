//! Ingest: one GStreamer pipeline per camera (the only place GStreamer is used by the agent).
//!
//! `uridecodebin` (RTSP, HTTP or file) → `videoconvert` → BGR `appsink`. A pad probe before
//! the converter decimates to the camera's analysis rate by timestamp, so frames that will
//! not be analysed are never converted. The appsink callback hands each frame to
//! [`FrameSlots`]: one slot per camera holding only the newest frame, so when analysis is
//! behind, older frames are replaced (and counted as dropped) instead of queueing without
//! bound. Errors, end of stream and stalls restart the pipeline with exponential back-off.
//!
//! Each frame's capture time is the agent's clock when it arrives (`wall`), or, for files and
//! cameras with `clock = "stream"`, the wall clock when the stream started plus the frame's
//! running time (its timestamp): footage time, which runs at the footage's own pace whatever
//! the processing speed, and never backwards across restarts ([`StreamClock`]).

mod decode;
mod slots;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use sharpeyes_common::config::invalid;
use sharpeyes_common::redact;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn};

pub use self::slots::{Frame, FrameSlots, Take};
use crate::config::{CameraConfig, ConfigError};
use crate::infer::BgrImage;
use crate::metrics::{CameraMetrics, Metrics, inc};

/// Why a camera's pipeline stopped.
#[derive(Debug, Error)]
pub enum IngestError {
    /// GStreamer itself could not be initialised.
    #[error("initialising GStreamer: {0}")]
    Init(#[from] gst::glib::Error),
    /// The pipeline could not be built (a missing plugin, usually).
    #[error("building the pipeline: {0}")]
    Build(String),
    /// The pipeline refused to start.
    #[error("starting the pipeline: {0}")]
    Start(#[from] gst::StateChangeError),
    /// An element posted an error.
    #[error("stream error from {element}: {message} ({debug})")]
    Stream {
        /// The element that posted it.
        element: String,
        /// The error.
        message: String,
        /// GStreamer's debug text.
        debug: String,
    },
    /// No frame arrived for too long.
    #[error("no frame for {0:?}")]
    Stalled(Duration),
    /// The camera's `decoder` kind is not installed (this camera cannot run until it is).
    #[error(
        "decoder = \"{decoder}\" but no such decoder is installed (looked for the element factories {looked_for}); {install}; or set decoder = \"auto\" or \"software\""
    )]
    DecoderUnavailable {
        /// The configured kind.
        decoder: &'static str,
        /// The element factories looked for.
        looked_for: &'static str,
        /// What to install.
        install: &'static str,
    },
    /// The camera's `source` fragment cannot be used (this camera cannot run until it is
    /// fixed).
    #[error("the source fragment does not work: {0}")]
    Source(String),
}

impl IngestError {
    /// Whether retrying cannot help (the configuration or the installation must change).
    fn is_permanent(&self) -> bool {
        matches!(self, Self::DecoderUnavailable { .. } | Self::Source(_))
    }
}

/// How one run of a pipeline ended (when it did not fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Eos,
    Shutdown,
}

/// Initialises GStreamer (idempotent).
pub fn init() -> Result<(), IngestError> {
    gst::init()?;
    Ok(())
}

/// Starts a camera's ingest thread. It runs until `shutdown`, or until its stream ends and
/// the camera's `at_end` says stop; otherwise it never gives up.
pub fn spawn_camera(
    index: usize,
    cfg: CameraConfig,
    slots: Arc<FrameSlots>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ingest-{}", cfg.id))
        .spawn(move || camera_loop(index, &cfg, &slots, &metrics, &shutdown))
}

/// Footage time of one camera: a frame is stamped `origin + running time` (its timestamp
/// relative to the stream's start), the origin being the wall clock when the stream (re)starts
/// but never earlier than just after the last frame stamped, so a restarted or looping stream
/// goes on from where it stopped. Stamps are strictly increasing.
#[derive(Debug)]
pub struct StreamClock {
    origin_ms: i64,
    last_ms: Option<i64>,
    /// The spacing of analysed frames, ms: the least step from the last stamp to a restart.
    step_ms: i64,
}

impl StreamClock {
    /// A clock whose streams' frames are `step_ms` apart after decimation.
    pub fn new(step_ms: i64) -> Self {
        Self {
            origin_ms: 0,
            last_ms: None,
            step_ms: step_ms.max(1),
        }
    }

    /// A stream (re)starts at `wall_ms`.
    pub fn start(&mut self, wall_ms: i64) {
        self.origin_ms = match self.last_ms {
            Some(last) => wall_ms.max(last + self.step_ms),
            None => wall_ms,
        };
    }

    /// The capture time of a frame `running_ms` into the stream.
    pub fn stamp(&mut self, running_ms: i64) -> i64 {
        let t = self.origin_ms + running_ms.max(0);
        let t = match self.last_ms {
            Some(last) => t.max(last + 1),
            None => t,
        };
        self.last_ms = Some(t);
        t
    }
}

fn camera_loop(
    index: usize,
    cfg: &CameraConfig,
    slots: &Arc<FrameSlots>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    let _span = info_span!("camera", camera = %cfg.id).entered();
    let m = &metrics.cameras[index];
    let clock = Arc::new(Mutex::new(StreamClock::new(
        (1000.0 / cfg.analysis_fps as f64).round() as i64,
    )));
    let mut backoff = Duration::from_millis(cfg.reconnect_min_ms);
    let max_backoff = Duration::from_millis(cfg.reconnect_max_ms);
    loop {
        m.set_state("starting");
        let frames_before = m.frames_decoded.load(Ordering::Relaxed);
        let started = Instant::now();
        let result = run_once(index, cfg, slots, metrics, &clock, shutdown);
        let got_frames = m.frames_decoded.load(Ordering::Relaxed) > frames_before;
        match result {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Eos) if cfg.stops_at_end() => {
                info!("end of stream; camera stopped");
                m.set_state("ended");
                break;
            }
            Ok(Ended::Eos) => info!("end of stream; restarting"),
            Err(e) if e.is_permanent() => {
                error!(uri = %redact::uri(&cfg.uri), error = %e, "camera cannot run; the other cameras go on");
                m.set_state("failed");
                break;
            }
            Err(e) => {
                warn!(uri = %redact::uri(&cfg.uri), decoder = cfg.decoder.name(), error = %e, "stream failed; restarting in {backoff:?}")
            }
        }
        if got_frames || started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(cfg.reconnect_min_ms);
        }
        m.set_state("reconnecting");
        inc(&m.reconnects);
        if sleep_or_shutdown(backoff, shutdown) {
            break;
        }
        backoff = (backoff * 2).min(max_backoff);
    }
    slots.finish(index);
    if shutdown.is_cancelled() {
        m.set_state("stopped");
    }
}

/// Sleeps `d` unless shutdown comes first; true on shutdown.
fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shutdown.is_cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
    shutdown.is_cancelled()
}

fn build_error(e: impl std::fmt::Display) -> IngestError {
    IngestError::Build(e.to_string())
}

/// A camera's pipeline, built but not started.
struct Built {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    /// The video decoder decodebin chose (the last one it added).
    decoder: Arc<Mutex<Option<gst::ElementFactory>>>,
}

/// Builds a camera's pipeline: its source (`uridecodebin`, or `source` ! `decodebin`, each
/// restricted to the camera's `decoder`), the decimation probe, `videoconvert` and the BGR
/// appsink (without callbacks).
fn build(cfg: &CameraConfig) -> Result<Built, IngestError> {
    decode::check_available(cfg.decoder)?;
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", cfg.id));
    let convert = gst::ElementFactory::make("videoconvert")
        .build()
        .map_err(build_error)?;
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Bgr)
        .build();
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(cfg.realtime && cfg.is_file())
        .max_buffers(1)
        .drop(true)
        .build();
    pipeline
        .add_many([&convert, sink.upcast_ref()])
        .map_err(build_error)?;
    convert.link(&sink).map_err(build_error)?;

    let decodebin = match &cfg.source {
        None => {
            let src = gst::ElementFactory::make("uridecodebin")
                .property("uri", &cfg.uri)
                .build()
                .map_err(build_error)?;
            // Live sources: keep RTSP latency low.
            src.connect("source-setup", false, |vals| {
                if let Some(Ok(el)) = vals.get(1).map(|v| v.get::<gst::Element>())
                    && el.has_property("latency")
                {
                    el.set_property("latency", 200u32);
                }
                None
            });
            pipeline.add(&src).map_err(build_error)?;
            src
        }
        Some(fragment) => {
            let src = decode::source_bin(fragment)?;
            let decodebin = gst::ElementFactory::make("decodebin")
                .build()
                .map_err(build_error)?;
            pipeline
                .add_many([src.upcast_ref(), &decodebin])
                .map_err(build_error)?;
            src.link(&decodebin).map_err(|e| {
                IngestError::Source(format!(
                    "its output cannot feed a decoder ({e}); it must give encoded or raw video"
                ))
            })?;
            decodebin
        }
    };
    decode::restrict(&decodebin, cfg.decoder);
    let decoder = Arc::new(Mutex::new(None));
    let chosen = decoder.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        if let Some(f) = element.factory()
            && decode::is_video_decoder(&f)
        {
            *chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        }
    });
    let convert_weak = convert.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        let Some(convert) = convert_weak.upgrade() else {
            return;
        };
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        let Some(sinkpad) = convert.static_pad("sink") else {
            return;
        };
        if is_video
            && !sinkpad.is_linked()
            && let Err(e) = pad.link(&sinkpad)
        {
            warn!(error = ?e, "could not link the decoded video pad");
        }
    });

    // Decimate to the analysis rate by timestamp, before conversion.
    let min_gap = gst::ClockTime::from_nseconds((1e9 / cfg.analysis_fps as f64) as u64);
    let next_pts: Mutex<Option<gst::ClockTime>> = Mutex::new(None);
    if let Some(pad) = convert.static_pad("sink") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut next_pts = next_pts.lock().unwrap_or_else(|e| e.into_inner());
            match *next_pts {
                // Allow 10 % jitter so a 25 fps stream decimated to 5 fps keeps every 5th frame;
                // a timestamp far behind the expected one is a discontinuity: start again there.
                Some(next) if pts + min_gap / 10 < next && pts + min_gap * 4 >= next => {
                    // Consume the buffer here ("handled"): returning Drop instead makes
                    // GStreamer 1.22 unref a NULL buffer behind the ghost pad (a CRITICAL per frame).
                    drop(info.take_buffer());
                    gst::PadProbeReturn::Handled
                }
                _ => {
                    *next_pts = Some(pts + min_gap);
                    gst::PadProbeReturn::Ok
                }
            }
        });
    }
    Ok(Built {
        pipeline,
        sink,
        decoder,
    })
}

/// The decoder a pipeline chose, for a person: `avdec_h264 (software)`, or `none` (raw video).
fn decoder_label(decoder: &Mutex<Option<gst::ElementFactory>>) -> String {
    match &*decoder.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(f) => format!(
            "{} ({})",
            f.name(),
            if decode::is_hardware(f) {
                "hardware"
            } else {
                "software"
            }
        ),
        None => "none (raw video)".into(),
    }
}

/// Starts `pipeline`; on failure the bus usually holds the real reason.
fn start(pipeline: &gst::Pipeline, bus: &gst::Bus) -> Result<(), IngestError> {
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        let err = first_error(bus).unwrap_or(IngestError::Start(e));
        let _ = pipeline.set_state(gst::State::Null);
        return Err(err);
    }
    Ok(())
}

fn run_once(
    index: usize,
    cfg: &CameraConfig,
    slots: &Arc<FrameSlots>,
    metrics: &Arc<Metrics>,
    clock: &Arc<Mutex<StreamClock>>,
    shutdown: &CancellationToken,
) -> Result<Ended, IngestError> {
    let m: &CameraMetrics = &metrics.cameras[index];
    let lossless = cfg.lossless && !cfg.realtime && cfg.is_file();
    let Built {
        pipeline,
        sink,
        decoder,
    } = build(cfg)?;

    let last_frame = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let started_at = started;
    let frame_clock = last_frame.clone();
    let cam_id = cfg.id.clone();
    let (slots_cb, metrics_cb) = (slots.clone(), metrics.clone());
    let stream_clock = cfg.stream_clock().then(|| {
        clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .start(sharpeyes_wire::now_ms());
        clock.clone()
    });
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                match to_image(&sample) {
                    Some(image) => {
                        frame_clock.store(
                            started_at.elapsed().as_millis() as i64 + 1,
                            Ordering::Relaxed,
                        );
                        let capture_ms = match (&stream_clock, running_ms(&sample)) {
                            (Some(c), Some(running)) => {
                                c.lock().unwrap_or_else(|e| e.into_inner()).stamp(running)
                            }
                            // No timestamp: the stream clock goes on by the wall clock.
                            (Some(c), None) => {
                                let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                                let running = sharpeyes_wire::now_ms() - c.origin_ms;
                                c.stamp(running)
                            }
                            (None, _) => sharpeyes_wire::now_ms(),
                        };
                        let frame = Frame {
                            camera: index,
                            capture_ms,
                            image,
                        };
                        let cm = &metrics_cb.cameras[index];
                        inc(&cm.frames_decoded);
                        if lossless {
                            // False only once the agent is stopping: the frame is not wanted.
                            slots_cb.put_when_free(frame);
                        } else if slots_cb.put(frame) {
                            inc(&cm.frames_dropped);
                        }
                    }
                    None => debug!(camera = %cam_id, "sample without a readable BGR buffer"),
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    let bus = pipeline
        .bus()
        .ok_or_else(|| build_error("pipeline without a bus"))?;
    start(&pipeline, &bus)?;
    let stall = Duration::from_secs(cfg.stall_timeout_s);
    let mut playing = false;
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(Ended::Shutdown);
        }
        let last = last_frame.load(Ordering::Relaxed);
        if last > 0 && !playing {
            playing = true;
            m.set_state("playing");
            info!(uri = %redact::uri(&cfg.uri), decoder = %decoder_label(&decoder), "playing");
        }
        let since = if last > 0 {
            started
                .elapsed()
                .saturating_sub(Duration::from_millis(last as u64 - 1))
        } else {
            started.elapsed()
        };
        if since > stall {
            break Err(IngestError::Stalled(since));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[
                gst::MessageType::Error,
                gst::MessageType::Eos,
                gst::MessageType::Warning,
            ],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(..) => break Ok(Ended::Eos),
            gst::MessageView::Error(e) => break Err(stream_error(&msg, e)),
            gst::MessageView::Warning(w) => {
                warn!(element = ?msg.src().map(|s| s.path_string()), warning = %decode::scrub(&w.error().to_string()), "stream warning")
            }
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// What [`decode_sample`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeReport {
    /// BGR frames that reached the camera's frame sink (after `analysis_fps` decimation).
    pub frames: u64,
    /// Size of the last frame, pixels.
    pub width: u32,
    /// Height of the last frame, pixels.
    pub height: u32,
    /// The video decoder's element factory (e.g. `avdec_h264`); None when the source gave raw
    /// video.
    pub decoder: Option<String>,
    /// Whether that decoder is a hardware one (its class says `Hardware`, or it comes from a
    /// hardware plugin such as va, vaapi or nvcodec).
    pub hardware: bool,
}

/// Runs a camera's pipeline exactly as the agent builds it (source or URI, `decoder`,
/// decimation, BGR conversion) until `frames` frames arrived, the stream ended, or `timeout`;
/// reports what was decoded and by which decoder. For checking a camera and its decoder.
pub fn decode_sample(
    cfg: &CameraConfig,
    frames: u64,
    timeout: Duration,
) -> Result<DecodeReport, IngestError> {
    init()?;
    let Built {
        pipeline,
        sink,
        decoder,
    } = build(cfg)?;
    let seen = Arc::new(Mutex::new((0u64, 0u32, 0u32)));
    let seen_cb = seen.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(image) = to_image(&sample) {
                    let mut s = seen_cb.lock().unwrap_or_else(|e| e.into_inner());
                    *s = (s.0 + 1, image.width, image.height);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let bus = pipeline
        .bus()
        .ok_or_else(|| build_error("pipeline without a bus"))?;
    start(&pipeline, &bus)?;
    let started = Instant::now();
    let result = loop {
        let count = seen.lock().unwrap_or_else(|e| e.into_inner()).0;
        if count >= frames {
            break Ok(());
        }
        if started.elapsed() > timeout {
            break Err(IngestError::Stalled(started.elapsed()));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => break Err(stream_error(&msg, e)),
            _ => break Ok(()),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let (frames, width, height) = *seen.lock().unwrap_or_else(|e| e.into_inner());
    let chosen = decoder.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(DecodeReport {
        frames,
        width,
        height,
        hardware: chosen.as_ref().is_some_and(decode::is_hardware),
        decoder: chosen.map(|f| f.name().to_string()),
    })
}

/// The cameras' GStreamer side of `check-config`, after [`ConfigFile::validate`]: each
/// enabled camera's `decoder` is installed and its `source` parses to a usable fragment.
/// Errors name the field (`cameras[2].decoder`, `cameras[0].source`).
///
/// [`ConfigFile::validate`]: crate::config::ConfigFile::validate
pub fn check_cameras(cameras: &[CameraConfig]) -> Result<(), ConfigError> {
    init().map_err(|e| invalid("cameras", e.to_string()))?;
    for (i, c) in cameras.iter().enumerate().filter(|(_, c)| c.enabled) {
        decode::check_available(c.decoder)
            .map_err(|e| invalid(format!("cameras[{i}].decoder"), e.to_string()))?;
        if let Some(fragment) = &c.source {
            decode::source_bin(fragment)
                .map_err(|e| invalid(format!("cameras[{i}].source"), e.to_string()))?;
        }
    }
    Ok(())
}

fn stream_error(msg: &gst::Message, e: &gst::message::Error) -> IngestError {
    IngestError::Stream {
        element: msg
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_else(|| "?".into()),
        message: decode::scrub(&e.error().to_string()),
        debug: decode::scrub(&e.debug().map(|d| d.to_string()).unwrap_or_default()),
    }
}

fn first_error(bus: &gst::Bus) -> Option<IngestError> {
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(500),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(stream_error(&msg, e)),
        _ => None,
    }
}

/// A sample's running time (its timestamp relative to the stream's start), ms.
fn running_ms(sample: &gst::Sample) -> Option<i64> {
    let pts = sample.buffer()?.pts()?;
    let running = match sample.segment() {
        Some(seg) => seg.downcast_ref::<gst::ClockTime>()?.to_running_time(pts)?,
        None => pts,
    };
    Some(running.mseconds() as i64)
}

/// Copies a BGR sample into a packed image (rows without stride padding).
fn to_image(sample: &gst::Sample) -> Option<BgrImage> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = *info.stride().first()? as usize;
    let offset = *info.offset().first()?;
    let data = map.as_slice();
    let row = w * 3;
    if stride < row || data.len() < offset + stride * (h - 1) + row {
        return None;
    }
    let mut out = Vec::with_capacity(row * h);
    for y in 0..h {
        let start = offset + y * stride;
        out.extend_from_slice(&data[start..start + row]);
    }
    BgrImage::new(w as u32, h as u32, out).ok()
}

/// How long decoding a file takes, for the agent benchmark's decode and convert shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeTiming {
    /// Frames that came out of the pipeline.
    pub frames: u64,
    /// Wall time from play to end of stream.
    pub wall: Duration,
}

/// Decodes the video file at `path` as fast as possible (no clock), to raw frames in the
/// decoder's format, or, with `to_bgr`, converted to packed BGR as the agent's pipeline does
/// for every analysed frame; counts the frames and times the run.
pub fn time_decode(path: &std::path::Path, to_bgr: bool) -> Result<DecodeTiming, IngestError> {
    init()?;
    let location = path.display().to_string().replace('"', "\\\"");
    let convert = match to_bgr {
        true => "! videoconvert ! video/x-raw,format=BGR ",
        false => "",
    };
    let desc = format!(
        "filesrc location=\"{location}\" ! decodebin ! video/x-raw {convert}! fakesink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc).map_err(build_error)?;
    let bin = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .map_err(|_| IngestError::Build("not a bin".into()))?;
    let sink = bin
        .by_name("sink")
        .ok_or_else(|| IngestError::Build("no sink".into()))?;
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = frames.clone();
    sink.static_pad("sink")
        .ok_or_else(|| IngestError::Build("sink has no pad".into()))?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline
        .bus()
        .ok_or_else(|| IngestError::Build("no bus".into()))?;
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(stream_error(&msg, e));
                break;
            }
            _ => {}
        }
    }
    let wall = started.elapsed();
    let _ = pipeline.set_state(gst::State::Null);
    result.map(|()| DecodeTiming {
        frames: frames.load(Ordering::Relaxed),
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::StreamClock;

    #[test]
    fn stream_clock_is_start_plus_running_time_and_never_goes_back_across_restarts() {
        let mut c = StreamClock::new(200);
        c.start(10_000);
        assert_eq!(c.stamp(0), 10_000);
        assert_eq!(c.stamp(200), 10_200);
        // Footage analysed faster than real time runs ahead of the wall clock: a restart
        // shortly after goes on from the last stamp, one frame step later.
        assert_eq!(c.stamp(30_000), 40_000);
        c.start(10_500);
        assert_eq!(c.stamp(0), 40_200);
        assert_eq!(c.stamp(400), 40_600);
        // A restart long after starts at the wall clock.
        c.start(90_000);
        assert_eq!(c.stamp(0), 90_000);
        // A timestamp going backwards within a stream never makes time go back.
        assert_eq!(c.stamp(-50), 90_001);
    }
}
