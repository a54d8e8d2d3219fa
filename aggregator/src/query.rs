//! Query output for the CLI: tables, JSON and GeoJSON of stored rows.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::store::watchlist::role_name;
use crate::store::{
    AlertRow, FlagRow, LinkRow, SightingRow, TrackRow, VehicleRow, WatchlistListing,
};

/// Why a time argument was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is neither an RFC 3339 time (2026-11-23T10:15:00Z) nor a duration before now (90s, 10m, 2h, 1d)"
)]
pub struct TimeError(String);

/// A time argument as UTC ms: an RFC 3339 time (`2026-11-23T10:15:00Z`, `2026-11-23
/// 10:15:00` in UTC), or a duration meaning that long before `now_ms` (`90s`, `10m`, `2h`,
/// `1d`; `0s` is now).
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, TimeError> {
    let s = s.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Ok(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        };
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err(TimeError(s.to_string())),
    }
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

/// Face search results as a table: rank, person, similarity, the best-matching face's camera
/// and time, the person's sightings (count, first and last seen).
pub fn face_search_table(rows: &[crate::facesearch::FaceSearchRow]) -> String {
    let header = [
        "rank",
        "person",
        "similarity",
        "matching face (camera/track)",
        "face seen (UTC)",
        "faces",
        "sightings",
        "first seen (UTC)",
        "last seen (UTC)",
    ];
    let cells: Vec<[String; 9]> = rows
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
/// sighting with its camera, time span, confidence and evidence reference (sightings of
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
            },
        }));
    }
    json!({"type": "FeatureCollection", "features": features})
}

/// CSV of sightings (RFC 4180, header line first, `\r\n` line ends), one sighting a line
/// in the given order: kind, identity, site, agent, camera, track, class, first/last as ms
/// and UTC, lat, lon, confidence, ended, plate, evidence. Text cells that a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@` first) get a leading `'`.
pub fn sightings_csv(rows: &[SightingRow]) -> String {
    fn cell(s: &str) -> String {
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut out = String::from(
        "kind,identity,site,agent,camera,track,class,first_ms,last_ms,first_utc,last_utc,lat,lon,confidence,ended,plate,evidence\r\n",
    );
    for r in rows {
        let line = [
            cell(&r.kind),
            r.identity_label(),
            cell(&r.site),
            cell(&r.agent),
            cell(&r.camera),
            r.track.to_string(),
            cell(&r.class),
            r.first_ms.to_string(),
            r.last_ms.to_string(),
            utc(r.first_ms),
            utc(r.last_ms),
            opt(r.lat),
            opt(r.lon),
            format!("{:.3}", r.confidence),
            r.ended.to_string(),
            cell(r.plate.as_deref().unwrap_or("")),
            cell(&r.evidence),
        ]
        .join(",");
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
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
        }
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z", 0).unwrap(),
            1_700_000_000_123
        );
        assert_eq!(parse_time("10m", 1_000_000).unwrap(), 400_000);
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
