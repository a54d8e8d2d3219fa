//! `[watchlist]`: the face models enrollment uses (the agents' own, so embeddings compare).

use std::path::PathBuf;

pub use perception::config::ModelsConfig;
use perception::config::{FaceDetectorConfig, FaceEmbedderConfig};
use serde::{Deserialize, Serialize};

/// Watchlist enrollment and publishing. Enrollment embeds the photos with the agents' face
/// detector and embedder, so keep these in step with the agents' configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchlistConfig {
    /// How often the running aggregator checks the store's watchlist version, ms; a changed
    /// version is published (retained) at the next check (100..=600000). Default `2000`.
    pub publish_poll_ms: u64,
    /// A detection counts as a face of its own when its box is at least this share of the
    /// largest face's height (0..=1); smaller ones (people far behind, spurious detections)
    /// are ignored. Default `0.4`.
    pub min_face_ratio: f32,
    /// Photos whose face is smaller than this many pixels high are refused (8..=1024).
    /// Default `40`.
    pub min_face_px: u32,
    /// The second and later photos of one person must have at least this cosine similarity
    /// with the first (-1..=1); below it they are refused as showing someone else. A low
    /// sanity bar: same-person pairs of the test photos score at least 0.52, different
    /// people at most 0.36. Default `0.3`.
    pub min_same_person: f32,
    /// Model files and the ONNX Runtime library (the agents' `[models]`).
    pub models: ModelsConfig,
    /// The face detector (the agents' `[face_detector]`).
    pub face_detector: EnrollDetectorConfig,
    /// The face embedder (the agents' `[face_embedder]`).
    pub face_embedder: EnrollEmbedderConfig,
}

impl Default for WatchlistConfig {
    fn default() -> Self {
        Self {
            publish_poll_ms: 2000,
            min_face_ratio: 0.4,
            min_face_px: 40,
            min_same_person: 0.3,
            models: ModelsConfig::default(),
            face_detector: EnrollDetectorConfig::default(),
            face_embedder: EnrollEmbedderConfig::default(),
        }
    }
}

/// The face detector enrollment runs: the agents' settings (their defaults are these
/// defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollDetectorConfig {
    /// Model family. Default `yunet` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `yunet_2023mar_dynamic.onnx`.
    pub model: PathBuf,
    /// Minimum face score (0..1). Default `0.6`.
    pub score_threshold: f32,
    /// IoU above which overlapping faces are merged by NMS (0..1). Default `0.3`.
    pub nms_iou: f32,
    /// Photos whose longer side exceeds this are downscaled before detection (64..=4096).
    /// Default `1920`.
    pub max_side: u32,
}

impl Default for EnrollDetectorConfig {
    fn default() -> Self {
        let a = FaceDetectorConfig::default();
        Self {
            family: a.family,
            model: a.model,
            score_threshold: a.score_threshold,
            nms_iou: a.nms_iou,
            max_side: a.max_side,
        }
    }
}

impl EnrollDetectorConfig {
    /// The agent's detector configuration with these settings (no cascade: enrollment
    /// photos are close-ups).
    pub fn to_agent(&self) -> FaceDetectorConfig {
        FaceDetectorConfig {
            family: self.family.clone(),
            model: self.model.clone(),
            score_threshold: self.score_threshold,
            nms_iou: self.nms_iou,
            max_side: self.max_side,
            cascade: false,
        }
    }
}

/// The face embedder enrollment runs: the agents' family and model (their defaults are these
/// defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollEmbedderConfig {
    /// Model family. Default `sface` (the only one so far).
    pub family: String,
    /// Model file, relative to `models.dir`. Default `sface_2021dec_fp32fold.onnx`.
    pub model: PathBuf,
    /// The verification threshold: two faces whose embeddings' cosine similarity is at
    /// least this are taken for the same person (-1..=1). Face search marks such hits as
    /// matches and, unless asked for a `min_similarity`, lists only them; the web page gets
    /// it as `face_match_threshold`. Default `0.363` (OpenCV's operating point for SFace,
    /// docs/models.md §5; tune it on the site's footage).
    pub match_threshold: f32,
}

/// [`EnrollEmbedderConfig::match_threshold`]'s default: SFace's operating point.
pub const SFACE_MATCH_THRESHOLD: f32 = 0.363;

impl Default for EnrollEmbedderConfig {
    fn default() -> Self {
        let a = FaceEmbedderConfig::default();
        Self {
            family: a.family,
            model: a.model,
            match_threshold: SFACE_MATCH_THRESHOLD,
        }
    }
}

impl EnrollEmbedderConfig {
    /// The agent's embedder configuration with this family and model.
    pub fn to_agent(&self) -> FaceEmbedderConfig {
        FaceEmbedderConfig {
            family: self.family.clone(),
            model: self.model.clone(),
            ..FaceEmbedderConfig::default()
        }
    }
}
