//! The API's parameter parsers: query strings, path segments, the purpose headers, cursors.
//! Pure functions of their input (time passed in), fuzzed (`fuzz/fuzz_targets/api_params.rs`).
//! Errors are the text of a 400 problem: they name the parameter and never echo more than a
//! short, sanitised piece of the input.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::Area;

/// A query string, decoded: each name at most once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query(pub BTreeMap<String, String>);

/// A short, printable excerpt of untrusted input for an error message.
pub fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect::<String>();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// `s` without control characters (an error message quoting short, checked input).
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

impl Query {
    /// Parses `a=1&b=x%20y` (URL-encoded); a repeated or unknown name is an error
    /// (`known` lists the accepted names).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, String> {
        let mut m = BTreeMap::new();
        let Some(raw) = raw else {
            return Ok(Self(m));
        };
        if raw.len() > 8192 {
            return Err("the query string is longer than 8192 bytes".into());
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| "the query string is not valid URL encoding".to_string())?;
        for (k, v) in pairs {
            if !known.contains(&k.as_str()) {
                return Err(format!(
                    "unknown parameter {:?} (accepted: {})",
                    excerpt(&k),
                    known.join(", ")
                ));
            }
            if m.insert(k.clone(), v).is_some() {
                return Err(format!("parameter {k:?} given twice"));
            }
        }
        Ok(Self(m))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, required.
    pub fn req(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("parameter {name:?} is required"))
    }

    /// A boolean (`true`/`false`/`1`/`0`, or present without value = true); default false.
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(false),
            Some("" | "true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(v) => Err(format!("{name}={:?} is not true or false", excerpt(v))),
        }
    }

    /// A number within `lo..=hi`, default `default`.
    pub fn number<T>(
        &self,
        name: &str,
        lo: T,
        hi: T,
        default: Option<T>,
    ) -> Result<Option<T>, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                let n: T = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={:?} is not a number", excerpt(v)))?;
                if !(n >= lo && n <= hi) {
                    return Err(format!("{name}={n} is outside {lo}..={hi}"));
                }
                Ok(Some(n))
            }
        }
    }

    /// A time (`from`, `to`, `since`): RFC 3339 or a duration before `now_ms`, as the CLI
    /// takes it (`aggregator::query::parse_time`).
    pub fn time(&self, name: &str, now_ms: i64) -> Result<Option<i64>, String> {
        self.get(name)
            .map(|v| {
                crate::query::parse_time(v, now_ms)
                    .map_err(|e| format!("{name}: {}", excerpt(&e.to_string())))
            })
            .transpose()
    }

    /// `from` and `to` as a window: both optional (`to` defaults to now when `from` is
    /// given); `from` after `to` is an error.
    pub fn window(&self, now_ms: i64) -> Result<Option<(i64, i64)>, String> {
        let from = self.time("from", now_ms)?;
        let to = self.time("to", now_ms)?;
        match (from, to) {
            (None, None) => Ok(None),
            (f, t) => {
                let (f, t) = (f.unwrap_or(i64::MIN), t.unwrap_or(now_ms));
                if f > t {
                    return Err("from is after to".into());
                }
                Ok(Some((f, t)))
            }
        }
    }

    /// The page size: `limit` within `1..=max`, default `default`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, String> {
        Ok(self
            .number("limit", 1, max, Some(default))?
            .unwrap_or(default))
    }

    /// The output format of the sighting routes.
    pub fn format(&self) -> Result<Format, String> {
        match self.get("format") {
            None | Some("json") => Ok(Format::Json),
            Some("geojson") => Ok(Format::GeoJson),
            Some("csv") => Ok(Format::Csv),
            Some(v) => Err(format!("format={:?}: json, geojson or csv", excerpt(v))),
        }
    }

    /// The area of `/sightings`: `grid` or `bbox`, exactly one.
    pub fn area(&self) -> Result<Area, String> {
        match (self.get("grid"), self.get("bbox")) {
            (Some(g), None) => {
                let g = g.trim();
                if g.is_empty() || g.len() > 128 || g.chars().any(char::is_control) {
                    return Err("grid must be 1..=128 printable characters".into());
                }
                Ok(Area::Grid(g.to_string()))
            }
            (None, Some(b)) => {
                let [lat1, lon1, lat2, lon2] = bbox(b)?;
                Ok(Area::BBox([lat1, lon1], [lat2, lon2]))
            }
            _ => Err("give grid or bbox (one of them)".into()),
        }
    }
}

/// Output of a sighting route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The route's JSON document.
    Json,
    /// A GeoJSON FeatureCollection (`aggregator::query::geojson`).
    GeoJson,
    /// CSV, one sighting a line (`aggregator::query::sightings_csv`).
    Csv,
}

/// `LAT1,LON1,LAT2,LON2` in WGS 84 degrees (`aggregator::query::parse_bbox`, as the CLI).
pub fn bbox(s: &str) -> Result<[f64; 4], String> {
    if s.len() > 128 {
        return Err("bbox is longer than 128 bytes".into());
    }
    crate::query::parse_bbox(s).map_err(|e| format!("bbox: {}", printable(&e.to_string())))
}

/// A person id: `P-12` or `12` (`aggregator::query::parse_person`, as the CLI).
pub fn person(s: &str) -> Result<u64, String> {
    if s.len() > 24 {
        return Err(format!("{:?} is not a person id (P-12 or 12)", excerpt(s)));
    }
    crate::query::parse_person(s).map_err(|e| printable(&e.to_string()))
}

/// A vehicle id path segment (`V-12` or `12`).
pub fn vehicle(s: &str) -> Result<u64, String> {
    if s.len() > 24 {
        return Err(format!("{:?} is not a vehicle id (V-12 or 12)", excerpt(s)));
    }
    crate::query::parse_vehicle(s).map_err(|e| printable(&e.to_string()))
}

/// A plate query: normalised (`wire::plate::normalize`), non-empty.
pub fn plate(s: &str) -> Result<String, String> {
    if s.len() > 64 {
        return Err("plate is longer than 64 bytes".into());
    }
    let p = sharpeyes_wire::plate::normalize(s);
    if p.is_empty() || p.chars().any(char::is_control) {
        return Err(format!("plate {:?} has no letters or digits", excerpt(s)));
    }
    Ok(p)
}

/// A path segment naming something (agent, alert id, evidence role, enrollment id, token
/// name): 1..=128 bytes, printable, no `/`, `\`, `..` or NUL: it is only ever compared with
/// stored values, never used as a file name, and this keeps traversal attempts out early.
pub fn segment(name: &str, s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 128
        || s.contains(['/', '\\'])
        || s.contains("..")
        || s.chars().any(char::is_control)
    {
        return Err(format!("{name} {:?} is not a valid name", excerpt(s)));
    }
    Ok(s.to_string())
}

/// A header a person types (`X-Purpose`, `X-Case`) as text: its bytes as UTF-8 (raw
/// Chinese works: `X-Purpose: 盗窃案调查`), and, when the value holds a `%XX` escape (two hex
/// digits after `%`), percent-decoded first (`%E7%9B%97%E7%AA%83…`, what browsers and
/// `curl --data-urlencode` users send; a `+` stays a `+`). Bytes that are not UTF-8 after
/// that are an error.
pub fn header_text(raw: &[u8]) -> Result<String, String> {
    let has_escape = raw
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    let bytes: std::borrow::Cow<'_, [u8]> = if has_escape {
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%'
                && i + 2 < raw.len()
                && raw[i + 1].is_ascii_hexdigit()
                && raw[i + 2].is_ascii_hexdigit()
            {
                let h = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(h(raw[i + 1]) * 16 + h(raw[i + 2]));
                i += 3;
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        out.into()
    } else {
        raw.into()
    };
    String::from_utf8(bytes.into_owned())
        .map_err(|_| "the header is neither UTF-8 nor percent-encoded UTF-8".to_string())
}

/// Whether `c` may be in a case reference: letters and digits of any script, `. _ / - # :
/// ( ) [ ]`, and any other printable non-ASCII character (`〔2026〕`, `（刑）`, `号`); no
/// spaces, controls or other ASCII punctuation.
fn case_char(c: char) -> bool {
    c.is_alphanumeric()
        || "._/-#:()[]".contains(c)
        || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
}

/// The purpose headers, decoded (see [`header_text`]): `X-Purpose` 3..=200 characters
/// (any script, no control characters), `X-Case` 1..=64 characters of [`case_char`].
/// Lengths count characters, not bytes.
pub fn purpose(purpose: Option<&str>, case: Option<&str>) -> Result<(String, String), String> {
    let p = purpose.map(str::trim).unwrap_or("");
    let n = p.chars().count();
    if !(3..=200).contains(&n) || p.chars().any(char::is_control) {
        return Err(
            "this search needs a purpose: X-Purpose (3..=200 characters, UTF-8 or percent-encoded UTF-8) and X-Case (case reference)"
                .into(),
        );
    }
    let c = case.map(str::trim).unwrap_or("");
    if !(1..=64).contains(&c.chars().count()) || !c.chars().all(case_char) {
        return Err(
            "this search needs a case reference: X-Case (1..=64 letters or digits of any script and . _ / - # : ( ) [ ], no spaces; UTF-8 or percent-encoded UTF-8)".into(),
        );
    }
    Ok((p.to_string(), c.to_string()))
}

/// Encodes a page position as an opaque cursor (URL-safe base64 of its JSON).
pub fn cursor<T: Serialize>(key: &T) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Decodes a cursor made by [`cursor`].
pub fn uncursor<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    if s.len() > 1024 {
        return Err("cursor is too long".into());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| "cursor is not one this API made (pass next_cursor back as is)".into())
}

/// A duration like the CLI's (`30d`, `12h`) as ms.
pub fn duration_ms(s: &str) -> Result<i64, String> {
    humantime::parse_duration(s.trim())
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|&ms| ms > 0)
        .ok_or_else(|| format!("{:?} is not a duration (30d, 12h)", excerpt(s)))
}

/// Runs every parser of this module over one input (the fuzz target and its regression
/// test): none may panic.
pub fn exercise(input: &str, now_ms: i64) {
    let _ = Query::parse(
        Some(input),
        &[
            "plate", "from", "to", "bbox", "grid", "limit", "cursor", "format", "fuzzy",
        ],
    )
    .map(|q| {
        let _ = q.window(now_ms);
        let _ = q.area();
        let _ = q.limit(100, 1000);
        let _ = q.format();
        let _ = q.flag("fuzzy");
        let _ = q.get("cursor").map(uncursor::<crate::store::SightingKey>);
    });
    let _ = bbox(input);
    let _ = person(input);
    let _ = plate(input);
    let _ = segment("x", input);
    let mid = (0..=input.len() / 2)
        .rev()
        .find(|&i| input.is_char_boundary(i))
        .unwrap_or(0);
    let (a, b) = input.split_at(mid);
    let _ = purpose(Some(a), Some(b));
    let _ = header_text(input.as_bytes()).map(|t| purpose(Some(&t), Some(&t)));
    let _ = uncursor::<crate::store::AlertKey>(input);
    let _ = duration_ms(input);
    let _ = crate::query::parse_time(input, now_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = Query::parse(
            Some("plate=%E4%BA%ACA12345&fuzzy=1&limit=5"),
            &["plate", "fuzzy", "limit"],
        )
        .unwrap();
        assert_eq!(plate(q.req("plate").unwrap()).unwrap(), "京A12345");
        assert!(q.flag("fuzzy").unwrap());
        assert_eq!(q.limit(100, 1000).unwrap(), 5);
        assert!(
            Query::parse(Some("x=1"), &["plate"])
                .unwrap_err()
                .contains("unknown")
        );
        assert!(
            Query::parse(Some("a=1&a=2"), &["a"])
                .unwrap_err()
                .contains("twice")
        );
        let q = Query::parse(Some("limit=0"), &["limit"]).unwrap();
        assert!(q.limit(100, 1000).is_err());
        let q = Query::parse(Some("from=2h&to=1h"), &["from", "to"]).unwrap();
        let (f, t) = q.window(10_000_000).unwrap().unwrap();
        assert_eq!((f, t), (10_000_000 - 7_200_000, 10_000_000 - 3_600_000));
        let q = Query::parse(Some("from=1h&to=2h"), &["from", "to"]).unwrap();
        assert!(q.window(10_000_000).is_err());
    }

    #[test]
    fn header_text_takes_raw_and_percent_encoded_utf8() {
        assert_eq!(header_text("盗窃案调查".as_bytes()).unwrap(), "盗窃案调查");
        assert_eq!(
            header_text(b"%E7%9B%97%E7%AA%83%E6%A1%88%E8%B0%83%E6%9F%A5").unwrap(),
            "盗窃案调查"
        );
        assert_eq!(
            header_text(b"theft investigation").unwrap(),
            "theft investigation"
        );
        assert_eq!(header_text(b"100% sure").unwrap(), "100% sure", "no escape");
        assert_eq!(header_text(b"a+b%20c").unwrap(), "a+b c");
        assert!(header_text(b"%E7%9B").is_err(), "cut UTF-8");
        assert!(header_text(&[0xff, 0xfe]).is_err());
        assert_eq!(header_text(b"%").unwrap(), "%");
        assert_eq!(header_text(b"ab%4").unwrap(), "ab%4");
    }

    #[test]
    fn segments_purpose_cursors() {
        assert!(segment("agent", "../etc").is_err());
        assert!(segment("agent", "a/b").is_err());
        assert!(segment("agent", "agent-1").is_ok());
        assert_eq!(person("P-12").unwrap(), 12);
        assert!(person("12; DROP TABLE x").is_err());
        assert!(purpose(Some("ok"), Some("C1")).is_err());
        assert!(purpose(Some("theft investigation"), Some("bad case!")).is_err());
        assert!(purpose(Some("theft investigation"), Some("2026/0042")).is_ok());
        // Chinese: characters are counted, not bytes.
        let (p, c) = purpose(Some("盗窃案调查"), Some("京公（刑）字〔2026〕42号")).unwrap();
        assert_eq!(
            (p.as_str(), c.as_str()),
            ("盗窃案调查", "京公（刑）字〔2026〕42号")
        );
        assert!(purpose(Some("盗窃"), Some("C1")).is_err(), "2 characters");
        assert!(
            purpose(Some("盗窃案"), Some("C1")).is_ok(),
            "3 characters, 9 bytes"
        );
        let long_case: String = "案".repeat(64);
        assert!(
            purpose(Some("盗窃案"), Some(&long_case)).is_ok(),
            "64 characters"
        );
        assert!(purpose(Some("盗窃案"), Some(&"案".repeat(65))).is_err());
        assert!(purpose(Some(&"查".repeat(200)), Some("C1")).is_ok());
        assert!(purpose(Some(&"查".repeat(201)), Some("C1")).is_err());
        assert!(purpose(Some("theft"), Some("a b")).is_err(), "no spaces");
        let k = crate::store::AlertKey {
            last_ms: 5,
            agent: "a".into(),
            alert_id: "b".into(),
        };
        assert_eq!(uncursor::<crate::store::AlertKey>(&cursor(&k)).unwrap(), k);
        assert!(uncursor::<crate::store::AlertKey>("!!").is_err());
        assert_eq!(bbox("30,104,31,105").unwrap(), [30.0, 104.0, 31.0, 105.0]);
        assert!(bbox("91,0,0,0").is_err());
        for s in ["", "é", "a=%ZZ", "€€€", "&&&="] {
            exercise(s, 0);
        }
    }
}
