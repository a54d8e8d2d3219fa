//! The frame type every model takes: packed 8-bit BGR, row-major, no padding.

use std::borrow::Cow;
use std::path::Path;

use super::InferError;

/// A packed BGR image (3 bytes per pixel, rows without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgrImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, B G R.
    pub data: Vec<u8>,
}

impl BgrImage {
    /// Wraps packed BGR bytes; fails if the length does not match.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, InferError> {
        if width == 0 || height == 0 || data.len() != width as usize * height as usize * 3 {
            return Err(InferError::BadImage(format!(
                "{}x{} BGR needs {} bytes, got {}",
                width,
                height,
                width as usize * height as usize * 3,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Converts an RGB image.
    pub fn from_rgb(img: &::image::RgbImage) -> Self {
        let mut data = img.as_raw().clone();
        for px in data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        Self {
            width: img.width(),
            height: img.height(),
            data,
        }
    }

    /// The image as a JPEG of `quality` (1..=100), scaled down to at most `max_side` pixels
    /// on its longer side (evidence: crops and scene thumbnails).
    pub fn to_jpeg(&self, max_side: u32, quality: u8) -> Result<Vec<u8>, InferError> {
        let long = self.width.max(self.height);
        let scaled;
        let img = if long > max_side && max_side > 0 {
            let f = max_side as f32 / long as f32;
            scaled = self.resized(
                ((self.width as f32 * f).round() as u32).max(1),
                ((self.height as f32 * f).round() as u32).max(1),
            );
            &scaled
        } else {
            self
        };
        let mut rgb = img.data.clone();
        for px in rgb.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        let mut out = Vec::new();
        ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .encode(
                &rgb,
                img.width,
                img.height,
                ::image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| InferError::BadImage(format!("JPEG encoding: {e}")))?;
        Ok(out)
    }

    /// Reads a JPEG or PNG file.
    pub fn open(path: &Path) -> Result<Self, InferError> {
        let img = ::image::ImageReader::open(path)
            .map_err(|e| InferError::BadImage(format!("{}: {e}", path.display())))?
            .with_guessed_format()
            .map_err(|e| InferError::BadImage(format!("{}: {e}", path.display())))?
            .decode()
            .map_err(|e| InferError::BadImage(format!("{}: {e}", path.display())))?;
        Ok(Self::from_rgb(&img.to_rgb8()))
    }

    /// The part of the image inside `[x1, y1, x2, y2]` (clipped to the image), with the
    /// offset of its top-left corner; None if nothing is left after clipping.
    pub fn crop(&self, r: [f32; 4]) -> Option<(BgrImage, f32, f32)> {
        let x1 = r[0].max(0.0).floor() as u32;
        let y1 = r[1].max(0.0).floor() as u32;
        let x2 = (r[2].min(self.width as f32).ceil().max(0.0) as u32).min(self.width);
        let y2 = (r[3].min(self.height as f32).ceil().max(0.0) as u32).min(self.height);
        if x2 <= x1 || y2 <= y1 {
            return None;
        }
        let (w, sw) = ((x2 - x1) as usize, self.width as usize);
        let mut data = Vec::with_capacity(w * (y2 - y1) as usize * 3);
        for y in y1 as usize..y2 as usize {
            let start = (y * sw + x1 as usize) * 3;
            data.extend_from_slice(&self.data[start..start + w * 3]);
        }
        Some((
            BgrImage {
                width: x2 - x1,
                height: y2 - y1,
                data,
            },
            x1 as f32,
            y1 as f32,
        ))
    }

    /// The image with its longer side at most `max_side` (downscaled if needed, else
    /// borrowed), and the scale applied (1.0 when borrowed).
    pub fn fit_within(&self, max_side: u32) -> (Cow<'_, BgrImage>, f32) {
        let longest = self.width.max(self.height);
        if longest <= max_side {
            return (Cow::Borrowed(self), 1.0);
        }
        let s = max_side as f32 / longest as f32;
        let (w, h) = (
            ((self.width as f32 * s).round() as u32).max(1),
            ((self.height as f32 * s).round() as u32).max(1),
        );
        (Cow::Owned(self.resized(w, h)), s)
    }

    /// Writes the image as three planes of floats, B then G then R (NCHW for one image),
    /// into `out`: planes `plane` values apart, rows `row_stride` values apart
    /// (`row_stride >= width`, `plane >= row_stride * height`); each value is
    /// `norm(value, channel)` with channel 0 = B. What lies beyond the image (padding) is
    /// left as it is.
    pub fn write_planar(
        &self,
        out: &mut [f32],
        row_stride: usize,
        plane: usize,
        norm: impl Fn(u8, usize) -> f32,
    ) {
        let w = self.width as usize;
        let (b, rest) = out.split_at_mut(plane);
        let (g, r) = rest.split_at_mut(plane);
        for (y, row) in self.data.chunks_exact(w * 3).enumerate() {
            let o = y * row_stride;
            let (bo, go, ro) = (&mut b[o..o + w], &mut g[o..o + w], &mut r[o..o + w]);
            for (x, px) in row.chunks_exact(3).enumerate() {
                bo[x] = norm(px[0], 0);
                go[x] = norm(px[1], 1);
                ro[x] = norm(px[2], 2);
            }
        }
    }

    /// Fills `out` with the image as one NCHW tensor padded right and bottom (with 0.0) to
    /// multiples of `multiple`, values mapped by `norm` as in [`Self::write_planar`]; returns
    /// the padded (height, width).
    pub fn fill_padded(
        &self,
        multiple: usize,
        out: &mut Vec<f32>,
        norm: impl Fn(u8, usize) -> f32,
    ) -> (usize, usize) {
        let ph = (self.height as usize).div_ceil(multiple) * multiple;
        let pw = (self.width as usize).div_ceil(multiple) * multiple;
        out.clear();
        out.resize(3 * ph * pw, 0.0);
        self.write_planar(out, pw, ph * pw, norm);
        (ph, pw)
    }

    /// Bilinear resize to `w`×`h`.
    pub fn resized(&self, w: u32, h: u32) -> BgrImage {
        let (sw, sh) = (self.width as usize, self.height as usize);
        let (w, h) = (w.max(1) as usize, h.max(1) as usize);
        let fx = sw as f32 / w as f32;
        let fy = sh as f32 / h as f32;
        // Source x positions and weights are the same for every row: compute them once.
        let xs: Vec<(usize, usize, f32)> = (0..w)
            .map(|x| {
                let s = ((x as f32 + 0.5) * fx - 0.5).clamp(0.0, (sw - 1) as f32);
                let x0 = s.floor() as usize;
                (x0, (x0 + 1).min(sw - 1), s - x0 as f32)
            })
            .collect();
        let mut out = vec![0u8; w * h * 3];
        for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
            let s = ((y as f32 + 0.5) * fy - 0.5).clamp(0.0, (sh - 1) as f32);
            let y0 = s.floor() as usize;
            let y1 = (y0 + 1).min(sh - 1);
            let wy = s - y0 as f32;
            let r0 = &self.data[y0 * sw * 3..(y0 + 1) * sw * 3];
            let r1 = &self.data[y1 * sw * 3..(y1 + 1) * sw * 3];
            for (px, &(x0, x1, wx)) in row.chunks_exact_mut(3).zip(&xs) {
                for c in 0..3 {
                    let top = r0[x0 * 3 + c] as f32 * (1.0 - wx) + r0[x1 * 3 + c] as f32 * wx;
                    let bot = r1[x0 * 3 + c] as f32 * (1.0 - wx) + r1[x1 * 3 + c] as f32 * wx;
                    px[c] = (top * (1.0 - wy) + bot * wy).round() as u8;
                }
            }
        }
        BgrImage {
            width: w as u32,
            height: h as u32,
            data: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_is_refused() {
        assert!(BgrImage::new(2, 2, vec![0; 11]).is_err());
        assert!(BgrImage::new(0, 2, vec![]).is_err());
        assert!(BgrImage::new(2, 2, vec![0; 12]).is_ok());
    }

    #[test]
    fn resize_keeps_flat_colour_and_size() {
        let img = BgrImage::new(8, 6, [10u8, 20, 30].repeat(48)).unwrap();
        let r = img.resized(3, 5);
        assert_eq!((r.width, r.height, r.data.len()), (3, 5, 45));
        assert!(r.data.chunks_exact(3).all(|p| p == [10, 20, 30]));
    }

    #[test]
    fn planar_write_pads_and_normalises() {
        // 2×1 image: pixels (B,G,R) = (1,2,3), (4,5,6); rows of 3, planes of 6.
        let img = BgrImage::new(2, 1, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let mut out = vec![-1.0; 18];
        img.write_planar(&mut out, 3, 6, |v, c| v as f32 * 10.0 + c as f32);
        assert_eq!(&out[0..3], &[10.0, 40.0, -1.0]);
        assert_eq!(&out[6..9], &[21.0, 51.0, -1.0]);
        assert_eq!(&out[12..15], &[32.0, 62.0, -1.0]);
        assert!(out[3..6].iter().all(|&v| v == -1.0));
    }

    #[test]
    fn fit_within_borrows_small_and_shrinks_large() {
        let img = BgrImage::new(40, 20, vec![7; 40 * 20 * 3]).unwrap();
        let (same, s) = img.fit_within(40);
        assert!(matches!(same, Cow::Borrowed(_)) && s == 1.0);
        let (small, s) = img.fit_within(10);
        assert_eq!((small.width, small.height, s), (10, 5, 0.25));
    }

    #[test]
    fn jpeg_round_trips_at_the_capped_size() {
        let img = BgrImage::new(400, 200, vec![90; 400 * 200 * 3]).unwrap();
        let jpg = img.to_jpeg(100, 85).unwrap();
        let back = ::image::load_from_memory(&jpg).unwrap();
        assert_eq!((back.width(), back.height()), (100, 50));
        let small = img.to_jpeg(1000, 85).unwrap();
        let back = ::image::load_from_memory(&small).unwrap();
        assert_eq!((back.width(), back.height()), (400, 200));
    }

    #[test]
    fn crop_is_clipped_and_offset() {
        let data: Vec<u8> = (0..4 * 3 * 3).map(|v| v as u8).collect();
        let img = BgrImage::new(4, 3, data).unwrap();
        let (c, ox, oy) = img.crop([1.0, 1.0, 9.0, 9.0]).unwrap();
        assert_eq!((c.width, c.height, ox, oy), (3, 2, 1.0, 1.0));
        assert_eq!(&c.data[..3], &img.data[(4 + 1) * 3..(4 + 1) * 3 + 3]);
        assert!(img.crop([5.0, 0.0, 9.0, 2.0]).is_none());
        assert!(img.crop([-5.0, -5.0, -1.0, -1.0]).is_none());
    }

    #[test]
    fn unreadable_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jpg");
        std::fs::write(&p, b"not a jpeg").unwrap();
        let e = BgrImage::open(&p).unwrap_err().to_string();
        assert!(e.contains("x.jpg"), "{e}");
        assert!(BgrImage::open(&dir.path().join("missing.png")).is_err());
    }
}
