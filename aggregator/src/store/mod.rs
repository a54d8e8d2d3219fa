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

pub mod config;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;
use serde::Serialize;

pub mod audit;
pub mod deadletter;
mod error;
pub mod evidence;
pub mod faces;
pub mod fusion;
pub mod inbox;
mod messages;
pub mod reads;
pub mod retention;
mod schema;
pub mod sql;
pub mod tokens;
pub mod watchlist;
mod write;

pub use self::deadletter::{DeadLetter, Replay};
pub use self::error::{ErrorKind, Scope, StoreError};
pub use self::evidence::{BadSha256, EvidenceBlob};
pub use self::messages::{AlertFilter, AlertKey, AlertRow, Applied, TrackFilter, TrackRow};
pub use self::retention::{RetentionPolicy, RetentionReport};
use self::schema::postgres_schema;
use self::schema::*;
pub use self::sql::Dialect;
pub use self::sql::Value;
use self::sql::{Backend, Row};
pub use self::write::{Fusion, Isolated, Outcome};
use crate::args;

pub use self::reads::{
    Area, FlagRow, LinkRow, Page, PlateMatchKind, SightingKey, SightingRow, VehicleRow,
};
pub use self::watchlist::{
    Contact, FaceEnrollment, FaceRow, PlateRow, RemovedFace, WatchlistListing,
};

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

/// The writer's WAL pages between automatic checkpoints (`wal_autocheckpoint`; SQLite's
/// default is 1000, 4 MiB). A writer transaction of 256 batches writes about a thousand
/// pages, so at the default every commit also checkpointed, copying into the database file
/// (and syncing it) the same hot index pages again each time; at 10,000 (about 40 MiB of
/// WAL) a page written by several transactions is copied once per checkpoint. The WAL file
/// grows to about that size and is reused from its start after each checkpoint.
const SQLITE_WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

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
        conn.pragma_update(None, "wal_autocheckpoint", SQLITE_WAL_AUTOCHECKPOINT_PAGES)?;
        // Statement journals (each multi-row statement of the write path keeps one, to undo
        // that statement alone) and temporary sort trees in memory: on a file they cost a
        // write system call per page.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
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
            if found.is_some_and(|v| v < 14) {
                // 13 → 14: sightings_by_place goes (no query reads sightings by position);
                // the track points keep their layout (see TRACK_POINTS).
                backend.batch("DROP INDEX IF EXISTS sightings_by_place")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use sharpeyes_wire::{Body, Envelope, ObjectClass, QBox, TrackBatch, TrackEvent, TrackUpdate};

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
