//! YuNet 2023mar face detector (OpenCV Zoo), dynamic-input variant (docs/models.md §3.1, §4.1).
//!
//! Input `input` `[1,3,H,W]` float32, BGR 0..255, H and W multiples of 32: the frame is padded
//! right/bottom with zeros, never downscaled unless it exceeds `max_side` (small faces need
//! full resolution). Outputs per stride s ∈ {8,16,32}: `cls_s`, `obj_s` `[1,N,1]` (0..1),
//! `bbox_s` `[1,N,4]`, `kps_s` `[1,N,10]`, one prior per cell, row-major.

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use super::{BgrImage, FaceDetection, FaceDetector, InferError, load_session, nms};
use crate::config::FaceDetectorConfig;

const STRIDES: [usize; 3] = [8, 16, 32];
const FAMILY: &str = "yunet";

/// The YuNet detector.
pub struct YuNet {
    session: Session,
    path: PathBuf,
    score_threshold: f32,
    nms_iou: f32,
    max_side: u32,
    /// Reused NCHW input buffer.
    input: Vec<f32>,
}

impl std::fmt::Debug for YuNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YuNet")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl YuNet {
    /// Loads the model and checks its signature.
    pub fn load(
        env: &Environment,
        path: &Path,
        cfg: &FaceDetectorConfig,
        threads: usize,
    ) -> Result<Self, InferError> {
        let session = load_session(env, path, threads)?;
        let sig = |reason: String| InferError::signature(path, FAMILY, reason);
        if session.inputs().len() != 1 {
            return Err(sig(format!(
                "expected 1 input, found {}",
                session.inputs().len()
            )));
        }
        for s in STRIDES {
            for kind in ["cls", "obj", "bbox", "kps"] {
                let name = format!("{kind}_{s}");
                if !session.outputs().iter().any(|o| o.name() == name) {
                    return Err(sig(format!("output {name} is missing")));
                }
            }
        }
        Ok(Self {
            session,
            path: path.to_path_buf(),
            score_threshold: cfg.score_threshold,
            nms_iou: cfg.nms_iou,
            max_side: cfg.max_side,
            input: Vec::new(),
        })
    }
}

impl FaceDetector for YuNet {
    fn detect(&mut self, img: &BgrImage) -> Result<Vec<FaceDetection>, InferError> {
        let (work, scale) = img.fit_within(self.max_side);
        let (ph, pw) = work.fill_padded(32, &mut self.input, |v, _| v as f32);
        let input = TensorRef::from_array_view(([1usize, 3, ph, pw], &self.input[..]))?;
        let outputs = self.session.run(ort::inputs!["input" => input])?;
        let mut faces = Vec::new();
        for s in STRIDES {
            let get = |kind: &str| -> Result<&[f32], InferError> {
                let name = format!("{kind}_{s}");
                let v = outputs
                    .get(&name)
                    .ok_or_else(|| InferError::BadImage(format!("no output {name}")))?;
                Ok(v.try_extract_tensor::<f32>()?.1)
            };
            let (cls, obj, bbox, kps) = (get("cls")?, get("obj")?, get("bbox")?, get("kps")?);
            let cols = pw / s;
            let n = cols * (ph / s);
            if cls.len() != n || obj.len() != n || bbox.len() != 4 * n || kps.len() != 10 * n {
                return Err(InferError::signature(
                    &self.path,
                    FAMILY,
                    format!("stride {s}: output sizes do not match a {pw}x{ph} input"),
                ));
            }
            let sf = s as f32;
            for i in 0..n {
                let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
                if score < self.score_threshold {
                    continue;
                }
                let (r, c) = ((i / cols) as f32, (i % cols) as f32);
                let bb = &bbox[4 * i..4 * i + 4];
                let cx = (c + bb[0]) * sf;
                let cy = (r + bb[1]) * sf;
                let bw = bb[2].exp() * sf;
                let bh = bb[3].exp() * sf;
                let k = &kps[10 * i..10 * i + 10];
                let mut landmarks = [[0.0f32; 2]; 5];
                for (j, l) in landmarks.iter_mut().enumerate() {
                    *l = [(k[2 * j] + c) * sf / scale, (k[2 * j + 1] + r) * sf / scale];
                }
                let clamp_x = |v: f32| v.clamp(0.0, img.width as f32);
                let clamp_y = |v: f32| v.clamp(0.0, img.height as f32);
                faces.push(FaceDetection {
                    bbox: [
                        clamp_x((cx - bw / 2.0) / scale),
                        clamp_y((cy - bh / 2.0) / scale),
                        clamp_x((cx + bw / 2.0) / scale),
                        clamp_y((cy + bh / 2.0) / scale),
                    ],
                    score,
                    landmarks,
                    embedding: None,
                });
            }
        }
        Ok(nms(faces, self.nms_iou, |f| f.bbox, |f| f.score))
    }
}
