//! Query output for the CLI: tables and JSON of stored rows.

use std::time::{Duration, UNIX_EPOCH};

use crate::store::watchlist::role_name;
use crate::store::{AlertRow, TrackRow, WatchlistListing};

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
