//! Each face track's best face (what identifies it, and what a person linked with it shows):
//! chosen by quality, embedded, cropped.

use std::time::Instant;

use sharpeyes_wire::QEmbedding;
use tracing::warn;

use super::Analysis;
use crate::infer::{BgrImage, FaceDetection, FaceQuality, face_quality};
use crate::ingest::Frame;
use crate::metrics::{add, inc};

/// A face track's best face so far (what identifies it): chosen by [`FaceQuality`].
#[derive(Debug, Clone)]
pub struct BestFace {
    /// Its quality.
    pub quality: FaceQuality,
    /// Its embedding (quantised as on the wire), when the embedder is enabled.
    pub embedding: Option<QEmbedding>,
    /// The face, cropped with a margin (evidence and review).
    pub crop: BgrImage,
    /// Capture time of its frame.
    pub ts_ms: i64,
}

impl Analysis<'_> {
    /// Keeps each face track's best face (by [`FaceQuality`]), embedding it when it beats the
    /// previous best by 10 % and `face_embedder.min_interval_ms` has passed.
    pub(super) fn choose_best_faces(
        &mut self,
        cam: usize,
        f: &Frame,
        faces: &[FaceDetection],
        seen: &[(u64, usize)],
    ) {
        let m = &self.metrics.cameras[cam];
        let state = &mut self.cams[cam];
        let min_interval = self.cfg.face_embedder.min_interval_ms;
        let t0 = Instant::now();
        for &(track, di) in seen {
            let face = &faces[di];
            let previous = state.best.get(&track);
            // Within the interval nothing can replace the best face: skip the pixel work too.
            if previous.is_some_and(|b| f.capture_ms - b.ts_ms < min_interval) {
                continue;
            }
            let quality = face_quality(&f.image, face);
            if previous.is_some_and(|b| quality.total() <= b.quality.total() * 1.1) {
                continue;
            }
            let embedding = match self.models.embedder.as_mut() {
                Some(e) => match e.embed(&f.image, &face.landmarks) {
                    Ok(v) => {
                        inc(&m.embeddings);
                        Some(QEmbedding::quantize(&v))
                    }
                    Err(e) => {
                        warn!(error = %e, "embedding failed; the track keeps its previous face");
                        continue;
                    }
                },
                None => None,
            };
            let b = face.bbox;
            let (mx, my) = ((b[2] - b[0]) * 0.2, (b[3] - b[1]) * 0.2);
            let Some((crop, _, _)) = f.image.crop([b[0] - mx, b[1] - my, b[2] + mx, b[3] + my])
            else {
                continue;
            };
            state.best.insert(
                track,
                BestFace {
                    quality,
                    embedding,
                    crop,
                    ts_ms: f.capture_ms,
                },
            );
        }
        add(&m.embed_us, t0.elapsed().as_micros() as u64);
    }
}
