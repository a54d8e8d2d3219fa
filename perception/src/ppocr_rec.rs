//! PP-OCRv4 rec text-line recogniser (rapidocr-onnxruntime 1.4.4, docs/models.md §6.2).
//!
//! Input `x` `[N,3,48,W]` float32, BGR, `(v/255 − 0.5)/0.5`, each crop resized to height 48
//! with its aspect kept, the batch padded on the right (with 0) to its widest crop. Output
//! `[N,W/8,6625]` softmax over CTC classes: 0 is the blank, `1 + i` is line `i` of the
//! dictionary stored in the model's metadata (key `character`), 6624 is a space. Greedy CTC
//! decoding: argmax per step, repeats collapsed, blanks dropped. An optional alphabet zeroes
//! every other class before the argmax (for plates this removes `O`/`0` and `·`/`-`
//! confusions).

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use super::plate::{TextReading, TextRecognizer};
use super::{BgrImage, InferError, load_session};

const FAMILY: &str = "ppocr_rec";
const HEIGHT: u32 = 48;

/// The PP-OCRv4 recogniser.
pub struct PpOcrRec {
    session: Session,
    path: PathBuf,
    input_name: String,
    output_name: String,
    /// Class index → character (`None` for the blank and for entries that are not one char).
    labels: Vec<Option<char>>,
    /// The class indices that may be output (the blank, 0, always may), ascending.
    allowed: Vec<usize>,
    input: Vec<f32>,
}

impl std::fmt::Debug for PpOcrRec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PpOcrRec")
            .field("path", &self.path)
            .field("classes", &self.labels.len())
            .finish_non_exhaustive()
    }
}

impl PpOcrRec {
    /// Loads the model and its dictionary. With `alphabet`, only characters it accepts are
    /// ever read.
    pub fn load(
        env: &Environment,
        path: &Path,
        alphabet: Option<fn(char) -> bool>,
        threads: usize,
    ) -> Result<Self, InferError> {
        let session = load_session(env, path, threads)?;
        let sig = |reason: String| InferError::signature(path, FAMILY, reason);
        if session.inputs().len() != 1 || session.outputs().len() != 1 {
            return Err(sig("expected one input and one output".into()));
        }
        let input_name = session.inputs()[0].name().to_string();
        let output_name = session.outputs()[0].name().to_string();
        let dict = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("character"))
            .ok_or_else(|| sig("no `character` dictionary in the model metadata".into()))?;
        let mut labels: Vec<Option<char>> = vec![None];
        for line in dict.lines() {
            let mut it = line.chars();
            labels.push(match (it.next(), it.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            });
        }
        labels.push(Some(' '));
        let allowed = (0..labels.len())
            .filter(|&i| i == 0 || labels[i].is_some_and(|c| alphabet.is_none_or(|f| f(c))))
            .collect();
        Ok(Self {
            session,
            path: path.to_path_buf(),
            input_name,
            output_name,
            labels,
            allowed,
            input: Vec::new(),
        })
    }
}

/// Greedy CTC decoding of one crop's `[T, classes]` probabilities: per step the most probable
/// allowed class, its probability renormalised over the allowed classes, repeats collapsed,
/// blanks (0) dropped; each character keeps the highest probability of its run.
fn ctc_decode(
    probs: &[f32],
    classes: usize,
    labels: &[Option<char>],
    allowed: &[usize],
) -> TextReading {
    let mut chars: Vec<(char, f32)> = Vec::new();
    let mut prev = 0usize;
    for step in probs.chunks_exact(classes) {
        let (mut best, mut p, mut mass) = (0usize, f32::MIN, 0.0f32);
        for &i in allowed {
            mass += step[i];
            if step[i] > p {
                (best, p) = (i, step[i]);
            }
        }
        // Confidence given that the character is in the alphabet: an `0` the model half
        // took for an `O` (outside a plate's alphabet) is still a confident `0`.
        if mass > 0.0 {
            p /= mass;
        }
        if best != 0 {
            if best == prev {
                // The same character continues: keep its most confident step.
                if let Some(last) = chars.last_mut() {
                    last.1 = last.1.max(p);
                }
            } else if let Some(c) = labels[best] {
                chars.push((c, p));
            }
        }
        prev = best;
    }
    TextReading { chars }
}

impl TextRecognizer for PpOcrRec {
    fn input_height(&self) -> u32 {
        HEIGHT
    }

    fn read(&mut self, crops: &[BgrImage]) -> Result<Vec<TextReading>, InferError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let widths: Vec<u32> = crops
            .iter()
            .map(|c| ((HEIGHT as f32 * c.width as f32 / c.height as f32).ceil() as u32).max(8))
            .collect();
        let wmax = *widths.iter().max().unwrap_or(&8) as usize;
        let h = HEIGHT as usize;
        let (n, plane) = (crops.len(), h * wmax);
        self.input.clear();
        self.input.resize(n * 3 * plane, 0.0);
        for (k, (crop, &w)) in crops.iter().zip(&widths).enumerate() {
            let resized;
            let img = if crop.height == HEIGHT && crop.width == w {
                crop
            } else {
                resized = crop.resized(w, HEIGHT);
                &resized
            };
            let base = k * 3 * plane;
            img.write_planar(
                &mut self.input[base..base + 3 * plane],
                wmax,
                plane,
                |v, _| (v as f32 / 255.0 - 0.5) / 0.5,
            );
        }
        let input = TensorRef::from_array_view(([n, 3, h, wmax], &self.input[..]))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])?;
        let (shape, probs) = outputs[self.output_name.as_str()].try_extract_tensor::<f32>()?;
        let (labels, allowed) = (&self.labels, &self.allowed);
        let classes = shape.get(2).copied().unwrap_or(0) as usize;
        if shape.len() != 3 || shape[0] as usize != n || classes != self.labels.len() {
            return Err(InferError::signature(
                &self.path,
                FAMILY,
                format!(
                    "output shape {shape:?} does not fit {n} crops and {} classes",
                    self.labels.len()
                ),
            ));
        }
        let per = probs.len() / n;
        Ok(probs
            .chunks_exact(per)
            .map(|p| ctc_decode(p, classes, labels, allowed))
            .collect())
    }
}
