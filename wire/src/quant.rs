//! Quantised boxes and embeddings: compact on the wire, exact enough for their use.

use serde::{Deserialize, Serialize};

/// A box `[x1, y1, x2, y2]` relative to the frame, each coordinate quantised to `0..=65535`
/// (`round(x / frame_w * 65535)`). The error is below 0.03 px for a 1920 px wide frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QBox(pub [u16; 4]);

const QMAX: f32 = u16::MAX as f32;

impl QBox {
    /// Quantises a pixel box of a `w`×`h` frame; coordinates are clamped to the frame.
    pub fn from_pixels(b: [f32; 4], w: u32, h: u32) -> Self {
        let q = |v: f32, d: u32| {
            let r = if d == 0 { 0.0 } else { v / d as f32 };
            (r.clamp(0.0, 1.0) * QMAX).round() as u16
        };
        QBox([q(b[0], w), q(b[1], h), q(b[2], w), q(b[3], h)])
    }

    /// The box in pixels of a `w`×`h` frame.
    pub fn to_pixels(self, w: u32, h: u32) -> [f32; 4] {
        let [x1, y1, x2, y2] = self.0;
        let p = |v: u16, d: u32| v as f32 / QMAX * d as f32;
        [p(x1, w), p(y1, h), p(x2, w), p(y2, h)]
    }
}

/// An embedding quantised to int8 with one scale: `value[i] = q[i] as i8 as f32 * scale`.
///
/// `q` travels as MessagePack `bin` (read it in Python with `numpy.frombuffer(q, numpy.int8)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QEmbedding {
    /// Multiplier from int8 to float.
    pub scale: f32,
    /// The int8 values, stored as bytes (two's complement).
    #[serde(with = "serde_bytes")]
    pub q: Vec<u8>,
}

impl QEmbedding {
    /// Quantises `v` symmetrically (the largest magnitude maps to ±127).
    pub fn quantize(v: &[f32]) -> Self {
        let max = v.iter().fold(
            0.0f32,
            |m, x| if x.is_finite() { m.max(x.abs()) } else { m },
        );
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let q = v
            .iter()
            .map(|x| {
                let x = if x.is_finite() { *x } else { 0.0 };
                ((x / scale).round().clamp(-127.0, 127.0) as i8) as u8
            })
            .collect();
        Self { scale, q }
    }

    /// The float values.
    pub fn dequantize(&self) -> Vec<f32> {
        self.q
            .iter()
            .map(|&b| b as i8 as f32 * self.scale)
            .collect()
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Whether it has no dimensions.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_round_trip_is_sub_pixel() {
        let b = [12.3, 45.6, 1900.2, 1079.9];
        let p = QBox::from_pixels(b, 1920, 1080).to_pixels(1920, 1080);
        for (a, b) in b.iter().zip(p) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
    }

    #[test]
    fn box_is_clamped_to_frame() {
        let q = QBox::from_pixels([-5.0, -1.0, 3000.0, 2000.0], 1920, 1080);
        assert_eq!(q.0, [0, 0, u16::MAX, u16::MAX]);
    }

    #[test]
    fn embedding_round_trip_keeps_cosine() {
        let v: Vec<f32> = (0..128).map(|i| ((i as f32) * 0.37).sin()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / n).collect();
        let d = QEmbedding::quantize(&v).dequantize();
        let cos = v.iter().zip(&d).map(|(a, b)| a * b).sum::<f32>()
            / d.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(cos > 0.999, "cosine {cos}");
    }

    #[test]
    fn non_finite_values_do_not_poison_the_scale() {
        let q = QEmbedding::quantize(&[f32::NAN, 1.0, f32::INFINITY, -0.5]);
        assert_eq!(q.dequantize().len(), 4);
        assert!(q.scale.is_finite());
    }
}
