//! Ingest: one GStreamer pipeline per camera (the only place GStreamer is used by the agent).
//!
//! `uridecodebin` (RTSP, HTTP or file) → `videoconvert` → BGR `appsink`. A pad probe before
//! the converter decimates to the camera's analysis rate by timestamp, so frames that will
//! not be analysed are never converted. The appsink callback hands each frame to
//! [`FrameSlots`]: one slot per camera holding only the newest frame, so when analysis is
//! behind, older frames are replaced (and counted as dropped) instead of queueing without
//! bound. Errors, end of stream and stalls restart the pipeline with exponential back-off.

mod slots;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};

pub use self::slots::{Frame, FrameSlots, Take};
use crate::config::CameraConfig;
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

fn camera_loop(
    index: usize,
    cfg: &CameraConfig,
    slots: &Arc<FrameSlots>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    let _span = info_span!("camera", camera = %cfg.id).entered();
    let m = &metrics.cameras[index];
    let mut backoff = Duration::from_millis(cfg.reconnect_min_ms);
    let max_backoff = Duration::from_millis(cfg.reconnect_max_ms);
    loop {
        m.set_state("starting");
        let frames_before = m.frames_decoded.load(Ordering::Relaxed);
        let started = Instant::now();
        let result = run_once(index, cfg, slots, metrics, shutdown);
        let got_frames = m.frames_decoded.load(Ordering::Relaxed) > frames_before;
        match result {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Eos) if cfg.stops_at_end() => {
                info!("end of stream; camera stopped");
                m.set_state("ended");
                break;
            }
            Ok(Ended::Eos) => info!("end of stream; restarting"),
            Err(e) => warn!(error = %e, "stream failed; restarting in {backoff:?}"),
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

fn run_once(
    index: usize,
    cfg: &CameraConfig,
    slots: &Arc<FrameSlots>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Result<Ended, IngestError> {
    let m: &CameraMetrics = &metrics.cameras[index];
    let lossless = cfg.lossless && !cfg.realtime && cfg.is_file();
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", cfg.id));
    let src = gst::ElementFactory::make("uridecodebin")
        .property("uri", &cfg.uri)
        .build()
        .map_err(build_error)?;
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
        .add_many([&src, &convert, sink.upcast_ref()])
        .map_err(build_error)?;
    convert.link(&sink).map_err(build_error)?;

    // Live sources: keep RTSP latency low.
    src.connect("source-setup", false, |vals| {
        if let Some(Ok(el)) = vals.get(1).map(|v| v.get::<gst::Element>())
            && el.has_property("latency")
        {
            el.set_property("latency", 200u32);
        }
        None
    });
    let convert_weak = convert.downgrade();
    src.connect_pad_added(move |_, pad| {
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
    let next_pts: std::sync::Mutex<Option<gst::ClockTime>> = std::sync::Mutex::new(None);
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

    let last_frame = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let started_at = started;
    let frame_clock = last_frame.clone();
    let cam_id = cfg.id.clone();
    let (slots_cb, metrics_cb) = (slots.clone(), metrics.clone());
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
                        let frame = Frame {
                            camera: index,
                            capture_ms: sharpeyes_wire::now_ms(),
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
    let stop = |p: &gst::Pipeline| {
        let _ = p.set_state(gst::State::Null);
    };
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The bus usually holds the real reason.
        let err = first_error(&bus).unwrap_or(IngestError::Start(e));
        stop(&pipeline);
        return Err(err);
    }
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
            info!(uri = %cfg.uri, "playing");
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
                warn!(element = ?msg.src().map(|s| s.path_string()), warning = %w.error(), "stream warning")
            }
            _ => {}
        }
    };
    stop(&pipeline);
    result
}

fn stream_error(msg: &gst::Message, e: &gst::message::Error) -> IngestError {
    IngestError::Stream {
        element: msg
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_else(|| "?".into()),
        message: e.error().to_string(),
        debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
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
