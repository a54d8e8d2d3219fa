//! Face embeddings: the one definition of a unit embedding and of the similarity of two.
//!
//! The embedder (`perception::SFace`) returns L2-normalised vectors; enrollment, the
//! agents' rules, the aggregator's fusion and its face search all compare through this module,
//! so they agree exactly on what a unit embedding is and on its cosine: the
//! [`dot`] product of two unit vectors. An embedding that is empty, not finite or all zero is
//! unusable everywhere.

use sharpeyes_wire::QEmbedding;

/// Dot product of two slices (extra values of the longer one are ignored), summed in eight
/// lanes, which the compiler vectorises: the hot loop of person search and face search.
/// Of unit vectors it is their cosine similarity.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Cosine similarity of two L2-normalised embeddings (their [`dot`] product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

/// The L2-normalised copy of `v`, when it is usable (non-empty, finite, not all zero).
pub fn unit(v: &[f32]) -> Option<Vec<f32>> {
    EmbeddingRef::F32(v).to_unit(v.len())
}

/// A borrowed face embedding, as floats or as it travels (quantised); either way compared
/// without allocating. It need not be normalised.
#[derive(Debug, Clone, Copy)]
pub enum EmbeddingRef<'a> {
    /// Float values.
    F32(&'a [f32]),
    /// Quantised values (e.g. a track's best face as kept for publishing).
    Quantized(&'a QEmbedding),
}

impl<'a> From<&'a [f32]> for EmbeddingRef<'a> {
    fn from(v: &'a [f32]) -> Self {
        EmbeddingRef::F32(v)
    }
}

impl<'a> From<&'a QEmbedding> for EmbeddingRef<'a> {
    fn from(v: &'a QEmbedding) -> Self {
        EmbeddingRef::Quantized(v)
    }
}

impl EmbeddingRef<'_> {
    /// Number of dimensions.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingRef::F32(v) => v.len(),
            EmbeddingRef::Quantized(q) => q.len(),
        }
    }

    /// Whether it has no dimensions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dot product with `other` (same length assumed; extra values are ignored).
    pub fn dot(&self, other: &[f32]) -> f32 {
        match self {
            EmbeddingRef::F32(v) => dot(v, other),
            EmbeddingRef::Quantized(q) => {
                let s: f32 =
                    q.q.iter()
                        .zip(other)
                        .map(|(&a, b)| f32::from(a as i8) * b)
                        .sum();
                s * q.scale
            }
        }
    }

    /// Euclidean norm.
    pub fn norm(&self) -> f32 {
        match self {
            EmbeddingRef::F32(v) => v.iter().map(|a| a * a).sum::<f32>().sqrt(),
            EmbeddingRef::Quantized(q) => {
                let s: f32 = q.q.iter().map(|&a| f32::from(a as i8).powi(2)).sum();
                s.sqrt() * q.scale.abs()
            }
        }
    }

    /// `1 / norm`, when the embedding is usable (non-empty, finite, not all zero).
    pub fn inverse_norm(&self) -> Option<f32> {
        let n = self.norm();
        (n.is_finite() && n > 0.0 && !self.is_empty()).then(|| 1.0 / n)
    }

    /// Cosine similarity with a unit vector `unit` of the same length, given this embedding's
    /// [`inverse_norm`](Self::inverse_norm).
    pub fn cosine_with_unit(&self, unit: &[f32], inverse_norm: f32) -> Option<f32> {
        if unit.len() != self.len() {
            return None;
        }
        let c = self.dot(unit) * inverse_norm;
        c.is_finite().then_some(c)
    }

    /// Cosine similarity with a unit vector of the same length; `None` when either is empty,
    /// the lengths differ or a value is not finite.
    pub fn cosine(&self, unit: &[f32]) -> Option<f32> {
        self.cosine_with_unit(unit, self.inverse_norm()?)
    }

    /// Replaces `out` with the L2-normalised values (reusing its memory); false (and `out`
    /// empty) when the embedding is unusable.
    pub fn write_unit(&self, out: &mut Vec<f32>) -> bool {
        out.clear();
        let Some(inv) = self.inverse_norm() else {
            return false;
        };
        match self {
            EmbeddingRef::F32(v) => out.extend(v.iter().map(|a| a * inv)),
            EmbeddingRef::Quantized(q) => {
                let k = q.scale * inv;
                out.extend(q.q.iter().map(|&a| f32::from(a as i8) * k));
            }
        }
        if out.iter().all(|v| v.is_finite()) {
            true
        } else {
            out.clear();
            false
        }
    }

    /// The L2-normalised values as a new vector, when the embedding has `dim` values and is
    /// usable (see [`write_unit`](Self::write_unit)).
    pub fn to_unit(&self, dim: usize) -> Option<Vec<f32>> {
        if self.len() != dim {
            return None;
        }
        let mut out = Vec::with_capacity(dim);
        self.write_unit(&mut out).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_float_and_quantised_embeddings_agree() {
        let v: Vec<f32> = (0..128).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w: Vec<f32> = (0..128).map(|i| ((i as f32) * 0.11).cos()).collect();
        let mut unit = Vec::new();
        assert!(EmbeddingRef::F32(&w).write_unit(&mut unit));
        let q = QEmbedding::quantize(&v);
        let (a, b) = (
            EmbeddingRef::F32(&v).cosine(&unit).unwrap(),
            EmbeddingRef::Quantized(&q).cosine(&unit).unwrap(),
        );
        assert!((a - b).abs() < 0.01, "{a} vs {b}");
        let mut self_unit = Vec::new();
        assert!(EmbeddingRef::Quantized(&q).write_unit(&mut self_unit));
        let c = EmbeddingRef::F32(&v).cosine(&self_unit).unwrap();
        assert!(c > 0.999, "{c}");
        // Unusable: zero, NaN, empty, other length.
        assert!(EmbeddingRef::F32(&[0.0; 128]).cosine(&unit).is_none());
        assert!(EmbeddingRef::F32(&[f32::NAN; 128]).cosine(&unit).is_none());
        assert!(EmbeddingRef::F32(&[]).cosine(&[]).is_none());
        assert!(EmbeddingRef::F32(&v[..64]).cosine(&unit).is_none());
        assert!(!EmbeddingRef::F32(&[f32::INFINITY, 1.0]).write_unit(&mut unit));
        assert!(unit.is_empty());
    }

    #[test]
    fn dot_in_lanes_equals_the_plain_sum() {
        for n in [0usize, 1, 7, 8, 9, 128, 131] {
            let a: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "n = {n}");
        }
        let u = unit(&[3.0, 4.0]).unwrap();
        assert_eq!(u, vec![0.6, 0.8]);
        assert!((cosine(&u, &u) - 1.0).abs() < 1e-6);
        assert!(unit(&[]).is_none());
        assert!(unit(&[0.0, 0.0]).is_none());
        assert!(unit(&[f32::NAN, 1.0]).is_none());
        assert!(EmbeddingRef::F32(&[1.0, 0.0]).to_unit(3).is_none());
    }
}
