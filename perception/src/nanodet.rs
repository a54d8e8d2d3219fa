//! NanoDet-m 416 person / vehicle detector (COCO-80, tfjs graph converted to ONNX; docs/models.md §7).
//!
//! Input `input_1:0` `[1,3,416,416]` float32, BGR, `(v − mean) / std` per channel. Each region
//! (the whole frame, and the tiles when configured) is letterboxed into 416×416 (aspect kept,
//! the rest filled with the mean colour, i.e. 0 after normalisation) or stretched. Outputs per
//! stride s ∈ {8,16,32}, told apart by shape only (their names do not follow the strides):
//! classes `[1,n,80]` (already sigmoid) and boxes `[1,n,44]` — four GFL distributions of 11
//! bins (left, top, right, bottom), distance = Σ softmax(bins)·i·s from the cell centre
//! `((col+0.5)·s, (row+0.5)·s)`. A cell's class is the argmax over the 80; only the classes
//! with a configured threshold are kept; class-wise NMS merges cells, tiles and the full frame.

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use sharpeyes_wire::ObjectClass;

use super::{BgrImage, InferError, ObjectDetection, ObjectDetector, load_session, nms};
use crate::config::{ObjectDetectorConfig, ResizeMode};

const FAMILY: &str = "nanodet";
const SIZE: usize = 416;
const STRIDES: [usize; 3] = [8, 16, 32];
const CLASSES: usize = 80;
const BINS: usize = 11;
const MEAN_BGR: [f32; 3] = [103.53, 116.28, 123.675];
const STD_BGR: [f32; 3] = [57.375, 57.12, 58.395];

/// The class we report for a COCO-80 index, if any.
pub fn coco_class(index: usize) -> Option<ObjectClass> {
    match index {
        0 => Some(ObjectClass::Person),
        1 => Some(ObjectClass::Bicycle),
        2 => Some(ObjectClass::Car),
        3 => Some(ObjectClass::Motorcycle),
        5 => Some(ObjectClass::Bus),
        7 => Some(ObjectClass::Truck),
        _ => None,
    }
}

/// The NanoDet detector.
pub struct NanoDet {
    session: Session,
    path: PathBuf,
    input_name: String,
    output_names: Vec<String>,
    /// Per COCO index: the reported class and its threshold (None: not reported).
    wanted: [Option<(ObjectClass, f32)>; CLASSES],
    nms_iou: f32,
    resize: ResizeMode,
    tiles: [u32; 2],
    tile_overlap: f32,
    full_frame: bool,
    /// Reused NCHW input buffer.
    input: Vec<f32>,
}

impl std::fmt::Debug for NanoDet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NanoDet")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Where a region's 416×416 input came from: output coordinates map back to the frame as
/// `x / sx + ox`, `y / sy + oy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Horizontal scale (input pixels per frame pixel).
    pub sx: f32,
    /// Vertical scale.
    pub sy: f32,
    /// The region's left edge in the frame.
    pub ox: f32,
    /// The region's top edge in the frame.
    pub oy: f32,
}

impl NanoDet {
    /// Loads the model and checks its signature.
    pub fn load(
        env: &Environment,
        path: &Path,
        cfg: &ObjectDetectorConfig,
        threads: usize,
    ) -> Result<Self, InferError> {
        let session = load_session(env, path, threads)?;
        let sig = |reason: String| InferError::signature(path, FAMILY, reason);
        let [input] = session.inputs() else {
            return Err(sig(format!(
                "expected 1 input, found {}",
                session.inputs().len()
            )));
        };
        let input_name = input.name().to_string();
        if session.outputs().len() != 6 {
            return Err(sig(format!(
                "expected 6 outputs (classes and boxes for 3 strides), found {}",
                session.outputs().len()
            )));
        }
        let mut wanted = [None; CLASSES];
        for (i, w) in wanted.iter_mut().enumerate() {
            *w = coco_class(i).and_then(|c| cfg.threshold(c).map(|t| (c, t)));
        }
        let output_names = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Ok(Self {
            session,
            path: path.to_path_buf(),
            input_name,
            output_names,
            wanted,
            nms_iou: cfg.nms_iou,
            resize: cfg.resize,
            tiles: cfg.tiles,
            tile_overlap: cfg.tile_overlap,
            full_frame: cfg.full_frame,
            input: vec![0.0; 3 * SIZE * SIZE],
        })
    }

    /// Detections in one region of `img`.
    fn detect_region(
        &mut self,
        img: &BgrImage,
        region: [f32; 4],
        out: &mut Vec<ObjectDetection>,
    ) -> Result<(), InferError> {
        let Some((crop, ox, oy)) = img.crop(region) else {
            return Ok(());
        };
        let placement = prepare(&crop, self.resize, &mut self.input, ox, oy);
        let input = TensorRef::from_array_view(([1usize, 3, SIZE, SIZE], &self.input[..]))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])?;
        let mut cls: [Option<&[f32]>; 3] = [None; 3];
        let mut boxes: [Option<&[f32]>; 3] = [None; 3];
        for name in &self.output_names {
            let Some(v) = outputs.get(name) else {
                continue;
            };
            let (shape, data) = v.try_extract_tensor::<f32>()?;
            let (n, depth) = match &shape[..] {
                [1, n, d] => (*n as usize, *d as usize),
                _ => continue,
            };
            let Some(si) = STRIDES.iter().position(|s| (SIZE / s).pow(2) == n) else {
                continue;
            };
            match depth {
                CLASSES => cls[si] = Some(data),
                d if d == 4 * BINS => boxes[si] = Some(data),
                _ => {}
            }
        }
        for (si, s) in STRIDES.into_iter().enumerate() {
            let (Some(c), Some(b)) = (cls[si], boxes[si]) else {
                return Err(InferError::signature(
                    &self.path,
                    FAMILY,
                    format!("no [1,n,80] and [1,n,44] outputs for stride {s}"),
                ));
            };
            decode_stride(c, b, s, &self.wanted, placement, img, out);
        }
        Ok(())
    }
}

/// Writes `img` as the network input (letterboxed or stretched into 416×416, normalised);
/// `ox`, `oy`: the image's offset in the frame. Returns how to map outputs back.
pub fn prepare(
    img: &BgrImage,
    resize: ResizeMode,
    input: &mut Vec<f32>,
    ox: f32,
    oy: f32,
) -> Placement {
    let (w, h) = (img.width as f32, img.height as f32);
    let (tw, th) = match resize {
        ResizeMode::Stretch => (SIZE as u32, SIZE as u32),
        ResizeMode::Letterbox => {
            let s = (SIZE as f32 / w).min(SIZE as f32 / h);
            (
                ((w * s).round() as u32).clamp(1, SIZE as u32),
                ((h * s).round() as u32).clamp(1, SIZE as u32),
            )
        }
    };
    let resized = img.resized(tw, th);
    input.clear();
    input.resize(3 * SIZE * SIZE, 0.0);
    resized.write_planar(input, SIZE, SIZE * SIZE, |v, c| {
        (v as f32 - MEAN_BGR[c]) / STD_BGR[c]
    });
    Placement {
        sx: tw as f32 / w,
        sy: th as f32 / h,
        ox,
        oy,
    }
}

/// Decodes one stride's outputs: `cls` `[n,80]`, `boxes` `[n,44]`.
pub fn decode_stride(
    cls: &[f32],
    boxes: &[f32],
    stride: usize,
    wanted: &[Option<(ObjectClass, f32)>; CLASSES],
    p: Placement,
    img: &BgrImage,
    out: &mut Vec<ObjectDetection>,
) {
    let cols = SIZE / stride;
    let sf = stride as f32;
    for (i, (scores, dist)) in cls
        .chunks_exact(CLASSES)
        .zip(boxes.chunks_exact(4 * BINS))
        .enumerate()
    {
        let (best, score) = scores
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |a, (j, &v)| if v > a.1 { (j, v) } else { a });
        let Some((class, threshold)) = wanted[best] else {
            continue;
        };
        if score < threshold {
            continue;
        }
        let (cx, cy) = (
            ((i % cols) as f32 + 0.5) * sf,
            ((i / cols) as f32 + 0.5) * sf,
        );
        let mut d = [0.0f32; 4];
        for (side, bins) in d.iter_mut().zip(dist.chunks_exact(BINS)) {
            *side = expected_bin(bins) * sf;
        }
        let clamp_x = |v: f32| v.clamp(0.0, img.width as f32);
        let clamp_y = |v: f32| v.clamp(0.0, img.height as f32);
        out.push(ObjectDetection {
            class,
            bbox: [
                clamp_x((cx - d[0]) / p.sx + p.ox),
                clamp_y((cy - d[1]) / p.sy + p.oy),
                clamp_x((cx + d[2]) / p.sx + p.ox),
                clamp_y((cy + d[3]) / p.sy + p.oy),
            ],
            score,
        });
    }
}

/// Σ softmax(bins)_i · i: the expected bin of a GFL distribution.
fn expected_bin(bins: &[f32]) -> f32 {
    let max = bins.iter().copied().fold(f32::MIN, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &b) in bins.iter().enumerate() {
        let e = (b - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

/// The regions a `w`×`h` frame is analysed in: a `cols`×`rows` grid of tiles overlapping by
/// `overlap` (a fraction of the tile), plus the whole frame when `full_frame` (or when the
/// grid is a single tile).
pub fn regions(w: u32, h: u32, tiles: [u32; 2], overlap: f32, full_frame: bool) -> Vec<[f32; 4]> {
    let (w, h) = (w as f32, h as f32);
    let [cols, rows] = tiles;
    let mut out = Vec::new();
    if full_frame || cols * rows <= 1 {
        out.push([0.0, 0.0, w, h]);
    }
    if cols * rows > 1 {
        // Tile size t with n tiles overlapping by o·t covering the side: n·t − (n−1)·o·t = side.
        let tile = |side: f32, n: u32| side / (n as f32 - (n as f32 - 1.0) * overlap);
        let (tw, th) = (tile(w, cols), tile(h, rows));
        for r in 0..rows {
            for c in 0..cols {
                let x = c as f32 * tw * (1.0 - overlap);
                let y = r as f32 * th * (1.0 - overlap);
                out.push([x, y, (x + tw).min(w), (y + th).min(h)]);
            }
        }
    }
    out
}

/// Whether box `b`, found in tile `t` of a `w`×`h` frame, touches one of the tile's edges
/// that are not frame edges (within 2 % of the tile's side: the model's boxes stop a few
/// pixels short of a cut). Never true for the whole frame.
pub fn cut_by_tile(b: &[f32; 4], t: &[f32; 4], w: f32, h: f32) -> bool {
    let ex = ((t[2] - t[0]) * 0.02).max(2.0);
    let ey = ((t[3] - t[1]) * 0.02).max(2.0);
    (t[0] > 1.0 && b[0] <= t[0] + ex)
        || (t[1] > 1.0 && b[1] <= t[1] + ey)
        || (t[2] < w - 1.0 && b[2] >= t[2] - ex)
        || (t[3] < h - 1.0 && b[3] >= t[3] - ey)
}

impl ObjectDetector for NanoDet {
    fn detect(&mut self, img: &BgrImage) -> Result<Vec<ObjectDetection>, InferError> {
        let mut found = Vec::new();
        let (w, h) = (img.width as f32, img.height as f32);
        for r in regions(
            img.width,
            img.height,
            self.tiles,
            self.tile_overlap,
            self.full_frame,
        ) {
            let mut here = Vec::new();
            self.detect_region(img, r, &mut here)?;
            // A box touching a tile's inner edge is an object cut by the tile: its whole lies
            // in a neighbouring tile (the overlap) or in the full frame. Drop the fragment.
            found.extend(here.into_iter().filter(|d| !cut_by_tile(&d.bbox, &r, w, h)));
        }
        // Class-wise NMS: sort by class, suppress within each class.
        found.sort_by_key(|d| d.class);
        let mut kept = Vec::with_capacity(found.len());
        for class in found.chunk_by(|a, b| a.class == b.class) {
            kept.extend(nms(class.to_vec(), self.nms_iou, |d| d.bbox, |d| d.score));
        }
        kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_bin_of_peaked_and_flat_distributions() {
        let mut peaked = [-20.0f32; BINS];
        peaked[3] = 20.0;
        assert!((expected_bin(&peaked) - 3.0).abs() < 1e-4);
        assert!((expected_bin(&[0.0; BINS]) - 5.0).abs() < 1e-4);
    }

    #[test]
    fn regions_cover_the_frame_with_overlap() {
        assert_eq!(
            regions(1920, 1080, [1, 1], 0.1, false),
            vec![[0.0, 0.0, 1920.0, 1080.0]]
        );
        let r = regions(1920, 1080, [3, 2], 0.2, true);
        assert_eq!(r.len(), 7);
        let tiles = &r[1..];
        // The last tile of each row and column reaches the frame edge.
        assert!(tiles.iter().any(|t| (t[2] - 1920.0).abs() < 0.01));
        assert!(tiles.iter().any(|t| (t[3] - 1080.0).abs() < 0.01));
        // Neighbours overlap by 20 % of a tile.
        let tw = tiles[0][2] - tiles[0][0];
        assert!((tiles[0][2] - tiles[1][0] - 0.2 * tw).abs() < 0.01);
    }

    #[test]
    fn fragments_at_inner_tile_edges_are_recognised() {
        let (w, h) = (1000.0, 800.0);
        let whole = [0.0, 0.0, w, h];
        let left_tile = [0.0, 0.0, 600.0, 800.0];
        // Anything in the whole frame is kept, even at the frame's edges.
        assert!(!cut_by_tile(&[0.0, 0.0, 1000.0, 800.0], &whole, w, h));
        // In the left tile, a box reaching its right (inner) edge is a fragment...
        assert!(cut_by_tile(&[500.0, 100.0, 592.0, 300.0], &left_tile, w, h));
        // ...but one at the frame's left edge, or well inside, is not.
        assert!(!cut_by_tile(&[0.0, 100.0, 100.0, 300.0], &left_tile, w, h));
        assert!(!cut_by_tile(
            &[200.0, 100.0, 580.0, 799.0],
            &left_tile,
            w,
            h
        ));
    }

    #[test]
    fn letterbox_keeps_aspect_and_maps_back() {
        let img = BgrImage::new(832, 416, vec![128; 832 * 416 * 3]).unwrap();
        let mut input = Vec::new();
        let p = prepare(&img, ResizeMode::Letterbox, &mut input, 100.0, 50.0);
        assert_eq!((p.sx, p.sy), (0.5, 0.5));
        assert_eq!(input.len(), 3 * SIZE * SIZE);
        // The lower half is padding: exactly the mean colour (0 after normalisation).
        assert_eq!(input[SIZE * SIZE - 1], 0.0);
        assert!(input[0] != 0.0);
        let s = prepare(&img, ResizeMode::Stretch, &mut input, 0.0, 0.0);
        assert_eq!((s.sx, s.sy), (0.5, 1.0));
    }

    #[test]
    fn decodes_one_confident_cell_into_frame_pixels() {
        let stride = 32;
        let n = (SIZE / stride).pow(2);
        let mut cls = vec![0.0f32; n * CLASSES];
        let mut boxes = vec![0.0f32; n * 4 * BINS];
        // Cell (row 2, col 3): a car at 0.8, 2 bins (64 px) left/top, 4 bins right/bottom.
        let i = 2 * (SIZE / stride) + 3;
        cls[i * CLASSES + 2] = 0.8;
        for (side, bin) in [2usize, 2, 4, 4].into_iter().enumerate() {
            for b in 0..BINS {
                boxes[i * 4 * BINS + side * BINS + b] = if b == bin { 30.0 } else { -30.0 };
            }
        }
        let mut wanted = [None; CLASSES];
        wanted[2] = Some((ObjectClass::Car, 0.5));
        let img = BgrImage::new(2000, 2000, vec![0; 2000 * 2000 * 3]).unwrap();
        let p = Placement {
            sx: 0.5,
            sy: 0.5,
            ox: 10.0,
            oy: 20.0,
        };
        let mut out = Vec::new();
        decode_stride(&cls, &boxes, stride, &wanted, p, &img, &mut out);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(d.class, ObjectClass::Car);
        // Centre (3.5·32, 2.5·32) = (112, 80) in the input; box (48, 16, 240, 208); ×2 + offset.
        let want = [106.0, 52.0, 490.0, 436.0];
        for (a, b) in d.bbox.iter().zip(want) {
            assert!((a - b).abs() < 0.1, "{:?}", d.bbox);
        }
        // A class without a threshold is not reported.
        wanted[2] = None;
        out.clear();
        decode_stride(&cls, &boxes, stride, &wanted, p, &img, &mut out);
        assert!(out.is_empty());
    }
}
