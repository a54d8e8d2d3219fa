//! The store: one SQLite file in WAL mode (the default), or a PostgreSQL database shared by
//! several aggregators. One [`Store`] type over a [`sql::Backend`] trait with two
//! implementations; the same schema (PostgreSQL's types: BIGINT, DOUBLE PRECISION, BYTEA)
//! and the same queries ([`sql`] says how they are written once for both).
//!
//! **Time partitioning.** PostgreSQL: `sightings` (by `first_ms`) and `track_points` (by
//! `ts_ms`) are declaratively range-partitioned by day (`sightings_d20417` holds day 20417
//! since the epoch); a day's partition is created on demand by the transaction that first
//! writes into it. Retention drops whole partitions ([`retention`]). SQLite has no
//! partitioning: the same tables carry time indexes and retention deletes old rows in
//! bounded chunks. (Per-period tables behind a view were rejected: every identity and plate
//! lookup would become a `UNION ALL` over all periods, and the upsert paths would have to
//! find the right table first; SQLite's deletes are real and the freed pages are reused.)
//! `messages` and `tracks` are not partitioned on either engine: their keys
//! (`(agent, seq)`, `(agent, camera, track)`) must stay unique across all time for
//! deduplication, and PostgreSQL only enforces uniqueness within a partition when the key
//! contains the partition column. A track's sighting is therefore kept unique on PostgreSQL
//! by the one fusion owner replacing it (delete, then insert) inside its transaction.
//!
//! **Several aggregators, one PostgreSQL store.** Every aggregator of the shared-subscription
//! group stores what it receives: `(agent, seq)` is the primary key of `messages` and is
//! inserted with `ON CONFLICT DO NOTHING` inside the batch's transaction, so a message
//! delivered to two aggregators (a redelivery after a lost acknowledgement) is stored, and
//! its tracks applied, exactly once. Identities are assigned by one **fusion owner** per
//! store: the aggregator whose session holds the advisory lock `pg_try_advisory_lock` on
//! `OWNER_LOCK` (tried at start and every second by the others). The owner fuses what it
//! receives and writes the results in the batch's transaction, after checking in that same
//! transaction that its session still holds the lock. The others queue each new track batch
//! in `fusion_inbox` in the transaction that stores it; the owner drains the inbox, fuses,
//! and deletes the entries in the transaction that writes their results. A batch is thus
//! fused exactly once, by the one owner, and identities cannot split: no two fusers ever
//! allocate ids or match plates and faces at once. When the owner dies its session ends,
//! the lock is free, and the next aggregator to try it takes over, restarting its fuser from
//! the store (next ids past every stored id). One owner for the whole store rather than one
//! per site: vehicles and persons move between sites, and identities are city-wide.
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

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;
use serde::Serialize;
use sharpeyes_wire::{AgentStatus, Body, Envelope, TrackBatch, TrackEvent};
use thiserror::Error;

pub mod audit;
pub mod deadletter;
pub mod evidence;
pub mod faces;
pub mod fusion;
pub mod retention;
pub mod sql;
pub mod tokens;
pub mod watchlist;

pub use self::deadletter::{DeadLetter, Replay};
pub use self::evidence::{BadSha256, EvidenceBlob};
pub use self::retention::{RetentionPolicy, RetentionReport};
pub use self::sql::Dialect;
pub use self::sql::Value;
use self::sql::{Arg, Backend, Row};
use crate::args;

pub use self::fusion::{
    Area, FlagRow, LinkRow, Page, PlateMatchKind, SightingKey, SightingRow, VehicleRow,
};
pub use self::watchlist::{
    Contact, FaceEnrollment, FaceRow, PlateRow, RemovedFace, WatchlistListing,
};

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (connecting, or a statement).
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] postgres::Error),
    /// A column did not hold what the store wrote there.
    #[error("column {column} holds {value}, not the expected type")]
    Decode {
        /// Column index.
        column: usize,
        /// What it held.
        value: String,
    },
    /// This writer computed fusion results but is not (or no longer) the fusion owner; nothing
    /// was written.
    #[error("not the fusion owner (another aggregator assigns identities)")]
    NotFusionOwner,
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
    /// A value the store cannot place (a time with no partition).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// An evidence reference that is not a SHA-256 (64 lowercase hex digits); nothing was
    /// looked up.
    #[error(transparent)]
    BadEvidenceRef(#[from] BadSha256),
    /// A stored value does not decode (written by something else than this store).
    #[error("corrupt watchlist row {id:?}: {reason}")]
    Corrupt {
        /// The row's key.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// Whom a store failure concerns ([`StoreError::scope`]): the writer retries a store-wide
/// failure with back-off and acknowledges nothing meanwhile; a failure of one message sends
/// that message to the dead letters and stores the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The store as a whole: unreachable, disk full, busy, read-only, out of memory…
    Store,
    /// The statement's data: a constraint, a value the column cannot hold.
    Message,
    /// Cannot tell (the writer isolates the batch; if every message fails alone, it is taken
    /// for store-wide).
    Unknown,
}

impl StoreError {
    /// Whom this failure concerns.
    pub fn scope(&self) -> Scope {
        match self {
            StoreError::Sqlite(e) => sqlite_scope(e),
            StoreError::Postgres(e) => postgres_scope(e),
            StoreError::Decode { .. }
            | StoreError::Invalid(_)
            | StoreError::OutOfRange(_)
            | StoreError::BadEvidenceRef(_)
            | StoreError::Corrupt { .. } => Scope::Message,
            StoreError::NotFusionOwner
            | StoreError::NewerSchema { .. }
            | StoreError::OtherSchema { .. } => Scope::Store,
            StoreError::UnknownPatient(_) | StoreError::RoleConflict { .. } => Scope::Message,
        }
    }
}

fn sqlite_scope(e: &rusqlite::Error) -> Scope {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation | C::TypeMismatch | C::TooBig | C::ParameterOutOfRange => {
                Scope::Message
            }
            C::DiskFull
            | C::SystemIoFailure
            | C::CannotOpen
            | C::DatabaseBusy
            | C::DatabaseLocked
            | C::ReadOnly
            | C::OutOfMemory
            | C::DatabaseCorrupt
            | C::NotADatabase
            | C::PermissionDenied
            | C::FileLockingProtocolFailed
            | C::NoLargeFileSupport => Scope::Store,
            _ => Scope::Unknown,
        },
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(_)
        | rusqlite::Error::NulError(_) => Scope::Message,
        _ => Scope::Unknown,
    }
}

/// What PostgreSQL said: the server's message, detail and SQLSTATE when it answered (the
/// client's own text is only "db error"), else the client's error with its cause.
fn postgres_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut s = format!("{} (SQLSTATE {})", d.message(), d.code().code());
            if let Some(detail) = d.detail() {
                s.push_str(&format!("; {detail}"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn postgres_scope(e: &postgres::Error) -> Scope {
    if e.is_closed() {
        return Scope::Store;
    }
    let Some(state) = e.code() else {
        // No SQLSTATE: an I/O or protocol failure of the connection.
        return if e.as_db_error().is_none() {
            Scope::Store
        } else {
            Scope::Unknown
        };
    };
    let code = state.code();
    match &code[..2] {
        // Data exception, integrity constraint, invalid text representation…
        "22" | "23" => Scope::Message,
        // Connection, resources (disk full), operator intervention, system error, rollback
        // (serialisation, deadlock), lock not available, internal.
        "08" | "53" | "57" | "58" | "40" | "XX" => Scope::Store,
        "55" if code == "55P03" => Scope::Store,
        _ => Scope::Unknown,
    }
}

const SCHEMA_VERSION: i64 = 13;

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
    // 6 → 7: the fusion inbox and the messages' time index (for retention), which SCHEMA
    // and fusion::SCHEMA create.
    "",
    // 7 → 8: person_faces, which faces::SCHEMA creates.
    "",
    // 8 → 9: the evidence store (evidence::SCHEMA; schema 8's inline alert images are moved
    // by evidence::migrate) and each track's best shot.
    "ALTER TABLE tracks ADD COLUMN evidence_crop TEXT;",
    // 9 → 10: the API's tokens and audit log, which tokens::SCHEMA and audit::SCHEMA create.
    "",
    // 10 → 11: a camera's sightings indexed with their end too (the area queries filter on
    // it in the index instead of reading every row of the day before the window); the
    // schema creates it again.
    "DROP INDEX IF EXISTS sightings_by_camera_time;",
    // 11 → 12: the plate index holds kind and identity, so the vehicles read as a plate are
    // found in the index (a plate seen 50,000 times was 50,000 row reads); the schema makes
    // it again.
    "DROP INDEX IF EXISTS sightings_by_plate;",
    // 12 → 13: dead letters (deadletter::SCHEMA) and the audit log's signed checkpoints,
    // which their schemas create.
    "",
];

/// Track points (PostgreSQL: partitioned by day of `ts_ms`; the key holds the time).
const TRACK_POINTS: &str = "
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
CREATE INDEX IF NOT EXISTS track_points_by_time ON track_points (ts_ms);
";

/// PostgreSQL's `sightings`: partitioned by day of `first_ms`, so the key holds `first_ms`
/// (see the module docs for how a track stays one sighting).
const PG_SIGHTINGS: &str = "
CREATE TABLE IF NOT EXISTS sightings (
    agent      TEXT    NOT NULL,
    camera     TEXT    NOT NULL,
    track      INTEGER NOT NULL,
    site       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('vehicle', 'person')),
    identity   INTEGER NOT NULL,
    class      TEXT    NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    lat        REAL,
    lon        REAL,
    confidence REAL    NOT NULL,
    ended      INTEGER NOT NULL,
    plate      TEXT,
    why_json   TEXT    NOT NULL,
    PRIMARY KEY (agent, camera, track, first_ms)
) PARTITION BY RANGE (first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_identity ON sightings (kind, identity, first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_time ON sightings (first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_camera_time ON sightings (agent, camera, first_ms, last_ms);
CREATE INDEX IF NOT EXISTS sightings_by_plate ON sightings (plate, kind, identity) WHERE plate IS NOT NULL;
CREATE INDEX IF NOT EXISTS sightings_by_place ON sightings (lat, lon, first_ms);
";

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
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (received_ms);
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
    evidence_crop    TEXT,
    PRIMARY KEY (agent, camera, track)
);
CREATE INDEX IF NOT EXISTS tracks_by_camera_time ON tracks (camera, last_ms);
CREATE INDEX IF NOT EXISTS tracks_by_time ON tracks (last_ms);
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
    /// The evidence images by role → SHA-256 in the evidence store ([`Store::evidence`],
    /// `GET /api/v1/evidence/{sha256}`).
    pub evidence_refs: std::collections::BTreeMap<String, String>,
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

impl AlertRow {
    /// The row a new alert becomes when stored (`received_ms` at the aggregator): what the
    /// live alert stream sends without reading it back.
    pub fn from_wire(agent: &str, a: &sharpeyes_wire::Alert, received_ms: i64) -> Self {
        let mut evidence: Vec<String> = a.evidence.iter().map(|e| e.role.clone()).collect();
        evidence.sort();
        evidence.dedup();
        Self {
            agent: agent.to_string(),
            alert_id: a.alert_id.clone(),
            site: a.site.clone(),
            camera: a.camera.clone(),
            kind: a.kind.as_str().to_string(),
            priority: a.priority.as_str().to_string(),
            first_ms: a.ts_ms,
            last_ms: a.ts_ms,
            sightings: 1,
            track: a.track,
            summary: a.summary.clone(),
            details: a.details.clone(),
            evidence,
            evidence_refs: a
                .evidence
                .iter()
                .filter(|e| evidence::keeps_alert_image(e))
                .map(|e| (e.role.clone(), evidence::sha256_hex(&e.data)))
                .collect(),
            received_ms,
            acked_ms: None,
            acked_by: None,
            ack_note: None,
        }
    }
}

/// Where a page of alerts starts: the last alert of the previous page (newest-first order:
/// `last_ms` descending, then agent and alert id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AlertKey {
    /// Its `last_ms`.
    pub last_ms: i64,
    /// Its agent.
    pub agent: String,
    /// Its alert id.
    pub alert_id: String,
}

impl AlertKey {
    /// The key of a row.
    pub fn of(r: &AlertRow) -> Self {
        Self {
            last_ms: r.last_ms,
            agent: r.agent.clone(),
            alert_id: r.alert_id.clone(),
        }
    }
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
    /// SHA-256 of the track's best shot in the evidence store ([`Store::evidence`]), when
    /// the agent sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_crop: Option<String>,
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

/// Which backend a store uses and how to reach it (see `StoreConfig`).
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database: a `postgres://` URL or `key=value` connection string.
    Postgres(String),
}

impl Location {
    /// `--db` on the command line: a `postgres://` / `postgresql://` URL, else a SQLite
    /// file.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_string())
        } else {
            Location::Sqlite(s.into())
        }
    }

    /// Where it points, fit for logs (a PostgreSQL password is never shown).
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(u) => match u.parse::<postgres::Config>() {
                Ok(c) => sql::describe_postgres(&c),
                Err(_) => "postgres (unparsable URL)".into(),
            },
        }
    }
}

/// The connection and what the store remembers about it.
pub(crate) struct Db {
    backend: Box<dyn Backend>,
    /// PostgreSQL partitions known to exist: (table, first day since the epoch).
    partitions: HashSet<(&'static str, i64)>,
    /// Whether this session holds the fusion owner lock (PostgreSQL; SQLite: always).
    owner: bool,
    /// Evidence images left out of committed messages since the last
    /// [`Store::take_evidence_refused`] (see [`evidence`]).
    evidence_refused: u64,
    /// Those of the transaction under way (added to `evidence_refused` on commit).
    evidence_refused_tx: u64,
    /// A transaction of [`Store::audited`] is open: [`Store::tx`] runs inside it (no
    /// BEGIN/COMMIT of its own; an error rolls the whole of it back).
    nested: bool,
}

impl Db {
    /// BEGIN, with what a new session needs.
    fn begin_tx(&mut self) -> Result<(), StoreError> {
        self.backend.begin()?;
        self.evidence_refused_tx = 0;
        if self.backend.reconnected() {
            // A new session: the partitions may have been dropped meanwhile, and the owner
            // lock went with the old session.
            self.partitions.clear();
            self.owner = self.dialect() == Dialect::Sqlite;
        }
        Ok(())
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.backend.dialect()
    }

    pub(crate) fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        self.backend.execute(sql, args)
    }

    pub(crate) fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.backend.query(sql, args)
    }

    /// The first row, if any.
    pub(crate) fn one(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.backend.query(sql, args)?.into_iter().next())
    }

    /// Makes sure the daily partition of `table` holding `ms` exists (PostgreSQL; a no-op on
    /// SQLite, whose tables are not partitioned). Inside the caller's transaction; creators
    /// are serialised by a transaction-level advisory lock, so two aggregators creating the
    /// same day do not collide.
    pub(crate) fn ensure_partition(
        &mut self,
        table: &'static str,
        ms: i64,
    ) -> Result<(), StoreError> {
        if self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        let day = ms.div_euclid(DAY_MS);
        if self.partitions.contains(&(table, day)) {
            return Ok(());
        }
        let (Some(from), Some(to)) = (
            day.checked_mul(DAY_MS),
            day.checked_add(1).and_then(|d| d.checked_mul(DAY_MS)),
        ) else {
            return Err(StoreError::OutOfRange(format!(
                "{table}: time {ms} ms has no daily partition"
            )));
        };
        self.backend
            .query("SELECT pg_advisory_xact_lock(?)", args![LOCK_PARTITIONS])?;
        self.backend.batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table}
             FOR VALUES FROM ({from}) TO ({to})",
            partition_name(table, day)
        ))?;
        self.partitions.insert((table, day));
        Ok(())
    }

    /// The daily partitions of `table` (PostgreSQL), as (name, first day).
    pub(crate) fn partitions_of(&mut self, table: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self.backend.query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ? ORDER BY c.relname",
            args![table],
        )?;
        let prefix = format!("{table}_d");
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.get(0)?;
            let day = name
                .strip_prefix(&prefix)
                .and_then(|d| match d.strip_prefix('m') {
                    Some(neg) => neg.parse::<i64>().ok().map(|d| -d),
                    None => d.parse::<i64>().ok(),
                });
            if let Some(day) = day {
                out.push((name, day));
            }
        }
        out.sort_by_key(|p| p.1);
        Ok(out)
    }
}

/// One day, ms: the partition width.
pub const DAY_MS: i64 = 86_400_000;

/// The name of `table`'s partition of `day` (days since the epoch): `track_points_d20417`;
/// a day before 1970 is written `dm1` (`-` cannot stand in a name).
pub(crate) fn partition_name(table: &str, day: i64) -> String {
    if day < 0 {
        format!("{table}_dm{}", day.unsigned_abs())
    } else {
        format!("{table}_d{day}")
    }
}
/// Advisory lock keys (PostgreSQL), in the `pg_advisory_lock(bigint)` key space (audit:
/// `…5003`, dead letters: `…5004`).
const LOCK_SCHEMA: i64 = 0x5348_4152_5001;
const LOCK_PARTITIONS: i64 = 0x5348_4152_5002;
/// The fusion owner's session lock: taken as `pg_try_advisory_lock(int4, int4)` so
/// `pg_locks` shows it as classid/objid.
const OWNER_LOCK: (i32, i32) = (0x5348_4152, 1);

/// The store: the messages, tracks, alerts, agents, watchlists and fusion results of one
/// deployment, in SQLite (default) or PostgreSQL ([`sql::Backend`]); the same schema and the
/// same queries on both.
pub struct Store {
    db: Mutex<Db>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect())
            .finish()
    }
}

/// The PostgreSQL schema: the common one with PostgreSQL's types; the time-partitioned tables
/// declared partitioned by range of their time.
fn postgres_schema(common: &str) -> String {
    common
        .replace("INTEGER", "BIGINT")
        .replace(" REAL", " DOUBLE PRECISION")
        .replace("BLOB", "BYTEA")
        .replace(") WITHOUT ROWID;", ");")
}

/// SQLite's `synchronous` pragma for the writer (`store.sqlite_synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit reaches the disk before it returns (durable through a power cut).
    #[default]
    Full,
    /// Commits reach the disk at checkpoints (survives a crash of the process, not of the
    /// machine).
    Normal,
}

impl SqliteSynchronous {
    /// The pragma's value.
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

/// SQLite's page cache per connection, KiB (SQLite's own default, 2 MiB, makes the indexes
/// of a store of millions of sightings go to the disk for every insert and query).
const SQLITE_CACHE_KIB: u32 = 64 * 1024;

impl Store {
    /// Sets this SQLite connection's page cache to `mib` MiB (bulk loads of large stores
    /// want more than the default 64 MiB: the indexes are inserted into at random places);
    /// nothing on PostgreSQL, whose cache is the server's.
    pub fn set_sqlite_cache_mib(&self, mib: u32) -> Result<(), StoreError> {
        if self.dialect() == Dialect::Sqlite {
            self.db()
                .backend
                .batch(&format!("PRAGMA cache_size = -{}", u64::from(mib) * 1024))?;
        }
        Ok(())
    }

    /// Sets this SQLite connection's `synchronous` (the aggregator applies
    /// `store.sqlite_synchronous`; [`Store::open`] starts with `FULL`); nothing on
    /// PostgreSQL.
    pub fn set_sqlite_synchronous(&self, mode: SqliteSynchronous) -> Result<(), StoreError> {
        if self.dialect() == Dialect::Sqlite {
            self.db()
                .backend
                .batch(&format!("PRAGMA synchronous = {}", mode.as_str()))?;
        }
        Ok(())
    }

    /// Opens (creating if needed) the SQLite database at `path` (WAL, `synchronous = FULL`:
    /// a commit survives a power cut).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Deleted rows (retention: faces, plates, images of passers-by) are overwritten, not
        // left readable in free pages of the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "cache_size", -(SQLITE_CACHE_KIB as i64))?;
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
        conn.execute_batch(TRACK_POINTS)?;
        conn.execute_batch(fusion::SCHEMA)?;
        conn.execute_batch(fusion::SIGHTINGS)?;
        conn.execute_batch(faces::SCHEMA)?;
        conn.execute_batch(tokens::SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        conn.execute_batch(deadletter::SCHEMA)?;
        let store = Self::with(Box::new(sql::Sqlite::new(conn)));
        store.tx(evidence::migrate)?;
        store
            .db()
            .backend
            .batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        Ok(store)
    }

    /// Opens an existing SQLite database read-only (a reader beside the writer; WAL lets both
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
        Ok(Self::with(Box::new(sql::Sqlite::new(conn))))
    }

    /// Connects to a PostgreSQL database (`postgres://user:password@host:port/db` or a
    /// `key=value` string), creating or migrating the schema. Several aggregators may do this
    /// at once: schema changes are serialised by an advisory lock.
    pub fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("store.postgres_url: {e}")))?;
        let mut backend = sql::Postgres::connect(config)?;
        backend.begin()?;
        let r = (|| {
            backend.query("SELECT pg_advisory_xact_lock(?)", args![LOCK_SCHEMA])?;
            backend.batch(
                "CREATE TABLE IF NOT EXISTS schema_version (
                     id      BIGINT PRIMARY KEY CHECK (id = 1),
                     version BIGINT NOT NULL)",
            )?;
            let found: Option<i64> = backend
                .query("SELECT version FROM schema_version WHERE id = 1", &[])?
                .first()
                .map(|r| r.get(0))
                .transpose()?;
            if let Some(found) = found
                && found > SCHEMA_VERSION
            {
                return Err(StoreError::NewerSchema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            // PostgreSQL stores begin at schema 7; later migrations go here, by version.
            if found.is_some_and(|v| v < 11) {
                // 10 → 11: sightings_by_camera_time gains last_ms (PG_SIGHTINGS makes it).
                backend.batch("DROP INDEX IF EXISTS sightings_by_camera_time")?;
            }
            if found.is_some_and(|v| v < 12) {
                // 11 → 12: sightings_by_plate gains kind and identity (PG_SIGHTINGS makes it).
                backend.batch("DROP INDEX IF EXISTS sightings_by_plate")?;
            }
            backend.batch(&postgres_schema(SCHEMA))?;
            backend.batch(&postgres_schema(fusion::SCHEMA))?;
            backend.batch(&postgres_schema(
                &TRACK_POINTS.replace(") WITHOUT ROWID;", ") PARTITION BY RANGE (ts_ms);"),
            ))?;
            backend.batch(&postgres_schema(PG_SIGHTINGS))?;
            backend.batch(&postgres_schema(faces::SCHEMA))?;
            // 8 → 9: each track's best shot (the evidence tables: evidence::migrate, below).
            backend.batch("ALTER TABLE tracks ADD COLUMN IF NOT EXISTS evidence_crop TEXT")?;
            backend.batch(&postgres_schema(tokens::SCHEMA))?;
            backend.batch(&postgres_schema(audit::SCHEMA))?;
            backend.batch(&postgres_schema(deadletter::SCHEMA))?;
            backend.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                args![SCHEMA_VERSION],
            )?;
            Ok(())
        })();
        match r {
            Ok(()) => backend.commit()?,
            Err(e) => {
                backend.rollback();
                return Err(e);
            }
        }
        let store = Self::with(Box::new(backend));
        store.tx(|db| {
            db.query("SELECT pg_advisory_xact_lock(?)", args![LOCK_SCHEMA])?;
            evidence::migrate(db)
        })?;
        Ok(store)
    }

    /// Opens the store at `at` (read-write; created or migrated).
    pub fn open_at(at: &Location) -> Result<Self, StoreError> {
        match at {
            Location::Sqlite(p) => Self::open(p),
            Location::Postgres(u) => Self::open_postgres(u),
        }
    }

    /// Opens the store at `at` for reading beside a writer (SQLite: read-only; PostgreSQL: a
    /// session of its own).
    pub fn open_reader(at: &Location) -> Result<Self, StoreError> {
        match at {
            Location::Sqlite(p) => Self::open_read_only(p),
            Location::Postgres(u) => Self::open_postgres(u),
        }
    }

    fn with(backend: Box<dyn Backend>) -> Self {
        let owner = backend.dialect() == Dialect::Sqlite;
        Self {
            db: Mutex::new(Db {
                backend,
                partitions: HashSet::new(),
                owner,
                evidence_refused: 0,
                evidence_refused_tx: 0,
                nested: false,
            }),
        }
    }

    /// Evidence images left out of the messages committed since the last call (not an image
    /// of their declared type, too large, a bad role; the rest of each message was stored);
    /// the writer counts them in `sharpeyes_aggregator_evidence_refused_total`.
    pub fn take_evidence_refused(&self) -> u64 {
        std::mem::take(&mut self.db().evidence_refused)
    }

    /// The backend's engine.
    pub fn dialect(&self) -> Dialect {
        self.db().dialect()
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    pub(crate) fn tx<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut db = self.db();
        if db.nested {
            // Inside `audited`: its transaction commits or rolls back the whole.
            return f(&mut db);
        }
        db.begin_tx()?;
        match f(&mut db) {
            Ok(v) => {
                db.backend.commit()?;
                db.evidence_refused += std::mem::take(&mut db.evidence_refused_tx);
                Ok(v)
            }
            Err(e) => {
                db.backend.rollback();
                // Partitions this transaction made are gone with it.
                db.partitions.clear();
                Err(e)
            }
        }
    }

    /// Runs the change `f` and appends `entry` to the audit log in **one** transaction: both
    /// are committed, or neither (an audit append that fails undoes the change). `f` returns
    /// `Some` when it changed something (then `entry` is appended), `None` when it changed
    /// nothing (nothing is appended: the caller audits the refusal itself). Every store
    /// method `f` calls that opens a transaction of its own runs inside this one. `&mut self`:
    /// no other user of this handle can slip a statement into the transaction.
    pub fn audited<T, E: From<StoreError>>(
        &mut self,
        entry: &audit::AuditEntry,
        f: impl FnOnce(&mut Store) -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        {
            let mut db = self.db();
            db.begin_tx()?;
            db.nested = true;
        }
        // A panic in `f` still closes the transaction (the handle stays usable).
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        let mut db = self.db();
        db.nested = false;
        let out = match out {
            Ok(Ok(Some(v))) => audit::append_in(&mut db, entry)
                .map(|_| Some(v))
                .map_err(E::from),
            Ok(other) => other,
            Err(panic) => {
                db.backend.rollback();
                drop(db);
                std::panic::resume_unwind(panic);
            }
        };
        match out {
            Ok(v) => match db.backend.commit() {
                Ok(()) => {
                    db.evidence_refused += std::mem::take(&mut db.evidence_refused_tx);
                    Ok(v)
                }
                Err(e) => {
                    db.backend.rollback();
                    Err(E::from(e))
                }
            },
            Err(e) => {
                db.backend.rollback();
                Err(e)
            }
        }
    }

    /// Whether this store handle is the fusion owner: the one writer that assigns identities
    /// (see the [module docs](self)). SQLite: always. PostgreSQL: this session holds (or now
    /// took) the owner advisory lock.
    pub fn fusion_owner(&self) -> Result<bool, StoreError> {
        let mut db = self.db();
        if db.owner {
            return Ok(true);
        }
        let got: bool = db
            .one(
                "SELECT pg_try_advisory_lock(?, ?)",
                args![OWNER_LOCK.0, OWNER_LOCK.1],
            )?
            .map(|r| r.get(0))
            .transpose()?
            .unwrap_or(false);
        db.owner = got;
        Ok(got)
    }

    /// Gives the fusion owner lock back (PostgreSQL; a no-op on SQLite).
    pub fn release_fusion_owner(&self) -> Result<(), StoreError> {
        let mut db = self.db();
        if db.dialect() == Dialect::Postgres && db.owner {
            db.query(
                "SELECT pg_advisory_unlock(?, ?)",
                args![OWNER_LOCK.0, OWNER_LOCK.1],
            )?;
            db.owner = false;
        }
        Ok(())
    }

    /// Applies messages in one transaction; returns what happened to each, in order.
    /// `msgs` holds (envelope, topic, payload size).
    pub fn apply_all(
        &mut self,
        msgs: &[(Envelope, String, usize)],
    ) -> Result<Vec<Applied>, StoreError> {
        self.commit_batch(msgs, &[], Fusion::None)
    }

    /// [`apply_all`](Self::apply_all), and the fusion results computed from these messages
    /// (`fusion::apply_fusion`) in the same transaction: both commit or neither. Only the
    /// fusion owner may write fusion results: otherwise [`StoreError::NotFusionOwner`] and
    /// nothing is written.
    pub fn apply_all_with_fusion(
        &mut self,
        msgs: &[(Envelope, String, usize)],
        outputs: &[::fusion::FuseOutput],
    ) -> Result<Vec<Applied>, StoreError> {
        self.commit_batch(msgs, outputs, Fusion::Fused(&[]))
    }

    /// The writer's transaction: the messages; then, as the fusion owner, the fusion outputs
    /// and the removal of the inbox entries they consumed (`Fusion::Fused`), or, as another
    /// writer, the new track batches queued in the fusion inbox for the owner
    /// (`Fusion::Queue`).
    pub fn commit_batch(
        &mut self,
        msgs: &[(Envelope, String, usize)],
        outputs: &[::fusion::FuseOutput],
        fusion: Fusion<'_>,
    ) -> Result<Vec<Applied>, StoreError> {
        self.tx(|db| {
            if matches!(fusion, Fusion::Fused(_)) && !db.still_owner()? {
                return Err(StoreError::NotFusionOwner);
            }
            let now = sharpeyes_wire::now_ms();
            let mut out = Vec::with_capacity(msgs.len());
            for (env, topic, bytes) in msgs {
                out.push(apply_in_fusion(db, env, topic, *bytes, &fusion, now)?);
            }
            fusion::apply_fusion(db, outputs)?;
            if let Fusion::Fused(consumed) = fusion {
                for (agent, seq) in consumed {
                    fusion::unqueue(db, agent, *seq)?;
                }
            }
            Ok(out)
        })
    }

    /// [`commit_batch`](Self::commit_batch) with each message in a savepoint of its own: a
    /// message the store refuses for a reason of its own ([`Scope::Message`] or
    /// [`Scope::Unknown`]) is rolled back to its savepoint and kept as a dead letter
    /// ([`deadletter`]) with its raw payload (`raws[i]`, the payload of `msgs[i]`) in the same
    /// transaction, and the others are stored. A store-wide failure ([`Scope::Store`]), or
    /// every message of the batch failing with [`Scope::Unknown`], fails the whole
    /// transaction (nothing written). The fusion outputs are written in a savepoint too:
    /// when they fail, the messages are still stored and the error is returned beside them.
    pub fn commit_batch_isolating(
        &mut self,
        msgs: &[(Envelope, String, usize)],
        raws: &[&[u8]],
        outputs: &[::fusion::FuseOutput],
        fusion: Fusion<'_>,
    ) -> Result<Isolated, StoreError> {
        assert_eq!(msgs.len(), raws.len(), "one raw payload per message");
        self.tx(|db| {
            if matches!(fusion, Fusion::Fused(_)) && !db.still_owner()? {
                return Err(StoreError::NotFusionOwner);
            }
            let now = sharpeyes_wire::now_ms();
            let mut out = Vec::with_capacity(msgs.len());
            let mut unknown_failures = 0;
            let mut first_unknown = None;
            for ((env, topic, bytes), raw) in msgs.iter().zip(raws) {
                db.backend.batch("SAVEPOINT sharpeyes_msg")?;
                match apply_in_fusion(db, env, topic, *bytes, &fusion, now) {
                    Ok(a) => {
                        db.backend.batch("RELEASE SAVEPOINT sharpeyes_msg")?;
                        out.push(Outcome::Applied(a));
                    }
                    Err(e) => {
                        let scope = e.scope();
                        if scope == Scope::Store {
                            return Err(e);
                        }
                        db.backend
                            .batch("ROLLBACK TO SAVEPOINT sharpeyes_msg; RELEASE SAVEPOINT sharpeyes_msg")?;
                        db.partitions.clear();
                        if scope == Scope::Unknown {
                            unknown_failures += 1;
                            first_unknown.get_or_insert_with(|| e.to_string());
                        }
                        let error = e.to_string();
                        let id = deadletter::put(
                            db,
                            &deadletter::Letter {
                                agent: &env.agent,
                                seq: env.seq,
                                kind: env.body.kind(),
                                topic,
                                payload: raw,
                                error: &error,
                            },
                            now,
                        )?;
                        out.push(Outcome::DeadLettered { id, error });
                    }
                }
            }
            if unknown_failures > 0 && unknown_failures == msgs.len() && msgs.len() > 1 {
                return Err(StoreError::Invalid(format!(
                    "every message of the batch failed alone: {}",
                    first_unknown.unwrap_or_default()
                )));
            }
            db.backend.batch("SAVEPOINT sharpeyes_fusion")?;
            let fusion_error = match fusion::apply_fusion(db, outputs) {
                Ok(()) => {
                    db.backend.batch("RELEASE SAVEPOINT sharpeyes_fusion")?;
                    None
                }
                Err(e) if e.scope() == Scope::Store => return Err(e),
                Err(e) => {
                    db.backend.batch(
                        "ROLLBACK TO SAVEPOINT sharpeyes_fusion; RELEASE SAVEPOINT sharpeyes_fusion",
                    )?;
                    db.partitions.clear();
                    Some(e.to_string())
                }
            };
            if let Fusion::Fused(consumed) = fusion {
                for (agent, seq) in consumed {
                    fusion::unqueue(db, agent, *seq)?;
                }
            }
            Ok(Isolated {
                outcomes: out,
                fusion_error,
            })
        })
    }

    /// Bulk-loads rows into `table` in one transaction (benchmarks, imports): PostgreSQL
    /// `COPY`, SQLite multi-row prepared inserts. No fusion or deduplication logic runs; the
    /// rows must fit the table's keys. With `partitioned_by`, the column (an index into
    /// `columns`) whose time places a row in a partition: its days' partitions are made first
    /// (PostgreSQL).
    pub fn bulk_insert(
        &mut self,
        table: &'static str,
        columns: &[&str],
        rows: &[Vec<Value>],
        partitioned_by: Option<usize>,
    ) -> Result<(), StoreError> {
        self.tx(|db| {
            if let Some(c) = partitioned_by {
                let days: std::collections::BTreeSet<i64> = rows
                    .iter()
                    .filter_map(|r| match r.get(c) {
                        Some(Value::Integer(ms)) => Some(ms.div_euclid(DAY_MS)),
                        _ => None,
                    })
                    .collect();
                for d in days {
                    db.ensure_partition(table, d * DAY_MS)?;
                }
            }
            db.backend.bulk_insert(table, columns, rows)
        })
    }

    /// Creates the daily partitions of the partitioned tables from the day before `now_ms`
    /// to `days_ahead` days after it, each in a transaction of its own (PostgreSQL; nothing
    /// on SQLite). The aggregator calls it at start and with each retention run, so writers
    /// seldom create a partition in their own transaction (which briefly locks the table).
    pub fn create_partitions_ahead(&self, now_ms: i64, days_ahead: i64) -> Result<(), StoreError> {
        if self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        for d in -1..=days_ahead {
            for table in ["sightings", "track_points"] {
                self.tx(|db| db.ensure_partition(table, now_ms + d * DAY_MS))?;
            }
        }
        Ok(())
    }

    /// Refreshes the planner's statistics (`ANALYZE`), e.g. after a bulk load.
    pub fn analyze(&mut self) -> Result<(), StoreError> {
        self.db().backend.batch("ANALYZE")
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
                    x1, y1, x2, y2, frame_w, frame_h, plate, plate_confidence, link, evidence_crop
             FROM tracks WHERE 1=1",
        );
        let mut a: Vec<Value> = Vec::new();
        if let Some(c) = &f.camera {
            sql.push_str(" AND camera = ?");
            a.push(c.to_value());
        }
        if let Some(s) = f.since_ms {
            sql.push_str(" AND last_ms >= ?");
            a.push(s.to_value());
        }
        sql.push_str(" ORDER BY first_ms DESC, agent DESC, camera DESC, track DESC");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut rows = self
            .db()
            .query(&sql, &a)?
            .iter()
            .map(|r| {
                Ok(TrackRow {
                    agent: r.get(0)?,
                    site: r.get(1)?,
                    camera: r.get(2)?,
                    track: r.get(3)?,
                    class: r.get(4)?,
                    first_ms: r.get(5)?,
                    last_ms: r.get(6)?,
                    ended: r.get(7)?,
                    updates: r.get(8)?,
                    best_score: r.get(9)?,
                    bbox: [r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?],
                    frame_w: r.get(14)?,
                    frame_h: r.get(15)?,
                    plate: r.get(16)?,
                    plate_confidence: r.get(17)?,
                    link: r.get(18)?,
                    evidence_crop: r.get(19)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// Stored alerts matching `f`, newest first.
    pub fn alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        self.alerts_page(f, None)
    }

    /// [`alerts`](Self::alerts) after `after` (the last row of the previous page, in the
    /// same newest-first order): the API's pagination.
    pub fn alerts_page(
        &self,
        f: &AlertFilter,
        after: Option<&AlertKey>,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let mut sql = String::from(
            "SELECT a.agent, a.alert_id, site, camera, kind, priority, first_ms, last_ms, sightings,
                    track, summary, details_json, received_ms, acked_ms, acked_by, ack_note,
                    (SELECT string_agg(role || '=' || sha256, ',') FROM alert_evidence e
                      WHERE e.agent = a.agent AND e.alert_id = a.alert_id)
             FROM alerts a WHERE 1=1",
        );
        let mut a: Vec<Value> = Vec::new();
        if f.open_only {
            sql.push_str(" AND acked_ms IS NULL");
        }
        if let Some(s) = f.since_ms {
            sql.push_str(" AND last_ms >= ?");
            a.push(s.to_value());
        }
        if let Some(k) = &f.kind {
            sql.push_str(" AND kind = ?");
            a.push(k.to_value());
        }
        if let Some(k) = after {
            sql.push_str(" AND (last_ms < ? OR (last_ms = ? AND (a.agent, a.alert_id) > (?, ?)))");
            a.extend(
                args![k.last_ms, k.last_ms, k.agent, k.alert_id]
                    .iter()
                    .cloned(),
            );
        }
        sql.push_str(" ORDER BY last_ms DESC, a.agent, a.alert_id");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        self.db()
            .query(&sql, &a)?
            .iter()
            .map(|r| {
                let details: String = r.get(11)?;
                let refs: Option<String> = r.get(16)?;
                let evidence_refs: std::collections::BTreeMap<String, String> = refs
                    .iter()
                    .flat_map(|e| e.split(','))
                    .filter_map(|e| e.split_once('='))
                    .map(|(role, sha)| (role.to_string(), sha.to_string()))
                    .collect();
                let evidence: Vec<String> = evidence_refs.keys().cloned().collect();
                Ok(AlertRow {
                    agent: r.get(0)?,
                    alert_id: r.get(1)?,
                    site: r.get(2)?,
                    camera: r.get(3)?,
                    kind: r.get(4)?,
                    priority: r.get(5)?,
                    first_ms: r.get(6)?,
                    last_ms: r.get(7)?,
                    sightings: r.get(8)?,
                    track: r.get(9)?,
                    summary: r.get(10)?,
                    details: serde_json::from_str(&details).unwrap_or_default(),
                    evidence,
                    evidence_refs,
                    received_ms: r.get(12)?,
                    acked_ms: r.get(13)?,
                    acked_by: r.get(14)?,
                    ack_note: r.get(15)?,
                })
            })
            .collect()
    }

    /// One evidence image of an alert: its media type and bytes (from the evidence store).
    pub fn alert_evidence(
        &self,
        agent: &str,
        alert_id: &str,
        role: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.db()
            .one(
                "SELECT e.mime, e.bytes FROM alert_evidence a JOIN evidence e ON e.sha256 = a.sha256
                 WHERE a.agent = ? AND a.alert_id = ? AND a.role = ?",
                args![agent, alert_id, role],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
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
        let n = self.db().execute(
            "UPDATE alerts SET acked_ms = ?, acked_by = ?, ack_note = ?
             WHERE agent = ? AND alert_id = ? AND acked_ms IS NULL",
            args![sharpeyes_wire::now_ms(), by, note, agent, alert_id],
        )?;
        Ok(n == 1)
    }

    /// Number of stored messages (all kinds).
    pub fn message_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM messages", &[])
    }

    pub(crate) fn count(&self, sql: &str, a: &[Value]) -> Result<u64, StoreError> {
        self.db()
            .one(sql, a)?
            .map(|r| r.get::<i64>(0))
            .transpose()
            .map(|n| n.unwrap_or(0).max(0) as u64)
    }

    fn keys(&self, sql: &str, a: &[Value]) -> Result<Vec<(String, u64)>, StoreError> {
        self.db()
            .query(sql, a)?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Every stored `(agent, seq)` pair, sorted.
    pub fn message_keys(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.keys("SELECT agent, seq FROM messages ORDER BY agent, seq", &[])
    }

    /// The stored `(agent, seq)` pairs of one kind of message (`tracks`, `status`...), sorted.
    pub fn message_keys_of(&self, kind: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.keys(
            "SELECT agent, seq FROM messages WHERE kind = ? ORDER BY agent, seq",
            args![kind],
        )
    }

    /// The last status of an agent, if any.
    pub fn agent_status(&self, agent: &str) -> Result<Option<AgentStatus>, StoreError> {
        let json: Option<String> = self
            .db()
            .one(
                "SELECT status_json FROM agents WHERE agent = ?",
                args![agent],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}

impl Db {
    /// Whether this session still holds the fusion owner lock (checked inside the
    /// transaction that writes fusion results: a writer whose session was lost and
    /// re-established must not write what it fused before).
    fn still_owner(&mut self) -> Result<bool, StoreError> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(true);
        }
        if !self.owner {
            return Ok(false);
        }
        let held: bool = self
            .one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                       AND classid = {} AND objid = {} AND objsubid = 2
                       AND pid = pg_backend_pid() AND granted)",
                    OWNER_LOCK.0, OWNER_LOCK.1
                ),
                &[],
            )?
            .map(|r| r.get(0))
            .transpose()?
            .unwrap_or(false);
        self.owner = held;
        Ok(held)
    }
}

/// What happened to one message of [`Store::commit_batch_isolating`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (or a duplicate, or a new alert).
    Applied(Applied),
    /// Refused by the store; kept as dead letter `id`.
    DeadLettered {
        /// The dead letter's id.
        id: u64,
        /// What the store said.
        error: String,
    },
}

/// What [`Store::commit_batch_isolating`] committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolated {
    /// One outcome per message, in order.
    pub outcomes: Vec<Outcome>,
    /// Why the fusion outputs were not written, if they were not.
    pub fusion_error: Option<String>,
}

/// What the writer's transaction does about fusion ([`Store::commit_batch`]).
#[derive(Debug, Clone, Copy)]
pub enum Fusion<'a> {
    /// This writer is the fusion owner and fused these messages; the listed inbox entries
    /// (agent, seq) were fused too and leave the inbox.
    Fused(&'a [(String, u64)]),
    /// Another writer owns fusion: new track batches go to the fusion inbox.
    Queue,
    /// Messages only (tools, tests): no fusion bookkeeping.
    None,
}

/// Applies one message and keeps the fusion inbox right: a new track batch of a writer that
/// is not the fusion owner is queued for it; a track batch this owner finds stored already
/// (another writer stored and queued it) leaves the inbox only if this owner fused it (it
/// is among `Fused`'s keys). If not (it was stored before this owner looked, so the owner
/// left it to the inbox), it stays there to be fused from it.
fn apply_in_fusion(
    db: &mut Db,
    env: &Envelope,
    topic: &str,
    bytes: usize,
    fusion: &Fusion<'_>,
    now: i64,
) -> Result<Applied, StoreError> {
    let a = apply(db, env, topic, bytes, now)?;
    if let Body::Tracks(_) = &env.body {
        match (a, fusion) {
            (Applied::Stored, Fusion::Queue) => fusion::queue(db, env, now)?,
            (Applied::Duplicate, Fusion::Fused(fused))
                if fused.contains(&(env.agent.clone(), env.seq)) =>
            {
                fusion::unqueue(db, &env.agent, env.seq)?
            }
            _ => {}
        }
    }
    Ok(a)
}

fn apply(
    db: &mut Db,
    env: &Envelope,
    topic: &str,
    bytes: usize,
    now: i64,
) -> Result<Applied, StoreError> {
    if let Body::Status(s) = &env.body
        && env.seq == 0
    {
        // Last will: no sequence of its own.
        store_status(db, &env.agent, s, now)?;
        return Ok(Applied::Stored);
    }
    let inserted = db.execute(
        "INSERT INTO messages (agent, seq, kind, topic, sent_ms, received_ms, bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        args![
            env.agent,
            env.seq,
            env.body.kind(),
            topic,
            env.sent_ms,
            now,
            bytes
        ],
    )?;
    if inserted == 0 {
        return Ok(Applied::Duplicate);
    }
    match &env.body {
        Body::Tracks(b) => store_tracks(db, &env.agent, b, now)?,
        Body::Status(s) => store_status(db, &env.agent, s, now)?,
        Body::Alert(a) => {
            if store_alert(db, &env.agent, a, now)? {
                return Ok(Applied::NewAlert);
            }
        }
        // The aggregator publishes the watchlists; its own store holds them (the message row
        // records a copy that came back).
        Body::Watchlists(_) | Body::Acks(_) => {}
    }
    Ok(Applied::Stored)
}

/// Inserts an alert, or updates the open one with the same id (a repeated sighting within the
/// rule's cool-down); whether it was new.
fn store_alert(
    db: &mut Db,
    agent: &str,
    a: &sharpeyes_wire::Alert,
    now: i64,
) -> Result<bool, StoreError> {
    let kind = a.kind.as_str();
    let priority = a.priority.as_str();
    let details = serde_json::to_string(&a.details).unwrap_or_else(|_| "{}".into());
    let existed = db
        .one(
            "SELECT 1 FROM alerts WHERE agent = ? AND alert_id = ?",
            args![agent, a.alert_id],
        )?
        .is_some();
    db.execute(
        "INSERT INTO alerts (agent, alert_id, site, camera, kind, priority, first_ms, last_ms,
                             track, summary, details_json, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (agent, alert_id) DO UPDATE SET
            sightings = alerts.sightings + 1,
            first_ms = LEAST(alerts.first_ms, excluded.first_ms),
            priority = CASE WHEN excluded.last_ms >= alerts.last_ms THEN excluded.priority ELSE alerts.priority END,
            summary = CASE WHEN excluded.last_ms >= alerts.last_ms THEN excluded.summary ELSE alerts.summary END,
            details_json = CASE WHEN excluded.last_ms >= alerts.last_ms
                                THEN excluded.details_json ELSE alerts.details_json END,
            track = coalesce(excluded.track, alerts.track),
            last_ms = GREATEST(alerts.last_ms, excluded.last_ms)",
        args![
            agent,
            a.alert_id,
            a.site,
            a.camera,
            kind,
            priority,
            a.ts_ms,
            a.track,
            a.summary,
            details,
            now
        ],
    )?;
    for e in &a.evidence {
        evidence::put_alert_image(db, agent, &a.alert_id, e, a.ts_ms, now)?;
    }
    Ok(!existed)
}

fn store_tracks(db: &mut Db, agent: &str, b: &TrackBatch, now: i64) -> Result<(), StoreError> {
    for u in &b.updates {
        let [x1, y1, x2, y2] = u.bbox.to_pixels(b.frame_w, b.frame_h);
        let thumb = match &u.thumb {
            Some(t) => evidence::put_thumb(db, agent, &b.camera, u.track, t, u.ts_ms, now)?,
            None => None,
        };
        db.execute(
            "INSERT INTO tracks (agent, camera, track, site, class, first_ms, last_ms, ended, updates, best_score,
                                 frame_w, frame_h, x1, y1, x2, y2, plate, plate_confidence, link,
                                 evidence_crop)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, 1, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT (agent, camera, track) DO UPDATE SET
                first_ms = LEAST(tracks.first_ms, excluded.first_ms),
                ended = GREATEST(tracks.ended, excluded.ended),
                updates = tracks.updates + 1,
                best_score = GREATEST(tracks.best_score, excluded.best_score),
                x1 = CASE WHEN excluded.last_ms >= tracks.last_ms THEN excluded.x1 ELSE tracks.x1 END,
                y1 = CASE WHEN excluded.last_ms >= tracks.last_ms THEN excluded.y1 ELSE tracks.y1 END,
                x2 = CASE WHEN excluded.last_ms >= tracks.last_ms THEN excluded.x2 ELSE tracks.x2 END,
                y2 = CASE WHEN excluded.last_ms >= tracks.last_ms THEN excluded.y2 ELSE tracks.y2 END,
                frame_w = excluded.frame_w,
                frame_h = excluded.frame_h,
                plate = CASE WHEN excluded.plate IS NOT NULL AND excluded.last_ms >= tracks.last_ms
                             THEN excluded.plate ELSE tracks.plate END,
                plate_confidence = CASE WHEN excluded.plate IS NOT NULL AND excluded.last_ms >= tracks.last_ms
                             THEN excluded.plate_confidence ELSE tracks.plate_confidence END,
                link = CASE WHEN excluded.link IS NOT NULL AND excluded.last_ms >= tracks.last_ms
                             THEN excluded.link ELSE tracks.link END,
                evidence_crop = CASE WHEN excluded.evidence_crop IS NOT NULL
                                      AND (tracks.evidence_crop IS NULL OR excluded.last_ms >= tracks.last_ms)
                             THEN excluded.evidence_crop ELSE tracks.evidence_crop END,
                last_ms = GREATEST(tracks.last_ms, excluded.last_ms)",
            args![
                agent,
                b.camera,
                u.track,
                b.site,
                u.class.as_str(),
                u.ts_ms,
                u.event == TrackEvent::End,
                f64::from(u.score),
                b.frame_w,
                b.frame_h,
                f64::from(x1),
                f64::from(y1),
                f64::from(x2),
                f64::from(y2),
                u.plate.as_ref().map(|p| p.text.as_str()),
                u.plate.as_ref().map(|p| f64::from(p.confidence)),
                u.link,
                thumb,
            ],
        )?;
        db.ensure_partition("track_points", u.ts_ms)?;
        db.execute(
            "INSERT INTO track_points (agent, camera, track, ts_ms, event, score, x1, y1, x2, y2)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            args![
                agent,
                b.camera,
                u.track,
                u.ts_ms,
                u.event.as_str(),
                f64::from(u.score),
                f64::from(x1),
                f64::from(y1),
                f64::from(x2),
                f64::from(y2)
            ],
        )?;
    }
    Ok(())
}

fn store_status(db: &mut Db, agent: &str, s: &AgentStatus, now: i64) -> Result<(), StoreError> {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "{}".into());
    db.execute(
        "INSERT INTO agents (agent, site, online, version, started_ms, updated_ms, status_json)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent) DO UPDATE SET site = excluded.site, online = excluded.online,
            version = excluded.version, started_ms = excluded.started_ms,
            updated_ms = excluded.updated_ms, status_json = excluded.status_json",
        args![agent, s.site, s.online, s.version, s.started_ms, now, json],
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
                    thumb: None,
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
                .replace("    link             INTEGER,\n", "")
                .replace("    evidence_crop    TEXT,\n", "");
            assert!(!v1.contains("plate") && !v1.contains("link") && !v1.contains("evidence"));
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
