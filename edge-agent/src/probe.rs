//! `edge-agent probe IMAGE`: what the agent sees in one image, as JSON (a field engineer's
//! check of a camera snapshot, and the evaluator's entry point to the detectors).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::AgentError;
use crate::config::AgentConfig;
use crate::infer::{self, BgrImage, FaceDetection};

/// The findings in one image. Boxes are `[x1, y1, x2, y2]` in pixels of the image.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The image path as given.
    pub image: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Faces, best first.
    pub faces: Vec<FaceDetection>,
    /// Time spent in face detection, ms.
    pub face_detect_ms: f64,
}

/// Runs the configured detectors on one image file.
pub fn probe(config: &AgentConfig, image: &Path) -> Result<ProbeReport, AgentError> {
    let img = BgrImage::open(image)?;
    let mut detector = infer::face_detector(&config.models, &config.face_detector)?;
    let t0 = Instant::now();
    let faces = detector.detect(&img)?;
    let face_detect_ms = t0.elapsed().as_secs_f64() * 1000.0;
    Ok(ProbeReport {
        image: image.display().to_string(),
        width: img.width,
        height: img.height,
        faces,
        face_detect_ms,
    })
}
