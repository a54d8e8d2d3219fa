//! Rendered Chinese licence plates for tests and footage: blue ordinary plates (7 characters,
//! white on blue) and green new-energy plates (8 characters, black on a white-to-green
//! gradient), laid out after GA 36 (characters in tall cells, a dot after the issuing code),
//! drawn with a CJK font from Debian (`fonts-wqy-zenhei`, installed by scripts/setup.sh), and
//! pasted into scenes through a perspective transform.

use std::path::PathBuf;

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use edge_agent::infer::align::Homography;
use image::{Rgb, RgbImage};

/// Plate colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateStyle {
    /// Ordinary: white characters on blue, 7 characters, 440×140 mm.
    Blue,
    /// New-energy: black characters on a white-to-green gradient, 8 characters, 480×140 mm.
    Green,
}

impl PlateStyle {
    /// Plate size in pixels at 1 px per mm.
    pub fn size(self) -> (u32, u32) {
        match self {
            PlateStyle::Blue => (440, 140),
            PlateStyle::Green => (480, 140),
        }
    }
}

/// Where Debian puts the WenQuanYi Zen Hei font.
pub const CJK_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc";

/// Loads the CJK font (`SHARPEYES_CJK_FONT` overrides the path).
pub fn load_font() -> Result<FontVec, String> {
    let path = std::env::var_os("SHARPEYES_CJK_FONT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CJK_FONT));
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "reading the CJK font {}: {e} (scripts/setup.sh installs fonts-wqy-zenhei)",
            path.display()
        )
    })?;
    FontVec::try_from_vec_and_index(bytes, 0)
        .map_err(|e| format!("{}: not a usable font: {e}", path.display()))
}

/// Draws `text` (7 or 8 characters, no separator) as a plate of `style` at 1 px per mm;
/// fails if the font lacks one of its characters.
pub fn render_plate(font: &FontVec, text: &str, style: PlateStyle) -> Result<RgbImage, String> {
    let (w, h) = style.size();
    let chars: Vec<char> = text.chars().collect();
    if let Some(c) = chars.iter().find(|c| font.glyph_id(**c).0 == 0) {
        return Err(format!("the font has no glyph for {c:?}"));
    }
    let (bg_top, bg_bottom, ink) = match style {
        PlateStyle::Blue => ([18u8, 58, 160], [12u8, 45, 135], [245u8, 245, 245]),
        PlateStyle::Green => ([236u8, 246, 236], [60u8, 185, 90], [15u8, 15, 15]),
    };
    let mut img = RgbImage::from_fn(w, h, |_, y| {
        let t = y as f32 / (h - 1) as f32;
        Rgb(std::array::from_fn(|c| {
            (bg_top[c] as f32 * (1.0 - t) + bg_bottom[c] as f32 * t).round() as u8
        }))
    });
    // A thin frame 4 px inside the edge, in the ink colour.
    for y in 0..h {
        for x in 0..w {
            let d = x.min(y).min(w - 1 - x).min(h - 1 - y);
            if (4..6).contains(&d) {
                img.put_pixel(x, y, Rgb(ink));
            }
        }
    }
    // GA 36 layout: cells of (cw × 90) with gaps, a wider gap (with a dot) after the 2nd.
    let (cw, gap, dot_gap) = match style {
        PlateStyle::Blue => (45.0f32, 12.0f32, 34.0f32),
        PlateStyle::Green => (43.0, 9.0, 49.0),
    };
    let n = chars.len().max(1) as f32;
    let total = n * cw + (n - 2.0).max(0.0) * gap + dot_gap;
    let mut x = (w as f32 - total) / 2.0;
    let (top, ch) = (25.0f32, 90.0f32);
    for (i, &c) in chars.iter().enumerate() {
        draw_glyph(&mut img, font, c, x, top, cw, ch, ink);
        x += cw;
        if i == 1 {
            // The separator dot, centred in the wide gap.
            let (cx, cy, r) = (x + dot_gap / 2.0, top + ch / 2.0, 5.0f32);
            for yy in (cy - r) as u32..=(cy + r) as u32 {
                for xx in (cx - r) as u32..=(cx + r) as u32 {
                    if (xx as f32 - cx).powi(2) + (yy as f32 - cy).powi(2) <= r * r {
                        img.put_pixel(xx, yy, Rgb(ink));
                    }
                }
            }
            x += dot_gap;
        } else if i + 1 < chars.len() {
            x += gap;
        }
    }
    Ok(img)
}

/// Draws one character filling a `cw`×`ch` cell at (`x`, `y`): scaled to the cell's height,
/// narrowed to its width if needed (Chinese characters become tall as on real plates).
#[allow(clippy::too_many_arguments)]
fn draw_glyph(
    img: &mut RgbImage,
    font: &FontVec,
    c: char,
    x: f32,
    y: f32,
    cw: f32,
    ch: f32,
    ink: [u8; 3],
) {
    let probe = font
        .as_scaled(PxScale::from(100.0))
        .outline_glyph(font.glyph_id(c).with_scale(100.0));
    let Some(probe) = probe else { return };
    let b = probe.px_bounds();
    let (bw, bh) = (b.width().max(1.0), b.height().max(1.0));
    let sy = 100.0 * ch / bh;
    let sx = (100.0 * cw / bw).min(sy);
    let glyph = font
        .glyph_id(c)
        .with_scale_and_position(PxScale { x: sx, y: sy }, ab_glyph::point(0.0, 0.0));
    let Some(outline) = font.outline_glyph(glyph) else {
        return;
    };
    let gb = outline.px_bounds();
    let ox = x + (cw - gb.width()) / 2.0 - gb.min.x;
    let oy = y + (ch - gb.height()) / 2.0 - gb.min.y;
    outline.draw(|gx, gy, cov| {
        let px = (gx as f32 + gb.min.x + ox).round() as i64;
        let py = (gy as f32 + gb.min.y + oy).round() as i64;
        if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
            let p = img.get_pixel_mut(px as u32, py as u32);
            for (v, &i) in p.0.iter_mut().zip(&ink) {
                *v = (*v as f32 * (1.0 - cov) + i as f32 * cov).round() as u8;
            }
        }
    });
}

/// Pastes `plate` into `scene` so that its corners land on `corners` (top-left, top-right,
/// bottom-right, bottom-left), bilinearly sampled; fails for a degenerate quadrilateral.
pub fn paste_quad(
    scene: &mut RgbImage,
    plate: &RgbImage,
    corners: &[[f32; 2]; 4],
) -> Result<(), String> {
    let (pw, ph) = (plate.width() as f32, plate.height() as f32);
    let rect = [[0.0, 0.0], [pw, 0.0], [pw, ph], [0.0, ph]];
    let back = Homography::from_points(corners, &rect)
        .ok_or_else(|| format!("degenerate plate corners {corners:?}"))?;
    let xs = corners.iter().map(|c| c[0]);
    let ys = corners.iter().map(|c| c[1]);
    let x0 = xs.clone().fold(f32::MAX, f32::min).floor().max(0.0) as u32;
    let x1 = (xs.fold(f32::MIN, f32::max).ceil() as u32).min(scene.width());
    let y0 = ys.clone().fold(f32::MAX, f32::min).floor().max(0.0) as u32;
    let y1 = (ys.fold(f32::MIN, f32::max).ceil() as u32).min(scene.height());
    for y in y0..y1 {
        for x in x0..x1 {
            let Some([u, v]) = back.apply([x as f32 + 0.5, y as f32 + 0.5]) else {
                continue;
            };
            if u < 0.0 || v < 0.0 || u >= pw || v >= ph {
                continue;
            }
            let (u, v) = ((u - 0.5).max(0.0), (v - 0.5).max(0.0));
            let (u0, v0) = (u as u32, v as u32);
            let (u1, v1) = (
                (u0 + 1).min(plate.width() - 1),
                (v0 + 1).min(plate.height() - 1),
            );
            let (fu, fv) = (u - u0 as f32, v - v0 as f32);
            let s = |a: u32, b: u32, k: usize| plate.get_pixel(a, b).0[k] as f32;
            let px = Rgb(std::array::from_fn(|k| {
                let top = s(u0, v0, k) * (1.0 - fu) + s(u1, v0, k) * fu;
                let bot = s(u0, v1, k) * (1.0 - fu) + s(u1, v1, k) * fu;
                (top * (1.0 - fv) + bot * fv).round() as u8
            }));
            scene.put_pixel(x, y, px);
        }
    }
    Ok(())
}

/// Corners of a plate `width` px wide (height from its style's aspect) centred at (`cx`, `cy`),
/// rotated by `angle_deg` and with its right side `skew` times taller than its left (a
/// camera looking from the side).
pub fn plate_corners(
    style: PlateStyle,
    cx: f32,
    cy: f32,
    width: f32,
    angle_deg: f32,
    skew: f32,
) -> [[f32; 2]; 4] {
    let (pw, ph) = style.size();
    let height = width * ph as f32 / pw as f32;
    let (hw, hl, hr) = (width / 2.0, height / 2.0, height / 2.0 * skew);
    let local = [[-hw, -hl], [hw, -hr], [hw, hr], [-hw, hl]];
    let (s, c) = angle_deg.to_radians().sin_cos();
    local.map(|[x, y]| [cx + x * c - y * s, cy + x * s + y * c])
}

/// Renders `text` as a `style` plate `width` px wide and pastes it into `scene` (1920×1080) at a
/// random centre (x 400–1520, y 300–800), rotated within ±`max_angle_deg` and with a side
/// skew drawn from `skew`; the plate's centre.
#[allow(clippy::too_many_arguments)]
pub fn paste_random_plate(
    scene: &mut RgbImage,
    font: &FontVec,
    rng: &mut Rng,
    text: &str,
    style: PlateStyle,
    width: u32,
    max_angle_deg: f32,
    skew: (f32, f32),
) -> Result<(f32, f32), String> {
    let plate = render_plate(font, text, style)?;
    let (cx, cy) = (rng.range(400.0, 1520.0), rng.range(300.0, 800.0));
    let corners = plate_corners(
        style,
        cx,
        cy,
        width as f32,
        rng.range(-max_angle_deg, max_angle_deg),
        rng.range(skew.0, skew.1),
    );
    paste_quad(scene, &plate, &corners)?;
    Ok((cx, cy))
}

/// A small deterministic generator (xorshift64*), so scenes are the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (any seed; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A random plate text of `style` following plate grammar (serials from digits and letters
/// without I and O; new-energy plates start their serial with D or F).
pub fn random_plate(rng: &mut Rng, provinces: &[char], style: PlateStyle) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const SERIAL: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut s = String::new();
    s.push(rng.pick(provinces));
    s.push(rng.pick(LETTERS) as char);
    match style {
        PlateStyle::Blue => (0..5).for_each(|_| s.push(rng.pick(SERIAL) as char)),
        PlateStyle::Green => {
            s.push(rng.pick(b"DF") as char);
            (0..5).for_each(|_| s.push(rng.pick(b"0123456789") as char));
        }
    }
    s
}

/// A random plate text of `style` in any of the forms real plates take (a superset of
/// [`random_plate`], which keeps its draws so that seeded scenarios stay the same): blue
/// plates as there; green new-energy plates either a small car's, D or F then a letter or
/// digit then 4 digits (`粤AD3K123` is not one: only the first serial character after D/F
/// may be a letter), or a large vehicle's, 5 digits then D or F (`粤A12345D`).
pub fn random_plate_any_form(rng: &mut Rng, provinces: &[char], style: PlateStyle) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const SERIAL: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"0123456789";
    if style == PlateStyle::Blue {
        return random_plate(rng, provinces, style);
    }
    let mut s = String::new();
    s.push(rng.pick(provinces));
    s.push(rng.pick(LETTERS) as char);
    if rng.below(3) == 0 {
        (0..5).for_each(|_| s.push(rng.pick(DIGITS) as char));
        s.push(rng.pick(b"DF") as char);
    } else {
        s.push(rng.pick(b"DF") as char);
        s.push(rng.pick(SERIAL) as char);
        (0..4).for_each(|_| s.push(rng.pick(DIGITS) as char));
    }
    s
}

/// Adds Gaussian sensor noise of standard deviation `sigma` (grey levels; 0 leaves the image
/// as it is) to every channel of every pixel, drawn from `rng`.
pub fn add_noise(img: &RgbImage, sigma: f32, rng: &mut Rng) -> RgbImage {
    let mut out = img.clone();
    if sigma <= 0.0 {
        return out;
    }
    for p in out.pixels_mut() {
        for v in p.0.iter_mut() {
            // Box-Muller: one normal deviate from two uniform ones.
            let (u1, u2) = (rng.range(1e-6, 1.0), rng.range(0.0, 1.0));
            let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            *v = (*v as f32 + sigma * z).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Gaussian blur of about `r` pixels (σ = 0.8·r; 0 leaves the image as it is), a stand-in for
/// defocus and motion.
pub fn blur(img: &RgbImage, r: u32) -> RgbImage {
    if r == 0 {
        return img.clone();
    }
    image::imageops::blur(img, r as f32 * 0.8)
}

/// JPEG round trip at `quality` (1..=100), as a camera's encoder leaves it.
pub fn jpeg_round_trip(img: &RgbImage, quality: u8) -> Result<RgbImage, String> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .encode_image(img)
        .map_err(|e| format!("JPEG encoding: {e}"))?;
    image::load_from_memory(&buf)
        .map(|i| i.to_rgb8())
        .map_err(|e| format!("JPEG decoding: {e}"))
}
