//! Checking a decoded message before anything stores or fuses it.
//!
//! Decoding ([`crate::Codec::decode`]) proves a payload has the schema's shape; this module
//! proves its values are usable: every number finite and in range, every time inside a window
//! around the receiver's clock, every text free of NUL and control characters and of bounded
//! length, every box inside its frame (corners ordered), every list bounded. A receiver calls
//! [`check_envelope`] on each decoded envelope and rejects the message with the typed
//! [`Invalid`] reason when it fails (one bad value rejects the whole message: a message is
//! the unit of storage and acknowledgement, and a partly stored message would be neither
//! right nor retried).
//!
//! Why here, in the wire crate: the agents make these values and the aggregator stores them;
//! both sides read the same rules (an agent can check what it is about to send in tests).
//!
//! Times: track updates, batch spans and alerts carry capture times (UTC ms). A time before
//! `now - max_age_ms` or after `now + max_ahead_ms` is rejected: a gateway whose clock is
//! wrong by years (before 1970, or near `i64::MAX`) would otherwise name partitions that do
//! not exist, overflow day arithmetic, or pin rows and images past every retention run.
//! The status message's `started_ms` and the envelope's `sent_ms` are informational (never
//! partition keys nor retention times) and only need to lie within the absolute bounds.

use thiserror::Error;

use crate::{AgentStatus, Alert, Body, Envelope, Evidence, TrackBatch, TrackUpdate};

/// Bounds a receiver applies ([`check_envelope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The receiver's clock, UTC ms.
    pub now_ms: i64,
    /// Oldest capture time accepted, as an age before `now_ms`, ms.
    pub max_age_ms: i64,
    /// Newest capture time accepted, as a time after `now_ms`, ms (clock skew allowance).
    pub max_ahead_ms: i64,
}

impl Limits {
    /// Limits around `now_ms`: at most `max_age_ms` old, `max_ahead_ms` ahead.
    pub fn around(now_ms: i64, max_age_ms: i64, max_ahead_ms: i64) -> Self {
        Self {
            now_ms,
            max_age_ms,
            max_ahead_ms,
        }
    }

    fn oldest(&self) -> i64 {
        self.now_ms.saturating_sub(self.max_age_ms).max(MIN_TIME_MS)
    }

    fn newest(&self) -> i64 {
        self.now_ms
            .saturating_add(self.max_ahead_ms)
            .min(MAX_TIME_MS)
    }
}

/// No time before this is accepted anywhere (2000-01-01T00:00:00Z).
pub const MIN_TIME_MS: i64 = 946_684_800_000;
/// No time after this is accepted anywhere (3000-01-01T00:00:00Z): far from any overflow of
/// day or partition arithmetic.
pub const MAX_TIME_MS: i64 = 32_503_680_000_000;
/// Longest id (agent, site, camera, alert id), characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free text (alert summary, detail values), characters.
pub const MAX_TEXT_CHARS: usize = 2048;
/// Largest frame side, pixels.
pub const MAX_FRAME_SIDE: u32 = 16_384;
/// Most updates in one track batch.
pub const MAX_UPDATES: usize = 8192;
/// Most evidence images on one alert.
pub const MAX_EVIDENCE: usize = 16;
/// Most entries in an alert's details, an agent's cameras or its counters.
pub const MAX_ENTRIES: usize = 256;
/// Most dimensions of an embedding.
pub const MAX_EMBEDDING_DIMS: usize = 4096;
/// Longest plate text, characters (the longest Chinese plates have 8).
pub const MAX_PLATE_CHARS: usize = 16;
/// Largest evidence image, bytes.
pub const MAX_IMAGE_BYTES: usize = 4 << 20;

/// Why a decoded message was rejected.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Invalid {
    /// A number is NaN or infinite.
    #[error("{field} is not a finite number ({value})")]
    NonFinite {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: f32,
    },
    /// A number outside its range.
    #[error("{field} = {value} is outside {range}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range, in words.
        range: &'static str,
    },
    /// A time outside the accepted window around the receiver's clock.
    #[error(
        "{field} = {value_ms} ms is outside the accepted window [{oldest_ms}, {newest_ms}] \
         around the receiver's clock (is the sender's clock set? see ingest.max_age_days / \
         ingest.max_ahead_s)"
    )]
    Time {
        /// Which field.
        field: &'static str,
        /// Its value.
        value_ms: i64,
        /// Oldest accepted.
        oldest_ms: i64,
        /// Newest accepted.
        newest_ms: i64,
    },
    /// A text with a NUL or control character, empty where it must not be, or too long.
    #[error("{field}: {reason}")]
    Text {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A box whose corners are not ordered (outside its frame), or a frame of no size.
    #[error("{field}: {reason}")]
    Geometry {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A list longer than its bound.
    #[error("{field} has {count} entries, at most {max} are accepted")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// Its length.
        count: usize,
        /// The bound.
        max: usize,
    },
}

impl Invalid {
    /// A stable short name, used as a metrics label (`invalid_*`).
    pub fn kind(&self) -> &'static str {
        match self {
            Invalid::NonFinite { .. } => "invalid_number",
            Invalid::OutOfRange { .. } => "invalid_range",
            Invalid::Time { .. } => "invalid_time",
            Invalid::Text { .. } => "invalid_text",
            Invalid::Geometry { .. } => "invalid_box",
            Invalid::TooMany { .. } => "invalid_count",
        }
    }
}

/// Checks every value of `env` against `limits` (see the [module docs](self)).
pub fn check_envelope(env: &Envelope, limits: &Limits) -> Result<(), Invalid> {
    id("agent", &env.agent)?;
    absolute_time("sent_ms", env.sent_ms)?;
    match &env.body {
        Body::Tracks(b) => tracks(b, limits),
        Body::Alert(a) => alert(a, limits),
        Body::Status(s) => status(s),
        // Published by aggregators to one agent: seq ranges, each ordered.
        Body::Acks(a) => {
            count("acks.ranges", a.ranges.len(), 1 << 16)?;
            for [first, last] in &a.ranges {
                if first > last {
                    return Err(Invalid::OutOfRange {
                        field: "acks.ranges",
                        value: *first as f64,
                        range: "first <= last",
                    });
                }
            }
            Ok(())
        }
        // Published by aggregators (their own, trusted path); still bounded text.
        Body::Watchlists(w) => {
            for f in &w.faces {
                id("watchlists.faces.id", &f.id)?;
                text("watchlists.faces.label", &f.label, MAX_TEXT_CHARS, true)?;
            }
            Ok(())
        }
    }
}

fn tracks(b: &TrackBatch, l: &Limits) -> Result<(), Invalid> {
    id("site", &b.site)?;
    id("camera", &b.camera)?;
    for (field, v) in [("frame_w", b.frame_w), ("frame_h", b.frame_h)] {
        if v == 0 || v > MAX_FRAME_SIDE {
            return Err(Invalid::OutOfRange {
                field,
                value: f64::from(v),
                range: "1..=16384 pixels",
            });
        }
    }
    time("from_ms", b.from_ms, l)?;
    time("to_ms", b.to_ms, l)?;
    if b.from_ms > b.to_ms {
        return Err(Invalid::OutOfRange {
            field: "from_ms",
            value: b.from_ms as f64,
            range: "..=to_ms",
        });
    }
    count("updates", b.updates.len(), MAX_UPDATES)?;
    for u in &b.updates {
        update(u, l)?;
    }
    Ok(())
}

fn update(u: &TrackUpdate, l: &Limits) -> Result<(), Invalid> {
    time("updates.ts_ms", u.ts_ms, l)?;
    unit("updates.score", u.score)?;
    let [x1, y1, x2, y2] = u.bbox.0;
    if x1 > x2 || y1 > y2 {
        return Err(Invalid::Geometry {
            field: "updates.box",
            reason: "corners not ordered (x1 <= x2 and y1 <= y2 inside the frame)",
        });
    }
    if let Some(e) = &u.embedding {
        finite("updates.embedding.scale", e.scale)?;
        if e.scale <= 0.0 {
            return Err(Invalid::OutOfRange {
                field: "updates.embedding.scale",
                value: f64::from(e.scale),
                range: "> 0",
            });
        }
        if e.q.is_empty() {
            return Err(Invalid::Geometry {
                field: "updates.embedding",
                reason: "no dimensions",
            });
        }
        count("updates.embedding", e.q.len(), MAX_EMBEDDING_DIMS)?;
    }
    if let Some(p) = &u.plate {
        text("updates.plate.text", &p.text, MAX_PLATE_CHARS, false)?;
        unit("updates.plate.confidence", p.confidence)?;
    }
    if let Some(t) = &u.thumb {
        evidence("updates.thumb", t)?;
    }
    Ok(())
}

fn alert(a: &Alert, l: &Limits) -> Result<(), Invalid> {
    id("site", &a.site)?;
    id("camera", &a.camera)?;
    id("alert_id", &a.alert_id)?;
    time("ts_ms", a.ts_ms, l)?;
    text("summary", &a.summary, MAX_TEXT_CHARS, true)?;
    count("details", a.details.len(), MAX_ENTRIES)?;
    for (k, v) in &a.details {
        text("details.key", k, MAX_ID_CHARS, false)?;
        text("details.value", v, MAX_TEXT_CHARS, true)?;
    }
    count("evidence", a.evidence.len(), MAX_EVIDENCE)?;
    for e in &a.evidence {
        evidence("evidence", e)?;
    }
    Ok(())
}

fn status(s: &AgentStatus) -> Result<(), Invalid> {
    id("site", &s.site)?;
    text("version", &s.version, MAX_ID_CHARS, true)?;
    if s.started_ms != 0 {
        absolute_time("started_ms", s.started_ms)?;
    }
    count("cameras", s.cameras.len(), MAX_ENTRIES)?;
    for c in &s.cameras {
        id("cameras.id", &c.id)?;
        text("cameras.state", &c.state, MAX_ID_CHARS, false)?;
    }
    count("counters", s.counters.len(), MAX_ENTRIES)?;
    for k in s.counters.keys() {
        text("counters.key", k, MAX_ID_CHARS, false)?;
    }
    Ok(())
}

fn evidence(field: &'static str, e: &Evidence) -> Result<(), Invalid> {
    text(field, &e.role, MAX_ID_CHARS, false)?;
    text(field, &e.mime, MAX_ID_CHARS, false)?;
    if e.data.len() > MAX_IMAGE_BYTES {
        return Err(Invalid::TooMany {
            field,
            count: e.data.len(),
            max: MAX_IMAGE_BYTES,
        });
    }
    Ok(())
}

fn id(field: &'static str, s: &str) -> Result<(), Invalid> {
    text(field, s, MAX_ID_CHARS, false)
}

/// `s` has at most `max` characters, no control character (tabs and line breaks only where
/// `multiline`), and is non-empty unless `multiline` (free text may be empty).
fn text(field: &'static str, s: &str, max: usize, multiline: bool) -> Result<(), Invalid> {
    if s.is_empty() && !multiline {
        return Err(Invalid::Text {
            field,
            reason: "empty",
        });
    }
    let mut n = 0;
    for c in s.chars() {
        n += 1;
        if n > max {
            return Err(Invalid::Text {
                field,
                reason: "too long",
            });
        }
        if c == '\0' {
            return Err(Invalid::Text {
                field,
                reason: "contains a NUL character",
            });
        }
        if c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')) {
            return Err(Invalid::Text {
                field,
                reason: "contains a control character",
            });
        }
    }
    Ok(())
}

fn finite(field: &'static str, v: f32) -> Result<(), Invalid> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Invalid::NonFinite { field, value: v })
    }
}

/// A score or confidence: finite, within 0..=1.
fn unit(field: &'static str, v: f32) -> Result<(), Invalid> {
    finite(field, v)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(Invalid::OutOfRange {
            field,
            value: f64::from(v),
            range: "0..=1",
        });
    }
    Ok(())
}

fn count(field: &'static str, n: usize, max: usize) -> Result<(), Invalid> {
    if n > max {
        return Err(Invalid::TooMany {
            field,
            count: n,
            max,
        });
    }
    Ok(())
}

fn time(field: &'static str, ms: i64, l: &Limits) -> Result<(), Invalid> {
    let (oldest_ms, newest_ms) = (l.oldest(), l.newest());
    if ms < oldest_ms || ms > newest_ms {
        return Err(Invalid::Time {
            field,
            value_ms: ms,
            oldest_ms,
            newest_ms,
        });
    }
    Ok(())
}

fn absolute_time(field: &'static str, ms: i64) -> Result<(), Invalid> {
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        return Err(Invalid::Time {
            field,
            value_ms: ms,
            oldest_ms: MIN_TIME_MS,
            newest_ms: MAX_TIME_MS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectClass, PlateReading, QBox, QEmbedding, TrackEvent};

    const NOW: i64 = 1_800_000_000_000;

    fn limits() -> Limits {
        Limits::around(NOW, 30 * 86_400_000, 600_000)
    }

    fn good() -> Envelope {
        Envelope::new(
            "agent-1",
            1,
            NOW,
            Body::Tracks(TrackBatch {
                site: "西湖区".into(),
                camera: "cam-1".into(),
                frame_w: 1920,
                frame_h: 1080,
                from_ms: NOW - 500,
                to_ms: NOW,
                frames: 3,
                updates: vec![TrackUpdate {
                    track: 1,
                    class: ObjectClass::Car,
                    event: TrackEvent::Start,
                    ts_ms: NOW,
                    bbox: QBox::from_pixels([10.0, 10.0, 200.0, 100.0], 1920, 1080),
                    score: 0.9,
                    embedding: Some(QEmbedding::quantize(&[0.6, 0.8])),
                    plate: Some(PlateReading {
                        text: "京A12345".into(),
                        confidence: 0.9,
                    }),
                    link: None,
                    thumb: None,
                }],
            }),
        )
    }

    fn with(f: impl FnOnce(&mut TrackBatch)) -> Result<(), Invalid> {
        let mut e = good();
        let Body::Tracks(b) = &mut e.body else {
            unreachable!()
        };
        f(b);
        check_envelope(&e, &limits())
    }

    #[test]
    fn a_good_batch_passes_with_chinese_text() {
        assert_eq!(check_envelope(&good(), &limits()), Ok(()));
    }

    #[test]
    fn each_hostile_value_is_rejected_with_its_kind() {
        let kind = |r: Result<(), Invalid>| r.unwrap_err().kind();
        assert_eq!(
            kind(with(|b| b.updates[0].score = f32::NAN)),
            "invalid_number"
        );
        assert_eq!(
            kind(with(|b| b.updates[0].score = f32::INFINITY)),
            "invalid_number"
        );
        assert_eq!(kind(with(|b| b.updates[0].score = 7.0)), "invalid_range");
        assert_eq!(
            kind(with(|b| b.updates[0].ts_ms = -86_400_001)),
            "invalid_time"
        );
        assert_eq!(
            kind(with(|b| b.updates[0].ts_ms = i64::MAX - 5)),
            "invalid_time"
        );
        assert_eq!(
            kind(with(|b| b.updates[0].ts_ms = NOW + 3_600_000)),
            "invalid_time"
        );
        assert_eq!(
            kind(with(|b| b.from_ms = NOW - 40 * 86_400_000)),
            "invalid_time"
        );
        assert_eq!(kind(with(|b| b.site = "s\0ite".into())), "invalid_text");
        assert_eq!(
            kind(with(|b| b.camera = "cam\u{1b}[31m".into())),
            "invalid_text"
        );
        assert_eq!(kind(with(|b| b.camera = String::new())), "invalid_text");
        assert_eq!(kind(with(|b| b.camera = "c".repeat(129))), "invalid_text");
        assert_eq!(
            kind(with(|b| b.updates[0].bbox = QBox([500, 10, 100, 20]))),
            "invalid_box"
        );
        assert_eq!(kind(with(|b| b.frame_w = 0)), "invalid_range");
        assert_eq!(kind(with(|b| b.frame_h = 100_000)), "invalid_range");
        assert_eq!(
            kind(with(
                |b| b.updates = vec![b.updates[0].clone(); MAX_UPDATES + 1]
            )),
            "invalid_count"
        );
        assert_eq!(
            kind(with(
                |b| b.updates[0].embedding.as_mut().unwrap().scale = f32::NAN
            )),
            "invalid_number"
        );
        assert_eq!(
            kind(with(
                |b| b.updates[0].plate.as_mut().unwrap().confidence = -1.0
            )),
            "invalid_range"
        );
        assert_eq!(
            kind(with(
                |b| b.updates[0].plate.as_mut().unwrap().text = "京A\u{0}1".into()
            )),
            "invalid_text"
        );
    }

    #[test]
    fn the_window_follows_the_receivers_clock() {
        let mut e = good();
        e.sent_ms = -5;
        assert_eq!(
            check_envelope(&e, &limits()).unwrap_err().kind(),
            "invalid_time"
        );
        // A limit near i64::MAX does not overflow.
        let l = Limits::around(i64::MAX - 1, i64::MAX, i64::MAX);
        assert!(l.oldest() <= l.newest());
    }
}
