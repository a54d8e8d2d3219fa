//! The audit log (schema 10): every API query and every evidence access, appended to a
//! hash chain. Entry `n`'s `hash` is the SHA-256 (hex) of entry `n-1`'s hash, a newline and
//! entry `n`'s canonical JSON ([`AuditRow::canonical`]: every field but `hash`, keys sorted);
//! the first entry's `prev_hash` is 64 zeros. Changing, removing or inserting an entry
//! breaks the chain at that entry, which [`Store::audit_verify`] names.
//!
//! Invariants: `seq` runs 1, 2, 3… without gaps; appends are serialised (SQLite: the write
//! transaction, `seq` the primary key, so a racing append fails instead of forking the
//! chain; PostgreSQL: a transaction-level advisory lock); nothing updates or deletes rows
//! (retention leaves the log alone).

use serde::Serialize;

use super::{Dialect, Store, StoreError};
use crate::args;

/// The audit table.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq          INTEGER PRIMARY KEY,
    ts_ms        INTEGER NOT NULL,
    who          TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    purpose      TEXT,
    case_ref     TEXT,
    params_json  TEXT    NOT NULL,
    result_count INTEGER,
    status       INTEGER NOT NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (ts_ms);
";

/// Serialises appends on PostgreSQL (`pg_advisory_xact_lock`).
const LOCK_AUDIT: i64 = 0x5348_4152_5003;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records (the store adds `seq`, `prev_hash`, `hash`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When, UTC ms.
    pub ts_ms: i64,
    /// Who: the token's name (`-` when no valid token was given; `cli:USER` from the CLI).
    pub who: String,
    /// The token's role (`-` when none).
    pub role: String,
    /// What: the route id (`vehicles.trajectory`, `alerts.evidence`...).
    pub action: String,
    /// The purpose given (`X-Purpose`).
    pub purpose: Option<String>,
    /// The case reference given (`X-Case`).
    pub case_ref: Option<String>,
    /// The parameters (path and query), as JSON.
    pub params: serde_json::Value,
    /// How many results were returned (rows, images), when it succeeded.
    pub result_count: Option<u64>,
    /// The HTTP status answered (0 from the CLI).
    pub status: u16,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When, UTC ms.
    pub ts_ms: i64,
    /// Who.
    pub who: String,
    /// Their role.
    pub role: String,
    /// What.
    pub action: String,
    /// Purpose.
    pub purpose: Option<String>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Parameters, as stored (JSON text).
    pub params_json: String,
    /// Results returned.
    pub result_count: Option<u64>,
    /// HTTP status.
    pub status: u16,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// SHA-256 (hex) of `prev_hash`, `\n` and [`canonical`](Self::canonical).
    pub hash: String,
}

impl AuditRow {
    /// The canonical JSON the hash covers: every field but `hash`, keys sorted.
    pub fn canonical(&self) -> String {
        serde_json::json!({
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "who": self.who,
            "role": self.role,
            "action": self.action,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "params_json": self.params_json,
            "result_count": self.result_count,
            "status": self.status,
            "prev_hash": self.prev_hash,
        })
        .to_string()
    }

    /// The hash this entry should carry.
    pub fn compute_hash(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.prev_hash.as_bytes());
        ctx.update(b"\n");
        ctx.update(self.canonical().as_bytes());
        hex(ctx.finish().as_ref())
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// What [`Store::audit_verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditVerify {
    /// Entries checked.
    pub entries: u64,
    /// The last entry's hash (the chain's head), when the chain holds.
    pub head: Option<String>,
    /// The first broken entry, if any.
    pub broken: Option<AuditBreak>,
}

/// The first entry where the chain breaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditBreak {
    /// Its `seq` (or the `seq` expected where one is missing).
    pub seq: u64,
    /// What differs.
    pub what: String,
}

/// Which entries [`Store::audit_entries`] lists.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// At or after, UTC ms.
    pub from_ms: Option<i64>,
    /// At or before, UTC ms.
    pub to_ms: Option<i64>,
    /// Only this token name.
    pub who: Option<String>,
    /// Only entries before this `seq` (the next page of a newest-first listing).
    pub before_seq: Option<u64>,
    /// At most this many.
    pub limit: Option<usize>,
}

const COLUMNS: &str = "seq, ts_ms, who, role, action, purpose, case_ref, params_json, result_count,
    status, prev_hash, hash";

fn audit_row(r: &super::sql::Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: r.get(0)?,
        ts_ms: r.get(1)?,
        who: r.get(2)?,
        role: r.get(3)?,
        action: r.get(4)?,
        purpose: r.get(5)?,
        case_ref: r.get(6)?,
        params_json: r.get(7)?,
        result_count: r.get(8)?,
        status: r.get::<u32>(9)? as u16,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

impl Store {
    /// Appends `e` to the chain; the stored row.
    pub fn audit_append(&self, e: &AuditEntry) -> Result<AuditRow, StoreError> {
        self.tx(|db| {
            if db.dialect() == Dialect::Postgres {
                db.query("SELECT pg_advisory_xact_lock(?)", args![LOCK_AUDIT])?;
            }
            let (seq, prev_hash) = match db.one(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                &[],
            )? {
                Some(r) => (r.get::<u64>(0)? + 1, r.get::<String>(1)?),
                None => (1, GENESIS.to_string()),
            };
            let mut row = AuditRow {
                seq,
                ts_ms: e.ts_ms,
                who: e.who.clone(),
                role: e.role.clone(),
                action: e.action.clone(),
                purpose: e.purpose.clone(),
                case_ref: e.case_ref.clone(),
                params_json: e.params.to_string(),
                result_count: e.result_count,
                status: e.status,
                prev_hash,
                hash: String::new(),
            };
            row.hash = row.compute_hash();
            db.execute(
                &format!(
                    "INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                args![
                    row.seq,
                    row.ts_ms,
                    row.who,
                    row.role,
                    row.action,
                    row.purpose,
                    row.case_ref,
                    row.params_json,
                    row.result_count,
                    row.status,
                    row.prev_hash,
                    row.hash
                ],
            )?;
            Ok(row)
        })
    }

    /// Entries matching `f`, newest first.
    pub fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1=1");
        let mut a = Vec::new();
        use super::sql::Arg;
        if let Some(t) = f.from_ms {
            sql.push_str(" AND ts_ms >= ?");
            a.push(t.to_value());
        }
        if let Some(t) = f.to_ms {
            sql.push_str(" AND ts_ms <= ?");
            a.push(t.to_value());
        }
        if let Some(w) = &f.who {
            sql.push_str(" AND who = ?");
            a.push(w.to_value());
        }
        if let Some(s) = f.before_seq {
            sql.push_str(" AND seq < ?");
            a.push(s.to_value());
        }
        sql.push_str(" ORDER BY seq DESC");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        self.db().query(&sql, &a)?.iter().map(audit_row).collect()
    }

    /// Number of entries.
    pub fn audit_len(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM audit_log", &[])
    }

    /// Walks the chain from the first entry (in pages); stops at the first entry whose
    /// `seq`, `prev_hash` or `hash` is not what the chain before it implies.
    pub fn audit_verify(&self) -> Result<AuditVerify, StoreError> {
        const PAGE: u64 = 10_000;
        let (mut expect_seq, mut prev) = (1u64, GENESIS.to_string());
        let mut entries = 0u64;
        loop {
            let rows = self.db().query(
                &format!(
                    "SELECT {COLUMNS} FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT {PAGE}"
                ),
                args![expect_seq],
            )?;
            let n = rows.len() as u64;
            for r in &rows {
                let row = audit_row(r)?;
                let broken = |what: String| AuditVerify {
                    entries,
                    head: None,
                    broken: Some(AuditBreak { seq: row.seq, what }),
                };
                if row.seq != expect_seq {
                    return Ok(AuditVerify {
                        entries,
                        head: None,
                        broken: Some(AuditBreak {
                            seq: expect_seq,
                            what: format!("entry {expect_seq} is missing (next is {})", row.seq),
                        }),
                    });
                }
                if row.prev_hash != prev {
                    return Ok(broken(format!(
                        "prev_hash {} is not the hash of entry {} ({prev})",
                        row.prev_hash,
                        row.seq - 1
                    )));
                }
                let h = row.compute_hash();
                if row.hash != h {
                    return Ok(broken(format!(
                        "its content does not match its hash (stored {}, computed {h}): the entry was altered",
                        row.hash
                    )));
                }
                prev = row.hash;
                expect_seq += 1;
                entries += 1;
            }
            if n < PAGE {
                break;
            }
        }
        Ok(AuditVerify {
            entries,
            head: (entries > 0).then_some(prev),
            broken: None,
        })
    }
}
