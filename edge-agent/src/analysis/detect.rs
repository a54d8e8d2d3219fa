//! Detection on one frame: faces, persons and vehicles, and the small-face cascade (faces
//! too small for the whole-frame detector, looked for again in the persons' head regions).

use std::time::Instant;

use tracing::warn;

use super::Analysis;
use crate::infer::{self, FaceDetection, ObjectDetection, cascade};
use crate::ingest::Frame;
use crate::metrics::{add, inc};

impl Analysis<'_> {
    /// Detects the faces and the persons and vehicles on `f` (with `face_detector.cascade`,
    /// also the small faces in the head regions of the persons found); None when face
    /// detection failed (the frame is skipped).
    pub(super) fn detect(
        &mut self,
        cam: usize,
        f: &Frame,
    ) -> Option<(Vec<FaceDetection>, Vec<ObjectDetection>)> {
        let m = &self.metrics.cameras[cam];
        let t0 = Instant::now();
        let mut faces = match self.models.detector.detect(&f.image) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "face detection failed on a frame; skipped");
                return None;
            }
        };
        add(&m.detect_us, t0.elapsed().as_micros() as u64);
        let objects = match self.models.objects.as_mut() {
            Some(d) => {
                let t0 = Instant::now();
                let r = d.detect(&f.image);
                add(&m.object_us, t0.elapsed().as_micros() as u64);
                r.unwrap_or_else(|e| {
                    warn!(error = %e, "object detection failed on a frame; faces only");
                    Vec::new()
                })
            }
            None => Vec::new(),
        };
        add(&m.objects, objects.len() as u64);
        if self.cfg.face_detector.cascade {
            let t0 = Instant::now();
            let persons = infer::person_boxes(&objects);
            match cascade::head_faces(self.models.detector.as_mut(), &f.image, &persons, &faces) {
                Ok(extra) => {
                    add(&m.cascade_faces, extra.len() as u64);
                    faces.extend(extra);
                }
                Err(e) => warn!(error = %e, "small-face cascade failed on a frame"),
            }
            add(&m.detect_us, t0.elapsed().as_micros() as u64);
        }
        add(&m.detections, faces.len() as u64);
        inc(&m.frames_analysed);
        Some((faces, objects))
    }
}
