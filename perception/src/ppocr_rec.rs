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

use super::plate::{Candidate, TextReading, TextRecognizer};
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

/// Per step, the probability of each class renormalised over the allowed classes (so the
/// confidences match [`ctc_decode`]'s).
fn renormalised(step: &[f32], allowed: &[usize]) -> impl Fn(usize) -> f32 {
    let mass: f32 = allowed.iter().map(|&i| step[i]).sum();
    let inv = if mass > 0.0 { 1.0 / mass } else { 1.0 };
    let step = step.to_vec();
    move |i| step[i] * inv
}

/// The most probable CTC alignment (Viterbi) of one crop's `[T, classes]` probabilities among
/// those that decode to exactly `len` characters, character `k` being a class for which
/// `allowed_at(k, c)` holds; with the path's log-probability. Each character keeps the highest
/// (renormalised) probability of its run of steps, as in [`ctc_decode`]. `None` when `T` is too
/// short or no class is allowed at some position.
fn ctc_decode_constrained(
    probs: &[f32],
    classes: usize,
    labels: &[Option<char>],
    allowed: &[usize],
    len: usize,
    allowed_at: &dyn Fn(usize, char) -> bool,
) -> Option<(TextReading, f32)> {
    const FLOOR: f32 = 1e-12;
    let steps: Vec<&[f32]> = probs.chunks_exact(classes).collect();
    // Candidates per character position: (class, char).
    let cand: Vec<Vec<(usize, char)>> = (0..len)
        .map(|k| {
            allowed
                .iter()
                .filter_map(|&i| labels[i].map(|c| (i, c)))
                .filter(|&(i, c)| i != 0 && allowed_at(k, c))
                .collect()
        })
        .collect();
    if len == 0 || steps.len() < len || cand.iter().any(Vec::is_empty) {
        return None;
    }
    // State layout: blank after k characters (k = 0..=len), then for each position k the
    // states "on character k, class cand[k][j]".
    let offsets: Vec<usize> = cand
        .iter()
        .scan(len + 1, |o, c| {
            let here = *o;
            *o += c.len();
            Some(here)
        })
        .collect();
    let n_states = offsets[len - 1] + cand[len - 1].len();
    let ninf = f32::NEG_INFINITY;
    let mut score = vec![ninf; n_states];
    let mut back: Vec<Vec<u32>> = Vec::with_capacity(steps.len());
    let lp = |p: f32| p.max(FLOOR).ln();
    for (t, step) in steps.iter().enumerate() {
        let p = renormalised(step, allowed);
        let mut next = vec![ninf; n_states];
        let mut from = vec![u32::MAX; n_states];
        if t == 0 {
            next[0] = lp(p(0));
            from[0] = 0;
            for (j, &(i, _)) in cand[0].iter().enumerate() {
                next[offsets[0] + j] = lp(p(i));
                from[offsets[0] + j] = 0;
            }
        } else {
            for k in 0..=len {
                // Blank after k characters: stay, or leave character k - 1.
                let mut best = (score[k], k);
                if k > 0 {
                    for j in 0..cand[k - 1].len() {
                        let s = offsets[k - 1] + j;
                        if score[s] > best.0 {
                            best = (score[s], s);
                        }
                    }
                }
                if best.0 > ninf {
                    next[k] = best.0 + lp(p(0));
                    from[k] = best.1 as u32;
                }
            }
            for k in 0..len {
                for (j, &(i, c)) in cand[k].iter().enumerate() {
                    let s = offsets[k] + j;
                    // Stay on the character, come from the blank after k characters, or
                    // straight from a different character k - 1.
                    let mut best = (score[s], s);
                    if score[k] > best.0 {
                        best = (score[k], k);
                    }
                    if k > 0 {
                        for (j2, &(_, c2)) in cand[k - 1].iter().enumerate() {
                            let s2 = offsets[k - 1] + j2;
                            if c2 != c && score[s2] > best.0 {
                                best = (score[s2], s2);
                            }
                        }
                    }
                    if best.0 > ninf {
                        next[s] = best.0 + lp(p(i));
                        from[s] = best.1 as u32;
                    }
                }
            }
        }
        score = next;
        back.push(from);
    }
    // End in the blank after `len` characters or on the last character.
    let mut end = (score[len], len);
    for j in 0..cand[len - 1].len() {
        let s = offsets[len - 1] + j;
        if score[s] > end.0 {
            end = (score[s], s);
        }
    }
    if end.0 == ninf {
        return None;
    }
    // Walk back: the state at each step.
    let mut path = vec![0usize; steps.len()];
    let mut s = end.1;
    for t in (0..steps.len()).rev() {
        path[t] = s;
        s = back[t][s] as usize;
    }
    let state_char = |s: usize| -> Option<(usize, usize)> {
        if s <= len {
            return None;
        }
        let k = offsets.iter().rposition(|&o| o <= s)?;
        Some((k, cand[k][s - offsets[k]].0))
    };
    let mut chars: Vec<(char, f32)> = Vec::with_capacity(len);
    let mut prev = None;
    for (t, &s) in path.iter().enumerate() {
        let here = state_char(s);
        if let Some((k, i)) = here {
            let p = renormalised(steps[t], allowed)(i);
            if prev == here {
                if let Some(last) = chars.last_mut() {
                    last.1 = last.1.max(p);
                }
            } else if let Some(c) = labels[i] {
                debug_assert_eq!(chars.len(), k);
                chars.push((c, p));
            }
        }
        prev = here;
    }
    (chars.len() == len).then_some((TextReading { chars }, end.0))
}

impl PpOcrRec {
    /// Runs the model on `crops` (not empty) and hands `decode` each crop's `[T, classes]`
    /// probabilities with the class count.
    fn run<T>(
        &mut self,
        crops: &[BgrImage],
        mut decode: impl FnMut(&[f32], usize, &[Option<char>], &[usize]) -> T,
    ) -> Result<Vec<T>, InferError> {
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
        let (labels, allowed) = (&self.labels, &self.allowed);
        Ok(probs
            .chunks_exact(per)
            .map(|p| decode(p, classes, labels, allowed))
            .collect())
    }
}

impl TextRecognizer for PpOcrRec {
    fn input_height(&self) -> u32 {
        HEIGHT
    }

    fn read(&mut self, crops: &[BgrImage]) -> Result<Vec<TextReading>, InferError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        self.run(crops, ctc_decode)
    }

    fn read_plates(
        &mut self,
        crops: &[BgrImage],
        lengths: &[usize],
        allowed_at: fn(usize, usize, char) -> bool,
    ) -> Result<Vec<Vec<Candidate>>, InferError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        self.run(crops, |p, classes, labels, allowed| {
            let mut out: Vec<Candidate> = lengths
                .iter()
                .filter_map(|&len| {
                    let at = |k: usize, c: char| allowed_at(k, len, c);
                    ctc_decode_constrained(p, classes, labels, allowed, len, &at)
                })
                .map(|(reading, log_prob)| Candidate { reading, log_prob })
                .collect();
            out.sort_by(|a, b| b.log_prob.total_cmp(&a.log_prob));
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plate::plate_char_allowed;

    /// Blank, then a small plate alphabet.
    const LABELS: [Option<char>; 9] = [
        None,
        Some('川'),
        Some('L'),
        Some('F'),
        Some('2'),
        Some('8'),
        Some('1'),
        Some('0'),
        Some('Q'),
    ];

    /// One step per entry: (class, its probability), the rest spread over the others.
    fn steps(seq: &[(usize, f32)]) -> Vec<f32> {
        let n = LABELS.len();
        seq.iter()
            .flat_map(|&(i, p)| {
                (0..n).map(move |j| {
                    if j == i {
                        p
                    } else {
                        (1.0 - p) / (n - 1) as f32
                    }
                })
            })
            .collect()
    }

    fn text(r: &TextReading) -> String {
        r.text()
    }

    /// 川 L F 2 2 8 1 8 where the L is weaker than the blank at its step.
    fn dropped_letter() -> Vec<f32> {
        steps(&[
            (1, 0.9),
            (0, 0.9),
            (0, 0.55),
            (0, 0.9),
            (3, 0.9),
            (0, 0.9),
            (4, 0.9),
            (0, 0.9),
            (4, 0.9),
            (4, 0.8),
            (0, 0.9),
            (5, 0.9),
            (6, 0.9),
            (5, 0.9),
            (0, 0.9),
        ])
    }

    #[test]
    fn constrained_decoding_recovers_a_character_greedy_drops() {
        let all: Vec<usize> = (0..LABELS.len()).collect();
        let mut probs = dropped_letter();
        // Step 2: blank 0.55, L 0.4, the rest 0.05 together.
        let n = LABELS.len();
        for (j, p) in probs[2 * n..3 * n].iter_mut().enumerate() {
            *p = match j {
                0 => 0.55,
                2 => 0.4,
                _ => 0.05 / (n - 2) as f32,
            };
        }
        let greedy = ctc_decode(&probs, n, &LABELS, &all);
        assert_eq!(
            text(&greedy),
            "川F22818",
            "greedy drops the L: a grammatical 7"
        );
        let at = |len: usize| move |k: usize, c: char| plate_char_allowed(k, len, c);
        let (eight, lp8) =
            ctc_decode_constrained(&probs, n, &LABELS, &all, 8, &at(8)).expect("8 characters");
        assert_eq!(text(&eight), "川LF22818");
        let (seven, lp7) =
            ctc_decode_constrained(&probs, n, &LABELS, &all, 7, &at(7)).expect("7 characters");
        assert_eq!(seven.chars.len(), 7);
        assert!(lp8.is_finite() && lp7.is_finite());
        // The L keeps its own probability as confidence, the others theirs.
        assert!((eight.chars[1].1 - 0.4).abs() < 1e-5, "{:?}", eight.chars);
        assert!(eight.chars.iter().all(|c| c.1 >= 0.4));
    }

    #[test]
    fn constrained_decoding_respects_positions_and_length() {
        let all: Vec<usize> = (0..LABELS.len()).collect();
        let n = LABELS.len();
        // 川 0 ... : a digit where the issuing letter must be; Q is the only letter of its
        // look-alikes here, so position 1 becomes Q, never 0.
        let mut seq = vec![(1, 0.9), (0, 0.9), (7, 0.6)];
        for i in [4, 5, 6, 4, 5] {
            seq.extend([(0, 0.9), (i, 0.9)]);
        }
        let mut probs = steps(&seq);
        probs[2 * n + 8] = 0.3;
        let at = |k: usize, c: char| plate_char_allowed(k, 7, c);
        let (r, _) = ctc_decode_constrained(&probs, n, &LABELS, &all, 7, &at).unwrap();
        assert_eq!(text(&r), "川Q28128");
        // Too few steps for the length, or no class allowed somewhere: nothing.
        assert!(ctc_decode_constrained(&probs[..5 * n], n, &LABELS, &all, 7, &at).is_none());
        let never = |_: usize, _: char| false;
        assert!(ctc_decode_constrained(&probs, n, &LABELS, &all, 7, &never).is_none());
    }
}
