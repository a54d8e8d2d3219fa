//! Perception: ONNX Runtime sessions behind one trait per model kind, the models'
//! configuration, and the one face-embedding type every part of the product compares with.
//!
//! The runtime library is loaded once per process ([`init_runtime`]); each model family is a
//! struct implementing its kind's trait, chosen by configuration (`family` + `model`). Images
//! come in as [`BgrImage`]s: this crate knows nothing of GStreamer or of MQTT, so both the
//! edge agent and the aggregator (enrollment photos) use it.

pub mod align;
pub mod cascade;
mod clp_det;
pub mod config;
mod image;
pub mod nanodet;
pub mod plate;
mod ppocr_rec;
pub mod quality;
mod sface;
mod yunet;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use serde::Serialize;
use thiserror::Error;

pub use self::clp_det::ClpDet;
pub use self::image::BgrImage;
pub use self::nanodet::NanoDet;
pub use self::plate::{PlateReader, PlateReading};
pub use self::ppocr_rec::PpOcrRec;
pub use self::quality::{FaceQuality, face_quality};
pub use self::sface::SFace;
pub use self::yunet::YuNet;
pub use sharpeyes_core::embedding::{self, EmbeddingRef, cosine};
use sharpeyes_wire::ObjectClass;

use crate::config::{
    FaceDetectorConfig, FaceEmbedderConfig, ModelsConfig, ObjectDetectorConfig, PlateReaderConfig,
};

/// Inference failures.
#[derive(Debug, Error)]
pub enum InferError {
    /// The ONNX Runtime library could not be loaded.
    #[error(
        "loading ONNX Runtime from {path}: {reason} (run scripts/setup.sh, or set models.onnxruntime / ORT_DYLIB_PATH)"
    )]
    Runtime {
        /// The library path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A model file could not be loaded.
    #[error("loading model {path}: {reason} (run scripts/setup.sh to fetch models)")]
    Model {
        /// The model path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model's inputs or outputs are not what the family expects.
    #[error("model {path} does not look like a {family} model: {reason}")]
    Signature {
        /// The model path.
        path: PathBuf,
        /// The family.
        family: &'static str,
        /// What is off.
        reason: String,
    },
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Run(#[from] ort::Error),
    /// The input image is unusable.
    #[error("bad input image: {0}")]
    BadImage(String),
}

impl InferError {
    /// The model at `path` does not have the inputs or outputs `family` expects.
    pub(crate) fn signature(path: &Path, family: &'static str, reason: impl Into<String>) -> Self {
        InferError::Signature {
            path: path.to_path_buf(),
            family,
            reason: reason.into(),
        }
    }
}

static RUNTIME: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();

/// Loads the ONNX Runtime library (once per process) and returns its environment.
pub fn init_runtime(path: &Path) -> Result<&'static Environment, InferError> {
    let r = RUNTIME.get_or_init(|| {
        if !path.exists() {
            return Err((path.to_path_buf(), "file not found".into()));
        }
        ort::init_from(path)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("sharpeyes").build().map_err(|e| e.to_string()))
            .map_err(|e| (path.to_path_buf(), e))
    });
    r.as_ref().map_err(|(p, e)| InferError::Runtime {
        path: p.clone(),
        reason: e.clone(),
    })
}

/// A detected face, in pixels of the input image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceDetection {
    /// `[x1, y1, x2, y2]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Score (0..1).
    pub score: f32,
    /// Five landmarks `[x, y]`: right eye, left eye (as seen in the image: image-left first),
    /// nose tip, right and left mouth corner.
    pub landmarks: [[f32; 2]; 5],
    /// L2-normalised face embedding, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// A face detector family.
pub trait FaceDetector: Send {
    /// Faces in `img`, best first.
    fn detect(&mut self, img: &BgrImage) -> Result<Vec<FaceDetection>, InferError>;
}

/// A face embedder family.
pub trait FaceEmbedder: Send {
    /// The L2-normalised embedding of the face with these five landmarks (as a
    /// [`FaceDetection`] gives them) in `img`.
    fn embed(&mut self, img: &BgrImage, landmarks: &[[f32; 2]; 5]) -> Result<Vec<f32>, InferError>;
}

/// A detected person or vehicle, in pixels of the input image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectDetection {
    /// Person, bicycle, car, motorcycle, bus or truck.
    pub class: ObjectClass,
    /// `[x1, y1, x2, y2]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Score (0..1).
    pub score: f32,
}

/// A person / vehicle detector family.
pub trait ObjectDetector: Send {
    /// Objects in `img` of the configured classes, best first.
    fn detect(&mut self, img: &BgrImage) -> Result<Vec<ObjectDetection>, InferError>;
}

/// The execution providers compiled in (cargo features `tensorrt`, `cuda`, `openvino`), in
/// order of preference; ONNX Runtime falls back to the next, and finally to the CPU, when one
/// is not available at run time.
fn execution_providers() -> Vec<ort::ep::ExecutionProviderDispatch> {
    vec![
        #[cfg(feature = "tensorrt")]
        ort::ep::TensorRT::default().build(),
        #[cfg(feature = "cuda")]
        ort::ep::CUDA::default().build(),
        #[cfg(feature = "openvino")]
        ort::ep::OpenVINO::default().build(),
    ]
}

/// Opens an ONNX model with full graph optimisation, `threads` intra-op threads and the
/// compiled-in execution providers (CPU when none).
pub(crate) fn load_session(
    env: &Environment,
    path: &Path,
    threads: usize,
) -> Result<ort::session::Session, InferError> {
    use ort::session::builder::GraphOptimizationLevel;
    if !path.exists() {
        return Err(InferError::Model {
            path: path.to_path_buf(),
            reason: "file not found".into(),
        });
    }
    ort::session::Session::builder(env)
        .and_then(|b| {
            b.with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(Into::into)
        })
        .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
        .and_then(|b| {
            let eps = execution_providers();
            match eps.is_empty() {
                true => Ok(b),
                false => b.with_execution_providers(eps).map_err(Into::into),
            }
        })
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| InferError::Model {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// The face embedder the configuration names.
pub fn face_embedder(
    models: &ModelsConfig,
    cfg: &FaceEmbedderConfig,
) -> Result<Box<dyn FaceEmbedder>, InferError> {
    let env = init_runtime(&models.onnxruntime_path())?;
    let path = models.model_path(&cfg.model);
    match cfg.family.as_str() {
        "sface" => Ok(Box::new(SFace::load(env, &path, models.intra_threads)?)),
        other => Err(InferError::Model {
            path,
            reason: format!("unknown face embedder family {other:?}"),
        }),
    }
}

/// The face detector the configuration names.
pub fn face_detector(
    models: &ModelsConfig,
    cfg: &FaceDetectorConfig,
) -> Result<Box<dyn FaceDetector>, InferError> {
    let env = init_runtime(&models.onnxruntime_path())?;
    let path = models.model_path(&cfg.model);
    match cfg.family.as_str() {
        "yunet" => Ok(Box::new(YuNet::load(
            env,
            &path,
            cfg,
            models.intra_threads,
        )?)),
        other => Err(InferError::Model {
            path,
            reason: format!("unknown face detector family {other:?}"),
        }),
    }
}

/// The person / vehicle detector the configuration names.
pub fn object_detector(
    models: &ModelsConfig,
    cfg: &ObjectDetectorConfig,
) -> Result<Box<dyn ObjectDetector>, InferError> {
    let env = init_runtime(&models.onnxruntime_path())?;
    let path = models.model_path(&cfg.model);
    match cfg.family.as_str() {
        "nanodet" => Ok(Box::new(NanoDet::load(
            env,
            &path,
            cfg,
            models.intra_threads,
        )?)),
        other => Err(InferError::Model {
            path,
            reason: format!("unknown object detector family {other:?}"),
        }),
    }
}

/// The boxes of the persons among `objects`.
pub fn person_boxes(objects: &[ObjectDetection]) -> Vec<[f32; 4]> {
    objects
        .iter()
        .filter(|o| o.class == ObjectClass::Person)
        .map(|o| o.bbox)
        .collect()
}

/// Where to look for plates: the boxes of the vehicles that carry them (cars, buses, trucks,
/// motorcycles). Empty (the reader then searches the whole frame) when there are none.
pub fn plate_regions(objects: &[ObjectDetection]) -> Vec<[f32; 4]> {
    objects
        .iter()
        .filter(|o| o.class.carries_plate())
        .map(|o| o.bbox)
        .collect()
}

/// The plate reader (localiser + recogniser restricted to the plate alphabet) the
/// configuration names.
pub fn plate_reader(
    models: &ModelsConfig,
    cfg: &PlateReaderConfig,
) -> Result<PlateReader, InferError> {
    let env = init_runtime(&models.onnxruntime_path())?;
    let threads = models.intra_threads;
    let locator_path = models.model_path(&cfg.locator_model);
    let locator: Box<dyn plate::PlateLocator> = match cfg.locator_family.as_str() {
        "clp_det" => Box::new(ClpDet::load(
            env,
            &locator_path,
            cfg.locator_score,
            cfg.locator_nms_iou,
            cfg.max_side,
            threads,
        )?),
        other => {
            return Err(InferError::Model {
                path: locator_path,
                reason: format!("unknown plate locator family {other:?}"),
            });
        }
    };
    let reader_path = models.model_path(&cfg.reader_model);
    let recognizer: Box<dyn plate::TextRecognizer> = match cfg.reader_family.as_str() {
        "ppocr_rec" => Box::new(PpOcrRec::load(
            env,
            &reader_path,
            Some(plate::in_plate_alphabet),
            threads,
        )?),
        other => {
            return Err(InferError::Model {
                path: reader_path,
                reason: format!("unknown text recogniser family {other:?}"),
            });
        }
    };
    Ok(PlateReader::new(
        locator,
        recognizer,
        cfg.locator_nms_iou,
        cfg.min_char_confidence,
    ))
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Merges `[x1, y1, x2, y2]` boxes that `overlap` into their bounding box until no two do
/// (each pass merging forward into the earlier box; a handful of passes even for hundreds of
/// boxes). The one merge of the searched regions ([`cascade::merge_regions`]) and the agent's
/// motion cells, whatever their coordinates and overlap rule.
pub fn merge_overlapping<T: Copy + PartialOrd>(
    boxes: &mut Vec<[T; 4]>,
    overlap: impl Fn(&[T; 4], &[T; 4]) -> bool,
) {
    let lo = |a: T, b: T| if b < a { b } else { a };
    let hi = |a: T, b: T| if b > a { b } else { a };
    loop {
        let mut merged = false;
        let mut i = 0;
        while i < boxes.len() {
            let mut j = i + 1;
            while j < boxes.len() {
                if overlap(&boxes[i], &boxes[j]) {
                    let b = boxes.swap_remove(j);
                    let a = &mut boxes[i];
                    *a = [
                        lo(a[0], b[0]),
                        lo(a[1], b[1]),
                        hi(a[2], b[2]),
                        hi(a[3], b[3]),
                    ];
                    merged = true;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
        if !merged {
            return;
        }
    }
}

/// Greedy non-maximum suppression: sorts by score (best first) and drops any item whose box
/// overlaps a kept one by more than `iou_threshold`.
pub fn nms<T>(
    mut items: Vec<T>,
    iou_threshold: f32,
    bbox: impl Fn(&T) -> [f32; 4],
    score: impl Fn(&T) -> f32,
) -> Vec<T> {
    items.sort_by(|a, b| score(b).total_cmp(&score(a)));
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for it in items {
        let b = bbox(&it);
        if kept.iter().all(|k| iou(&bbox(k), &b) <= iou_threshold) {
            kept.push(it);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 20.0, 30.0, 30.0]), 0.0);
        let v = iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]);
        assert!((v - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let items = vec![
            ([0.0, 0.0, 10.0, 10.0], 0.5),
            ([1.0, 0.0, 11.0, 10.0], 0.9),
            ([50.0, 50.0, 60.0, 60.0], 0.7),
        ];
        let kept = nms(items, 0.3, |i| i.0, |i| i.1);
        let scores: Vec<f32> = kept.iter().map(|i| i.1).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
    }
}
