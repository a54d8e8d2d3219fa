//! Chinese licence plates: the one definition of how plate text is normalised, which shapes
//! are plates, and which characters OCR confuses, shared by the agents (plate watchlist) and
//! the aggregator (vehicle fusion, fuzzy search).
//!
//! ## Normalisation ([`normalize`])
//! Full-width forms (`Ａ`, `１`, `－`) become ASCII, ASCII letters are upper-cased, and
//! separators are dropped: whitespace (including the ideographic space) and
//! [`SEPARATORS`] (`·` and its look-alikes, `-`, `_`, `.`). Nothing else changes, so
//! `京a·12345` and `京A 12345` both become `京A12345`. Normalisation never fails; [`shape`]
//! says whether the result is a plate.
//!
//! ## Shape ([`shape`])
//! A province character ([`PROVINCES`]), a capital letter other than `I`, then either
//! 5 characters (an ordinary blue/yellow plate; the last may be one of [`SPECIALS`]: trailer,
//! coach, police, Hong Kong, Macau, consulate) or 6 (a green new-energy plate). Serial
//! characters are digits and capital letters other than `I` and `O`, which plates never use.
//!
//! ## Confusable characters ([`confusable`], [`compare`], [`canonical`])
//! OCR on small, blurred or night-time plates swaps characters of similar shape. The groups
//! below are equivalence classes: two characters are confusable when they are different and
//! in the same group. `I` and `O` never appear on a plate, but readers without the plate
//! alphabet produce them, so they join the digits they stand for.
//!
//! | group | characters | the confusion |
//! | --- | --- | --- |
//! | 0 | `0 D Q O` | closed round shapes |
//! | 8 | `8 B` | two bowls |
//! | 1 | `1 I` | one vertical stroke |
//! | 2 | `2 Z` | top bar, diagonal, bottom bar |
//! | 5 | `5 S` | open S-curve |
//! | 6 | `6 G` | closed lower bowl |
//! | 7 | `7 T` | top bar with one stem |
//! | 4 | `4 A` | triangle with a crossbar |
//!
//! Province characters and the special suffixes are never confusable with anything: a
//! different province is a different plate. A reading *matches a plate fuzzily* when it has
//! the same length and differs in exactly one position, by a confusable pair
//! ([`PlateMatch::Confusable`]); two differences, or one non-confusable difference, is a
//! different plate. [`canonical`] maps every character to its group's first member (the
//! digit), so plates that are exact or fuzzy matches of each other share a canonical form:
//! use it as an index key, then confirm candidates with [`compare`] (the canonical form also
//! equates plates with several confusable differences, which are not matches).

use thiserror::Error;

/// The 31 province-level abbreviations that open a civil plate.
pub const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// Characters that may close an ordinary (7-character) plate: trailer, coach, police,
/// Hong Kong, Macau, consulate.
pub const SPECIALS: &str = "挂学警港澳领";

/// Separators dropped by [`normalize`], besides whitespace (after full-width forms became
/// ASCII, so `－` and `．` are covered by `-` and `.`).
pub const SEPARATORS: &[char] = &[
    '·', '•', '・', '‧', '∙', '⋅', '-', '_', '.', '‐', '‑', '–', '—',
];

/// The confusable groups (see the module documentation); the first character of each is its
/// canonical form.
pub const CONFUSABLE_GROUPS: [&str; 8] = ["0DQO", "8B", "1I", "2Z", "5S", "6G", "7T", "4A"];

/// Why a text is not a plate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlateError {
    /// Plates have 7 (ordinary) or 8 (new-energy) characters.
    #[error("a plate has 7 or 8 characters, not {0}")]
    Length(usize),
    /// The first character is not a province abbreviation.
    #[error("{0:?} is not a province character")]
    Province(char),
    /// The second character is not a capital letter (other than `I`).
    #[error("{0:?} is not an issuing-authority letter")]
    Letter(char),
    /// A serial character is neither a digit nor a capital letter other than `I` and `O`
    /// (nor, last on an ordinary plate, a special suffix).
    #[error("{found:?} at position {position} is not a serial character")]
    Serial {
        /// Character position (0 = province).
        position: usize,
        /// The character.
        found: char,
    },
}

/// The kinds of plate shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlateShape {
    /// Province, letter, 5 serial characters (blue or yellow plate).
    Ordinary,
    /// Province, letter, 4 serial characters and a special suffix (`挂学警港澳领`).
    Special,
    /// Province, letter, 6 serial characters (green new-energy plate).
    NewEnergy,
}

/// The ASCII character a full-width form (`U+FF01..=U+FF5E`) stands for; others unchanged.
fn fullwidth_to_ascii(c: char) -> char {
    match c as u32 {
        u @ 0xFF01..=0xFF5E => char::from_u32(u - 0xFF01 + 0x21).unwrap_or(c),
        _ => c,
    }
}

/// Whether `c` is dropped by normalisation.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || SEPARATORS.contains(&c)
}

/// Appends the normalised form of `text` to `out` (no allocation once `out` has room).
pub fn normalize_into(text: &str, out: &mut String) {
    for c in text.chars() {
        let c = fullwidth_to_ascii(c);
        if !is_separator(c) {
            out.push(c.to_ascii_uppercase());
        }
    }
}

/// The normalised form of `text`: full-width forms to ASCII, upper case, no separators.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, &mut out);
    out
}

/// A digit or a capital letter other than `I` and `O` (plates never use those two).
pub fn is_serial_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && c != 'I' && c != 'O')
}

/// The shape of a normalised plate, or why it is none.
pub fn shape(plate: &str) -> Result<PlateShape, PlateError> {
    let n = plate.chars().count();
    if n != 7 && n != 8 {
        return Err(PlateError::Length(n));
    }
    let mut special = false;
    for (i, c) in plate.chars().enumerate() {
        match i {
            0 if !PROVINCES.contains(c) => return Err(PlateError::Province(c)),
            1 if !c.is_ascii_uppercase() || c == 'I' => return Err(PlateError::Letter(c)),
            0 | 1 => {}
            _ if is_serial_char(c) => {}
            6 if n == 7 && SPECIALS.contains(c) => special = true,
            position => return Err(PlateError::Serial { position, found: c }),
        }
    }
    Ok(match (n, special) {
        (8, _) => PlateShape::NewEnergy,
        (_, true) => PlateShape::Special,
        _ => PlateShape::Ordinary,
    })
}

/// Normalises `text` and checks that it is a plate.
pub fn parse(text: &str) -> Result<String, PlateError> {
    let plate = normalize(text);
    shape(&plate)?;
    Ok(plate)
}

/// The confusable group of `c` (an index into [`CONFUSABLE_GROUPS`]), if it has one.
pub fn confusable_group(c: char) -> Option<usize> {
    Some(match c {
        '0' | 'D' | 'Q' | 'O' => 0,
        '8' | 'B' => 1,
        '1' | 'I' => 2,
        '2' | 'Z' => 3,
        '5' | 'S' => 4,
        '6' | 'G' => 5,
        '7' | 'T' => 6,
        '4' | 'A' => 7,
        _ => return None,
    })
}

/// Whether `a` and `b` are different characters that OCR confuses (same group).
pub fn confusable(a: char, b: char) -> bool {
    a != b && confusable_group(a).is_some_and(|g| confusable_group(b) == Some(g))
}

/// `c`'s canonical form: the first member of its confusable group, else `c` itself.
pub fn canonical_char(c: char) -> char {
    match confusable_group(c) {
        Some(g) => CONFUSABLE_GROUPS[g].chars().next().unwrap_or(c),
        None => c,
    }
}

/// Appends the canonical form of a normalised plate to `out` (every character replaced by
/// [`canonical_char`]).
pub fn canonical_into(plate: &str, out: &mut String) {
    out.extend(plate.chars().map(canonical_char));
}

/// The canonical form of a normalised plate: equal for plates that match exactly or fuzzily.
pub fn canonical(plate: &str) -> String {
    let mut out = String::with_capacity(plate.len());
    canonical_into(plate, &mut out);
    out
}

/// How a reading relates to a plate (both normalised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateMatch {
    /// The same text.
    Exact,
    /// Same length, exactly one position differs, by a confusable pair.
    Confusable {
        /// The differing position (in characters).
        position: usize,
        /// The character of the first argument (the reading).
        read: char,
        /// The character of the second argument (the listed plate).
        listed: char,
    },
    /// Anything else.
    Different,
}

impl PlateMatch {
    /// Whether it is an exact or a fuzzy match.
    pub fn is_match(self) -> bool {
        self != PlateMatch::Different
    }
}

/// Compares a reading with a plate, both normalised; see [`PlateMatch`]. No allocation.
pub fn compare(read: &str, listed: &str) -> PlateMatch {
    let (mut a, mut b) = (read.chars(), listed.chars());
    let mut diff = None;
    let mut position = 0;
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if diff.is_none() && confusable(x, y) => {
                diff = Some((position, x, y));
            }
            _ => return PlateMatch::Different,
        }
        position += 1;
    }
    match diff {
        None => PlateMatch::Exact,
        Some((position, read, listed)) => PlateMatch::Confusable {
            position,
            read,
            listed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_separators_and_upper_cases() {
        for (input, want) in [
            ("京A·12345", "京A12345"),
            ("京a 12345", "京A12345"),
            ("京A-123 45", "京A12345"),
            ("粤b•d3k56", "粤BD3K56"),
            ("沪Ｃ－７Ｋ９Ｌ２", "沪C7K9L2"),
            ("川A\u{3000}12345\n", "川A12345"),
            ("苏E_5F2G8", "苏E5F2G8"),
            ("", ""),
        ] {
            assert_eq!(normalize(input), want, "{input:?}");
        }
        let mut buf = String::from("x");
        normalize_into("京A·1", &mut buf);
        assert_eq!(buf, "x京A1", "appends");
    }

    #[test]
    fn shapes_of_ordinary_special_and_new_energy_plates() {
        assert_eq!(shape("川A12345"), Ok(PlateShape::Ordinary));
        assert_eq!(shape("京N8M2Q7"), Ok(PlateShape::Ordinary));
        assert_eq!(shape("苏E1234挂"), Ok(PlateShape::Special));
        assert_eq!(shape("粤Z1234港"), Ok(PlateShape::Special));
        assert_eq!(shape("沪AD12345"), Ok(PlateShape::NewEnergy));
        assert_eq!(parse("京a·d12345"), Ok("京AD12345".to_string()));
    }

    #[test]
    fn shape_refuses_what_no_plate_can_be() {
        assert_eq!(shape(""), Err(PlateError::Length(0)));
        assert_eq!(shape("川A1234"), Err(PlateError::Length(6)));
        assert_eq!(shape("川A1234567"), Err(PlateError::Length(9)));
        assert_eq!(shape("AA12345"), Err(PlateError::Province('A')));
        assert_eq!(shape("川112345"), Err(PlateError::Letter('1')));
        assert_eq!(shape("川I12345"), Err(PlateError::Letter('I')));
        let serial = |position, found| Err(PlateError::Serial { position, found });
        assert_eq!(shape("川AO2345"), serial(2, 'O'));
        assert_eq!(shape("川A12挂45"), serial(4, '挂'));
        assert_eq!(shape("川A123456挂"), Err(PlateError::Length(9)));
        assert_eq!(
            shape("川A12345挂"),
            serial(7, '挂'),
            "no suffix on new energy"
        );
        assert_eq!(shape("川a12345"), Err(PlateError::Letter('a')));
        assert!(parse("京A·1234").is_err());
    }

    #[test]
    fn confusable_groups_are_disjoint_and_canonical_is_the_first_member() {
        let mut seen = std::collections::HashSet::new();
        for (g, group) in CONFUSABLE_GROUPS.iter().enumerate() {
            let first = group.chars().next().unwrap();
            for c in group.chars() {
                assert!(seen.insert(c), "{c} in two groups");
                assert_eq!(confusable_group(c), Some(g));
                assert_eq!(canonical_char(c), first);
            }
        }
        assert!(confusable('0', 'D') && confusable('Q', 'O') && confusable('8', 'B'));
        assert!(confusable('2', 'Z') && confusable('5', 'S') && confusable('T', '7'));
        assert!(!confusable('0', '0'), "equal is not confusable");
        assert!(!confusable('0', '8') && !confusable('A', 'B') && !confusable('京', '苏'));
        assert_eq!(canonical("京B8D0Q5S"), "京8800055");
    }

    #[test]
    fn compare_matches_exactly_or_by_one_confusable_character() {
        assert_eq!(compare("京A12345", "京A12345"), PlateMatch::Exact);
        assert_eq!(
            compare("京N8M207", "京N8M2Q7"),
            PlateMatch::Confusable {
                position: 5,
                read: '0',
                listed: 'Q'
            }
        );
        assert!(compare("鲁B6H9T0", "鲁86H9T0").is_match(), "B/8");
        // Two confusable differences, one non-confusable difference, other lengths, another
        // province: different plates.
        assert_eq!(compare("京N8M207", "京N8MZQ7"), PlateMatch::Different);
        assert_eq!(compare("京A12345", "京A12346"), PlateMatch::Different);
        assert_eq!(compare("京A12345", "京A123456"), PlateMatch::Different);
        assert_eq!(compare("京A123456", "京A12345"), PlateMatch::Different);
        assert_eq!(compare("苏A12345", "京A12345"), PlateMatch::Different);
        // Fuzzy matches share the canonical form.
        assert_eq!(canonical("京N8M207"), canonical("京N8M2Q7"));
    }
}
