//! Perception micro-benchmarks (criterion): each model's pre- and post-processing, NMS, the
//! tracker step, face quality; and, when the models are installed (scripts/setup.sh), each
//! model end to end (pre-processing + ONNX Runtime + post-processing) with 1 and 2 intra-op
//! threads, and the int8 variants of NanoDet and clp_det beside them (docs/models.md §3.4).
//!
//! `cargo bench -p edge-agent --bench perception` (add `-- model/` for the models only,
//! `-- motion/` for the motion gate).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use edge_agent::config::{AgentConfig, ModelsConfig, ResizeMode, TrackerConfig};
use edge_agent::infer::align::{ARCFACE_112, Similarity, warp_rgb_planar};
use edge_agent::infer::nanodet::{self, Placement};
use edge_agent::infer::{self, BgrImage, FaceDetection, face_quality, nms};
use edge_agent::track::{ByteTracker, Detection};

/// The motion gate is private to the analysis stage: the bench compiles its file, which
/// reaches the agent only through `crate::infer` (imported above).
#[allow(dead_code)]
#[path = "../src/analysis/motion.rs"]
mod motion;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A 1080p frame with texture (a real photo tiled), as cameras deliver them.
fn frame_1080p() -> BgrImage {
    let photo = root().join("testdata/small/small_00_24px.jpg");
    BgrImage::open(&photo).unwrap_or_else(|_| {
        let data = (0..1920 * 1080 * 3).map(|i| (i * 7 % 251) as u8).collect();
        BgrImage::new(1920, 1080, data).unwrap()
    })
}

fn preprocessing(c: &mut Criterion) {
    let img = frame_1080p();
    let mut buf = Vec::new();
    let mut g = c.benchmark_group("pre");
    g.bench_function("yunet_1080p_planar_padded", |b| {
        b.iter(|| black_box(img.fill_padded(32, &mut buf, |v, _| v as f32)))
    });
    g.bench_function("nanodet_1080p_letterbox_416", |b| {
        b.iter(|| {
            black_box(nanodet::prepare(
                &img,
                ResizeMode::Letterbox,
                &mut buf,
                0.0,
                0.0,
            ))
        })
    });
    g.bench_function("clp_det_720p_fit_and_planar", |b| {
        b.iter(|| {
            let (work, _) = img.fit_within(1280);
            black_box(work.fill_padded(32, &mut buf, |v, c| v as f32 - [104.0, 117.0, 123.0][c]))
        })
    });
    let landmarks = [
        [900.0, 500.0],
        [940.0, 500.0],
        [920.0, 522.0],
        [904.0, 540.0],
        [936.0, 540.0],
    ];
    let m = Similarity::estimate(&landmarks, &ARCFACE_112).unwrap();
    g.bench_function("sface_align_112", |b| {
        b.iter(|| warp_rgb_planar(&img, &m, 112, &mut buf))
    });
    let face = FaceDetection {
        bbox: [880.0, 470.0, 960.0, 570.0],
        score: 0.9,
        landmarks,
        embedding: None,
    };
    g.bench_function("face_quality_80px", |b| {
        b.iter(|| black_box(face_quality(&img, &face)))
    });
    g.finish();
}

fn postprocessing(c: &mut Criterion) {
    let img = frame_1080p();
    let mut g = c.benchmark_group("post");
    // NanoDet stride 8 (2704 cells): every cell's argmax over 80 classes, a few kept.
    let n = 52 * 52;
    let cls: Vec<f32> = (0..n * 80)
        .map(|i| {
            if i % 997 == 0 {
                0.8
            } else {
                (i % 13) as f32 * 0.01
            }
        })
        .collect();
    let boxes: Vec<f32> = (0..n * 44).map(|i| (i % 11) as f32 * 0.3).collect();
    let mut wanted = [None; 80];
    for (i, w) in wanted.iter_mut().enumerate() {
        *w = nanodet::coco_class(i).map(|c| (c, 0.35));
    }
    let p = Placement {
        sx: 0.2167,
        sy: 0.2167,
        ox: 0.0,
        oy: 0.0,
    };
    let mut out = Vec::new();
    g.bench_function("nanodet_decode_stride8", |b| {
        b.iter(|| {
            out.clear();
            nanodet::decode_stride(&cls, &boxes, 8, &wanted, p, &img, &mut out);
            black_box(out.len())
        })
    });
    // NMS over 300 candidate boxes in clusters (a crowded frame).
    let cands: Vec<([f32; 4], f32)> = (0..300)
        .map(|i| {
            let (cx, cy) = ((i % 30) as f32 * 60.0, (i / 30) as f32 * 100.0);
            let j = (i % 7) as f32;
            (
                [cx + j, cy + j, cx + 50.0 + j, cy + 90.0 + j],
                0.3 + j * 0.1,
            )
        })
        .collect();
    g.bench_function("nms_300", |b| {
        b.iter(|| black_box(nms(cands.clone(), 0.5, |d| d.0, |d| d.1).len()))
    });
    g.finish();
}

fn tracker(c: &mut Criterion) {
    let mut g = c.benchmark_group("track");
    for objects in [5usize, 30] {
        g.bench_with_input(
            BenchmarkId::new("bytetrack_step", objects),
            &objects,
            |b, &k| {
                let mut t = ByteTracker::new(TrackerConfig::default(), 1);
                let mut now = 0i64;
                b.iter(|| {
                    now += 200;
                    let dets: Vec<Detection> = (0..k)
                        .map(|i| {
                            let x = (i * 60) as f32 + (now / 200 % 50) as f32 * 2.0;
                            Detection {
                                bbox: [x, 100.0, x + 40.0, 180.0],
                                score: if i % 5 == 0 { 0.4 } else { 0.9 },
                            }
                        })
                        .collect();
                    black_box(t.update(&dets, now).len())
                })
            },
        );
    }
    g.finish();
}

/// Each model end to end on a real image, with 1 and 2 intra-op threads.
fn models(c: &mut Criterion) {
    let base = AgentConfig::default();
    let models = |threads| ModelsConfig {
        dir: root().join("models/files"),
        onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: threads,
    };
    if infer::init_runtime(&models(1).onnxruntime_path()).is_err() {
        eprintln!("ONNX Runtime not installed (scripts/setup.sh): model benchmarks skipped");
        return;
    }
    let frame = frame_1080p();
    let (vga, _) = frame.fit_within(640);
    let vga = vga.into_owned();
    let plate = BgrImage::open(&root().join("testdata/plates/ccpd_demo_0.jpg"));
    let mut g = c.benchmark_group("model");
    g.sample_size(10);
    for threads in [1usize, 2] {
        let m = models(threads);
        let Ok(mut yunet) = infer::face_detector(&m, &base.face_detector) else {
            eprintln!("models not installed (scripts/setup.sh): model benchmarks skipped");
            return;
        };
        for (name, img) in [("1080p", &frame), ("640x360", &vga)] {
            g.bench_function(format!("yunet_{name}/threads_{threads}"), |b| {
                b.iter(|| black_box(yunet.detect(img).unwrap().len()))
            });
        }
        let face = yunet.detect(&frame).unwrap().into_iter().next();
        let mut sface = infer::face_embedder(&m, &base.face_embedder).unwrap();
        if let Some(face) = face {
            g.bench_function(format!("sface_embed/threads_{threads}"), |b| {
                b.iter(|| black_box(sface.embed(&frame, &face.landmarks).unwrap()))
            });
        }
        let mut nanodet = infer::object_detector(&m, &base.object_detector).unwrap();
        g.bench_function(format!("nanodet_416_1080p/threads_{threads}"), |b| {
            b.iter(|| black_box(nanodet.detect(&frame).unwrap().len()))
        });
        let mut plates = infer::plate_reader(&m, &base.plate_reader).unwrap();
        if let Ok(p) = &plate {
            g.bench_function(format!("plate_read_720x1160/threads_{threads}"), |b| {
                b.iter(|| black_box(plates.read(p, &[], true).unwrap().len()))
            });
        }
        g.bench_function(format!("plate_read_1080p_empty/threads_{threads}"), |b| {
            b.iter(|| black_box(plates.read(&frame, &[], true).unwrap().len()))
        });
        // The int8 variants models/fetch.py makes beside the defaults (docs/models.md §3.4).
        let mut od = base.object_detector.clone();
        od.model = "nanodet_m_416_int8.onnx".into();
        if let Ok(mut nanodet) = infer::object_detector(&m, &od) {
            g.bench_function(format!("nanodet_int8_416_1080p/threads_{threads}"), |b| {
                b.iter(|| black_box(nanodet.detect(&frame).unwrap().len()))
            });
        }
        let mut pr = base.plate_reader.clone();
        pr.locator_model = "clp_det_int8.onnx".into();
        if let Ok(mut plates) = infer::plate_reader(&m, &pr) {
            if let Ok(p) = &plate {
                g.bench_function(format!("plate_read_int8_720x1160/threads_{threads}"), |b| {
                    b.iter(|| black_box(plates.read(p, &[], true).unwrap().len()))
                });
            }
            g.bench_function(
                format!("plate_read_int8_1080p_empty/threads_{threads}"),
                |b| b.iter(|| black_box(plates.read(&frame, &[], true).unwrap().len())),
            );
        }
    }
    g.finish();
}

/// The motion gate on a 720p frame with ±8 levels of noise: still (no region) and with a
/// 40x80 block appearing and leaving (regions found).
fn motion_gate(c: &mut Criterion) {
    let base = frame_1080p().resized(1280, 720);
    let noisy = |seed: usize| {
        let mut f = base.clone();
        for (i, v) in f.data.iter_mut().enumerate() {
            let n = (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % 17;
            *v = (i32::from(*v) + n as i32 - 8).clamp(0, 255) as u8;
        }
        f
    };
    let still = [noisy(1), noisy(2)];
    let mut block = noisy(3);
    for y in 300..380 {
        block.data[(y * 1280 + 600) * 3..(y * 1280 + 640) * 3].fill(20);
    }
    let mut g = c.benchmark_group("motion");
    for (name, frames) in [
        ("gate_720p_still", [&still[0], &still[1]]),
        ("gate_720p_moving", [&still[0], &block]),
    ] {
        let mut gate = motion::MotionGate::new(motion::MotionConfig::default());
        gate.observe(&still[1]);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                black_box(gate.observe(frames[i % 2]).regions.len())
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    preprocessing,
    postprocessing,
    tracker,
    motion_gate,
    models
);
criterion_main!(benches);
