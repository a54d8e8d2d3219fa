//! SFace 2021dec face embedder (OpenCV Zoo), weights folded to fp32 (docs/models.md §3.2, §5).
//!
//! Input `data` `[1,3,112,112]` float32, RGB 0..255, the face aligned by its five landmarks
//! to the ArcFace template; output `fc1` `[1,128]`, L2-normalised here so that the cosine
//! similarity of two embeddings is their dot product.

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use super::align::{ARCFACE_112, Similarity, warp_rgb_planar};
use super::{BgrImage, FaceEmbedder, InferError, load_session};

const FAMILY: &str = "sface";
const SIZE: usize = 112;

/// The SFace embedder.
pub struct SFace {
    session: Session,
    path: PathBuf,
    input: Vec<f32>,
}

impl std::fmt::Debug for SFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SFace")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SFace {
    /// Loads the model and checks its signature.
    pub fn load(env: &Environment, path: &Path, threads: usize) -> Result<Self, InferError> {
        let session = load_session(env, path, threads)?;
        let sig = |reason: String| InferError::signature(path, FAMILY, reason);
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if inputs != ["data"] {
            return Err(sig(format!(
                "expected the single input `data`, found {inputs:?} (use the folded model)"
            )));
        }
        if !session.outputs().iter().any(|o| o.name() == "fc1") {
            return Err(sig("output fc1 is missing".into()));
        }
        Ok(Self {
            session,
            path: path.to_path_buf(),
            input: Vec::with_capacity(3 * SIZE * SIZE),
        })
    }
}

impl FaceEmbedder for SFace {
    fn embed(&mut self, img: &BgrImage, landmarks: &[[f32; 2]; 5]) -> Result<Vec<f32>, InferError> {
        let m = Similarity::estimate(landmarks, &ARCFACE_112)
            .ok_or_else(|| InferError::BadImage("degenerate face landmarks".into()))?;
        warp_rgb_planar(img, &m, SIZE, &mut self.input);
        let input = TensorRef::from_array_view(([1usize, 3, SIZE, SIZE], &self.input[..]))?;
        let outputs = self.session.run(ort::inputs!["data" => input])?;
        let (_, v) = outputs["fc1"].try_extract_tensor::<f32>()?;
        sharpeyes_core::embedding::unit(v).ok_or_else(|| {
            InferError::BadImage("the embedder returned a zero or non-finite vector".into())
        })
    }
}
