//! The models' configuration: where the model files and the ONNX Runtime library are, and
//! each model kind's family, file and thresholds (the `[models]`, `[face_detector]`,
//! `[face_embedder]`, `[object_detector]` and `[plate_reader]` tables of the agent's config;
//! the aggregator reads the face ones for enrollment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sharpeyes_core::config::{ConfigError, in_range, invalid};
use sharpeyes_wire::ObjectClass;

/// Where models and the ONNX Runtime library are, and how inference runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory of the model files (relative paths are relative to the working directory).
    /// Default `models/files` (where `scripts/setup.sh` puts them).
    pub dir: PathBuf,
    /// Path of `libonnxruntime.so`. Default: empty, meaning `$ORT_DYLIB_PATH`, else
    /// `.deps/onnxruntime/libonnxruntime.so.1.31.1`.
    pub onnxruntime: PathBuf,
    /// Threads per inference session (1..=64). Default `1`: on a small gateway one thread per
    /// model leaves cores for decoding.
    pub intra_threads: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: "models/files".into(),
            onnxruntime: PathBuf::new(),
            intra_threads: 1,
        }
    }
}

impl ModelsConfig {
    /// The ONNX Runtime library to load.
    pub fn onnxruntime_path(&self) -> PathBuf {
        if !self.onnxruntime.as_os_str().is_empty() {
            return self.onnxruntime.clone();
        }
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        }
    }

    /// Path of a model file named in the config.
    pub fn model_path(&self, file: &Path) -> PathBuf {
        if file.is_absolute() {
            file.to_path_buf()
        } else {
            self.dir.join(file)
        }
    }
}

/// Face detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceDetectorConfig {
    /// Model family. Default `yunet` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `yunet_2023mar_dynamic.onnx`.
    pub model: PathBuf,
    /// Minimum face score (0..1). Default `0.6` (docs/models.md: 0.9 misses small faces).
    pub score_threshold: f32,
    /// IoU above which overlapping faces are merged by NMS (0..1). Default `0.3`.
    pub nms_iou: f32,
    /// Frames whose longer side exceeds this are downscaled before detection (64..=4096).
    /// Default `1920`: a 1080p frame runs at full resolution, which small faces need.
    pub max_side: u32,
    /// Small-face cascade: for each detected person whose face would be under 20 px and that
    /// has none, search its head region again, enlarged (needs `object_detector`). Default
    /// `true`.
    pub cascade: bool,
}

impl Default for FaceDetectorConfig {
    fn default() -> Self {
        Self {
            family: "yunet".into(),
            model: "yunet_2023mar_dynamic.onnx".into(),
            score_threshold: 0.6,
            nms_iou: 0.3,
            max_side: 1920,
            cascade: true,
        }
    }
}

/// How a region is fitted into a detector's fixed square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Aspect kept, the rest padded (better on landscape CCTV frames, docs/models.md §7).
    Letterbox,
    /// Stretched to the square.
    Stretch,
}

/// Person and vehicle detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectDetectorConfig {
    /// Detect persons and vehicles (person tracks, the face cascade and plate regions use
    /// them). Default `true`.
    pub enabled: bool,
    /// Model family. Default `nanodet` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `nanodet_m_416.onnx`.
    pub model: PathBuf,
    /// The classes reported and each one's minimum score (0..1); a class left out is not
    /// reported. Keys: person, bicycle, car, motorcycle, bus, truck. Default 0.35 for each
    /// (docs/models.md §7: NanoDet-m's scores are low, 0.3–0.8).
    pub thresholds: BTreeMap<ObjectClass, f32>,
    /// IoU above which overlapping objects of one class are merged by NMS (0..1). Default `0.6`.
    pub nms_iou: f32,
    /// How a region is fitted into the 416×416 input: `letterbox` or `stretch`. Default
    /// `letterbox`.
    pub resize: ResizeMode,
    /// Analyse the frame in a grid of `[columns, rows]` tiles (1..=8 each) as well, so that
    /// distant persons keep enough pixels (a 1080p frame letterboxed to 416 shrinks 4.6×).
    /// Each tile costs one more model run. Default `[1, 1]` (whole frame only).
    pub tiles: [u32; 2],
    /// Overlap of neighbouring tiles, as a fraction of a tile (0..=0.5). Default `0.15`.
    pub tile_overlap: f32,
    /// With tiles, also analyse the whole frame (large, close objects span tiles). Default
    /// `true`.
    pub full_frame: bool,
    /// Object tracks start from detections scoring at least this (they continue down to the
    /// class threshold); 0..1. Default `0.45`.
    pub track_score: f32,
}

impl Default for ObjectDetectorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            family: "nanodet".into(),
            model: "nanodet_m_416.onnx".into(),
            thresholds: ObjectClass::ALL
                .into_iter()
                .filter(|c| c.is_detected_object())
                .map(|c| (c, 0.35))
                .collect(),
            nms_iou: 0.6,
            resize: ResizeMode::Letterbox,
            tiles: [1, 1],
            tile_overlap: 0.15,
            full_frame: true,
            track_score: 0.45,
        }
    }
}

impl ObjectDetectorConfig {
    /// The minimum score of `class`, if it is reported.
    pub fn threshold(&self, class: ObjectClass) -> Option<f32> {
        self.thresholds.get(&class).copied()
    }
}

/// Face embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceEmbedderConfig {
    /// Compute embeddings of tracked faces. Default `true`.
    pub enabled: bool,
    /// Model family. Default `sface` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `sface_2021dec_fp32fold.onnx`.
    pub model: PathBuf,
    /// A face track is re-embedded when a face at least 10 % better (size, sharpness,
    /// frontal pose, score) appears, but at most this often, ms (0..=60000). Default `500`.
    pub min_interval_ms: i64,
}

impl Default for FaceEmbedderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            family: "sface".into(),
            model: "sface_2021dec_fp32fold.onnx".into(),
            min_interval_ms: 500,
        }
    }
}

/// Licence plate reading: a localiser finds plates (box + 4 corners), each is rectified by
/// its corners and read by a text recogniser restricted to the plate alphabet, and only
/// strings that follow Chinese plate grammar are kept (docs/models.md §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateReaderConfig {
    /// Read plates. Default `true`.
    pub enabled: bool,
    /// Plate localiser family. Default `clp_det` (the only one so far).
    pub locator_family: String,
    /// Localiser model file, relative to `models.dir`. Default `clp_det.onnx`.
    pub locator_model: PathBuf,
    /// Minimum plate score (0..1). Default `0.7` (docs/models.md §6.1).
    pub locator_score: f32,
    /// IoU above which overlapping plates are merged by NMS (0..1). Default `0.4`.
    pub locator_nms_iou: f32,
    /// Also search the whole frame, not only inside the vehicles the object detector found
    /// (it misses some and boxes some wrongly). `false` is cheaper: the whole frame is then
    /// searched only when no vehicle is found. Default `true`.
    pub whole_frame: bool,
    /// Images (or regions) whose longer side exceeds this are downscaled before localising
    /// (64..=4096). Default `1920`: a 1080p frame runs at full resolution.
    pub max_side: u32,
    /// Text recogniser family. Default `ppocr_rec` (the only one so far).
    pub reader_family: String,
    /// Recogniser model file, relative to `models.dir`. Default `ch_PP-OCRv4_rec_infer.onnx`.
    pub reader_model: PathBuf,
    /// Readings whose weakest character is less confident than this are dropped (0..1).
    /// Default `0.3`.
    pub min_char_confidence: f32,
    /// In the agent, plates are read on a camera's analysed frame at most this often, ms
    /// (0..=60000; 0: every analysed frame). Plate tracks vote their readings over frames.
    /// Default `500`.
    pub interval_ms: u64,
}

impl Default for PlateReaderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            locator_family: "clp_det".into(),
            locator_model: "clp_det.onnx".into(),
            locator_score: 0.7,
            locator_nms_iou: 0.4,
            whole_frame: true,
            max_side: 1920,
            reader_family: "ppocr_rec".into(),
            reader_model: "ch_PP-OCRv4_rec_infer.onnx".into(),
            min_char_confidence: 0.3,
            interval_ms: 500,
        }
    }
}

/// A model family this build implements (one so far per model kind).
fn check_family(field: &str, family: &str, known: &str) -> Result<(), ConfigError> {
    if family == known {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("unknown family {family:?} (known: {known})"),
        ))
    }
}

/// Checks the models' tables (field names as in the agent's config file).
pub fn validate(
    models: &ModelsConfig,
    face_detector: &FaceDetectorConfig,
    face_embedder: &FaceEmbedderConfig,
    object_detector: &ObjectDetectorConfig,
    plate_reader: &PlateReaderConfig,
) -> Result<(), ConfigError> {
    in_range("models.intra_threads", models.intra_threads, 1, 64)?;
    let f = face_detector;
    check_family("face_detector.family", &f.family, "yunet")?;
    in_range("face_detector.score_threshold", f.score_threshold, 0.0, 1.0)?;
    in_range("face_detector.nms_iou", f.nms_iou, 0.0, 1.0)?;
    in_range("face_detector.max_side", f.max_side, 64, 4096)?;
    check_family("face_embedder.family", &face_embedder.family, "sface")?;
    in_range(
        "face_embedder.min_interval_ms",
        face_embedder.min_interval_ms,
        0,
        60_000,
    )?;
    let od = object_detector;
    check_family("object_detector.family", &od.family, "nanodet")?;
    for (class, t) in &od.thresholds {
        if !class.is_detected_object() {
            return Err(invalid(
                "object_detector.thresholds",
                format!(
                    "{class:?} is not an object class (person, bicycle, car, motorcycle, bus, truck)"
                ),
            ));
        }
        in_range("object_detector.thresholds", *t, 0.0, 1.0)?;
    }
    in_range("object_detector.nms_iou", od.nms_iou, 0.0, 1.0)?;
    in_range("object_detector.tiles", od.tiles[0], 1, 8)?;
    in_range("object_detector.tiles", od.tiles[1], 1, 8)?;
    in_range("object_detector.tile_overlap", od.tile_overlap, 0.0, 0.5)?;
    in_range("object_detector.track_score", od.track_score, 0.0, 1.0)?;
    let pr = plate_reader;
    check_family("plate_reader.locator_family", &pr.locator_family, "clp_det")?;
    check_family("plate_reader.reader_family", &pr.reader_family, "ppocr_rec")?;
    in_range("plate_reader.locator_score", pr.locator_score, 0.0, 1.0)?;
    in_range("plate_reader.locator_nms_iou", pr.locator_nms_iou, 0.0, 1.0)?;
    in_range("plate_reader.max_side", pr.max_side, 64, 4096)?;
    in_range(
        "plate_reader.min_char_confidence",
        pr.min_char_confidence,
        0.0,
        1.0,
    )?;
    in_range("plate_reader.interval_ms", pr.interval_ms, 0, 60_000)?;
    Ok(())
}
