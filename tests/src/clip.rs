//! Test footage: an H.264 MP4 clip made with GStreamer from real face photos, with exact
//! ground truth (where each face is, frame by frame).
//!
//! Each person is a head-and-shoulders cut-out of a real photo (cropped around the face the
//! detector finds in the full-resolution photo), scaled so the face is `face_px` high, that
//! walks across a textured background during its time window.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::{Rgb, RgbImage, imageops};
use thiserror::Error;

use edge_agent::config::{FaceDetectorConfig, ModelsConfig};
use edge_agent::infer::{self, BgrImage};

/// Clip making failures.
#[derive(Debug, Error)]
pub enum ClipError {
    /// A photo could not be used.
    #[error("photo {path}: {reason}")]
    Photo {
        /// The photo.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// GStreamer failed.
    #[error("encoding: {0}")]
    Encode(String),
}

/// One person's appearance in the clip.
#[derive(Debug, Clone)]
pub struct Appearance {
    /// The photo (one clearly visible face).
    pub photo: PathBuf,
    /// When the person enters, seconds from the clip start.
    pub start_s: f64,
    /// When the person leaves.
    pub end_s: f64,
}

/// The clip to make.
#[derive(Debug, Clone)]
pub struct ClipSpec {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Clip length, seconds.
    pub duration_s: f64,
    /// Face height in the clip, pixels.
    pub face_px: u32,
    /// Horizontal walking speed, pixels per second.
    pub speed_px_s: f64,
    /// Who appears when.
    pub appearances: Vec<Appearance>,
    /// Vehicles with rendered plates crossing the lower part of the frame.
    pub plates: Vec<PlateAppearance>,
    /// A photo to use as the scene (scaled to the frame), with per-frame sensor noise so the
    /// encoder and the detectors see a live camera, not a still; None: a synthetic street
    /// texture.
    pub background: Option<PathBuf>,
}

/// A vehicle with a rendered Chinese plate crossing the frame: also the ground truth of the
/// plate track it must produce.
#[derive(Debug, Clone)]
pub struct PlateAppearance {
    /// Plate text (grammatical, no separator).
    pub text: String,
    /// Blue ordinary or green new-energy.
    pub style: crate::plate::PlateStyle,
    /// Seconds into the clip when it appears.
    pub start_s: f64,
    /// Seconds into the clip when it disappears.
    pub end_s: f64,
    /// Plate width in pixels.
    pub plate_px: u32,
    /// Left edge of the vehicle when it appears, pixels.
    pub x0: f64,
    /// Horizontal speed, pixels per second (negative: right to left).
    pub speed_px_s: f64,
}

/// Ground truth of one appearance.
#[derive(Debug, Clone)]
pub struct FaceTruth {
    /// Photo file name.
    pub photo: String,
    /// Entry time, seconds.
    pub start_s: f64,
    /// Exit time, seconds.
    pub end_s: f64,
    /// Face box `[x1, y1, x2, y2]` at the entry time, pixels.
    pub box_at_start: [f32; 4],
    /// Horizontal speed, pixels per second (the box moves by `speed_px_s · t`).
    pub speed_px_s: f64,
}

impl FaceTruth {
    /// The face box at time `t` (seconds from the clip start).
    pub fn box_at(&self, t: f64) -> [f32; 4] {
        let dx = (self.speed_px_s * (t - self.start_s)) as f32;
        let b = self.box_at_start;
        [b[0] + dx, b[1], b[2] + dx, b[3]]
    }
}

/// A head-and-shoulders cut-out of a photo: a square crop 2.4 face heights wide, the face
/// in its upper middle, scaled so the face is the asked height.
pub struct Cutout {
    /// The cut-out.
    pub img: RgbImage,
    /// The face box in it, `[x1, y1, x2, y2]` pixels.
    pub face: [f32; 4],
}

/// The photos of `testdata/` used by the demo and tests: three different people.
pub fn default_photos(testdata: &Path) -> Vec<PathBuf> {
    [
        "identities/obama/obama.jpg",
        "identities/biden/biden.jpg",
        "identities/deepface_p01/img1.jpg",
    ]
    .iter()
    .map(|p| testdata.join(p))
    .collect()
}

/// Three people, one after the other, 4 s each with 1.5 s gaps; 17 s at 1280×720, 25 fps.
pub fn demo_spec(photos: &[PathBuf]) -> ClipSpec {
    let appearances = photos
        .iter()
        .enumerate()
        .map(|(i, p)| Appearance {
            photo: p.clone(),
            start_s: 1.0 + 5.5 * i as f64,
            end_s: 5.0 + 5.5 * i as f64,
        })
        .collect::<Vec<_>>();
    let duration_s = appearances.last().map(|a| a.end_s + 1.0).unwrap_or(2.0);
    ClipSpec {
        width: 1280,
        height: 720,
        fps: 25,
        duration_s,
        face_px: 120,
        speed_px_s: 60.0,
        appearances,
        plates: demo_plates(),
        background: None,
    }
}

/// The demo's two vehicles: a blue plate driving right, then a green one driving left,
/// below the people. They are 4.5 s apart, well beyond the tracker's lost-track buffer
/// (`tracker.max_age_ms`): plate tracks follow motion, and one vehicle's track must not
/// continue onto the next.
pub fn demo_plates() -> Vec<PlateAppearance> {
    use crate::plate::PlateStyle;
    vec![
        PlateAppearance {
            text: "川A5K2M8".into(),
            style: PlateStyle::Blue,
            start_s: 1.0,
            end_s: 5.5,
            plate_px: 160,
            x0: 100.0,
            speed_px_s: 60.0,
        },
        PlateAppearance {
            text: "粤BD12345".into(),
            style: PlateStyle::Green,
            start_s: 10.0,
            end_s: 15.5,
            plate_px: 160,
            x0: 800.0,
            speed_px_s: -60.0,
        },
    ]
}

/// A vehicle seen from behind: dark body, rear window, the plate low in the middle.
fn vehicle_sprite(font: &ab_glyph::FontVec, p: &PlateAppearance) -> Result<RgbImage, ClipError> {
    let plate = crate::plate::render_plate(font, &p.text, p.style)
        .map_err(|e| ClipError::Encode(format!("plate {}: {e}", p.text)))?;
    let pw = p.plate_px;
    let ph = (pw as f32 * plate.height() as f32 / plate.width() as f32).round() as u32;
    let plate = imageops::resize(&plate, pw, ph, imageops::FilterType::Triangle);
    let (w, h) = (pw * 12 / 5, pw * 13 / 10);
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let window = y > h / 12 && y < h * 5 / 12 && x > w / 8 && x < w * 7 / 8;
        if window {
            Rgb([70, 85, 100])
        } else {
            Rgb([35 + (y * 20 / h) as u8, 38, 44])
        }
    });
    imageops::overlay(
        &mut img,
        &plate,
        ((w - pw) / 2) as i64,
        (h - ph - h / 10) as i64,
    );
    Ok(img)
}

/// Cuts a head-and-shoulders square out of `path` around the one face YuNet finds in it,
/// scaled so the face is `face_px` high; an error if the photo does not show exactly one face.
pub fn cutout(path: &Path, face_px: u32, models: &ModelsConfig) -> Result<Cutout, ClipError> {
    let err = |reason: String| ClipError::Photo {
        path: path.to_path_buf(),
        reason,
    };
    let rgb = image::open(path).map_err(|e| err(e.to_string()))?.to_rgb8();
    let mut det = infer::face_detector(models, &FaceDetectorConfig::default())
        .map_err(|e| err(e.to_string()))?;
    let faces = det
        .detect(&BgrImage::from_rgb(&rgb))
        .map_err(|e| err(e.to_string()))?;
    let [face] = faces.as_slice() else {
        return Err(err(format!(
            "expected exactly one face, found {}",
            faces.len()
        )));
    };
    let [x1, y1, x2, y2] = face.bbox;
    let (fw, fh) = (x2 - x1, y2 - y1);
    let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    // Head and shoulders: 2.4 face heights square, the face in the upper middle.
    let side = (fh * 2.4).min(rgb.width() as f32).min(rgb.height() as f32);
    let left = (cx - side / 2.0).clamp(0.0, rgb.width() as f32 - side);
    let top = (cy - side * 0.4).clamp(0.0, rgb.height() as f32 - side);
    let crop =
        imageops::crop_imm(&rgb, left as u32, top as u32, side as u32, side as u32).to_image();
    let scale = face_px as f32 / fh;
    let out = (side * scale).round() as u32;
    let img = imageops::resize(&crop, out, out, imageops::FilterType::Triangle);
    let face = [
        (x1 - left) * scale,
        (y1 - top) * scale,
        (x1 - left + fw) * scale,
        (y1 - top + fh) * scale,
    ];
    Ok(Cutout { img, face })
}

fn background(w: u32, h: u32) -> RgbImage {
    // A street-like texture: a gradient with tiles, so the encoder has real detail to code.
    RgbImage::from_fn(w, h, |x, y| {
        let g = 90 + (y * 60 / h) as u8;
        let tile = if (x / 80 + y / 60) % 2 == 0 { 12 } else { 0 };
        let n = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 9) as u8;
        Rgb([g + tile + n, g + tile + n, g + 8 + n])
    })
}

/// Renders `spec` into an H.264 MP4 at `out`; returns the ground truth.
pub fn make_clip(
    spec: &ClipSpec,
    out: &Path,
    models: &ModelsConfig,
) -> Result<Vec<FaceTruth>, ClipError> {
    render(spec, out, models, true)
}

/// Renders `spec` like [`make_clip`], but its background photo stays the same on every frame
/// (no sensor noise): what the encoder of a camera gives when nothing in front of it moves.
pub fn make_still_clip(
    spec: &ClipSpec,
    out: &Path,
    models: &ModelsConfig,
) -> Result<Vec<FaceTruth>, ClipError> {
    render(spec, out, models, false)
}

/// The length of the video file at `path` (its container's duration), for figures per
/// second of footage.
pub fn clip_duration(path: &Path) -> Result<std::time::Duration, ClipError> {
    let err = |e: String| ClipError::Encode(format!("reading {}: {e}", path.display()));
    gst::init().map_err(|e| err(e.to_string()))?;
    let pipeline = gst::parse::launch("filesrc name=src ! decodebin ! fakesink")
        .map_err(|e| err(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline".into()))?;
    pipeline
        .by_name("src")
        .ok_or_else(|| err("no filesrc".into()))?
        .set_property("location", path.to_string_lossy().as_ref());
    let result = (|| {
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|e| err(e.to_string()))?;
        let bus = pipeline.bus().ok_or_else(|| err("no bus".into()))?;
        match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        ) {
            Some(m) => {
                if let gst::MessageView::Error(e) = m.view() {
                    return Err(err(format!("{} ({:?})", e.error(), e.debug())));
                }
            }
            None => return Err(err("not ready in 30 s".into())),
        }
        pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| std::time::Duration::from_nanos(d.nseconds()))
            .ok_or_else(|| err("the container states no duration".into()))
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Renders `spec`; with `sensor_noise`, a background photo gets fresh noise on every frame.
fn render(
    spec: &ClipSpec,
    out: &Path,
    models: &ModelsConfig,
    sensor_noise: bool,
) -> Result<Vec<FaceTruth>, ClipError> {
    gst::init().map_err(|e| ClipError::Encode(e.to_string()))?;
    let mut cutouts = Vec::new();
    let mut truth = Vec::new();
    for a in &spec.appearances {
        let c = cutout(&a.photo, spec.face_px, models)?;
        let x0 = 80.0f32;
        let y0 = (spec.height as f32 - c.img.height() as f32) / 2.0;
        truth.push(FaceTruth {
            photo: a
                .photo
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            start_s: a.start_s,
            end_s: a.end_s,
            box_at_start: [
                c.face[0] + x0,
                c.face[1] + y0,
                c.face[2] + x0,
                c.face[3] + y0,
            ],
            speed_px_s: spec.speed_px_s,
        });
        cutouts.push((c, x0, y0));
    }
    let (bg, noisy) = match &spec.background {
        Some(p) => (
            image::open(p)
                .map_err(|e| ClipError::Encode(format!("{}: {e}", p.display())))?
                .resize_exact(spec.width, spec.height, imageops::FilterType::Triangle)
                .to_rgb8(),
            sensor_noise,
        ),
        None => (background(spec.width, spec.height), false),
    };
    let sprites = if spec.plates.is_empty() {
        Vec::new()
    } else {
        let font = crate::plate::load_font().map_err(ClipError::Encode)?;
        spec.plates
            .iter()
            .map(|p| vehicle_sprite(&font, p))
            .collect::<Result<_, _>>()?
    };

    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! videoconvert ! video/x-raw,format=I420 ! \
         x264enc speed-preset=veryfast key-int-max={} bitrate=2500 ! h264parse ! mp4mux ! filesink name=sink",
        spec.fps
    ))
    .map_err(|e| ClipError::Encode(e.to_string()))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| ClipError::Encode("not a pipeline".into()))?;
    let by_name = |n: &str| {
        pipeline
            .by_name(n)
            .ok_or_else(|| ClipError::Encode(format!("no element {n}")))
    };
    by_name("sink")?.set_property("location", out.to_string_lossy().as_ref());
    let src = by_name("src")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| ClipError::Encode("appsrc".into()))?;
    let caps = gstreamer_video::VideoInfo::builder(
        gstreamer_video::VideoFormat::Rgb,
        spec.width,
        spec.height,
    )
    .fps(gst::Fraction::new(spec.fps as i32, 1))
    .build()
    .map_err(|e| ClipError::Encode(e.to_string()))?
    .to_caps()
    .map_err(|e| ClipError::Encode(e.to_string()))?;
    src.set_caps(Some(&caps));
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| ClipError::Encode(e.to_string()))?;

    let frames = (spec.duration_s * spec.fps as f64).round() as u64;
    let frame_ns = 1_000_000_000 / spec.fps as u64;
    for i in 0..frames {
        let t = i as f64 / spec.fps as f64;
        let mut frame = bg.clone();
        if noisy {
            // ±2 levels of deterministic noise that changes every frame.
            let seed = i as u32;
            for (k, v) in frame.iter_mut().enumerate() {
                let h = (k as u32 ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x85eb_ca6b);
                *v = v.saturating_add((h >> 29) as u8 & 3).saturating_sub(2);
            }
        }
        for (sprite, p) in sprites.iter().zip(&spec.plates) {
            if t >= p.start_s && t < p.end_s {
                let x = p.x0 + p.speed_px_s * (t - p.start_s);
                let y = spec.height.saturating_sub(sprite.height() + 8);
                imageops::overlay(&mut frame, sprite, x.round() as i64, y as i64);
            }
        }
        for ((c, x0, y0), a) in cutouts.iter().zip(&spec.appearances) {
            if t >= a.start_s && t < a.end_s {
                let x = *x0 as f64 + spec.speed_px_s * (t - a.start_s);
                imageops::overlay(&mut frame, &c.img, x.round() as i64, *y0 as i64);
            }
        }
        // GStreamer's RGB rows are padded to 4 bytes.
        let row = spec.width as usize * 3;
        let stride = (row + 3) & !3;
        let raw = if stride == row {
            frame.into_raw()
        } else {
            let mut padded = vec![0u8; stride * spec.height as usize];
            for (dst, src) in padded.chunks_exact_mut(stride).zip(frame.chunks_exact(row)) {
                dst[..row].copy_from_slice(src);
            }
            padded
        };
        let mut buf = gst::Buffer::from_mut_slice(raw);
        {
            let b = buf
                .get_mut()
                .ok_or_else(|| ClipError::Encode("buffer not writable".into()))?;
            b.set_pts(gst::ClockTime::from_nseconds(i * frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        src.push_buffer(buf)
            .map_err(|e| ClipError::Encode(format!("push: {e:?}")))?;
    }
    src.end_of_stream()
        .map_err(|e| ClipError::Encode(format!("eos: {e:?}")))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| ClipError::Encode("no bus".into()))?;
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) => match m.view() {
            gst::MessageView::Eos(..) => Ok(truth),
            gst::MessageView::Error(e) => Err(ClipError::Encode(format!(
                "{} ({:?})",
                e.error(),
                e.debug()
            ))),
            _ => Err(ClipError::Encode("unexpected message".into())),
        },
        None => Err(ClipError::Encode("encoding did not finish in 120 s".into())),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both kinds of static camera clip: their containers state the length asked for (what
    /// agent-bench divides the agent's CPU time by).
    #[test]
    fn static_clips_last_the_length_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        for (name, noise) in [("still.mp4", false), ("noisy.mp4", true)] {
            let p = dir.path().join(name);
            crate::static_clip(&p, 3.0, noise).unwrap();
            let d = clip_duration(&p).unwrap().as_secs_f64();
            assert!((d - 3.0).abs() < 0.1, "{name}: {d} s");
        }
    }

    #[test]
    fn clip_duration_names_a_file_it_cannot_read() {
        let err = clip_duration(Path::new("/nonexistent/clip.mp4")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/clip.mp4"), "{err}");
    }
}
