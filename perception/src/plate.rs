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

/// A text-line recogniser family.
pub trait TextRecognizer: Send {
    /// The crop height the model reads at; crops of this height need no resizing.
    fn input_height(&self) -> u32;
    /// Reads each crop (one text line each).
    fn read(&mut self, crops: &[BgrImage]) -> Result<Vec<TextReading>, InferError>;
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
        let mut found = Vec::new();
        if whole_image || regions.is_empty() {
            found = self.locator.locate(img)?;
        }
        {
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
            found = nms(found, self.nms_iou, |p| p.bbox, |p| p.score);
        }
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
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let readings = self.recognizer.read(&crops)?;
        Ok(located
            .into_iter()
            .zip(readings)
            .filter_map(|(p, r)| {
                let (text, char_confidences) = plate_grammar(&r.chars)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn corners_are_ordered_clockwise_from_top_left() {
        let want = [[10.0, 10.0], [50.0, 12.0], [49.0, 30.0], [11.0, 28.0]];
        let shuffled = [want[2], want[0], want[3], want[1]];
        assert_eq!(order_corners(shuffled), want);
    }
}
