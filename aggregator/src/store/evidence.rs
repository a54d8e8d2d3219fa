//! Evidence images, content-addressed (schema 9): one row per distinct image in `evidence`,
//! keyed by the SHA-256 (lowercase hex) of its bytes, so an image sent twice (an alert's face
//! crop that is also the track's best shot, a redelivered batch) is stored once.
//!
//! | table | what |
//! | --- | --- |
//! | `evidence` | `sha256` (key), `mime`, `kind` (`sighting`: a track's best shot; `alert`: an alert's image), `bytes`, `size`, `created_ms` (when first stored, or the alert's time for images moved from schema 8), `last_ref_ms` (the newest capture time of anything referencing it) |
//! | `alert_evidence` | an alert's images by role: (`agent`, `alert_id`, `role`) → `sha256`, `ts_ms` |
//! | `tracks.evidence_crop` | a track's best shot → `sha256`; a sighting shows its track's |
//!
//! Invariants:
//! - every `sha256` in `alert_evidence` and `tracks.evidence_crop` was written in the same
//!   transaction as its `evidence` row; retention deletes an `evidence` row only when nothing
//!   references it any more (see [`super::retention`]), so a reference always resolves;
//! - an image referenced by an alert is of kind `alert` (kept as long as alerts), even if it
//!   was first stored as a track's best shot (the kind only ever moves to the longer-kept
//!   `alert`);
//! - only images whose bytes start like their declared type (JPEG `FF D8`, PNG
//!   `89 50 4E 47`) and fit [`MAX_THUMB_BYTES`] (track best shots) or [`MAX_ALERT_IMAGE_BYTES`]
//!   (alert images) are stored; anything else is left out (logged, and counted:
//!   [`Store::take_evidence_refused`], `sharpeyes_aggregator_evidence_refused_total`), the
//!   rest of the message is stored.
//!
//! **Migration from schema 8.** Alert images were held inline (`alert_evidence.data`). Opening
//! such a store renames that table, moves each image into `evidence` (kind `alert`,
//! `created_ms` and `last_ref_ms` = the alert image's time) with a reference row, and drops
//! the old table, in one transaction; detection is by the table's layout, so an interrupted
//! migration is finished by the next open.

use serde::Serialize;
use thiserror::Error;
use tracing::warn;

use super::sql::Dialect;
use super::{Db, Store, StoreError};
use crate::args;

/// The evidence tables (SQLite types; PostgreSQL's by `postgres_schema`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS evidence (
    sha256      TEXT    NOT NULL PRIMARY KEY,
    mime        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    bytes       BLOB    NOT NULL,
    size        INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    last_ref_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_by_kind_age ON evidence (kind, last_ref_ms);
CREATE TABLE IF NOT EXISTS alert_evidence (
    agent    TEXT    NOT NULL,
    alert_id TEXT    NOT NULL,
    role     TEXT    NOT NULL,
    sha256   TEXT    NOT NULL,
    ts_ms    INTEGER NOT NULL,
    PRIMARY KEY (agent, alert_id, role)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_evidence_by_sha ON alert_evidence (sha256);
CREATE INDEX IF NOT EXISTS tracks_by_evidence ON tracks (evidence_crop);
";

/// Largest track best shot stored, bytes (the agents send at most 128 px JPEGs, a few KB).
pub const MAX_THUMB_BYTES: usize = 64 * 1024;
/// Largest alert image stored, bytes (the agents send crops of at most 480 px and scene
/// thumbnails of at most 960 px).
pub const MAX_ALERT_IMAGE_BYTES: usize = 4 * 1024 * 1024;

/// Kind of an image: a track's best shot (aged by `store.evidence_sighting_retention_days`).
pub const KIND_SIGHTING: &str = "sighting";
/// Kind of an image: an alert's (aged by `store.evidence_alert_retention_days`).
pub const KIND_ALERT: &str = "alert";

/// A reference that is not a SHA-256 in lowercase hex: refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("evidence reference {0:?} is not a SHA-256 (64 lowercase hex digits)")]
pub struct BadSha256(pub String);

/// One stored evidence image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceBlob {
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
    /// Media type (`image/jpeg`, `image/png`).
    pub mime: String,
    /// `sighting` or `alert`.
    pub kind: String,
    /// The image.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// When it was first stored, UTC ms.
    pub created_ms: i64,
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    super::audit::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Checks an evidence reference: exactly 64 lowercase hex digits.
pub fn check_sha256(s: &str) -> Result<(), BadSha256> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(BadSha256(s.chars().take(80).collect()))
    }
}

/// Whether `data` is an image of type `mime` (by its first bytes) no larger than `max`.
pub fn acceptable_image(mime: &str, data: &[u8], max: usize) -> bool {
    if data.is_empty() || data.len() > max {
        return false;
    }
    match mime {
        "image/jpeg" => data.starts_with(&[0xFF, 0xD8]),
        "image/png" => data.starts_with(&[0x89, b'P', b'N', b'G']),
        _ => false,
    }
}

/// Whether `role` is a plain name (`[a-z0-9_]{1,32}`), as the agents send.
pub fn acceptable_role(role: &str) -> bool {
    (1..=32).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Stores an image (or, when stored already, refreshes its `last_ref_ms` and raises its kind
/// to `alert` when an alert refers to it); its SHA-256.
pub(crate) fn put(
    db: &mut Db,
    kind: &str,
    mime: &str,
    bytes: &[u8],
    created_ms: i64,
    ref_ms: i64,
) -> Result<String, StoreError> {
    let sha = sha256_hex(bytes);
    db.execute(
        "INSERT INTO evidence (sha256, mime, kind, bytes, size, created_ms, last_ref_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (sha256) DO UPDATE SET
            last_ref_ms = GREATEST(evidence.last_ref_ms, excluded.last_ref_ms),
            kind = CASE WHEN excluded.kind = 'alert' THEN 'alert' ELSE evidence.kind END",
        args![sha, mime, kind, bytes, bytes.len(), created_ms, ref_ms],
    )?;
    Ok(sha)
}

/// A track update's best shot, stored when acceptable; its SHA-256.
pub(crate) fn put_thumb(
    db: &mut Db,
    agent: &str,
    camera: &str,
    track: u64,
    thumb: &sharpeyes_wire::Evidence,
    ts_ms: i64,
    now: i64,
) -> Result<Option<String>, StoreError> {
    if !acceptable_image(&thumb.mime, &thumb.data, MAX_THUMB_BYTES) {
        warn!(
            agent,
            camera,
            track,
            mime = %thumb.mime,
            bytes = thumb.data.len(),
            "track best shot left out: not a JPEG/PNG of at most {MAX_THUMB_BYTES} bytes"
        );
        db.evidence_refused_tx += 1;
        return Ok(None);
    }
    put(db, KIND_SIGHTING, &thumb.mime, &thumb.data, now, ts_ms).map(Some)
}

/// An alert's image, stored when acceptable, with its reference by role (a newer image of
/// the same role replaces the reference); whether it was stored.
/// Whether an alert's image is kept (a plain role, a JPEG or PNG of at most
/// `MAX_ALERT_IMAGE_BYTES`); others are left out with a warning.
pub fn keeps_alert_image(e: &sharpeyes_wire::Evidence) -> bool {
    acceptable_role(&e.role) && acceptable_image(&e.mime, &e.data, MAX_ALERT_IMAGE_BYTES)
}

pub(crate) fn put_alert_image(
    db: &mut Db,
    agent: &str,
    alert_id: &str,
    e: &sharpeyes_wire::Evidence,
    ts_ms: i64,
    now: i64,
) -> Result<bool, StoreError> {
    if !keeps_alert_image(e) {
        warn!(
            agent,
            alert_id,
            role = %e.role.chars().take(40).collect::<String>(),
            mime = %e.mime.chars().take(40).collect::<String>(),
            bytes = e.data.len(),
            "alert image left out: bad role, or not a JPEG/PNG of at most {MAX_ALERT_IMAGE_BYTES} bytes"
        );
        db.evidence_refused_tx += 1;
        return Ok(false);
    }
    let sha = put(db, KIND_ALERT, &e.mime, &e.data, now, ts_ms)?;
    db.execute(
        "INSERT INTO alert_evidence (agent, alert_id, role, sha256, ts_ms)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (agent, alert_id, role) DO UPDATE SET
            sha256 = excluded.sha256, ts_ms = excluded.ts_ms
         WHERE excluded.ts_ms >= alert_evidence.ts_ms",
        args![agent, alert_id, e.role, sha, ts_ms],
    )?;
    Ok(true)
}

/// Creates the evidence tables, moving schema 8's inline alert images into them (see the
/// [module docs](self)); how many images were moved.
pub(crate) fn migrate(db: &mut Db) -> Result<u64, StoreError> {
    let dialect = db.dialect();
    let has_column = |db: &mut Db, table: &str, column: &str| -> Result<bool, StoreError> {
        let sql = match dialect {
            Dialect::Sqlite => "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?",
            Dialect::Postgres => {
                "SELECT count(*) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
            }
        };
        Ok(db
            .one(sql, args![table, column])?
            .map(|r| r.get::<i64>(0))
            .transpose()?
            .unwrap_or(0)
            > 0)
    };
    if has_column(db, "alert_evidence", "data")? {
        db.backend
            .batch("ALTER TABLE alert_evidence RENAME TO alert_evidence_v8")?;
        if dialect == Dialect::Postgres {
            db.backend
                .batch("ALTER INDEX alert_evidence_pkey RENAME TO alert_evidence_v8_pkey")?;
        }
    }
    let schema = match dialect {
        Dialect::Sqlite => SCHEMA.to_string(),
        Dialect::Postgres => super::schema::postgres_schema(SCHEMA),
    };
    db.backend.batch(&schema)?;
    if !has_column(db, "alert_evidence_v8", "data")? {
        return Ok(0);
    }
    let mut moved = 0;
    loop {
        let rows = db.query(
            "SELECT agent, alert_id, role, mime, ts_ms, data FROM alert_evidence_v8
             ORDER BY agent, alert_id, role LIMIT 200",
            &[],
        )?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let (agent, alert_id, role, mime): (String, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let (ts_ms, data): (i64, Vec<u8>) = (r.get(4)?, r.get(5)?);
            let sha = put(db, KIND_ALERT, &mime, &data, ts_ms, ts_ms)?;
            db.execute(
                "INSERT INTO alert_evidence (agent, alert_id, role, sha256, ts_ms)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                args![agent, alert_id, role, sha, ts_ms],
            )?;
            db.execute(
                "DELETE FROM alert_evidence_v8 WHERE agent = ? AND alert_id = ? AND role = ?",
                args![agent, alert_id, role],
            )?;
            moved += 1;
        }
    }
    db.backend.batch("DROP TABLE alert_evidence_v8")?;
    tracing::info!(images = moved, "alert images moved into the evidence store");
    Ok(moved)
}

impl Store {
    /// One evidence image by its SHA-256 (lowercase hex; anything else is
    /// [`StoreError::BadEvidenceRef`], and nothing is looked up).
    pub fn evidence(&self, sha256: &str) -> Result<Option<EvidenceBlob>, StoreError> {
        check_sha256(sha256)?;
        self.db()
            .one(
                "SELECT sha256, mime, kind, bytes, created_ms FROM evidence WHERE sha256 = ?",
                args![sha256],
            )?
            .map(|r| {
                Ok(EvidenceBlob {
                    sha256: r.get(0)?,
                    mime: r.get(1)?,
                    kind: r.get(2)?,
                    bytes: r.get(3)?,
                    created_ms: r.get(4)?,
                })
            })
            .transpose()
    }

    /// Evidence images stored, by kind (`sighting`, `alert`): (count, bytes).
    pub fn evidence_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, (u64, u64)>, StoreError> {
        self.db()
            .query(
                "SELECT kind, count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM evidence GROUP BY kind",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok((
                    r.get::<String>(0)?,
                    (r.get::<u64>(1)?, r.get::<i64>(2)?.max(0) as u64),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(check_sha256(&sha256_hex(b"")).is_ok());
    }

    #[test]
    fn references_are_checked() {
        let good = "a".repeat(64);
        assert!(check_sha256(&good).is_ok());
        for bad in [
            String::new(),
            "A".repeat(64),
            "a".repeat(63),
            "a".repeat(65),
            format!("{}g", "a".repeat(63)),
            "../../etc/passwd".into(),
            format!("{}' OR '1'='1", "a".repeat(50)),
        ] {
            assert!(check_sha256(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_and_roles() {
        assert!(acceptable_image(
            "image/jpeg",
            &[0xFF, 0xD8, 0xFF, 0xE0],
            10
        ));
        assert!(!acceptable_image(
            "image/jpeg",
            &[0xFF, 0xD8, 0xFF, 0xE0],
            3
        ));
        assert!(!acceptable_image("image/jpeg", b"<svg onload=x>", 100));
        assert!(!acceptable_image("text/html", &[0xFF, 0xD8, 0xFF], 100));
        assert!(acceptable_image("image/png", b"\x89PNG\r\n", 100));
        assert!(!acceptable_image("image/jpeg", &[], 100));
        assert!(acceptable_role("crop") && acceptable_role("face_2"));
        assert!(!acceptable_role("") && !acceptable_role("a,b") && !acceptable_role("a=b"));
        assert!(!acceptable_role(&"a".repeat(33)));
    }
}
