//! The store: one SQLite file in WAL mode.
//!
//! Invariants:
//! - every stored message's `(agent, seq)` is in `messages` exactly once; a message whose
//!   pair is already there changes nothing (a redelivery or a replay);
//! - a message's effects (its `messages` row, its track rows) commit in the same transaction,
//!   so a crash leaves either all of a message or none of it;
//! - the subscriber acknowledges a message to the broker only after that commit.
//!
//! Status last-will messages carry `seq` 0 and are not deduplicated (they only set
//! `online = false`).
//!
//! The watchlists (enrolled faces, wanted plates) and their version live here too; see
//! [`watchlist`] for their invariants. So do the fusion results (vehicles, persons,
//! sightings, links), written in the same transaction as the messages they came from; see
//! [`fusion`].

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use sharpeyes_wire::{AgentStatus, Body, Envelope, TrackBatch, TrackEvent};
use thiserror::Error;

pub mod faces;
pub mod fusion;
pub mod watchlist;

pub use self::fusion::{Area, FlagRow, LinkRow, PlateMatchKind, SightingRow, VehicleRow};
pub use self::watchlist::{
    Contact, FaceEnrollment, FaceRow, PlateRow, RemovedFace, WatchlistListing,
};

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer schema.
    #[error("database schema version {found} is newer than this build's {supported}")]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// A read-only connection found another schema version than this build's (the writer
    /// migrates; open the database read-write once).
    #[error(
        "database schema version {found}, this build reads {supported} (run the aggregator once to migrate)"
    )]
    OtherSchema {
        /// Version in the file.
        found: i64,
        /// Version this build reads.
        supported: i64,
    },
    /// A `guardian_of` names no enrolled patient.
    #[error("no enrolled patient {0:?} (enroll the patient first; see `aggregator watchlist`)")]
    UnknownPatient(String),
    /// An id is enrolled already in the other role.
    #[error("{id:?} is enrolled as a {existing}; remove it first to enroll it as a {wanted}")]
    RoleConflict {
        /// The id.
        id: String,
        /// Its current role.
        existing: &'static str,
        /// The role asked for.
        wanted: &'static str,
    },
    /// An enrollment that breaks a rule of the watchlist (empty id, no embeddings, a patient
    /// without consent reference...).
    #[error("{0}")]
    Invalid(String),
    /// A stored value does not decode (written by something else than this store).
    #[error("corrupt watchlist row {id:?}: {reason}")]
    Corrupt {
        /// The row's key.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

const SCHEMA_VERSION: i64 = 7;

/// Migrations from each older schema version to the next (index 0: from 1 to 2).
const MIGRATIONS: &[&str] = &[
    "ALTER TABLE tracks ADD COLUMN plate TEXT;
     ALTER TABLE tracks ADD COLUMN plate_confidence REAL;",
    "ALTER TABLE tracks ADD COLUMN link INTEGER;",
    // 3 → 4: the alert tables, which SCHEMA creates.
    "",
    // 4 → 5: the watchlist tables, which SCHEMA creates.
    "",
    // 5 → 6: the fusion tables, which fusion::SCHEMA creates.
    "",
    // 6 → 7: person_faces, which faces::SCHEMA creates.
    "",
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    agent       TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    sent_ms     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tracks (
    agent      TEXT    NOT NULL,
    camera     TEXT    NOT NULL,
    track      INTEGER NOT NULL,
    site       TEXT    NOT NULL,
    class      TEXT    NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    ended      INTEGER NOT NULL DEFAULT 0,
    updates    INTEGER NOT NULL DEFAULT 0,
    best_score REAL    NOT NULL,
    frame_w    INTEGER NOT NULL,
    frame_h    INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    plate            TEXT,
    plate_confidence REAL,
    link             INTEGER,
    PRIMARY KEY (agent, camera, track)
);
CREATE INDEX IF NOT EXISTS tracks_by_camera_time ON tracks (camera, last_ms);
CREATE INDEX IF NOT EXISTS tracks_by_time ON tracks (last_ms);
CREATE TABLE IF NOT EXISTS track_points (
    agent  TEXT    NOT NULL,
    camera TEXT    NOT NULL,
    track  INTEGER NOT NULL,
    ts_ms  INTEGER NOT NULL,
    event  TEXT    NOT NULL,
    score  REAL    NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    PRIMARY KEY (agent, camera, track, ts_ms, event)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    agent        TEXT    NOT NULL,
    alert_id     TEXT    NOT NULL,
    site         TEXT    NOT NULL,
    camera       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    priority     TEXT    NOT NULL,
    first_ms     INTEGER NOT NULL,
    last_ms      INTEGER NOT NULL,
    sightings    INTEGER NOT NULL DEFAULT 1,
    track        INTEGER,
    summary      TEXT    NOT NULL,
    details_json TEXT    NOT NULL,
    received_ms  INTEGER NOT NULL,
    acked_ms     INTEGER,
    acked_by     TEXT,
    ack_note     TEXT,
    PRIMARY KEY (agent, alert_id)
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (last_ms);
CREATE TABLE IF NOT EXISTS alert_evidence (
    agent    TEXT    NOT NULL,
    alert_id TEXT    NOT NULL,
    role     TEXT    NOT NULL,
    mime     TEXT    NOT NULL,
    ts_ms    INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (agent, alert_id, role)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents (
    agent       TEXT PRIMARY KEY,
    site        TEXT    NOT NULL,
    online      INTEGER NOT NULL,
    version     TEXT    NOT NULL,
    started_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    status_json TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_faces (
    id           TEXT PRIMARY KEY,
    role         TEXT    NOT NULL CHECK (role IN ('patient', 'guardian')),
    name         TEXT    NOT NULL,
    guardian_of  TEXT    NOT NULL DEFAULT '[]',
    contacts     TEXT    NOT NULL DEFAULT '[]',
    consent      TEXT,
    embeddings   TEXT    NOT NULL,
    photos       INTEGER NOT NULL,
    enrolled_ms  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_plates (
    plate    TEXT PRIMARY KEY,
    reason   TEXT    NOT NULL,
    added_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_version (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored.
    Stored,
    /// Stored, and it raised an alert not seen before (not an update of an open one).
    NewAlert,
    /// Its `(agent, seq)` was already stored; nothing changed.
    Duplicate,
}

/// One stored alert, as the queries return it (evidence listed, not included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Agent id.
    pub agent: String,
    /// Alert id (unique per agent).
    pub alert_id: String,
    /// Site id.
    pub site: String,
    /// Camera id.
    pub camera: String,
    /// Rule: `loitering`, `face_watchlist`, `plate_watchlist`.
    pub kind: String,
    /// `low`, `normal`, `high` (as last reported).
    pub priority: String,
    /// First report, capture time, UTC ms.
    pub first_ms: i64,
    /// Last report (updates within the rule's cool-down), UTC ms.
    pub last_ms: i64,
    /// Reports received (the first and its updates).
    pub sightings: u64,
    /// The track that raised it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<u64>,
    /// One human-readable line, as last reported.
    pub summary: String,
    /// Rule-specific details, as last reported.
    pub details: std::collections::BTreeMap<String, String>,
    /// Roles of the evidence images held (`crop`, `frame`).
    pub evidence: Vec<String>,
    /// When it arrived at the aggregator, UTC ms.
    pub received_ms: i64,
    /// When an operator acknowledged it, UTC ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_ms: Option<i64>,
    /// Who acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    /// The acknowledgement's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_note: Option<String>,
}

/// Which alerts a query wants.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only alerts not yet acknowledged.
    pub open_only: bool,
    /// Only alerts last reported at or after this time (UTC ms).
    pub since_ms: Option<i64>,
    /// Only this rule (`loitering`, `face_watchlist`, `plate_watchlist`).
    pub kind: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// One stored track, as the queries return it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRow {
    /// Agent id.
    pub agent: String,
    /// Site id.
    pub site: String,
    /// Camera id.
    pub camera: String,
    /// Track id (per agent and camera).
    pub track: u64,
    /// Object class.
    pub class: String,
    /// First sighting, UTC ms.
    pub first_ms: i64,
    /// Last sighting, UTC ms.
    pub last_ms: i64,
    /// Whether the agent reported the track's end.
    pub ended: bool,
    /// Updates received (start, updates, end).
    pub updates: u64,
    /// Best detection score.
    pub best_score: f64,
    /// Last box `[x1, y1, x2, y2]` in pixels of a `frame_w`×`frame_h` frame.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// Frame width, pixels.
    pub frame_w: u32,
    /// Frame height, pixels.
    pub frame_h: u32,
    /// The track's voted plate (plate tracks, vehicles), as last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Confidence of `plate` (0..1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_confidence: Option<f64>,
    /// The same camera's track of another class this one belongs with, as last reported (a
    /// person's face, a face's person, a plate's vehicle, a vehicle's plate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
}

/// Which tracks a query wants.
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    /// Only this camera.
    pub camera: Option<String>,
    /// Only tracks seen at or after this time (UTC ms).
    pub since_ms: Option<i64>,
    /// At most this many (newest first when limited). Default: all.
    pub limit: Option<usize>,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found >= 1 {
            for m in &MIGRATIONS[(found - 1) as usize..] {
                conn.execute_batch(m)?;
            }
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(fusion::SCHEMA)?;
        conn.execute_batch(faces::SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self { conn })
    }

    /// Opens an existing database read-only (a reader beside the writer; WAL lets both
    /// work at once). Its schema must be this build's.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::OtherSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Self { conn })
    }

    /// Applies messages in one transaction; returns what happened to each, in order.
    /// `msgs` holds (envelope, topic, payload size).
    pub fn apply_all(
        &mut self,
        msgs: &[(Envelope, String, usize)],
    ) -> Result<Vec<Applied>, StoreError> {
        self.apply_all_with_fusion(msgs, &[])
    }

    /// [`apply_all`](Self::apply_all), and the fusion results computed from these messages
    /// ([`fusion::apply_fusion`]) in the same transaction: both commit or neither.
    pub fn apply_all_with_fusion(
        &mut self,
        msgs: &[(Envelope, String, usize)],
        outputs: &[crate::fuse::FuseOutput],
    ) -> Result<Vec<Applied>, StoreError> {
        let tx = self.conn.transaction()?;
        let now = sharpeyes_wire::now_ms();
        let mut out = Vec::with_capacity(msgs.len());
        for (env, topic, bytes) in msgs {
            out.push(apply(&tx, env, topic, *bytes, now)?);
        }
        fusion::apply_fusion(&tx, outputs)?;
        tx.commit()?;
        Ok(out)
    }

    /// Applies one message in its own transaction.
    pub fn apply(
        &mut self,
        env: &Envelope,
        topic: &str,
        bytes: usize,
    ) -> Result<Applied, StoreError> {
        Ok(self.apply_all(&[(env.clone(), topic.to_string(), bytes)])?[0])
    }

    /// Stored tracks matching `f`, oldest first.
    pub fn tracks(&self, f: &TrackFilter) -> Result<Vec<TrackRow>, StoreError> {
        let mut sql = String::from(
            "SELECT agent, site, camera, track, class, first_ms, last_ms, ended, updates, best_score,
                    x1, y1, x2, y2, frame_w, frame_h, plate, plate_confidence, link FROM tracks WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(c) = &f.camera {
            sql.push_str(" AND camera = ?");
            args.push(c.clone().into());
        }
        if let Some(s) = f.since_ms {
            sql.push_str(" AND last_ms >= ?");
            args.push(s.into());
        }
        sql.push_str(" ORDER BY first_ms DESC, agent DESC, camera DESC, track DESC");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows: Vec<TrackRow> = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(TrackRow {
                    agent: r.get(0)?,
                    site: r.get(1)?,
                    camera: r.get(2)?,
                    track: r.get::<_, i64>(3)? as u64,
                    class: r.get(4)?,
                    first_ms: r.get(5)?,
                    last_ms: r.get(6)?,
                    ended: r.get(7)?,
                    updates: r.get::<_, i64>(8)? as u64,
                    best_score: r.get(9)?,
                    bbox: [r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?],
                    frame_w: r.get(14)?,
                    frame_h: r.get(15)?,
                    plate: r.get(16)?,
                    plate_confidence: r.get(17)?,
                    link: r.get::<_, Option<i64>>(18)?.map(|l| l as u64),
                })
            })?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// Stored alerts matching `f`, newest first.
    pub fn alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        let mut sql = String::from(
            "SELECT a.agent, a.alert_id, site, camera, kind, priority, first_ms, last_ms, sightings,
                    track, summary, details_json, received_ms, acked_ms, acked_by, ack_note,
                    (SELECT group_concat(role, ',') FROM alert_evidence e
                      WHERE e.agent = a.agent AND e.alert_id = a.alert_id)
             FROM alerts a WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if f.open_only {
            sql.push_str(" AND acked_ms IS NULL");
        }
        if let Some(s) = f.since_ms {
            sql.push_str(" AND last_ms >= ?");
            args.push(s.into());
        }
        if let Some(k) = &f.kind {
            sql.push_str(" AND kind = ?");
            args.push(k.clone().into());
        }
        sql.push_str(" ORDER BY last_ms DESC, a.agent, a.alert_id");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                let details: String = r.get(11)?;
                let evidence: Option<String> = r.get(16)?;
                Ok(AlertRow {
                    agent: r.get(0)?,
                    alert_id: r.get(1)?,
                    site: r.get(2)?,
                    camera: r.get(3)?,
                    kind: r.get(4)?,
                    priority: r.get(5)?,
                    first_ms: r.get(6)?,
                    last_ms: r.get(7)?,
                    sightings: r.get::<_, i64>(8)? as u64,
                    track: r.get::<_, Option<i64>>(9)?.map(|t| t as u64),
                    summary: r.get(10)?,
                    details: serde_json::from_str(&details).unwrap_or_default(),
                    evidence: evidence
                        .map(|e| e.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                    received_ms: r.get(12)?,
                    acked_ms: r.get(13)?,
                    acked_by: r.get(14)?,
                    ack_note: r.get(15)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// One evidence image of an alert: its media type and bytes.
    pub fn alert_evidence(
        &self,
        agent: &str,
        alert_id: &str,
        role: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT mime, data FROM alert_evidence WHERE agent = ? AND alert_id = ? AND role = ?",
                params![agent, alert_id, role],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Acknowledges an alert (`by` whom, with a note); false if there is no such alert or it
    /// was acknowledged already.
    pub fn ack_alert(
        &self,
        agent: &str,
        alert_id: &str,
        by: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE alerts SET acked_ms = ?, acked_by = ?, ack_note = ?
             WHERE agent = ? AND alert_id = ? AND acked_ms IS NULL",
            params![sharpeyes_wire::now_ms(), by, note, agent, alert_id],
        )?;
        Ok(n == 1)
    }

    /// Number of stored messages (all kinds).
    pub fn message_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Every stored `(agent, seq)` pair, sorted.
    pub fn message_keys(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT agent, seq FROM messages ORDER BY agent, seq")?;
        let keys = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// The stored `(agent, seq)` pairs of one kind of message (`tracks`, `status`...), sorted.
    pub fn message_keys_of(&self, kind: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT agent, seq FROM messages WHERE kind = ? ORDER BY agent, seq")?;
        let keys = stmt
            .query_map([kind], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// The last status of an agent, if any.
    pub fn agent_status(&self, agent: &str) -> Result<Option<AgentStatus>, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT status_json FROM agents WHERE agent = ?",
                [agent],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}

fn apply(
    tx: &Transaction<'_>,
    env: &Envelope,
    topic: &str,
    bytes: usize,
    now: i64,
) -> Result<Applied, StoreError> {
    if let Body::Status(s) = &env.body
        && env.seq == 0
    {
        // Last will: no sequence of its own.
        store_status(tx, &env.agent, s, now)?;
        return Ok(Applied::Stored);
    }
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO messages (agent, seq, kind, topic, sent_ms, received_ms, bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            env.agent,
            env.seq as i64,
            env.body.kind(),
            topic,
            env.sent_ms,
            now,
            bytes as i64
        ],
    )?;
    if inserted == 0 {
        return Ok(Applied::Duplicate);
    }
    match &env.body {
        Body::Tracks(b) => store_tracks(tx, &env.agent, b)?,
        Body::Status(s) => store_status(tx, &env.agent, s, now)?,
        Body::Alert(a) => {
            if store_alert(tx, &env.agent, a, now)? {
                return Ok(Applied::NewAlert);
            }
        }
        // The aggregator publishes the watchlists; its own store holds them (the message row
        // records a copy that came back).
        Body::Watchlists(_) => {}
    }
    Ok(Applied::Stored)
}

/// Inserts an alert, or updates the open one with the same id (a repeated sighting within the
/// rule's cool-down); whether it was new.
fn store_alert(
    tx: &Transaction<'_>,
    agent: &str,
    a: &sharpeyes_wire::Alert,
    now: i64,
) -> Result<bool, StoreError> {
    let kind = a.kind.as_str();
    let priority = a.priority.as_str();
    let details = serde_json::to_string(&a.details).unwrap_or_else(|_| "{}".into());
    let existed: bool = tx
        .query_row(
            "SELECT 1 FROM alerts WHERE agent = ? AND alert_id = ?",
            params![agent, a.alert_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    tx.execute(
        "INSERT INTO alerts (agent, alert_id, site, camera, kind, priority, first_ms, last_ms,
                             track, summary, details_json, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (agent, alert_id) DO UPDATE SET
            sightings = sightings + 1,
            first_ms = min(first_ms, excluded.first_ms),
            priority = CASE WHEN excluded.last_ms >= last_ms THEN excluded.priority ELSE priority END,
            summary = CASE WHEN excluded.last_ms >= last_ms THEN excluded.summary ELSE summary END,
            details_json = CASE WHEN excluded.last_ms >= last_ms
                                THEN excluded.details_json ELSE details_json END,
            track = coalesce(excluded.track, track),
            last_ms = max(last_ms, excluded.last_ms)",
        params![
            agent,
            a.alert_id,
            a.site,
            a.camera,
            kind,
            priority,
            a.ts_ms,
            a.track.map(|t| t as i64),
            a.summary,
            details,
            now
        ],
    )?;
    let mut evidence = tx.prepare_cached(
        "INSERT INTO alert_evidence (agent, alert_id, role, mime, ts_ms, data)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent, alert_id, role) DO UPDATE SET
            mime = excluded.mime, data = excluded.data, ts_ms = excluded.ts_ms
         WHERE excluded.ts_ms >= ts_ms",
    )?;
    for e in &a.evidence {
        evidence.execute(params![agent, a.alert_id, e.role, e.mime, a.ts_ms, e.data])?;
    }
    Ok(!existed)
}

fn store_tracks(tx: &Transaction<'_>, agent: &str, b: &TrackBatch) -> Result<(), StoreError> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO tracks (agent, camera, track, site, class, first_ms, last_ms, ended, updates, best_score,
                             frame_w, frame_h, x1, y1, x2, y2, plate, plate_confidence, link)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, 1, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (agent, camera, track) DO UPDATE SET
            first_ms = min(first_ms, excluded.first_ms),
            ended = max(ended, excluded.ended),
            updates = updates + 1,
            best_score = max(best_score, excluded.best_score),
            x1 = CASE WHEN excluded.last_ms >= last_ms THEN excluded.x1 ELSE x1 END,
            y1 = CASE WHEN excluded.last_ms >= last_ms THEN excluded.y1 ELSE y1 END,
            x2 = CASE WHEN excluded.last_ms >= last_ms THEN excluded.x2 ELSE x2 END,
            y2 = CASE WHEN excluded.last_ms >= last_ms THEN excluded.y2 ELSE y2 END,
            frame_w = excluded.frame_w,
            frame_h = excluded.frame_h,
            plate = CASE WHEN excluded.plate IS NOT NULL AND excluded.last_ms >= last_ms
                         THEN excluded.plate ELSE plate END,
            plate_confidence = CASE WHEN excluded.plate IS NOT NULL AND excluded.last_ms >= last_ms
                         THEN excluded.plate_confidence ELSE plate_confidence END,
            link = CASE WHEN excluded.link IS NOT NULL AND excluded.last_ms >= last_ms
                         THEN excluded.link ELSE link END,
            last_ms = max(last_ms, excluded.last_ms)",
    )?;
    let mut point = tx.prepare_cached(
        "INSERT OR IGNORE INTO track_points (agent, camera, track, ts_ms, event, score, x1, y1, x2, y2)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for u in &b.updates {
        let [x1, y1, x2, y2] = u.bbox.to_pixels(b.frame_w, b.frame_h);
        upsert.execute(params![
            agent,
            b.camera,
            u.track as i64,
            b.site,
            u.class.as_str(),
            u.ts_ms,
            (u.event == TrackEvent::End) as i64,
            u.score as f64,
            b.frame_w,
            b.frame_h,
            x1 as f64,
            y1 as f64,
            x2 as f64,
            y2 as f64,
            u.plate.as_ref().map(|p| p.text.as_str()),
            u.plate.as_ref().map(|p| p.confidence as f64),
            u.link.map(|l| l as i64),
        ])?;
        point.execute(params![
            agent,
            b.camera,
            u.track as i64,
            u.ts_ms,
            u.event.as_str(),
            u.score as f64,
            x1 as f64,
            y1 as f64,
            x2 as f64,
            y2 as f64
        ])?;
    }
    Ok(())
}

fn store_status(
    tx: &Transaction<'_>,
    agent: &str,
    s: &AgentStatus,
    now: i64,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "{}".into());
    tx.execute(
        "INSERT INTO agents (agent, site, online, version, started_ms, updated_ms, status_json)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent) DO UPDATE SET site = excluded.site, online = excluded.online,
            version = excluded.version, started_ms = excluded.started_ms,
            updated_ms = excluded.updated_ms, status_json = excluded.status_json",
        params![agent, s.site, s.online, s.version, s.started_ms, now, json],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharpeyes_wire::{ObjectClass, QBox, TrackUpdate};

    fn batch(seq: u64, track: u64, event: TrackEvent, ts: i64, x: f32) -> Envelope {
        Envelope::new(
            "a1",
            seq,
            ts,
            Body::Tracks(TrackBatch {
                site: "s1".into(),
                camera: "cam-1".into(),
                frame_w: 1000,
                frame_h: 1000,
                from_ms: ts,
                to_ms: ts,
                frames: 1,
                updates: vec![TrackUpdate {
                    track,
                    class: ObjectClass::Face,
                    event,
                    ts_ms: ts,
                    bbox: QBox::from_pixels([x, 10.0, x + 100.0, 110.0], 1000, 1000),
                    score: 0.5 + x / 10_000.0,
                    embedding: None,
                    plate: None,
                    link: None,
                }],
            }),
        )
    }

    fn with_plate(mut env: Envelope, text: &str, confidence: f32) -> Envelope {
        if let Body::Tracks(b) = &mut env.body {
            for u in &mut b.updates {
                u.class = ObjectClass::Plate;
                u.plate = Some(sharpeyes_wire::PlateReading {
                    text: text.into(),
                    confidence,
                });
            }
        }
        env
    }

    #[test]
    fn a_plate_track_keeps_its_latest_vote() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("t.db")).unwrap();
        s.apply(
            &with_plate(batch(1, 9, TrackEvent::Start, 1000, 0.0), "川A12845", 0.6),
            "t",
            1,
        )
        .unwrap();
        s.apply(
            &with_plate(batch(3, 9, TrackEvent::End, 3000, 0.0), "川A12345", 0.9),
            "t",
            1,
        )
        .unwrap();
        // A late, older update does not overwrite the newer vote.
        s.apply(
            &with_plate(batch(2, 9, TrackEvent::Update, 2000, 0.0), "川A12845", 0.7),
            "t",
            1,
        )
        .unwrap();
        let t = s.tracks(&TrackFilter::default()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].class.as_str(), t[0].plate.as_deref()),
            ("plate", Some("川A12345"))
        );
        assert!((t[0].plate_confidence.unwrap() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn a_version_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            // (The watchlist tables came with version 5.)
            let before_watchlists = SCHEMA
                .split("CREATE TABLE IF NOT EXISTS watch_faces")
                .next();
            let v1 = before_watchlists
                .unwrap()
                .replace("    plate            TEXT,\n", "")
                .replace("    plate_confidence REAL,\n", "")
                .replace("    link             INTEGER,\n", "");
            assert!(!v1.contains("plate") && !v1.contains("link"));
            c.execute_batch(&v1).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let mut b = with_plate(batch(1, 9, TrackEvent::Start, 1000, 0.0), "京N8M2Q7", 0.8);
        if let Body::Tracks(t) = &mut b.body {
            t.updates[0].link = Some(4);
        }
        s.apply(&b, "t", 1).unwrap();
        let t = s.tracks(&TrackFilter::default()).unwrap();
        assert_eq!(t[0].plate.as_deref(), Some("京N8M2Q7"));
        assert_eq!(t[0].link, Some(4));
    }

    #[test]
    fn track_lifecycle_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("t.db")).unwrap();
        assert_eq!(
            s.apply(&batch(1, 7, TrackEvent::Start, 1000, 0.0), "t", 10)
                .unwrap(),
            Applied::Stored
        );
        assert_eq!(
            s.apply(&batch(2, 7, TrackEvent::Update, 2000, 100.0), "t", 10)
                .unwrap(),
            Applied::Stored
        );
        assert_eq!(
            s.apply(&batch(2, 7, TrackEvent::Update, 2000, 100.0), "t", 10)
                .unwrap(),
            Applied::Duplicate
        );
        // Out of order: the end arrives before a late update; times and box still come out right.
        assert_eq!(
            s.apply(&batch(4, 7, TrackEvent::End, 4000, 300.0), "t", 10)
                .unwrap(),
            Applied::Stored
        );
        assert_eq!(
            s.apply(&batch(3, 7, TrackEvent::Update, 3000, 200.0), "t", 10)
                .unwrap(),
            Applied::Stored
        );
        let rows = s.tracks(&TrackFilter::default()).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.first_ms, r.last_ms, r.ended, r.updates),
            (1000, 4000, true, 4)
        );
        assert!((r.bbox[0] - 300.0).abs() < 0.1, "{:?}", r.bbox);
        assert_eq!(s.message_count().unwrap(), 4);
        assert_eq!(
            s.message_keys().unwrap(),
            vec![
                ("a1".to_string(), 1),
                ("a1".into(), 2),
                ("a1".into(), 3),
                ("a1".into(), 4)
            ]
        );
    }

    #[test]
    fn filters_by_camera_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("t.db")).unwrap();
        s.apply(&batch(1, 1, TrackEvent::Start, 1000, 0.0), "t", 1)
            .unwrap();
        s.apply(&batch(2, 2, TrackEvent::Start, 5000, 0.0), "t", 1)
            .unwrap();
        let f = |camera: Option<&str>, since_ms| TrackFilter {
            camera: camera.map(Into::into),
            since_ms,
            limit: None,
        };
        assert_eq!(s.tracks(&f(Some("cam-1"), Some(2000))).unwrap().len(), 1);
        assert_eq!(s.tracks(&f(Some("cam-2"), None)).unwrap().len(), 0);
        let all = s.tracks(&f(None, None)).unwrap();
        assert_eq!(
            all.iter().map(|r| r.track).collect::<Vec<_>>(),
            vec![1, 2],
            "oldest first"
        );
        let newest = s
            .tracks(&TrackFilter {
                limit: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(newest[0].track, 2);
    }

    #[test]
    fn reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        Store::open(&p)
            .unwrap()
            .apply(&batch(1, 1, TrackEvent::Start, 1000, 0.0), "t", 1)
            .unwrap();
        let mut s = Store::open(&p).unwrap();
        assert_eq!(
            s.apply(&batch(1, 1, TrackEvent::Start, 1000, 0.0), "t", 1)
                .unwrap(),
            Applied::Duplicate
        );
        assert_eq!(s.tracks(&TrackFilter::default()).unwrap().len(), 1);
    }
}
