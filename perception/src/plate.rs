//! Licence plates: a localiser finds each plate (box + 4 corners), the plate is rectified by
//! its corners, a text recogniser restricted to the plate alphabet reads it, and only
//! strings that follow Chinese plate grammar are kept (docs/models.md §6).
//!
//! Grammar: a province character, a letter, then 5 characters (ordinary plates; the last may
//! be one of 挂学警港澳领) or 6 (new-energy plates), drawn from digits and capital letters
//! without `I` and `O`. Separators (`·`, `-`, spaces) are dropped.

use serde::Serialize;

use super::align::warp_quad;
use super::{BgrImage, InferError, nms};

pub use sharpeyes_wire::plate::{PROVINCES, SPECIALS};
use sharpeyes_wire::plate::{SEPARATORS, is_serial_char, shape};

/// Whether `c` can appear on a civil plate (the recogniser's alphabet for plates).
pub fn in_plate_alphabet(c: char) -> bool {
    is_serial_char(c) || PROVINCES.contains(c) || SPECIALS.contains(c)
}

/// Checks a reading (characters with their confidences) against plate grammar
/// ([`sharpeyes_wire::plate::shape`], the one definition the rules and fusion use too);
/// returns the plate without separators and the confidences of its characters.
pub fn plate_grammar(chars: &[(char, f32)]) -> Option<(String, Vec<f32>)> {
    let kept: Vec<(char, f32)> = chars
        .iter()
        .copied()
        .filter(|(c, _)| *c != ' ' && !SEPARATORS.contains(c))
        .collect();
    let text: String = kept.iter().map(|(c, _)| *c).collect();
    shape(&text).ok()?;
    Some((text, kept.iter().map(|(_, p)| *p).collect()))
}

/// Whether plate grammar allows `c` as character `position` (0 = province) of a plate of
/// `len` characters: the per-position form of [`sharpeyes_wire::plate::shape`] (a text is a
/// plate exactly when it has 7 or 8 characters and each is allowed where it stands).
pub fn plate_char_allowed(position: usize, len: usize, c: char) -> bool {
    match position {
        _ if len != 7 && len != 8 || position >= len => false,
        0 => PROVINCES.contains(c),
        1 => c.is_ascii_uppercase() && c != 'I',
        6 if len == 7 => is_serial_char(c) || SPECIALS.contains(c),
        _ => is_serial_char(c),
    }
}

/// A plate found by a localiser, in pixels of the image it was given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateLocation {
    /// `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Corners: top-left, top-right, bottom-right, bottom-left.
    pub corners: [[f32; 2]; 4],
    /// Localiser score (0..1).
    pub score: f32,
    /// Scored below the localiser's threshold but above its tentative floor: kept only
    /// where the crop is a green new-energy plate, which the localiser under-scores
    /// (docs/models.md §6.1).
    pub tentative: bool,
}

/// A plate localiser family.
pub trait PlateLocator: Send {
    /// Plates in `img`, best first.
    fn locate(&mut self, img: &BgrImage) -> Result<Vec<PlateLocation>, InferError>;
}

/// What a text recogniser read in one crop: each character with its confidence (0..1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextReading {
    /// Characters in reading order with their confidences.
    pub chars: Vec<(char, f32)>,
}

impl TextReading {
    /// The text alone.
    pub fn text(&self) -> String {
        self.chars.iter().map(|(c, _)| *c).collect()
    }
}

/// One way to read a crop under a constraint, with how probable the recogniser finds it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Candidate {
    /// The characters with their confidences.
    pub reading: TextReading,
    /// Log-probability of the reading's most probable alignment (comparable between the
    /// candidates of one crop, not between crops).
    pub log_prob: f32,
}

/// A text-line recogniser family.
pub trait TextRecognizer: Send {
    /// The crop height the model reads at; crops of this height need no resizing.
    fn input_height(&self) -> u32;
    /// Reads each crop (one text line each).
    fn read(&mut self, crops: &[BgrImage]) -> Result<Vec<TextReading>, InferError>;
    /// Reads each crop as a plate: for each of `lengths`, the most probable reading of that
    /// many characters whose character `k` satisfies `allowed_at(k, length, c)`; per crop,
    /// most probable first (none where the crop is too short for a length). The default
    /// has no constrained decoding: each crop's free reading, when its length is one of
    /// `lengths` and every character is allowed.
    fn read_plates(
        &mut self,
        crops: &[BgrImage],
        lengths: &[usize],
        allowed_at: fn(usize, usize, char) -> bool,
    ) -> Result<Vec<Vec<Candidate>>, InferError> {
        Ok(self
            .read(crops)?
            .into_iter()
            .map(|reading| {
                let n = reading.chars.len();
                let fits = lengths.contains(&n)
                    && reading
                        .chars
                        .iter()
                        .enumerate()
                        .all(|(k, (c, _))| allowed_at(k, n, *c));
                fits.then_some(Candidate {
                    reading,
                    log_prob: 0.0,
                })
                .into_iter()
                .collect()
            })
            .collect())
    }
}

/// A plate read in an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateReading {
    /// The plate, without separators, e.g. `川A12345`.
    pub text: String,
    /// `[x1, y1, x2, y2]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Confidence of the whole reading: that of its weakest character (0..1).
    pub confidence: f32,
    /// Confidence of each character of `text`.
    pub char_confidences: Vec<f32>,
    /// Corners: top-left, top-right, bottom-right, bottom-left.
    pub corners: [[f32; 2]; 4],
    /// Localiser score (0..1).
    pub locator_score: f32,
}

/// Localiser + recogniser + grammar: the plate-reading stage.
pub struct PlateReader {
    locator: Box<dyn PlateLocator>,
    recognizer: Box<dyn TextRecognizer>,
    nms_iou: f32,
    min_char_confidence: f32,
}

impl std::fmt::Debug for PlateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlateReader").finish_non_exhaustive()
    }
}

/// Orders four points as top-left, top-right, bottom-right, bottom-left (the two upper
/// points by y, then each pair by x), whatever order a model gives them in.
pub fn order_corners(p: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    let mut by_y = p;
    by_y.sort_by(|a, b| a[1].total_cmp(&b[1]));
    let (mut top, mut bottom) = ([by_y[0], by_y[1]], [by_y[2], by_y[3]]);
    top.sort_by(|a, b| a[0].total_cmp(&b[0]));
    bottom.sort_by(|a, b| a[0].total_cmp(&b[0]));
    [top[0], top[1], bottom[1], bottom[0]]
}

/// Regions are enlarged (up to [`MAX_REGION_UPSCALE`] times) until their longer side is
/// this many pixels before localising.
const REGION_SIDE: f32 = 640.0;
/// The most a region is enlarged.
const MAX_REGION_UPSCALE: f32 = 3.0;

/// How much a plate's quadrilateral is widened before reading it (a fraction of its size):
/// localisers cut close to the characters, and the recogniser reads better with a margin.
const CROP_MARGIN: f32 = 0.08;

/// The province character's cell: this fraction of the (widened) crop from its left edge
/// (GA 36: the first 45 mm cell starts 15.5 mm into a 440 mm blue plate, 16.5 mm into a
/// 480 mm green one, so it ends at 0.14 and 0.13 of the plate, 0.16 of the crop).
const PROVINCE_CELL: f32 = 0.17;

/// Only province characters (reading the province cell alone).
fn province_only(_position: usize, _len: usize, c: char) -> bool {
    PROVINCES.contains(c)
}

/// `q` scaled about its centre by `1 + margin`.
fn expand_quad(q: &[[f32; 2]; 4], margin: f32) -> [[f32; 2]; 4] {
    let cx = q.iter().map(|p| p[0]).sum::<f32>() / 4.0;
    let cy = q.iter().map(|p| p[1]).sum::<f32>() / 4.0;
    q.map(|[x, y]| {
        [
            cx + (x - cx) * (1.0 + margin),
            cy + (y - cy) * (1.0 + margin),
        ]
    })
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// A plate's background colour, as far as its crop tells (docs/models.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateColour {
    /// Blue (ordinary plates: 7 characters).
    Blue,
    /// Green (new-energy plates: 8 characters).
    Green,
    /// Neither clearly (yellow, white, black, or an unclear crop).
    Other,
}

/// A pixel counts as blue when its blue channel exceeds red by this much and green by
/// [`TINT_MARGIN`], as green when green exceeds red by this and blue by [`TINT_MARGIN`].
const TINT_LEAD: i32 = 35;
/// See [`TINT_LEAD`].
const TINT_MARGIN: i32 = 15;
/// A colour is the plate's when at least this fraction of the crop has it and the other
/// colour less than half as much.
const TINT_SHARE: f32 = 0.2;

/// The background colour of a rectified plate crop (BGR): the share of clearly blue and of
/// clearly green pixels. Characters, the frame and the margin around the plate dilute both
/// shares alike; a green new-energy plate fades to white at the top, so only its lower part
/// counts, which is why the share needed is low.
pub fn plate_colour(crop: &BgrImage) -> PlateColour {
    let (mut blue, mut green) = (0usize, 0usize);
    for px in crop.data.chunks_exact(3) {
        let (b, g, r) = (px[0] as i32, px[1] as i32, px[2] as i32);
        if b - r >= TINT_LEAD && b - g >= TINT_MARGIN {
            blue += 1;
        } else if g - r >= TINT_LEAD && g - b >= TINT_MARGIN {
            green += 1;
        }
    }
    let n = (crop.data.len() / 3).max(1) as f32;
    let (blue, green) = (blue as f32 / n, green as f32 / n);
    if green >= TINT_SHARE && blue < green / 2.0 {
        PlateColour::Green
    } else if blue >= TINT_SHARE && green < blue / 2.0 {
        PlateColour::Blue
    } else {
        PlateColour::Other
    }
}

impl PlateReader {
    /// Combines a localiser and a recogniser (built for the plate alphabet); plates found
    /// in overlapping regions are merged above `nms_iou`, readings whose weakest character is
    /// below `min_char_confidence` are dropped.
    pub fn new(
        locator: Box<dyn PlateLocator>,
        recognizer: Box<dyn TextRecognizer>,
        nms_iou: f32,
        min_char_confidence: f32,
    ) -> Self {
        Self {
            locator,
            recognizer,
            nms_iou,
            min_char_confidence,
        }
    }

    /// Plates in `img`: inside each of `regions` (vehicle boxes, or configured areas such as
    /// a gate lane), each widened by 10 % and, when small, enlarged so that distant plates
    /// are found; and in the whole image at its own resolution when `whole_image` or when
    /// there are no regions. Plates found twice are merged before reading.
    pub fn read(
        &mut self,
        img: &BgrImage,
        regions: &[[f32; 4]],
        whole_image: bool,
    ) -> Result<Vec<PlateReading>, InferError> {
        let found = self.locate(img, regions, whole_image)?;
        let (crops, located) = self.crops(img, found);
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        // The colour says how long the plate is (unclear: the likelier reading wins), and
        // whether a tentative location is kept.
        let colours: Vec<PlateColour> = crops.iter().map(plate_colour).collect();
        let keep: Vec<bool> = located
            .iter()
            .zip(&colours)
            .map(|(p, c)| !p.tentative || *c == PlateColour::Green)
            .collect();
        let crops: Vec<BgrImage> = crops
            .into_iter()
            .zip(&keep)
            .filter_map(|(c, k)| k.then_some(c))
            .collect();
        let kept = located
            .into_iter()
            .zip(colours)
            .zip(&keep)
            .filter_map(|(pc, k)| k.then_some(pc));
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let candidates = self
            .recognizer
            .read_plates(&crops, &[7, 8], plate_char_allowed)?;
        let kept: Vec<(PlateLocation, PlateColour)> = kept.collect();
        // The province cell read again on its own, stretched to a square.
        let h = self.recognizer.input_height();
        let cells: Vec<BgrImage> = kept
            .iter()
            .filter_map(|(p, _)| {
                let c = expand_quad(&p.corners, CROP_MARGIN);
                let lerp = |a: [f32; 2], b: [f32; 2]| {
                    [
                        a[0] + PROVINCE_CELL * (b[0] - a[0]),
                        a[1] + PROVINCE_CELL * (b[1] - a[1]),
                    ]
                };
                let cell = [c[0], lerp(c[0], c[1]), lerp(c[3], c[2]), c[3]];
                warp_quad(img, &cell, h * 4 / 3, h)
            })
            .collect();
        let provinces = if cells.len() == kept.len() {
            self.recognizer.read_plates(&cells, &[1], province_only)?
        } else {
            vec![Vec::new(); kept.len()]
        };
        Ok(kept
            .into_iter()
            .zip(candidates)
            .zip(provinces)
            .filter_map(|(((p, colour), cands), province)| {
                let want = match colour {
                    PlateColour::Blue => Some(7),
                    PlateColour::Green => Some(8),
                    PlateColour::Other => None,
                };
                let mut best = cands
                    .into_iter()
                    .find(|c| want.is_none_or(|n| c.reading.chars.len() == n))?;
                if let (Some(first), Some(cell)) = (
                    best.reading.chars.first_mut(),
                    province.first().and_then(|c| c.reading.chars.first()),
                ) && cell.1 > first.1
                {
                    *first = *cell;
                }
                let (text, char_confidences) = plate_grammar(&best.reading.chars)?;
                let confidence = char_confidences.iter().copied().fold(1.0, f32::min);
                (confidence >= self.min_char_confidence).then_some(PlateReading {
                    text,
                    bbox: p.bbox,
                    confidence,
                    char_confidences,
                    corners: p.corners,
                    locator_score: p.score,
                })
            })
            .collect())
    }

    /// The plates [`PlateReader::read`] would read, located but not read yet (in pixels of
    /// `img`, merged across regions).
    pub fn locate(
        &mut self,
        img: &BgrImage,
        regions: &[[f32; 4]],
        whole_image: bool,
    ) -> Result<Vec<PlateLocation>, InferError> {
        let mut found = Vec::new();
        if whole_image || regions.is_empty() {
            found = self.locator.locate(img)?;
        }
        for r in regions {
            let (mx, my) = ((r[2] - r[0]) * 0.1, (r[3] - r[1]) * 0.1);
            let Some((crop, ox, oy)) = img.crop([r[0] - mx, r[1] - my, r[2] + mx, r[3] + my])
            else {
                continue;
            };
            // A small region (a distant vehicle) is enlarged so its plate reaches the
            // localiser's smallest anchors; the reading still samples the full frame.
            let longest = crop.width.max(crop.height) as f32;
            let scale = (REGION_SIDE / longest).clamp(1.0, MAX_REGION_UPSCALE);
            let crop = if scale > 1.0 {
                crop.resized(
                    (crop.width as f32 * scale).round() as u32,
                    (crop.height as f32 * scale).round() as u32,
                )
            } else {
                crop
            };
            for mut p in self.locator.locate(&crop)? {
                for (i, v) in p.bbox.iter_mut().enumerate() {
                    *v = *v / scale + if i % 2 == 0 { ox } else { oy };
                }
                for c in &mut p.corners {
                    c[0] = c[0] / scale + ox;
                    c[1] = c[1] / scale + oy;
                }
                found.push(p);
            }
        }
        Ok(nms(found, self.nms_iou, |p| p.bbox, |p| p.score))
    }

    /// Reads each located plate (rectified by its corners) freely, without plate grammar or
    /// a confidence threshold: what the recogniser sees on its own, for diagnostics.
    pub fn recognise(
        &mut self,
        img: &BgrImage,
        found: Vec<PlateLocation>,
    ) -> Result<Vec<(PlateLocation, TextReading)>, InferError> {
        let (crops, located) = self.crops(img, found);
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let readings = self.recognizer.read(&crops)?;
        Ok(located.into_iter().zip(readings).collect())
    }

    /// Each located plate rectified by its corners (widened by [`CROP_MARGIN`]) into a crop
    /// of the recogniser's height, with the locations kept (degenerate ones dropped).
    fn crops(
        &self,
        img: &BgrImage,
        found: Vec<PlateLocation>,
    ) -> (Vec<BgrImage>, Vec<PlateLocation>) {
        let h = self.recognizer.input_height();
        let mut crops = Vec::with_capacity(found.len());
        let mut located = Vec::with_capacity(found.len());
        for p in found {
            let c = expand_quad(&p.corners, CROP_MARGIN);
            let width = (dist(c[0], c[1]) + dist(c[3], c[2])) / 2.0;
            let height = (dist(c[0], c[3]) + dist(c[1], c[2])) / 2.0;
            if height < 2.0 || width < 2.0 {
                continue;
            }
            let w = ((h as f32 * width / height).round() as u32).clamp(h / 2, h * 12);
            if let Some(crop) = warp_quad(img, &c, w, h) {
                crops.push(crop);
                located.push(p);
            }
        }
        (crops, located)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharpeyes_wire::plate::shape;

    fn chars(s: &str) -> Vec<(char, f32)> {
        s.chars().map(|c| (c, 0.9)).collect()
    }

    #[test]
    fn grammar_accepts_ordinary_new_energy_and_special_plates() {
        for (input, plate) in [
            ("川A12345", "川A12345"),
            ("川A·12345", "川A12345"),
            ("京N-8M2Q7", "京N8M2Q7"),
            ("粤BD12345", "粤BD12345"),
            ("沪AD1234F", "沪AD1234F"),
            ("苏E1234挂", "苏E1234挂"),
            ("粤Z1234港", "粤Z1234港"),
        ] {
            let (text, conf) = plate_grammar(&chars(input)).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(text, plate);
            assert_eq!(conf.len(), plate.chars().count());
        }
    }

    #[test]
    fn grammar_refuses_what_no_plate_can_be() {
        for input in [
            "",
            "川A1234",     // too short
            "川A1234567",  // too long
            "AA12345",     // no province
            "川112345",    // no letter after the province
            "川AO2345",    // O is never used
            "川A12挂45",   // special character not last
            "川A123456挂", // special on a new-energy plate
            "川a12345",    // lower case
            "川A12345\n",  // stray character
        ] {
            assert!(plate_grammar(&chars(input)).is_none(), "{input:?}");
        }
    }

    #[test]
    fn alphabet_holds_every_plate_character() {
        assert!("京沪川粤琼ABCHJKZ0189挂港".chars().all(in_plate_alphabet));
        assert!(!"IO·-a中".chars().any(in_plate_alphabet));
        assert_eq!(PROVINCES.chars().count(), 31);
    }

    #[test]
    fn per_position_grammar_agrees_with_shape() {
        // Every text made of a few characters of each kind, at lengths 6 to 9.
        let pool: Vec<char> = "川京A1O挂I8Dz".chars().collect();
        let mut n = 0;
        for len in 6..=9 {
            for code in 0..pool.len().pow(3) {
                // Vary three positions (0, 1 and one serial or suffix slot), the rest fixed.
                let mut text: Vec<char> = std::iter::repeat_n('5', len).collect();
                let slot = 2 + code % (len - 2);
                text[0] = pool[code % pool.len()];
                text[1] = pool[(code / pool.len()) % pool.len()];
                text[slot] = pool[(code / pool.len() / pool.len()) % pool.len()];
                let s: String = text.iter().collect();
                let each = text
                    .iter()
                    .enumerate()
                    .all(|(k, &c)| plate_char_allowed(k, len, c));
                assert_eq!(each, shape(&s).is_ok(), "{s}");
                n += each as usize;
            }
        }
        assert!(n > 40, "{n} plates among the texts");
    }

    /// A `w`×`h` crop (BGR) whose rows run from `top` to `bottom`, with dark "characters" in
    /// every other column band.
    fn crop(top: [u8; 3], bottom: [u8; 3], ink: [u8; 3]) -> BgrImage {
        let (w, h) = (150u32, 48u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            let t = y as f32 / (h - 1) as f32;
            for x in 0..w {
                let on_char = (10..38).contains(&y) && (x / 10) % 2 == 1;
                for c in 0..3 {
                    let bg = top[c] as f32 * (1.0 - t) + bottom[c] as f32 * t;
                    data.push(if on_char { ink[c] } else { bg.round() as u8 });
                }
            }
        }
        BgrImage::new(w, h, data).unwrap()
    }

    #[test]
    fn plate_colour_tells_blue_green_and_others_apart() {
        // BGR: blue plate, white characters; green plate fading to white, black characters.
        let blue = crop([160, 58, 18], [135, 45, 12], [245, 245, 245]);
        let green = crop([236, 246, 236], [90, 185, 60], [15, 15, 15]);
        let yellow = crop([20, 190, 230], [20, 170, 210], [15, 15, 15]);
        let grey = crop([128, 128, 128], [100, 100, 100], [20, 20, 20]);
        assert_eq!(plate_colour(&blue), PlateColour::Blue);
        assert_eq!(plate_colour(&green), PlateColour::Green);
        assert_eq!(plate_colour(&yellow), PlateColour::Other);
        assert_eq!(plate_colour(&grey), PlateColour::Other);
    }

    #[test]
    fn corners_are_ordered_clockwise_from_top_left() {
        let want = [[10.0, 10.0], [50.0, 12.0], [49.0, 30.0], [11.0, 28.0]];
        let shuffled = [want[2], want[0], want[3], want[1]];
        assert_eq!(order_corners(shuffled), want);
    }
}
