//! The motion gate: which parts of a camera's frame changed, so that a static camera costs
//! almost nothing and the detectors can be pointed at the moving regions.
//!
//! Why: most of a street camera's frames show a scene where nothing moves, and every model
//! on every pixel of them is the gateway's largest cost. Deciding that a frame has nothing new
//! must cost far less than one model run (about 0.1 ms on a 1280x720 frame in release, a
//! few hundred times less than the face detector), so it looks at a coarse picture only.
//!
//! How, per frame ([`MotionGate::observe`]):
//!
//! 1. **Cells.** The frame is cut into square cells of `cell_px` pixels (1280x720 at 16 px:
//!    80x45 cells) and each cell becomes its mean luma (BT.601 weights in integer
//!    arithmetic, one pass over the BGR bytes). Averaging 256 pixels divides independent
//!    sensor noise by 16, so the noise left is a fraction of a level.
//! 2. **Background.** Each cell has a running background. The first frame, and a frame of
//!    another size, reset it and count as moving: new camera content must be analysed.
//! 3. **Global light.** Auto exposure, clouds and dusk change every cell at once. The
//!    frame's light change is fitted as `luma = gain * background + offset` (least squares
//!    over the cells that did not move on the last frame, then again over those the first
//!    fit explains), and cells are compared with their background under that light; the
//!    background follows the light at once, so a slow drift never shows as motion. When the
//!    light moves the average cell by more than `threshold` (lights switched on), or more than
//!    `global_fraction` of the cells changed anyway (the camera moved, the view was
//!    blocked), the change is global: moving, one whole-frame region, and the background
//!    restarts from this frame.
//! 4. **Changed cells.** A cell whose light-corrected difference exceeds `threshold` levels,
//!    both from its background and from the previous frame, has changed (moves now); the
//!    frame is moving when at least `min_cells` have. The second test keeps out what
//!    stopped (a parked car: its track carries it) and the background an object uncovers when
//!    it leaves (a "ghost", until the background has caught up with it).
//! 5. **Regions.** Changed cells are grouped into 8-connected components; each component's
//!    bounding box is grown by `margin_cells`, overlapping boxes are merged, and the boxes
//!    are returned in frame pixels, clamped to the frame.
//! 6. **Background update.** Unchanged cells follow the frame at `background_alpha` per
//!    frame (slow scene changes, a stopped object, a ghost); changed cells at a tenth of it,
//!    so a moving object does not smear into the background.
//!
//! What it does not decide: an object that stands still (a loiterer, a queue) is not motion,
//! so whoever uses the gate carries the tracks of what it saw and runs a periodic
//! whole-frame pass.
//!
//! I/O-free and clock-free: the caller passes frames in order, one gate per camera.

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, in_range};
use tracing::debug;

use crate::infer::BgrImage;

/// The motion gate's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MotionConfig {
    /// Whether the gate decides at all; when off every frame counts as moving, whole.
    /// Default `true`.
    pub enabled: bool,
    /// Side of a cell, in frame pixels (4..=128): the gate's resolution. Smaller cells find
    /// smaller objects but average less noise away. Default `16`.
    pub cell_px: u32,
    /// Mean absolute luma difference of a cell from its background, in levels (1..=128),
    /// beyond which the cell has changed (after the global light change is taken out).
    /// Measured at 16 px cells: real photos with ±8 levels of sensor noise per pixel, also
    /// through JPEG at quality 60, stay below 2 levels; a still street scene with heavy noise
    /// (σ ≈ 11 levels) through x264 at 1 Mbit/s (720p, a keyframe every 2 s) below 10; a
    /// face crossing a cell moves it by 55 to 210. Default `12`.
    pub threshold: f32,
    /// Changed cells needed for the frame to count as moving (1..=100000). Default `2`.
    pub min_cells: u32,
    /// How fast the background of an unchanged cell follows the frame, per frame (0..=1;
    /// changed cells follow at a tenth of it). Default `0.05`.
    pub background_alpha: f32,
    /// Cells added on each side of a region (0..=64), so that the detectors see an object's
    /// context and the parts of it that barely changed. Default `2`.
    pub margin_cells: u32,
    /// Fraction of changed cells (0.05..=1) beyond which the whole frame changed (the camera
    /// moved, the view was blocked): one whole-frame region, background restarted.
    /// Default `0.6`.
    pub global_fraction: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cell_px: 16,
            threshold: 12.0,
            min_cells: 2,
            background_alpha: 0.05,
            margin_cells: 2,
            global_fraction: 0.6,
        }
    }
}

impl MotionConfig {
    /// Checks every field; names start with `prefix` (e.g. `motion`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{prefix}.{name}");
        in_range(&field("cell_px"), self.cell_px, 4, 128)?;
        in_range(&field("threshold"), self.threshold, 1.0, 128.0)?;
        in_range(&field("min_cells"), self.min_cells, 1, 100_000)?;
        in_range(&field("background_alpha"), self.background_alpha, 0.0, 1.0)?;
        in_range(&field("margin_cells"), self.margin_cells, 0, 64)?;
        in_range(&field("global_fraction"), self.global_fraction, 0.05, 1.0)?;
        Ok(())
    }
}

/// What the gate saw on one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    /// Whether anything changed enough to analyse the frame.
    pub moving: bool,
    /// Where: `[x1, y1, x2, y2]` in frame pixels, clamped to the frame, not overlapping; one
    /// whole-frame box on a global change (and on the first frame); empty when not moving.
    pub regions: Vec<[f32; 4]>,
    /// Fraction of the cells that changed (0..=1; 1 on a reset or when the gate is off).
    pub changed_fraction: f32,
}

/// Changed cells follow their background this much slower than unchanged ones.
const CHANGED_SLOWDOWN: f32 = 0.1;

/// BT.601 luma weights (sum 256) for B, G, R.
const LUMA_BGR: [u32; 3] = [29, 150, 77];

/// One camera's motion gate: the per-cell background and the work buffers.
#[derive(Debug, Clone)]
pub struct MotionGate {
    cfg: MotionConfig,
    /// Frame size the background belongs to; None before the first frame.
    size: Option<(u32, u32)>,
    /// Grid size in cells.
    cols: usize,
    rows: usize,
    /// Each cell's background luma, row-major.
    background: Vec<f32>,
    /// Each cell's pixel count (edge cells may be partial).
    counts: Vec<u32>,
    /// Work: weighted luma sums, then means, of the current frame.
    sums: Vec<u32>,
    luma: Vec<f32>,
    /// Which cells changed on the last frame (none after a reset).
    changed: Vec<bool>,
    /// The previous frame's cell means (what moves now differs from them too).
    previous: Vec<f32>,
    /// Work: the component search's unvisited changed cells and its stack.
    seen: Vec<bool>,
    stack: Vec<usize>,
    /// Work: one band of cell rows summed down each byte column.
    band: Vec<u16>,
    /// The luma weights repeated over one cell row (`cell_px * 3` entries).
    weights: Vec<u32>,
}

impl MotionGate {
    /// A gate that has seen no frame yet (its first frame counts as moving).
    pub fn new(cfg: MotionConfig) -> Self {
        let weights = (0..cfg.cell_px as usize * 3)
            .map(|i| LUMA_BGR[i % 3])
            .collect();
        Self {
            cfg,
            size: None,
            cols: 0,
            rows: 0,
            background: Vec::new(),
            counts: Vec::new(),
            sums: Vec::new(),
            luma: Vec::new(),
            changed: Vec::new(),
            previous: Vec::new(),
            seen: Vec::new(),
            stack: Vec::new(),
            band: Vec::new(),
            weights,
        }
    }

    /// Looks at the camera's next frame: what moved since the background.
    pub fn observe(&mut self, img: &BgrImage) -> Motion {
        let whole = [0.0, 0.0, img.width as f32, img.height as f32];
        let open = |changed_fraction| Motion {
            moving: true,
            regions: vec![whole],
            changed_fraction,
        };
        if !self.cfg.enabled {
            return open(1.0);
        }
        let size = (img.width, img.height);
        if self.size != Some(size) {
            if let Some((w, h)) = self.size {
                debug!(
                    from = format!("{w}x{h}"),
                    to = format!("{}x{}", size.0, size.1),
                    "motion gate: frame size changed; background restarted"
                );
            }
            self.resize(size);
            self.cell_means(img);
            self.background.clone_from(&self.luma);
            self.previous.clone_from(&self.luma);
            return open(1.0);
        }
        std::mem::swap(&mut self.previous, &mut self.luma);
        self.cell_means(img);
        let n = self.luma.len();
        let threshold = self.cfg.threshold;
        // The light change, fitted where nothing moved on the last frame, then again where
        // nothing moves now by that first fit (moving objects would bias it).
        let (bg, luma) = (&self.background, &self.luma);
        let changed = &self.changed;
        let first = Light::fit(bg, luma, |i| !changed[i]).unwrap_or(Light::NONE);
        let light = Light::fit(bg, luma, |i| {
            (luma[i] - first.apply(bg[i])).abs() <= threshold
        })
        .unwrap_or(first);
        let mut count = 0usize;
        let mut shift = 0.0f64;
        let previous = &self.previous;
        for (((c, l), b), p) in self.changed.iter_mut().zip(luma).zip(bg).zip(previous) {
            let expected = light.apply(*b);
            // Moving: unlike the background and unlike the previous frame. What stopped (a
            // parked car) is no longer motion, nor is the background an object uncovered
            // when it left (a "ghost") before the background has caught up with it.
            *c = (l - expected).abs() > threshold && (l - light.apply(*p)).abs() > threshold;
            count += usize::from(*c);
            shift += f64::from((expected - b).abs());
        }
        let fraction = count as f32 / n as f32;
        if shift / n as f64 > f64::from(threshold) || fraction > self.cfg.global_fraction {
            self.background.clone_from(&self.luma);
            self.changed.fill(false);
            return open(fraction);
        }
        let alpha = self.cfg.background_alpha;
        for ((b, l), c) in self
            .background
            .iter_mut()
            .zip(&self.luma)
            .zip(&self.changed)
        {
            let a = if *c { alpha * CHANGED_SLOWDOWN } else { alpha };
            let expected = light.apply(*b);
            *b = expected + a * (l - expected);
        }
        let moving = count >= self.cfg.min_cells as usize;
        Motion {
            moving,
            regions: if moving {
                self.regions(size)
            } else {
                Vec::new()
            },
            changed_fraction: fraction,
        }
    }

    /// Sets the grid up for frames of `size` (the background is filled by the caller).
    fn resize(&mut self, (w, h): (u32, u32)) {
        let cell = self.cfg.cell_px as usize;
        let (w, h) = (w as usize, h as usize);
        self.size = Some((w as u32, h as u32));
        self.cols = w.div_ceil(cell);
        self.rows = h.div_ceil(cell);
        let n = self.cols * self.rows;
        self.counts.clear();
        for r in 0..self.rows {
            let ch = cell.min(h - r * cell);
            for c in 0..self.cols {
                let cw = cell.min(w - c * cell);
                self.counts.push((cw * ch) as u32);
            }
        }
        self.sums = vec![0; n];
        self.band = vec![0; w * 3];
        self.luma = vec![0.0; n];
        self.changed = vec![false; n];
    }

    /// Each cell's mean luma into `self.luma`, in levels (0..=255): each band of `cell_px`
    /// rows is summed down its columns first (u16 lanes, which vectorise), then each cell's
    /// column sums are weighted once.
    fn cell_means(&mut self, img: &BgrImage) {
        let cell = self.cfg.cell_px as usize;
        let stride = img.width as usize * 3;
        for (r, band_rows) in img.data.chunks(stride * cell).enumerate() {
            // At most 128 rows of 255: fits u16.
            self.band.fill(0);
            for row in band_rows.chunks_exact(stride) {
                for (a, &v) in self.band.iter_mut().zip(row) {
                    *a += u16::from(v);
                }
            }
            let sums = &mut self.sums[r * self.cols..][..self.cols];
            for (s, col) in sums.iter_mut().zip(self.band.chunks(cell * 3)) {
                *s = col
                    .iter()
                    .zip(&self.weights)
                    .map(|(&v, &w)| u32::from(v) * w)
                    .sum();
            }
        }
        for ((l, s), n) in self.luma.iter_mut().zip(&self.sums).zip(&self.counts) {
            *l = *s as f32 / (*n as f32 * 256.0);
        }
    }

    /// The changed cells as merged, grown, clamped pixel boxes.
    fn regions(&mut self, (w, h): (u32, u32)) -> Vec<[f32; 4]> {
        let (cols, rows) = (self.cols, self.rows);
        let m = self.cfg.margin_cells as usize;
        // Boxes in cells, inclusive: [c1, r1, c2, r2].
        let mut boxes: Vec<[usize; 4]> = Vec::new();
        let mut seen = std::mem::take(&mut self.seen);
        seen.clone_from(&self.changed);
        for start in 0..seen.len() {
            if !seen[start] {
                continue;
            }
            seen[start] = false;
            self.stack.push(start);
            let mut b = [start % cols, start / cols, start % cols, start / cols];
            while let Some(i) = self.stack.pop() {
                let (c, r) = (i % cols, i / cols);
                b = [b[0].min(c), b[1].min(r), b[2].max(c), b[3].max(r)];
                for nr in r.saturating_sub(1)..=(r + 1).min(rows - 1) {
                    for nc in c.saturating_sub(1)..=(c + 1).min(cols - 1) {
                        let j = nr * cols + nc;
                        if seen[j] {
                            seen[j] = false;
                            self.stack.push(j);
                        }
                    }
                }
            }
            boxes.push([
                b[0].saturating_sub(m),
                b[1].saturating_sub(m),
                (b[2] + m).min(cols - 1),
                (b[3] + m).min(rows - 1),
            ]);
        }
        self.seen = seen;
        merge_overlapping(&mut boxes);
        let cell = self.cfg.cell_px as f32;
        boxes
            .into_iter()
            .map(|[c1, r1, c2, r2]| {
                [
                    c1 as f32 * cell,
                    r1 as f32 * cell,
                    ((c2 + 1) as f32 * cell).min(w as f32),
                    ((r2 + 1) as f32 * cell).min(h as f32),
                ]
            })
            .collect()
    }
}

/// A frame's global light change from the background: `luma = gain * background + offset`
/// (auto exposure, clouds and dusk scale the camera's gamma-encoded output; a gain and an
/// offset cover both scaling and lifting), clamped to the 8-bit range.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Light {
    gain: f32,
    offset: f32,
}

impl Light {
    /// No change.
    const NONE: Light = Light {
        gain: 1.0,
        offset: 0.0,
    };

    /// The luma a cell of background `b` has under this light.
    fn apply(self, b: f32) -> f32 {
        (self.gain * b + self.offset).clamp(0.0, 255.0)
    }

    /// Least squares over the cells that `keep` selects; an offset alone when their background
    /// is nearly uniform (a gain would be guessed from noise); None when fewer than an eighth of
    /// the cells are kept.
    fn fit(background: &[f32], luma: &[f32], keep: impl Fn(usize) -> bool) -> Option<Light> {
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0usize, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (i, (&b, &l)) in background.iter().zip(luma).enumerate() {
            if keep(i) {
                let (x, y) = (f64::from(b), f64::from(l));
                n += 1;
                sx += x;
                sy += y;
                sxx += x * x;
                sxy += x * y;
            }
        }
        if n == 0 || n < background.len() / 8 {
            return None;
        }
        let nf = n as f64;
        let (mx, my) = (sx / nf, sy / nf);
        let var = sxx / nf - mx * mx;
        // Below a 2-level spread the background has no contrast to measure a gain on.
        let gain = if var < 4.0 {
            1.0
        } else {
            (sxy / nf - mx * my) / var
        };
        Some(Light {
            gain: gain as f32,
            offset: (my - gain * mx) as f32,
        })
    }
}

/// Merges inclusive cell boxes that share a cell until none do.
fn merge_overlapping(boxes: &mut Vec<[usize; 4]>) {
    crate::infer::merge_overlapping(boxes, |a, b| {
        a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
    });
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Deterministic noise (xorshift64*): the tests must fail or pass the same way every run.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in `-amp..=amp`.
        fn level(&mut self, amp: i32) -> i32 {
            (self.next() % (2 * amp as u64 + 1)) as i32 - amp
        }

        /// `img` with independent uniform noise of `±amp` levels on every byte (sensor noise).
        fn add(&mut self, img: &BgrImage, amp: i32) -> BgrImage {
            let data = img
                .data
                .iter()
                .map(|&v| (i32::from(v) + self.level(amp)).clamp(0, 255) as u8)
                .collect();
            BgrImage::new(img.width, img.height, data).unwrap()
        }
    }

    /// A textured scene (stripes and gradients, 30..=200 levels: room for light changes).
    fn scene(w: u32, h: u32) -> BgrImage {
        let mut data = Vec::with_capacity(w as usize * h as usize * 3);
        for y in 0..h {
            for x in 0..w {
                let v = 30 + (x * 7 + y * 3) % 120 + ((x / 40 + y / 30) % 2) * 50;
                data.extend([v as u8, (v + 10) as u8, (v / 2 + 30) as u8]);
            }
        }
        BgrImage::new(w, h, data).unwrap()
    }

    /// `img` with every byte shifted by `by` levels (clamped).
    fn brighter(img: &BgrImage, by: i32) -> BgrImage {
        let data = img
            .data
            .iter()
            .map(|&v| (i32::from(v) + by).clamp(0, 255) as u8)
            .collect();
        BgrImage::new(img.width, img.height, data).unwrap()
    }

    /// `img` with `patch` pasted at (`x`, `y`) (clipped to the frame).
    fn paste(img: &BgrImage, patch: &BgrImage, x: u32, y: u32) -> BgrImage {
        let mut out = img.clone();
        let (w, pw) = (img.width as usize, patch.width as usize);
        for py in 0..patch.height as usize {
            let fy = y as usize + py;
            if fy >= img.height as usize {
                break;
            }
            let n = pw.min(w.saturating_sub(x as usize));
            let dst = (fy * w + x as usize) * 3;
            out.data[dst..dst + n * 3].copy_from_slice(&patch.data[py * pw * 3..][..n * 3]);
        }
        out
    }

    /// A `w`x`h` block, dark with a bright band (a person's dark coat and face, roughly).
    fn block(w: u32, h: u32) -> BgrImage {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |_| if y < h / 4 { 220u8 } else { 15 }))
            .flat_map(|v| [v, v, v])
            .collect();
        BgrImage::new(w, h, data).unwrap()
    }

    fn contains(r: &[f32; 4], b: [f32; 4]) -> bool {
        r[0] <= b[0] && r[1] <= b[1] && r[2] >= b[2] && r[3] >= b[3]
    }

    fn area(regions: &[[f32; 4]]) -> f32 {
        regions.iter().map(|r| (r[2] - r[0]) * (r[3] - r[1])).sum()
    }

    fn whole(img: &BgrImage) -> Vec<[f32; 4]> {
        vec![[0.0, 0.0, img.width as f32, img.height as f32]]
    }

    #[test]
    fn motion_static_noisy_frames_are_not_moving_after_the_first() {
        let base = scene(1280, 720);
        let mut noise = Noise(7);
        let mut gate = MotionGate::new(MotionConfig::default());
        let first = gate.observe(&noise.add(&base, 8));
        assert!(first.moving, "the first frame must be analysed");
        assert_eq!(first.regions, whole(&base));
        for i in 1..30 {
            let m = gate.observe(&noise.add(&base, 8));
            assert!(!m.moving, "frame {i}: sensor noise seen as motion: {m:?}");
            assert!(m.regions.is_empty());
            assert_eq!(m.changed_fraction, 0.0, "frame {i}");
        }
    }

    #[test]
    fn motion_moving_block_is_found_in_every_frame() {
        // A frame size that is no multiple of the cell: regions end clamped at the border.
        let base = scene(650, 370);
        let person = block(40, 80);
        let mut noise = Noise(11);
        let mut gate = MotionGate::new(MotionConfig::default());
        gate.observe(&noise.add(&base, 8));
        for i in 0..60u32 {
            let x = 10 + i * 10;
            let frame = noise.add(&paste(&base, &person, x, 250), 8);
            let m = gate.observe(&frame);
            let b = [x as f32, 250.0, (x + 40).min(650) as f32, 330.0];
            assert!(m.moving, "frame {i}: the block at x={x} was missed");
            assert!(
                m.regions.iter().any(|r| contains(r, b)),
                "frame {i}: no region contains the block {b:?}: {:?}",
                m.regions
            );
            assert!(
                area(&m.regions) < 0.15 * 650.0 * 370.0,
                "frame {i}: regions far larger than the block: {:?}",
                m.regions
            );
            for r in &m.regions {
                assert!(r[0] >= 0.0 && r[1] >= 0.0 && r[2] <= 650.0 && r[3] <= 370.0);
                assert!(r[0] < r[2] && r[1] < r[3]);
            }
            for (j, a) in m.regions.iter().enumerate() {
                for c in &m.regions[j + 1..] {
                    let overlap = a[0] < c[2] && c[0] < a[2] && a[1] < c[3] && c[1] < a[3];
                    assert!(!overlap, "frame {i}: regions overlap: {a:?} {c:?}");
                }
            }
        }
    }

    #[test]
    fn motion_global_brightness_step_is_one_whole_frame_region() {
        for step in [40, -50] {
            let base = scene(640, 360);
            let mut noise = Noise(3);
            let mut gate = MotionGate::new(MotionConfig::default());
            for _ in 0..10 {
                gate.observe(&noise.add(&base, 8));
            }
            let lit = brighter(&base, step);
            let m = gate.observe(&noise.add(&lit, 8));
            assert!(m.moving, "a {step}-level light step was missed");
            assert_eq!(m.regions, whole(&base), "step {step}");
            // The background restarted from the new light: nothing moves after it.
            for i in 0..5 {
                let m = gate.observe(&noise.add(&lit, 8));
                assert!(!m.moving, "step {step}, frame {i} after it: {m:?}");
            }
        }
    }

    #[test]
    fn motion_camera_view_change_is_one_whole_frame_region() {
        // The camera turned: a different scene of the same size.
        let mut noise = Noise(5);
        let mut gate = MotionGate::new(MotionConfig::default());
        let before = scene(640, 360);
        for _ in 0..5 {
            gate.observe(&noise.add(&before, 8));
        }
        let after = scene(700, 360).crop([60.0, 0.0, 700.0, 360.0]).unwrap().0;
        let m = gate.observe(&noise.add(&after, 8));
        assert!(m.moving);
        assert_eq!(m.regions, whole(&before));
        assert!(!gate.observe(&noise.add(&after, 8)).moving);
    }

    #[test]
    fn motion_frame_size_change_restarts_the_background() {
        let mut noise = Noise(9);
        let mut gate = MotionGate::new(MotionConfig::default());
        let big = scene(640, 360);
        for _ in 0..5 {
            gate.observe(&noise.add(&big, 8));
        }
        assert!(!gate.observe(&noise.add(&big, 8)).moving);
        let small = scene(320, 180);
        let m = gate.observe(&noise.add(&small, 8));
        assert_eq!(
            m,
            Motion {
                moving: true,
                regions: whole(&small),
                changed_fraction: 1.0
            }
        );
        assert!(!gate.observe(&noise.add(&small, 8)).moving);
        // And back: the old background is gone, so the first big frame is new content again.
        assert!(gate.observe(&noise.add(&big, 8)).moving);
    }

    #[test]
    fn motion_slow_light_drift_is_not_moving() {
        let base = scene(640, 360);
        let mut noise = Noise(13);
        let mut gate = MotionGate::new(MotionConfig::default());
        gate.observe(&noise.add(&base, 8));
        // One level per frame for 50 frames (10 s at 5 fps: faster than any dusk)...
        for i in 1..=50 {
            let m = gate.observe(&noise.add(&brighter(&base, i), 8));
            assert!(!m.moving, "brightening, frame {i}: {m:?}");
        }
        // A gain drift (auto exposure opening up): 0.5 % per frame.
        let mut gate = MotionGate::new(MotionConfig::default());
        gate.observe(&noise.add(&base, 8));
        let mut gained = base.clone();
        for i in 1..=40 {
            let g = 1.0 + 0.005 * i as f32;
            gained.data = base
                .data
                .iter()
                .map(|&v| (f32::from(v) * g) as u8)
                .collect();
            let m = gate.observe(&noise.add(&gained, 8));
            assert!(!m.moving, "gain {g}, frame {i}: {m:?}");
        }
    }

    #[test]
    fn motion_a_stopped_object_stops_moving_and_leaves_no_ghost() {
        let base = scene(640, 360);
        let person = block(40, 80);
        let mut noise = Noise(17);
        let mut gate = MotionGate::new(MotionConfig::default());
        gate.observe(&noise.add(&base, 8));
        // Walks in: moving, found where it is.
        for x in (100..=300).step_by(10) {
            let m = gate.observe(&noise.add(&paste(&base, &person, x, 200), 8));
            let b = [x as f32, 200.0, x as f32 + 40.0, 280.0];
            assert!(
                m.moving && m.regions.iter().any(|r| contains(r, b)),
                "x {x}: {m:?}"
            );
        }
        // Stands still at x = 300: no longer motion (its track carries it).
        let standing = paste(&base, &person, 300, 200);
        gate.observe(&noise.add(&standing, 8));
        for i in 0..20 {
            let m = gate.observe(&noise.add(&standing, 8));
            assert!(!m.moving, "frame {i} after stopping: {m:?}");
        }
        // Walks off at once: the spot it leaves is not a moving ghost once it has gone.
        gate.observe(&noise.add(&paste(&base, &person, 500, 200), 8));
        for i in 0..5 {
            let m = gate.observe(&noise.add(&base, 8));
            assert!(!m.moving || i == 0, "frame {i} after it left: {m:?}");
        }
        // Appears again where it stood: moving there.
        let m = gate.observe(&noise.add(&standing, 8));
        assert!(
            m.moving
                && m.regions
                    .iter()
                    .any(|r| contains(r, [300.0, 200.0, 340.0, 280.0]))
        );
    }

    #[test]
    fn motion_disabled_gate_passes_every_frame_whole() {
        let cfg = MotionConfig {
            enabled: false,
            ..MotionConfig::default()
        };
        let mut gate = MotionGate::new(cfg);
        let img = scene(320, 180);
        for _ in 0..3 {
            let m = gate.observe(&img);
            assert!(m.moving);
            assert_eq!(m.regions, whole(&img));
        }
    }

    #[test]
    fn motion_config_defaults_validate_and_bad_fields_are_named() {
        MotionConfig::default().validate("motion").unwrap();
        let parsed: MotionConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, MotionConfig::default());
        assert!(toml::from_str::<MotionConfig>("cell = 8").is_err());
        let bad = [
            (
                "cell_px",
                MotionConfig {
                    cell_px: 2,
                    ..Default::default()
                },
            ),
            (
                "threshold",
                MotionConfig {
                    threshold: 0.0,
                    ..Default::default()
                },
            ),
            (
                "threshold",
                MotionConfig {
                    threshold: f32::NAN,
                    ..Default::default()
                },
            ),
            (
                "min_cells",
                MotionConfig {
                    min_cells: 0,
                    ..Default::default()
                },
            ),
            (
                "background_alpha",
                MotionConfig {
                    background_alpha: 1.5,
                    ..Default::default()
                },
            ),
            (
                "margin_cells",
                MotionConfig {
                    margin_cells: 65,
                    ..Default::default()
                },
            ),
            (
                "global_fraction",
                MotionConfig {
                    global_fraction: 0.0,
                    ..Default::default()
                },
            ),
        ];
        for (field, cfg) in bad {
            let e = cfg.validate("cameras[1].motion").unwrap_err().to_string();
            assert!(
                e.contains(&format!("cameras[1].motion.{field}")),
                "{field}: {e}"
            );
        }
    }

    /// The test data (`testdata/` of the checkout, or `$SHARPEYES_TESTDATA`).
    fn testdata() -> PathBuf {
        std::env::var_os("SHARPEYES_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata"))
    }

    /// Real photos as 1280x720 camera frames (the street scenes and the group photos).
    fn real_frames() -> Vec<(String, BgrImage)> {
        let mut out = Vec::new();
        for dir in ["street", "faces"] {
            let mut paths: Vec<_> = std::fs::read_dir(testdata().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
                .collect();
            paths.sort();
            for p in paths {
                let img = BgrImage::open(&p).unwrap().resized(1280, 720);
                out.push((p.file_name().unwrap().to_string_lossy().into_owned(), img));
            }
        }
        out
    }

    /// `img` through a JPEG encoder and back (compression noise, as a camera's codec adds).
    fn jpeg_round_trip(img: &BgrImage, quality: u8, dir: &Path) -> BgrImage {
        let path = dir.join("frame.jpg");
        std::fs::write(&path, img.to_jpeg(u32::MAX, quality).unwrap()).unwrap();
        BgrImage::open(&path).unwrap()
    }

    #[test]
    fn motion_real_still_frames_never_trigger_and_a_moving_face_does() {
        let frames = real_frames();
        assert!(
            frames.len() >= 5,
            "test data missing: {} photos",
            frames.len()
        );
        let dir = tempfile::tempdir().unwrap();
        // The face: the middle of a group photo's face, 48x56 px (a face at 10 m).
        let faces = BgrImage::open(&testdata().join("faces/2008_002079.jpg")).unwrap();
        let face = faces.resized(faces.width / 4, faces.height / 4);
        let face = face
            .crop([
                face.width as f32 / 2.0 - 24.0,
                face.height as f32 / 2.0 - 28.0,
                face.width as f32 / 2.0 + 24.0,
                face.height as f32 / 2.0 + 28.0,
            ])
            .unwrap()
            .0;
        let mut noise = Noise(21);
        let mut worst = 0.0f32;
        for (name, still) in &frames {
            let mut gate = MotionGate::new(MotionConfig::default());
            gate.observe(&noise.add(still, 8));
            for i in 1..12 {
                // Every third frame also goes through a JPEG codec at a CCTV quality.
                let mut f = noise.add(still, 8);
                if i % 3 == 0 {
                    f = jpeg_round_trip(&f, 60, dir.path());
                }
                let m = gate.observe(&f);
                worst = worst.max(m.changed_fraction);
                assert!(!m.moving, "{name}, still frame {i}: {m:?}");
            }
            for i in 0..8u32 {
                let (x, y) = (200 + i * 12, 300 + i * 4);
                let f = noise.add(&paste(still, &face, x, y), 8);
                let m = gate.observe(&f);
                let b = [x as f32, y as f32, (x + 48) as f32, (y + 56) as f32];
                assert!(
                    m.moving && m.regions.iter().any(|r| contains(r, b)),
                    "{name}: the face at {b:?} was missed: {m:?}"
                );
            }
        }
        assert_eq!(worst, 0.0, "some still cells changed");
    }

    #[test]
    fn motion_merged_boxes_cover_every_box_and_never_overlap() {
        let mut noise = Noise(29);
        for trial in 0..300 {
            let n = 1 + (noise.next() % 40) as usize;
            let input: Vec<[usize; 4]> = (0..n)
                .map(|_| {
                    let (c, r) = ((noise.next() % 30) as usize, (noise.next() % 20) as usize);
                    let (w, h) = ((noise.next() % 4) as usize, (noise.next() % 4) as usize);
                    [c, r, c + w, r + h]
                })
                .collect();
            let mut boxes = input.clone();
            merge_overlapping(&mut boxes);
            for b in &input {
                assert!(
                    boxes
                        .iter()
                        .any(|m| m[0] <= b[0] && m[1] <= b[1] && m[2] >= b[2] && m[3] >= b[3]),
                    "trial {trial}: {b:?} lost in {boxes:?}"
                );
            }
            for (k, a) in boxes.iter().enumerate() {
                for b in &boxes[k + 1..] {
                    let overlap = a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
                    assert!(!overlap, "trial {trial}: {a:?} and {b:?} overlap");
                }
            }
        }
    }
}
