//! Query input and output shared by the CLI and the HTTP API: the parsers of query arguments
//! (times, person ids, bounding boxes; each with a typed error), and tables, JSON, GeoJSON
//! and CSV of stored rows.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::store::watchlist::role_name;
use crate::store::{
    AlertRow, FlagRow, LinkRow, SightingRow, TrackRow, VehicleRow, WatchlistListing,
};

/// Why a time argument was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is neither an RFC 3339 time (2026-11-23T10:15:00Z, 2026-11-23T18:15:00+08:00) nor a duration before now (90s, 10m, 2h, 1d)"
)]
pub struct TimeError(String);

/// A time argument as UTC ms: an RFC 3339 time with any offset (`2026-12-07T08:00:00+08:00`,
/// `…Z`, `…-05:00`; a `T` or a space between date and time; fractions of a second; without
/// an offset it is UTC), or a duration meaning that long before `now_ms` (`90s`, `10m`,
/// `2h`, `1d`; `0s` is now). An offset's `+` that arrived as a space (an unencoded `+` in a
/// URL query string: `from=2026-12-07T08:00:00+08:00`) is taken as `+`.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, TimeError> {
    let s = s.trim();
    let (local, offset_ms) = split_offset(s);
    if let Ok(t) = humantime::parse_rfc3339_weak(local) {
        let ms = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        return Ok(ms.saturating_sub(offset_ms));
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err(TimeError(s.to_string())),
    }
}

/// A trailing numeric UTC offset (`+08:00`, `-05:00`, `+0800`, ` 08:00`) cut off a date-time
/// (one that has a time: a `:` before it), as ms east of UTC; `Z` and no offset are left to
/// the RFC 3339 parser (0).
fn split_offset(s: &str) -> (&str, i64) {
    let b = s.as_bytes();
    let parse = |sign: u8, hh: &str, mm: &str| -> Option<i64> {
        if !(hh.len() == 2 && mm.len() == 2) {
            return None;
        }
        let (h, m): (i64, i64) = (hh.parse().ok()?, mm.parse().ok()?);
        if !hh.bytes().chain(mm.bytes()).all(|c| c.is_ascii_digit()) || h > 23 || m > 59 {
            return None;
        }
        let ms = (h * 60 + m) * 60_000;
        Some(if sign == b'-' { -ms } else { ms })
    };
    // `±HH:MM` (6 bytes) or `±HHMM` (5 bytes), after a time (`…:SS` or `…:SS.fff`).
    for len in [6usize, 5] {
        if b.len() <= len + 8 {
            continue;
        }
        let at = b.len() - len;
        let sign = b[at];
        if !matches!(sign, b'+' | b'-' | b' ') || !s.is_char_boundary(at) {
            continue;
        }
        let head = &s[..at];
        // The part before must end in a time: a digit, with a `:` within its last 13 bytes
        // (and a date: a `-` in its first 10), so `2026-12-07` alone is never cut.
        let time_part = head.rsplit(['T', 't', ' ']).next().unwrap_or("");
        if !(head.ends_with(|c: char| c.is_ascii_digit())
            && time_part.contains(':')
            && head.len() > 10
            && head[..10].contains('-'))
        {
            continue;
        }
        let off = &s[at + 1..];
        let got = if len == 6 {
            off.split_once(':').and_then(|(h, m)| parse(sign, h, m))
        } else {
            off.get(..2)
                .zip(off.get(2..))
                .and_then(|(h, m)| parse(sign, h, m))
        };
        if let Some(ms) = got {
            return (head.trim_end(), ms);
        }
    }
    (s, 0)
}

/// Why a person id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a person id (P-12 or 12)")]
pub struct PersonError(String);

/// A person id: `P-12`, `p-12` or `12` (at most `i64::MAX`, the store's integer range).
pub fn parse_person(s: &str) -> Result<u64, PersonError> {
    parse_identity(s, 'P').ok_or_else(|| PersonError(s.to_string()))
}

/// Why a vehicle id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a vehicle id (V-12 or 12)")]
pub struct VehicleError(String);

/// A vehicle id: `V-12`, `v-12` or `12` (at most `i64::MAX`, the store's integer range).
pub fn parse_vehicle(s: &str) -> Result<u64, VehicleError> {
    parse_identity(s, 'V').ok_or_else(|| VehicleError(s.to_string()))
}

/// An identity id with its optional label prefix (`P-`, `V-`, either case).
fn parse_identity(s: &str, label: char) -> Option<u64> {
    let t = s.trim();
    let digits = t
        .strip_prefix([label, label.to_ascii_lowercase()])
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
}

/// Why a bounding box was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BBoxError {
    /// A part is not a number.
    #[error("{0:?}: expected LAT1,LON1,LAT2,LON2 (numbers)")]
    NotNumbers(String),
    /// Not four parts.
    #[error("{input:?}: expected four numbers LAT1,LON1,LAT2,LON2, got {got}")]
    Count {
        /// The argument.
        input: String,
        /// How many parts it had.
        got: usize,
    },
    /// A latitude outside -90..=90 (or not finite).
    #[error("latitude {0} is outside -90..=90")]
    Latitude(f64),
    /// A longitude outside -180..=180 (or not finite).
    #[error("longitude {0} is outside -180..=180")]
    Longitude(f64),
}

/// A bounding box `LAT1,LON1,LAT2,LON2` (two opposite corners, any order), degrees.
pub fn parse_bbox(s: &str) -> Result<[f64; 4], BBoxError> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| BBoxError::NotNumbers(s.to_string()))?;
    let [lat1, lon1, lat2, lon2] = v[..] else {
        return Err(BBoxError::Count {
            input: s.to_string(),
            got: v.len(),
        });
    };
    for lat in [lat1, lat2] {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(BBoxError::Latitude(lat));
        }
    }
    for lon in [lon1, lon2] {
        if !(-180.0..=180.0).contains(&lon) {
            return Err(BBoxError::Longitude(lon));
        }
    }
    Ok([lat1, lon1, lat2, lon2])
}

/// The header of [`sightings_csv`] (after the byte order mark, [`CSV_BOM`]).
pub const SIGHTINGS_CSV_HEADER: [&str; 22] = [
    "identity",
    "kind",
    "site",
    "agent",
    "camera",
    "track",
    "class",
    "first_utc",
    "last_utc",
    "first_local",
    "last_local",
    "first_ms",
    "last_ms",
    "lat",
    "lon",
    "confidence",
    "plate",
    "ended",
    "rule",
    "evidence",
    "evidence_crop",
    "why",
];

/// What a CSV export starts with: the UTF-8 byte order mark, by which spreadsheets (Excel,
/// WPS) know the file is UTF-8 and show 粤 instead of mojibake.
pub const CSV_BOM: &str = "\u{feff}";

/// Sightings as CSV (RFC 4180: a header row, CRLF line ends, a field quoted when it holds a
/// comma, a quote, CR or LF, quotes doubled), after a UTF-8 byte order mark ([`CSV_BOM`]),
/// one row per sighting in the given order: identity label (`V-1`, `P-3`), kind, site,
/// agent, camera, track, class, first and last time in UTC RFC 3339 with milliseconds, the
/// same in the site's time zone `zone` (`api.time_zone`) with its offset, to the second
/// (`first_local`, `last_local`: `2026-12-07T22:15:03+08:00`), and as UTC ms, camera
/// latitude and longitude (empty when not placed), confidence, plate, whether the track
/// ended, the fusion rule, the evidence track (`agent/camera/track`), the evidence crop's
/// SHA-256 (fetch it with `GET /api/v1/evidence/{sha256}`; empty when none) and the whole
/// `why` as JSON.
///
/// Spreadsheet formula injection is neutralised: a text cell (anything that came from an
/// agent or the store: ids, plate, rule, why) starting with `=`, `+`, `-`, `@`, a tab or a
/// CR gets a leading `'`, so a spreadsheet shows it as text instead of evaluating it.
/// Numeric cells are written by this function from numbers and are left as they are (a
/// negative longitude stays a number).
pub fn sightings_csv(rows: &[SightingRow], zone: &crate::sitetime::SiteZone) -> String {
    let mut out = String::from(CSV_BOM);
    csv_line(&mut out, SIGHTINGS_CSV_HEADER.iter().map(|h| h.to_string()));
    for r in rows {
        let text = |s: &str| neutralise(s);
        let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let cells = [
            text(&r.identity_label()),
            text(&r.kind),
            text(&r.site),
            text(&r.agent),
            text(&r.camera),
            r.track.to_string(),
            text(&r.class),
            utc(r.first_ms),
            utc(r.last_ms),
            zone.format(r.first_ms),
            zone.format(r.last_ms),
            r.first_ms.to_string(),
            r.last_ms.to_string(),
            num(r.lat),
            num(r.lon),
            format!("{:.3}", r.confidence),
            text(r.plate.as_deref().unwrap_or("")),
            r.ended.to_string(),
            text(r.why["rule"].as_str().unwrap_or("")),
            text(&r.evidence),
            text(r.evidence_crop.as_deref().unwrap_or("")),
            text(&r.why.to_string()),
        ];
        csv_line(&mut out, cells.into_iter());
    }
    out
}

/// A text cell made safe for spreadsheets (see [`sightings_csv`]).
fn neutralise(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// One CSV record (RFC 4180), CRLF-terminated.
fn csv_line(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if c.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&c.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&c);
        }
    }
    out.push_str("\r\n");
}

fn position(r: &SightingRow) -> String {
    match (r.lat, r.lon) {
        (Some(lat), Some(lon)) => format!("{lat:.5},{lon:.5}"),
        _ => "-".into(),
    }
}

/// The rule of a sighting's `why`, with its similarity or gating in short.
fn why_short(why: &Value) -> String {
    let rule = why["rule"].as_str().unwrap_or("?").to_string();
    let gate = why["gate"]["result"].as_str();
    match (why["similarity"].as_f64(), gate) {
        (Some(s), Some(g)) => format!("{rule} {s:.2} {g}"),
        (None, Some(g)) => format!("{rule} {g}"),
        (Some(s), None) => format!("{rule} {s:.2}"),
        (None, None) => rule,
    }
}

/// A plain-text table of sightings (a trajectory, or sightings in an area), in the given
/// order.
pub fn sightings_table(rows: &[SightingRow]) -> String {
    let header = [
        "identity",
        "camera",
        "position",
        "first (UTC)",
        "last (UTC)",
        "secs",
        "class",
        "plate",
        "conf",
        "why",
        "evidence",
    ];
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            [
                r.identity_label(),
                format!("{}/{}/{}", r.site, r.agent, r.camera),
                position(r),
                utc(r.first_ms),
                utc(r.last_ms),
                format!("{:.1}", (r.last_ms - r.first_ms) as f64 / 1000.0),
                r.class.clone(),
                r.plate.clone().unwrap_or_default(),
                format!("{:.2}", r.confidence),
                why_short(&r.why),
                r.evidence.clone(),
            ]
        })
        .collect();
    table(&header, &cells, "sighting(s)")
}

/// The vehicles a plate query found and the flags about them, as lines above a trajectory.
pub fn vehicles_lines(vehicles: &[VehicleRow], flags: &[FlagRow]) -> String {
    let mut out = String::new();
    for v in vehicles {
        out.push_str(&format!(
            "V-{}  plate {}  ({} match, first seen {})",
            v.vehicle,
            v.plate,
            v.matched.as_str(),
            utc(v.first_ms)
        ));
        if let Some(c) = v.clone_of {
            out.push_str(&format!("  possible clone of V-{c}"));
        }
        out.push('\n');
    }
    for f in flags {
        out.push_str(&format!(
            "flag: {} read at {} {} kept apart from V-{} ({}): {} {}\n",
            f.plate,
            f.evidence,
            utc(f.ts_ms),
            f.other,
            f.other_plate,
            f.reason,
            f.gate["result"].as_str().unwrap_or("?"),
        ));
    }
    out
}

/// A plain-text table of person–vehicle links, strongest first.
pub fn links_table(rows: &[LinkRow]) -> String {
    let header = [
        "person",
        "vehicle",
        "plate",
        "count",
        "strength",
        "first (UTC)",
        "last (UTC)",
        "evidence",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|l| {
            let evidence: Vec<String> = l
                .evidence
                .iter()
                .map(|e| {
                    let track = |t: &Value| {
                        format!(
                            "{}/{}/{}",
                            t["camera"]["agent"].as_str().unwrap_or("?"),
                            t["camera"]["camera"].as_str().unwrap_or("?"),
                            t["track"]
                        )
                    };
                    format!(
                        "{} {}+{}",
                        e["rule"].as_str().unwrap_or("?"),
                        track(&e["person_track"]),
                        e["vehicle_track"]["track"]
                    )
                })
                .collect();
            [
                format!("P-{}", l.person),
                format!("V-{}", l.vehicle),
                l.plate.clone(),
                l.count.to_string(),
                format!("{:.2}", l.strength),
                utc(l.first_ms),
                utc(l.last_ms),
                evidence.join("; "),
            ]
        })
        .collect();
    table(&header, &cells, "link(s)")
}

/// Face search results as a table: rank, person, similarity, whether it is a match (`yes`;
/// `no`: below the verification threshold), the best-matching face's camera and time, the
/// person's sightings (count, first and last seen).
pub fn face_search_table(rows: &[crate::facesearch::FaceSearchRow]) -> String {
    let header = [
        "rank",
        "person",
        "similarity",
        "match",
        "matching face (camera/track)",
        "face seen (UTC)",
        "faces",
        "sightings",
        "first seen (UTC)",
        "last seen (UTC)",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let f = &r.hit.face;
            let (n, first, last) = match &r.sightings {
                Some(s) => (s.sightings.to_string(), utc(s.first_ms), utc(s.last_ms)),
                None => ("0".into(), "-".into(), "-".into()),
            };
            [
                r.rank.to_string(),
                format!("P-{}", r.hit.person),
                format!("{:.3}", r.hit.similarity),
                if r.matched { "yes" } else { "no" }.to_string(),
                format!("{}/{}/{}", f.key.agent, f.key.camera, f.key.track),
                utc(f.ts_ms),
                r.hit.representatives.to_string(),
                n,
                first,
                last,
            ]
        })
        .collect();
    table(&header, &cells, "person(s)")
}

/// GeoJSON of sightings: a `FeatureCollection` with, per identity seen at two or more
/// placed cameras, a `LineString` of its path in time order, then a `Point` per placed
/// sighting with its camera, time span, confidence and evidence references (the track, and
/// the best shot's SHA-256 `evidence_crop` or null) (sightings of
/// cameras without a position have no geometry and are left out).
pub fn geojson(rows: &[SightingRow]) -> Value {
    let mut features: Vec<Value> = Vec::new();
    let mut identities: Vec<(&str, u64)> = Vec::new();
    for r in rows {
        if !identities.contains(&(r.kind.as_str(), r.identity)) {
            identities.push((r.kind.as_str(), r.identity));
        }
    }
    for (kind, identity) in identities {
        let mine: Vec<&SightingRow> = rows
            .iter()
            .filter(|r| r.kind == kind && r.identity == identity)
            .collect();
        let coords: Vec<Value> = mine
            .iter()
            .filter_map(|r| Some(json!([r.lon?, r.lat?])))
            .collect();
        if coords.len() >= 2 {
            let (first, last) = (mine[0], mine[mine.len() - 1]);
            features.push(json!({
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {
                    "kind": kind,
                    "identity": first.identity_label(),
                    "sightings": mine.len(),
                    "first": utc(first.first_ms),
                    "last": utc(last.last_ms),
                },
            }));
        }
    }
    for r in rows {
        let (Some(lat), Some(lon)) = (r.lat, r.lon) else {
            continue;
        };
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {
                "kind": r.kind,
                "identity": r.identity_label(),
                "camera": format!("{}/{}/{}", r.site, r.agent, r.camera),
                "first": utc(r.first_ms),
                "last": utc(r.last_ms),
                "first_ms": r.first_ms,
                "last_ms": r.last_ms,
                "class": r.class,
                "plate": r.plate,
                "confidence": r.confidence,
                "evidence": r.evidence,
                "evidence_crop": r.evidence_crop,
            },
        }));
    }
    json!({"type": "FeatureCollection", "features": features})
}

/// `2026-11-23T10:15:00.123Z` for UTC milliseconds.
pub fn utc(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A plain-text table of tracks.
pub fn tracks_table(rows: &[TrackRow]) -> String {
    let header = [
        "agent",
        "camera",
        "track",
        "class",
        "first seen (UTC)",
        "last seen (UTC)",
        "secs",
        "updates",
        "best",
        "ended",
        "last box (px)",
        "linked",
        "plate",
    ];
    let cells: Vec<[String; 13]> = rows
        .iter()
        .map(|r| {
            [
                r.agent.clone(),
                r.camera.clone(),
                r.track.to_string(),
                r.class.clone(),
                utc(r.first_ms),
                utc(r.last_ms),
                format!("{:.1}", (r.last_ms - r.first_ms) as f64 / 1000.0),
                r.updates.to_string(),
                format!("{:.2}", r.best_score),
                if r.ended { "yes" } else { "no" }.to_string(),
                format!(
                    "{:.0},{:.0},{:.0},{:.0}",
                    r.bbox[0], r.bbox[1], r.bbox[2], r.bbox[3]
                ),
                r.link.map(|l| l.to_string()).unwrap_or_default(),
                match (&r.plate, r.plate_confidence) {
                    (Some(p), Some(c)) => format!("{p} ({c:.2})"),
                    (Some(p), None) => p.clone(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    table(&header, &cells, "track(s)")
}

/// A plain-text table of alerts, newest first.
pub fn alerts_table(rows: &[AlertRow]) -> String {
    let header = [
        "id",
        "kind",
        "priority",
        "camera",
        "first (UTC)",
        "last (UTC)",
        "seen",
        "summary",
        "evidence",
        "acknowledged",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                format!("{}/{}", r.agent, r.alert_id),
                r.kind.clone(),
                r.priority.clone(),
                r.camera.clone(),
                utc(r.first_ms),
                utc(r.last_ms),
                r.sightings.to_string(),
                r.summary.clone(),
                r.evidence.join(","),
                match (&r.acked_by, r.acked_ms) {
                    (Some(by), Some(ms)) => format!("{by} {}", utc(ms)),
                    _ => "no".into(),
                },
            ]
        })
        .collect();
    table(&header, &cells, "alert(s)")
}

/// The watchlist: its version, the enrolled faces (never their embeddings), the plates.
pub fn watchlist_table(l: &WatchlistListing) -> String {
    let mut out = format!("watchlist version {}", l.version);
    if let Some(ms) = l.updated_ms {
        out.push_str(&format!(" (changed {})", utc(ms)));
    }
    out.push_str("\n\n");
    let header = [
        "id",
        "role",
        "name",
        "photos",
        "guardians / guardian of",
        "contacts",
        "consent",
        "enrolled (UTC)",
        "updated (UTC)",
    ];
    let faces: Vec<[String; 9]> = l
        .faces
        .iter()
        .map(|f| {
            [
                f.id.clone(),
                role_name(f.role).to_string(),
                f.name.clone(),
                f.photos.to_string(),
                if f.guardian_of.is_empty() {
                    f.guardians.join(",")
                } else {
                    format!("of {}", f.guardian_of.join(","))
                },
                f.contacts
                    .iter()
                    .map(|c| format!("{}:{}", c.name, c.phone))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.consent.clone().unwrap_or_default(),
                utc(f.enrolled_ms),
                utc(f.updated_ms),
            ]
        })
        .collect();
    out.push_str(&table(&header, &faces, "face(s)"));
    out.push('\n');
    let plates: Vec<[String; 3]> = l
        .plates
        .iter()
        .map(|p| [p.plate.clone(), p.reason.clone(), utc(p.added_ms)])
        .collect();
    out.push_str(&table(
        &["plate", "reason", "added (UTC)"],
        &plates,
        "plate(s)",
    ));
    out
}

/// Left-aligned columns, two spaces apart, then a count line.
fn table<const N: usize>(header: &[&str; N], cells: &[[String; N]], what: &str) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        cols.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out.push_str(&format!("{} {what}\n", cells.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(identity: u64, camera: &str, t: i64, pos: Option<[f64; 2]>) -> SightingRow {
        SightingRow {
            kind: "vehicle".into(),
            identity,
            site: "s1".into(),
            agent: "a1".into(),
            camera: camera.into(),
            track: 7,
            class: "car".into(),
            first_ms: t,
            last_ms: t + 1000,
            lat: pos.map(|p| p[0]),
            lon: pos.map(|p| p[1]),
            confidence: 0.9,
            ended: true,
            plate: Some("川A12345".into()),
            why: json!({"rule": "exact_plate", "gate": {"result": "feasible"}}),
            evidence: format!("a1/{camera}/7"),
            evidence_crop: None,
        }
    }

    #[test]
    fn person_and_vehicle_ids() {
        assert_eq!(parse_vehicle("V-12"), Ok(12));
        assert_eq!(parse_vehicle("v-4"), Ok(4));
        assert_eq!(parse_vehicle("5"), Ok(5));
        for bad in ["P-12", "V12", "V-", "-3", "V-1x", "99999999999999999999"] {
            assert!(parse_vehicle(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_person("P-12"), Ok(12));
        assert_eq!(parse_person("p-3"), Ok(3));
        assert_eq!(parse_person(" 7 "), Ok(7));
        assert_eq!(parse_person("9223372036854775807"), Ok(i64::MAX as u64));
        for bad in [
            "",
            "P-",
            "P-x",
            "-1",
            "+1",
            "P-1.5",
            "9223372036854775808",
            "P-1 OR 1=1",
        ] {
            let e = parse_person(bad).unwrap_err();
            assert!(e.to_string().contains("not a person id"), "{bad}: {e}");
        }
    }

    #[test]
    fn bounding_boxes() {
        assert_eq!(
            parse_bbox("30.5, 104.0,30.7,-104.2"),
            Ok([30.5, 104.0, 30.7, -104.2])
        );
        assert_eq!(
            parse_bbox("1,2,3"),
            Err(BBoxError::Count {
                input: "1,2,3".into(),
                got: 3
            })
        );
        assert!(matches!(
            parse_bbox("a,b,c,d"),
            Err(BBoxError::NotNumbers(_))
        ));
        assert!(matches!(parse_bbox(""), Err(BBoxError::NotNumbers(_))));
        assert_eq!(parse_bbox("91,0,0,0"), Err(BBoxError::Latitude(91.0)));
        assert_eq!(
            parse_bbox("0,0,0,-180.5"),
            Err(BBoxError::Longitude(-180.5))
        );
        assert!(matches!(
            parse_bbox("NaN,0,0,0"),
            Err(BBoxError::Latitude(_))
        ));
        assert!(matches!(
            parse_bbox("0,inf,0,0"),
            Err(BBoxError::Longitude(_))
        ));
    }

    #[test]
    fn csv_quotes_neutralises_and_has_a_header() {
        let mut a = sighting(1, "cam,1", 1_700_000_000_123, Some([30.5, -104.25]));
        a.plate = Some("=HYPERLINK(\"http://x\")".into());
        a.evidence_crop = Some("ab".repeat(32));
        let mut b = sighting(2, "@cam", 0, None);
        b.kind = "person".into();
        b.plate = None;
        b.site = "-2+3".into();
        b.agent = "line\nbreak".into();
        let beijing = crate::sitetime::SiteZone::resolve_bundled("Asia/Shanghai").unwrap();
        let csv = sightings_csv(&[a, b], &beijing);
        let csv = csv.strip_prefix(CSV_BOM).expect("a BOM first");
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines.len(),
            4,
            "header, two rows, empty after the last CRLF: {csv:?}"
        );
        assert_eq!(lines[0], SIGHTINGS_CSV_HEADER.join(","));
        assert!(
            lines[1].starts_with(
                "V-1,vehicle,s1,a1,\"cam,1\",7,car,2023-11-14T22:13:20.123Z,2023-11-14T22:13:21.123Z,2023-11-15T06:13:20+08:00,2023-11-15T06:13:21+08:00,1700000000123,1700000001123,30.5,-104.25,0.900,\"'=HYPERLINK(\"\"http://x\"\")\",true,exact_plate,\"a1/cam,1/7\","
            ),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(&"ab".repeat(32)), "{}", lines[1]);
        // The why column is JSON with quotes and commas: quoted, quotes doubled.
        assert!(lines[1].ends_with("\"{\"\"gate\"\":{\"\"result\"\":\"\"feasible\"\"},\"\"rule\"\":\"\"exact_plate\"\"}\""), "{}", lines[1]);
        assert!(
            lines[2].starts_with(
                "P-2,person,'-2+3,\"line\nbreak\",'@cam,7,car,1970-01-01T00:00:00.000Z,1970-01-01T00:00:01.000Z,1970-01-01T08:00:00+08:00,"
            ),
            "{}",
            lines[2]
        );
        // No position: empty lat and lon; no plate, no crop: empty.
        assert!(lines[2].contains(",1000,,,0.900,,true,"), "{}", lines[2]);
        assert_eq!(
            sightings_csv(&[], &beijing),
            format!("\u{feff}{}\r\n", SIGHTINGS_CSV_HEADER.join(","))
        );
        // Another zone, another offset.
        let utc = crate::sitetime::SiteZone::resolve("UTC").unwrap();
        let one = sighting(1, "c", 1_700_000_000_123, None);
        assert!(
            sightings_csv(&[one], &utc).contains(",2023-11-14T22:13:20+00:00,"),
            "UTC zone"
        );
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z", 0).unwrap(),
            1_700_000_000_123
        );
        assert_eq!(parse_time("10m", 1_000_000).unwrap(), 400_000);
        // Any offset: the same instant.
        let utc = parse_time("2026-12-07T00:00:00Z", 0).unwrap();
        for s in [
            "2026-12-07T08:00:00+08:00",
            "2026-12-07 08:00:00+08:00",
            "2026-12-07T08:00:00+0800",
            "2026-12-07T08:00:00 08:00",
            "2026-12-06T19:00:00-05:00",
            "2026-12-07T00:00:00+00:00",
            "2026-12-07T00:00:00",
        ] {
            assert_eq!(parse_time(s, 0).unwrap(), utc, "{s}");
        }
        assert_eq!(
            parse_time("2026-12-07T08:00:00.250+08:00", 0).unwrap(),
            utc + 250
        );
        assert_eq!(
            parse_time("2026-12-07T05:30:00+05:30", 0).unwrap(),
            utc,
            "half-hour offsets"
        );
        for bad in [
            "2026-12-07T08:00:00+24:00",
            "2026-12-07T08:00:00+08:60",
            "2026-12-07T08:00:00+8:00",
            "08:00:00+08:00",
            "2026-12-07+08:00",
        ] {
            assert!(parse_time(bad, 0).is_err(), "{bad}");
        }
        assert_eq!(parse_time("0s", 5).unwrap(), 5);
        assert!(parse_time("yesterday", 0).is_err());
    }

    #[test]
    fn geojson_has_a_line_per_identity_and_a_point_per_placed_sighting() {
        let rows = [
            sighting(1, "cam-1", 0, Some([30.6, 104.0])),
            sighting(2, "cam-9", 500, Some([31.5, 104.0])),
            sighting(1, "cam-2", 1000, Some([30.7, 104.1])),
            sighting(1, "cam-x", 2000, None),
        ];
        let g = geojson(&rows);
        let f = g["features"].as_array().unwrap();
        assert_eq!(g["type"], "FeatureCollection");
        assert_eq!(f.len(), 4, "one line (V-2 has one point) and three points");
        assert_eq!(f[0]["geometry"]["type"], "LineString");
        assert_eq!(
            f[0]["geometry"]["coordinates"],
            json!([[104.0, 30.6], [104.1, 30.7]])
        );
        assert_eq!(f[0]["properties"]["identity"], "V-1");
        assert_eq!(f[1]["properties"]["evidence"], "a1/cam-1/7");
        let t = sightings_table(&rows);
        assert!(
            t.contains("exact_plate feasible") && t.ends_with("4 sighting(s)\n"),
            "{t}"
        );
    }

    #[test]
    fn utc_format() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn table_has_header_rows_and_count() {
        let row = TrackRow {
            agent: "a".into(),
            site: "s".into(),
            camera: "cam-1".into(),
            track: 42,
            class: "face".into(),
            first_ms: 0,
            last_ms: 2500,
            ended: true,
            updates: 3,
            best_score: 0.91,
            bbox: [1.0, 2.0, 3.0, 4.0],
            frame_w: 10,
            frame_h: 10,
            plate: None,
            plate_confidence: None,
            link: None,
            evidence_crop: None,
        };
        let plate_row = TrackRow {
            class: "plate".into(),
            plate: Some("川A12345".into()),
            plate_confidence: Some(0.97),
            link: Some(77),
            ..row.clone()
        };
        let t = tracks_table(&[plate_row]);
        assert!(t.contains("川A12345 (0.97)") && t.contains("  77  "), "{t}");
        let t = tracks_table(&[row]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("agent"));
        assert!(
            lines[1].contains("cam-1") && lines[1].contains("2.5") && lines[1].contains("0.91")
        );
        assert_eq!(lines[2], "1 track(s)");
    }

    #[test]
    fn watchlist_table_lists_entries_and_links() {
        use crate::store::{Contact, FaceRow, PlateRow, WatchlistListing};
        use sharpeyes_wire::FaceRole;
        let face = |id: &str, role, of: &[&str], guardians: &[&str]| FaceRow {
            id: id.into(),
            role,
            name: format!("name of {id}"),
            guardian_of: of.iter().map(|s| s.to_string()).collect(),
            guardians: guardians.iter().map(|s| s.to_string()).collect(),
            contacts: vec![Contact {
                name: "son".into(),
                phone: "110".into(),
            }],
            consent: (role == FaceRole::Patient).then(|| "C-1".to_string()),
            photos: 2,
            enrolled_ms: 0,
            updated_ms: 0,
        };
        let l = WatchlistListing {
            version: 7,
            updated_ms: Some(0),
            faces: vec![
                face("P1", FaceRole::Patient, &[], &["G1"]),
                face("G1", FaceRole::Guardian, &["P1"], &[]),
            ],
            plates: vec![PlateRow {
                plate: "京A12345".into(),
                reason: "stolen".into(),
                added_ms: 0,
            }],
        };
        let t = watchlist_table(&l);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("watchlist version 7"), "{t}");
        assert!(
            lines[3].starts_with("P1  patient") && lines[3].contains("son:110"),
            "{t}"
        );
        assert!(
            lines[4].contains("of P1") && !lines[4].contains("C-1"),
            "{t}"
        );
        assert!(
            t.contains("2 face(s)") && t.contains("京A12345  stolen"),
            "{t}"
        );
    }
}
