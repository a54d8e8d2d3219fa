//! `edge-agent probe IMAGE`: what the agent sees in one image, as JSON (a field engineer's
//! check of a camera snapshot, and the evaluator's entry point to the detectors).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::AgentError;
use crate::config::AgentConfig;
use crate::infer::{self, BgrImage, FaceDetection, ObjectDetection, PlateReading};

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
    /// Time spent computing every face's embedding, ms (with `--embeddings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_embed_ms: Option<f64>,
    /// Persons and vehicles (when `object_detector.enabled`), best first.
    pub objects: Vec<ObjectDetection>,
    /// Time spent in person / vehicle detection, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_detect_ms: Option<f64>,
    /// Licence plates read (when `plate_reader.enabled`), best first.
    pub plates: Vec<PlateReading>,
    /// Time spent finding and reading plates, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_ms: Option<f64>,
}

/// Runs the configured models on one image file; with `embeddings`, each face carries its
/// embedding.
pub fn probe(
    config: &AgentConfig,
    image: &Path,
    embeddings: bool,
) -> Result<ProbeReport, AgentError> {
    let img = BgrImage::open(image)?;
    let mut detector = infer::face_detector(&config.models, &config.face_detector)?;
    let (mut objects, mut object_detect_ms) = (Vec::new(), None);
    if config.object_detector.enabled {
        let mut od = infer::object_detector(&config.models, &config.object_detector)?;
        let t0 = Instant::now();
        objects = od.detect(&img)?;
        object_detect_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let t0 = Instant::now();
    let mut faces = detector.detect(&img)?;
    if config.face_detector.cascade {
        let persons = infer::person_boxes(&objects);
        let extra = infer::cascade::head_faces(detector.as_mut(), &img, &persons, &faces)?;
        faces.extend(extra);
    }
    let face_detect_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut face_embed_ms = None;
    if embeddings {
        let mut embedder = infer::face_embedder(&config.models, &config.face_embedder)?;
        let t0 = Instant::now();
        for f in &mut faces {
            f.embedding = Some(embedder.embed(&img, &f.landmarks)?);
        }
        face_embed_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
    }

    let (mut plates, mut plate_ms) = (Vec::new(), None);
    if config.plate_reader.enabled {
        let mut reader = infer::plate_reader(&config.models, &config.plate_reader)?;
        let t0 = Instant::now();
        plates = reader.read(
            &img,
            &infer::plate_regions(&objects),
            config.plate_reader.whole_frame,
        )?;
        plate_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(ProbeReport {
        image: image.display().to_string(),
        width: img.width,
        height: img.height,
        faces,
        face_detect_ms,
        face_embed_ms,
        objects,
        object_detect_ms,
        plates,
        plate_ms,
    })
}
