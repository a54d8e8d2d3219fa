//! The generator: renders each camera's view of a scenario (real face photos cut out and
//! composited over a background photo, moving, scaling, swaying, lit, blurred and partly
//! occluded; vehicles seen from behind with rendered Chinese plates; per-frame sensor
//! noise), encodes it as H.264 MP4 with GStreamer, and writes the ground truth
//! (`ground_truth.json`, see [`crate::truth`]). Deterministic: the same scenario gives the
//! same pixels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::{Rgb, RgbImage, Rgba, RgbaImage, imageops};
use indicatif::ProgressBar;
use thiserror::Error;

use edge_agent::config::ModelsConfig;
use sharpeyes_e2e::plate::{PlateStyle, Rng, random_plate, render_plate};

use crate::scenario::{DataDirs, PlateColour, Scenario};
use crate::truth::{
    BoxTruth, CameraTruth, GroundTruth, ObjectTruth, PlateTruth, boardings, expected_alerts,
    global_ids, leg_state,
};

/// Generation failures.
#[derive(Debug, Error)]
pub enum GenerateError {
    /// A person's photo could not be cut out (no face, several, unreadable).
    #[error("people[{index}] ({id}): {source}")]
    Photo {
        /// Index in the scenario's people.
        index: usize,
        /// The person.
        id: String,
        /// Why.
        source: sharpeyes_e2e::clip::ClipError,
    },
    /// A background image could not be read.
    #[error("background {path}: {message}")]
    Background {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A plate could not be rendered (font missing, glyph missing).
    #[error("plate {plate}: {message}")]
    Plate {
        /// The text.
        plate: String,
        /// Why.
        message: String,
    },
    /// GStreamer failed.
    #[error("encoding {camera}: {message}")]
    Encode {
        /// The camera.
        camera: String,
        /// Why.
        message: String,
    },
    /// Writing the output failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The file the ground truth is written to, in the output folder.
pub const TRUTH_FILE: &str = "ground_truth.json";

/// Each vehicle's plate text: the scenario's, or a random one of its province and style.
pub fn resolve_plates(s: &Scenario) -> BTreeMap<String, String> {
    let mut rng = Rng::new(s.seed ^ 0x5eed_91a7e);
    s.vehicles
        .iter()
        .map(|v| {
            let random = random_plate(&mut rng, &[v.province], style(v.style));
            (v.id.clone(), v.plate.clone().unwrap_or(random))
        })
        .collect()
}

fn style(c: PlateColour) -> PlateStyle {
    match c {
        PlateColour::Blue => PlateStyle::Blue,
        PlateColour::Green => PlateStyle::Green,
    }
}

/// A person's sprite at its largest size: the cut-out with lighting and blur applied, the
/// face box in it.
struct PersonSprite {
    img: RgbaImage,
    face: [f32; 4],
    /// Scale factor the sprite was made at (the largest of the route).
    base_scale: f32,
}

/// A vehicle's sprite at its largest size, with the plate's box in it.
struct VehicleSprite {
    img: RgbaImage,
    plate: [f32; 4],
    base_scale: f32,
}

fn max_scale(route: &[crate::scenario::Leg], jitter: f32) -> f32 {
    route
        .iter()
        .flat_map(|l| [l.scale_from, l.scale_to])
        .fold(0.0f32, f32::max)
        * (1.0 + jitter)
}

fn person_sprite(
    index: usize,
    p: &crate::scenario::PersonSpec,
    data: &DataDirs,
    models: &ModelsConfig,
) -> Result<PersonSprite, GenerateError> {
    let base_scale = max_scale(&p.route, p.augment.scale_jitter);
    let photo = data
        .testdata
        .join("identities")
        .join(&p.identity)
        .join(&p.photo);
    let face_px = (p.face_px * base_scale).round().max(8.0) as u32;
    let c = sharpeyes_e2e::clip::cutout(&photo, face_px, models).map_err(|source| {
        GenerateError::Photo {
            index,
            id: p.id.clone(),
            source,
        }
    })?;
    let mut img = c.img;
    if (p.augment.lighting - 1.0).abs() > 1e-3 {
        for v in img.iter_mut() {
            *v = (*v as f32 * p.augment.lighting).round().clamp(0.0, 255.0) as u8;
        }
    }
    let img =
        sharpeyes_e2e::plate::blur(&img, (p.augment.blur_px as f32 * base_scale).round() as u32);
    only_face(&img, &c.face, models).map_err(|reason| GenerateError::Photo {
        index,
        id: p.id.clone(),
        source: sharpeyes_e2e::clip::ClipError::Photo {
            path: photo.clone(),
            reason,
        },
    })?;
    Ok(PersonSprite {
        img: rgba(&img),
        face: c.face,
        base_scale,
    })
}

/// Another face in a cut-out from this score up refuses its photo: the agents start a face
/// track at `tracker.high_score` (0.6 by default), and the footage (scale, noise, encoding)
/// moves a face's score by about this margin.
const OTHER_FACE_SCORE: f32 = 0.5;

/// Checks that `sprite` (a person's cut-out as the footage shows it) holds no face but the one
/// at `face`: a blurred bystander behind the person (press photos have them) would be a face
/// the agents find and the ground truth does not hold, a false positive that is not one.
fn only_face(sprite: &RgbImage, face: &[f32; 4], models: &ModelsConfig) -> Result<(), String> {
    let cfg = edge_agent::config::FaceDetectorConfig {
        score_threshold: OTHER_FACE_SCORE,
        ..Default::default()
    };
    let mut detector = edge_agent::infer::face_detector(models, &cfg).map_err(|e| e.to_string())?;
    let found = detector
        .detect(&edge_agent::infer::BgrImage::from_rgb(sprite))
        .map_err(|e| e.to_string())?;
    match found
        .iter()
        .find(|f| edge_agent::infer::iou(&f.bbox, face) < 0.3)
    {
        Some(other) => Err(format!(
            "its cut-out shows another face (score {:.2} at {:?} px of the {}x{} cut-out) that the agents would find and the ground truth would not hold; choose a photo without faces behind the person",
            other.score,
            other.bbox.map(f32::round),
            sprite.width(),
            sprite.height()
        )),
        None => Ok(()),
    }
}

fn rgba(img: &RgbImage) -> RgbaImage {
    RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0;
        Rgba([r, g, b, 255])
    })
}

/// A vehicle seen from behind: body, rear window, tail lights, bumper, wheels, the plate low
/// in the middle.
fn vehicle_sprite(
    font: &ab_glyph::FontVec,
    text: &str,
    v: &crate::scenario::VehicleSpec,
) -> Result<VehicleSprite, GenerateError> {
    let base_scale = max_scale(&v.route, 0.0);
    let plate =
        render_plate(font, text, style(v.style)).map_err(|message| GenerateError::Plate {
            plate: text.into(),
            message,
        })?;
    let pw = (v.plate_px * base_scale).round().max(20.0) as u32;
    let ph = (pw as f32 * plate.height() as f32 / plate.width() as f32).round() as u32;
    let plate = imageops::resize(&plate, pw, ph, imageops::FilterType::Triangle);
    let (w, h) = (pw * 12 / 5, pw * 3 / 2);
    let [cr, cg, cb] = v.colour;
    let body_bottom = h * 88 / 100;
    let mut img = RgbaImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32 / w as f32, y as f32 / h as f32);
        // Roof narrower than the body.
        let half = if yf < 0.38 {
            0.36 + 0.1 * yf / 0.38
        } else {
            0.5
        };
        if (xf - 0.5).abs() > half || y >= body_bottom {
            // Wheels below the body at both sides.
            let wheel = y >= body_bottom - h / 20
                && ((0.06..0.24).contains(&xf) || (0.76..0.94).contains(&xf));
            return if wheel {
                Rgba([20, 20, 22, 255])
            } else {
                Rgba([0, 0, 0, 0])
            };
        }
        let shade = 1.0 - 0.25 * yf;
        let base = |c: u8| (c as f32 * shade) as u8;
        if yf > 0.06 && yf < 0.36 && (xf - 0.5).abs() < half - 0.05 {
            Rgba([70, 86, 104, 255]) // rear window
        } else if (0.45..0.58).contains(&yf)
            && ((0.04..0.2).contains(&xf) || (0.8..0.96).contains(&xf))
        {
            Rgba([200, 30, 30, 255]) // tail lights
        } else if yf > 0.8 {
            Rgba([28, 28, 30, 255]) // bumper
        } else {
            Rgba([base(cr), base(cg), base(cb), 255])
        }
    });
    let (px, py) = ((w - pw) / 2, body_bottom - ph - h / 14);
    imageops::overlay(&mut img, &rgba(&plate), px as i64, py as i64);
    Ok(VehicleSprite {
        img,
        plate: [px as f32, py as f32, (px + pw) as f32, (py + ph) as f32],
        base_scale,
    })
}

/// Rotates an RGBA image about its centre by `deg` (bilinear, transparent outside).
fn rotate(img: &RgbaImage, deg: f32) -> RgbaImage {
    if deg.abs() < 0.2 {
        return img.clone();
    }
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (s, c) = deg.to_radians().sin_cos();
    RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        // Inverse rotation.
        let (u, v) = (c * dx + s * dy + cx - 0.5, -s * dx + c * dy + cy - 0.5);
        if u < 0.0 || v < 0.0 || u > w - 1.0 || v > h - 1.0 {
            return Rgba([0, 0, 0, 0]);
        }
        let (u0, v0) = (u as u32, v as u32);
        let (u1, v1) = (
            (u0 + 1).min(img.width() - 1),
            (v0 + 1).min(img.height() - 1),
        );
        let (fu, fv) = (u - u0 as f32, v - v0 as f32);
        let p = |a, b, k: usize| img.get_pixel(a, b).0[k] as f32;
        Rgba(std::array::from_fn(|k| {
            let top = p(u0, v0, k) * (1.0 - fu) + p(u1, v0, k) * fu;
            let bot = p(u0, v1, k) * (1.0 - fu) + p(u1, v1, k) * fu;
            (top * (1.0 - fv) + bot * fv).round() as u8
        }))
    })
}

/// The box `[x1, y1, x2, y2]` rotated by `deg` about (`cx`, `cy`): the bounding box of its
/// corners.
fn rotate_box(b: [f32; 4], deg: f32, cx: f32, cy: f32) -> [f32; 4] {
    let (s, c) = deg.to_radians().sin_cos();
    let pts = [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]].map(|[x, y]| {
        let (dx, dy) = (x - cx, y - cy);
        [c * dx - s * dy + cx, s * dx + c * dy + cy]
    });
    let xs = pts.iter().map(|p| p[0]);
    let ys = pts.iter().map(|p| p[1]);
    [
        xs.clone().fold(f32::MAX, f32::min),
        ys.clone().fold(f32::MAX, f32::min),
        xs.fold(f32::MIN, f32::max),
        ys.fold(f32::MIN, f32::max),
    ]
}

/// Draws an RGBA sprite onto an RGB frame at (`x`, `y`), alpha-blended, clipped.
fn blend(frame: &mut RgbImage, sprite: &RgbaImage, x: i64, y: i64) {
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    for (sx, sy, p) in sprite.enumerate_pixels() {
        let (px, py) = (x + sx as i64, y + sy as i64);
        let a = p.0[3] as u32;
        if a == 0 || px < 0 || py < 0 || px >= fw || py >= fh {
            continue;
        }
        let d = frame.get_pixel_mut(px as u32, py as u32);
        for k in 0..3 {
            d.0[k] = ((p.0[k] as u32 * a + d.0[k] as u32 * (255 - a)) / 255) as u8;
        }
    }
}

fn synthetic_background(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let g = 90 + (y * 60 / h) as u8;
        let tile = if (x / 80 + y / 60) % 2 == 0 { 12 } else { 0 };
        let n = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 9) as u8;
        Rgb([g + tile + n, g + tile + n, g + 8 + n])
    })
}

/// An H.264 MP4 writer (appsrc → x264enc → mp4mux).
struct Mp4Writer {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    width: u32,
    height: u32,
    frame_ns: u64,
    next: u64,
    camera: String,
    /// Bytes of raw frames the appsrc may hold before `push` waits.
    max_queued: u64,
}

impl Mp4Writer {
    fn new(
        path: &Path,
        camera: &str,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, GenerateError> {
        let err = |message: String| GenerateError::Encode {
            camera: camera.into(),
            message,
        };
        gst::init().map_err(|e| err(e.to_string()))?;
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time ! videoconvert ! video/x-raw,format=I420 ! \
             x264enc speed-preset=veryfast key-int-max={} bitrate=3000 threads=2 ! h264parse ! mp4mux ! filesink name=sink",
            fps * 2
        ))
        .map_err(|e| err(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline".into()))?;
        let by_name = |n: &str| {
            pipeline
                .by_name(n)
                .ok_or_else(|| err(format!("no element {n}")))
        };
        by_name("sink")?.set_property("location", path.to_string_lossy().as_ref());
        let src = by_name("src")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| err("appsrc".into()))?;
        let caps =
            gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::Rgb, width, height)
                .fps(gst::Fraction::new(fps as i32, 1))
                .build()
                .map_err(|e| err(e.to_string()))?
                .to_caps()
                .map_err(|e| err(e.to_string()))?;
        src.set_caps(Some(&caps));
        // Back-pressure instead of an unbounded queue of raw frames: `push` waits while the
        // queue is full, watching the bus, so a pipeline error (a full disk, say) ends the
        // render with that error instead of blocking `push_buffer` forever.
        let max_queued = (width as u64 * height as u64 * 3 * 8).max(1);
        src.set_property("max-bytes", max_queued);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            pipeline,
            src,
            width,
            height,
            frame_ns: 1_000_000_000 / fps as u64,
            next: 0,
            camera: camera.into(),
            max_queued,
        })
    }

    fn err(&self, message: String) -> GenerateError {
        GenerateError::Encode {
            camera: self.camera.clone(),
            message,
        }
    }

    fn push(&mut self, frame: RgbImage) -> Result<(), GenerateError> {
        // GStreamer's RGB rows are padded to 4 bytes.
        let row = self.width as usize * 3;
        let stride = (row + 3) & !3;
        let raw = if stride == row {
            frame.into_raw()
        } else {
            let mut padded = vec![0u8; stride * self.height as usize];
            for (dst, src) in padded.chunks_exact_mut(stride).zip(frame.chunks_exact(row)) {
                dst[..row].copy_from_slice(src);
            }
            padded
        };
        let mut buf = gst::Buffer::from_mut_slice(raw);
        {
            let b = buf
                .get_mut()
                .ok_or_else(|| self.err("buffer not writable".into()))?;
            b.set_pts(gst::ClockTime::from_nseconds(self.next * self.frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(self.frame_ns));
        }
        self.next += 1;
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| self.err("no bus".into()))?;
        loop {
            if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = m.view()
            {
                let e = self.err(format!("{} ({:?})", e.error(), e.debug()));
                let _ = self.pipeline.set_state(gst::State::Null);
                return Err(e);
            }
            if self.src.current_level_bytes() < self.max_queued {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        self.src
            .push_buffer(buf)
            .map_err(|e| self.err(format!("push: {e:?}")))?;
        Ok(())
    }

    fn finish(self) -> Result<(), GenerateError> {
        self.src
            .end_of_stream()
            .map_err(|e| self.err(format!("eos: {e:?}")))?;
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| self.err("no bus".into()))?;
        let result = match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(m) => match m.view() {
                gst::MessageView::Eos(..) => Ok(()),
                gst::MessageView::Error(e) => {
                    Err(self.err(format!("{} ({:?})", e.error(), e.debug())))
                }
                _ => Err(self.err("unexpected message".into())),
            },
            None => Err(self.err("encoding did not finish in 300 s".into())),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

/// What is drawn in one frame.
enum Actor<'a> {
    Person {
        gid: u64,
        sprite: &'a PersonSprite,
        foot: [f32; 2],
        scale: f32,
        angle: f32,
        occlusion: f32,
    },
    Vehicle {
        gid: u64,
        sprite: &'a VehicleSprite,
        foot: [f32; 2],
        scale: f32,
    },
}

fn clip_box(b: [f32; 4], w: u32, h: u32) -> Option<[f32; 4]> {
    let x1 = b[0].max(0.0);
    let y1 = b[1].max(0.0);
    let x2 = b[2].min(w as f32);
    let y2 = b[3].min(h as f32);
    (x2 - x1 >= 2.0 && y2 - y1 >= 2.0).then_some([x1, y1, x2 - x1, y2 - y1])
}

/// Renders the scenario into `out` (`footage/<camera>.mp4`, [`TRUTH_FILE`]); returns the
/// ground truth. `bar` counts frames.
pub fn generate(
    s: &Scenario,
    data: &DataDirs,
    out: &Path,
    models: &ModelsConfig,
    bar: &ProgressBar,
) -> Result<GroundTruth, GenerateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError::Io { path, source }
    };
    let footage = out.join("footage");
    std::fs::create_dir_all(&footage).map_err(io(&footage))?;
    let gids = global_ids(s);
    let plates = resolve_plates(s);
    let people: Vec<PersonSprite> = s
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| person_sprite(i, p, data, models))
        .collect::<Result<_, _>>()?;
    let vehicles: Vec<VehicleSprite> = if s.vehicles.is_empty() {
        Vec::new()
    } else {
        let font = sharpeyes_e2e::plate::load_font().map_err(|message| GenerateError::Plate {
            plate: String::new(),
            message,
        })?;
        s.vehicles
            .iter()
            .map(|v| vehicle_sprite(&font, &plates[&v.id], v))
            .collect::<Result<_, _>>()?
    };
    let mut truth = GroundTruth {
        format: crate::truth::TRUTH_FORMAT,
        scenario: s.name.clone(),
        seed: s.seed,
        scenario_digest: s.digest(),
        duration_s: s.duration_s,
        ..Default::default()
    };
    for p in &s.people {
        truth.objects.push(ObjectTruth {
            gid: gids[&p.id],
            id: p.id.clone(),
            kind: "person".into(),
            identity: Some(format!("{}/{}", p.identity, p.photo)),
            plate: None,
            cameras: p.route.iter().map(|l| l.camera.clone()).collect(),
        });
    }
    for v in &s.vehicles {
        truth.objects.push(ObjectTruth {
            gid: gids[&v.id],
            id: v.id.clone(),
            kind: "vehicle".into(),
            identity: None,
            plate: Some(plates[&v.id].clone()),
            cameras: v.route.iter().map(|l| l.camera.clone()).collect(),
        });
        for l in &v.route {
            truth.plates.push(PlateTruth {
                camera: l.camera.clone(),
                gid: gids[&v.id],
                text: plates[&v.id].clone(),
                style: format!("{:?}", v.style).to_lowercase(),
                enter_s: l.enter_s,
                exit_s: l.exit_s,
            });
        }
    }
    truth.boardings = boardings(s);
    truth.alerts = expected_alerts(s, &plates);

    let total: u64 = s
        .cameras
        .iter()
        .map(|c| (s.duration_s * c.fps as f64).round() as u64)
        .sum();
    bar.set_length(total);
    bar.set_message("rendering");
    for (ci, cam) in s.cameras.iter().enumerate() {
        let bg = match s.background_path(cam, data) {
            Some(p) => image::open(&p)
                .map_err(|e| GenerateError::Background {
                    path: p.clone(),
                    message: e.to_string(),
                })?
                .resize_exact(cam.width, cam.height, imageops::FilterType::Triangle)
                .to_rgb8(),
            None => synthetic_background(cam.width, cam.height),
        };
        let file = format!("{}.mp4", cam.id);
        let path = footage.join(&file);
        let mut writer = Mp4Writer::new(&path, &cam.id, cam.width, cam.height, cam.fps)?;
        let frames = (s.duration_s * cam.fps as f64).round() as u64;
        let mut rng = Rng::new(s.seed.wrapping_mul(31).wrapping_add(ci as u64 + 1));
        let seed = rng.next_u64() as u32;
        for i in 0..frames {
            let t = i as f64 / cam.fps as f64;
            let mut actors = Vec::new();
            for (pi, p) in s.people.iter().enumerate() {
                let phase = pi as f32 * 1.7;
                for leg in p.route.iter().filter(|l| l.camera == cam.id) {
                    if let Some((foot, scale)) =
                        leg_state(leg, cam.width, cam.height, t, p.augment.scale_jitter, phase)
                    {
                        let angle = p.augment.pose_jitter_deg
                            * (std::f32::consts::TAU * t as f32 / 3.0 + phase).sin();
                        actors.push(Actor::Person {
                            gid: gids[&p.id],
                            sprite: &people[pi],
                            foot,
                            scale,
                            angle,
                            occlusion: p.augment.occlusion,
                        });
                    }
                }
            }
            for (vi, v) in s.vehicles.iter().enumerate() {
                for leg in v.route.iter().filter(|l| l.camera == cam.id) {
                    if let Some((foot, scale)) = leg_state(leg, cam.width, cam.height, t, 0.0, 0.0)
                    {
                        actors.push(Actor::Vehicle {
                            gid: gids[&v.id],
                            sprite: &vehicles[vi],
                            foot,
                            scale,
                        });
                    }
                }
            }
            // Painter's order: farther (higher in the frame) first.
            actors.sort_by(|a, b| {
                let y = |a: &Actor| match a {
                    Actor::Person { foot, .. } | Actor::Vehicle { foot, .. } => foot[1],
                };
                y(a).total_cmp(&y(b))
            });
            let mut frame = bg.clone();
            if cam.noise > 0 {
                let n = cam.noise as u32;
                let fseed = seed ^ (i as u32).wrapping_mul(0x9e37_79b9);
                for (k, v) in frame.iter_mut().enumerate() {
                    let h = (k as u32 ^ fseed).wrapping_mul(0x85eb_ca6b);
                    let d = (h >> 16) % (2 * n + 1);
                    *v = (*v as u32 + d).saturating_sub(n).min(255) as u8;
                }
            }
            for a in &actors {
                match a {
                    Actor::Person {
                        gid,
                        sprite,
                        foot,
                        scale,
                        angle,
                        occlusion,
                    } => {
                        let k = scale / sprite.base_scale;
                        let side = (sprite.img.width() as f32 * k).round().max(4.0) as u32;
                        let img = imageops::resize(
                            &sprite.img,
                            side,
                            side,
                            imageops::FilterType::Triangle,
                        );
                        let img = rotate(&img, *angle);
                        let (x0, y0) = (foot[0] - side as f32 / 2.0, foot[1] - side as f32);
                        blend(&mut frame, &img, x0.round() as i64, y0.round() as i64);
                        let kk = side as f32 / sprite.img.width() as f32;
                        let f = sprite.face.map(|v| v * kk);
                        let c = side as f32 / 2.0;
                        let f = rotate_box(f, *angle, c, c);
                        let face = [f[0] + x0, f[1] + y0, f[2] + x0, f[3] + y0];
                        let body = [x0, y0, x0 + side as f32, y0 + side as f32];
                        // The occluder: a grey railing over the lower part.
                        let occ_h = (side as f32 * occlusion).round() as u32;
                        if occ_h > 0 {
                            let top = (y0 + side as f32 - occ_h as f32).round().max(0.0) as u32;
                            for y in top..(top + occ_h).min(cam.height) {
                                for x in (x0.round().max(0.0) as u32)
                                    ..((x0 + side as f32).round().max(0.0) as u32).min(cam.width)
                                {
                                    let stripe = if (y / 6) % 2 == 0 { 150 } else { 120 };
                                    frame.put_pixel(x, y, Rgb([stripe, stripe, stripe + 10]));
                                }
                            }
                        }
                        let face_occ = ((face[3] - (body[3] - occ_h as f32))
                            / (face[3] - face[1]).max(1.0))
                        .clamp(0.0, 1.0);
                        for (class, b, occ) in
                            [("person", body, *occlusion), ("face", face, face_occ)]
                        {
                            if let Some(bbox) = clip_box(b, cam.width, cam.height) {
                                truth.boxes.push(BoxTruth {
                                    camera: cam.id.clone(),
                                    frame: i,
                                    gid: *gid,
                                    class: class.into(),
                                    bbox,
                                    occluded: occ,
                                });
                            }
                        }
                    }
                    Actor::Vehicle {
                        gid,
                        sprite,
                        foot,
                        scale,
                    } => {
                        let k = scale / sprite.base_scale;
                        let (w, h) = (
                            (sprite.img.width() as f32 * k).round().max(4.0) as u32,
                            (sprite.img.height() as f32 * k).round().max(4.0) as u32,
                        );
                        let img =
                            imageops::resize(&sprite.img, w, h, imageops::FilterType::Triangle);
                        let (x0, y0) = (foot[0] - w as f32 / 2.0, foot[1] - h as f32);
                        blend(&mut frame, &img, x0.round() as i64, y0.round() as i64);
                        let (kx, ky) = (
                            w as f32 / sprite.img.width() as f32,
                            h as f32 / sprite.img.height() as f32,
                        );
                        let p = sprite.plate;
                        let plate = [
                            x0 + p[0] * kx,
                            y0 + p[1] * ky,
                            x0 + p[2] * kx,
                            y0 + p[3] * ky,
                        ];
                        let body = [x0, y0, x0 + w as f32, y0 + h as f32];
                        for (class, b) in [("vehicle", body), ("plate", plate)] {
                            if let Some(bbox) = clip_box(b, cam.width, cam.height) {
                                truth.boxes.push(BoxTruth {
                                    camera: cam.id.clone(),
                                    frame: i,
                                    gid: *gid,
                                    class: class.into(),
                                    bbox,
                                    occluded: 0.0,
                                });
                            }
                        }
                    }
                }
            }
            writer.push(frame)?;
            bar.inc(1);
        }
        writer.finish()?;
        truth.cameras.push(CameraTruth {
            id: cam.id.clone(),
            agent: cam.agent.clone(),
            width: cam.width,
            height: cam.height,
            fps: cam.fps,
            frames,
            file: format!("footage/{file}"),
        });
    }
    let path = out.join(TRUTH_FILE);
    let json = serde_json::to_vec(&truth).map_err(|e| GenerateError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(truth)
}

/// The ground truth in `out`, if footage for a scenario with this digest is there (in the
/// current format, every camera's file present).
pub fn existing(out: &Path, digest: &str) -> Option<GroundTruth> {
    let bytes = std::fs::read(out.join(TRUTH_FILE)).ok()?;
    let truth: GroundTruth = serde_json::from_slice(&bytes).ok()?;
    (truth.format == crate::truth::TRUTH_FORMAT
        && truth.scenario_digest == digest
        && truth.cameras.iter().all(|c| out.join(&c.file).is_file()))
    .then_some(truth)
}
