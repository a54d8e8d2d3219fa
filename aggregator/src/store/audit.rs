//! The audit log (schema 10): every API query and every evidence access, appended to a
//! hash chain. Entry `n`'s `hash` is the SHA-256 (hex) of entry `n-1`'s hash, a newline and
//! entry `n`'s canonical JSON ([`AuditRow::canonical`]: every field but `hash`, keys sorted);
//! the first entry's `prev_hash` is 64 zeros. Changing, removing or inserting an entry
//! breaks the chain at that entry, which [`Store::audit_verify`] names.
//!
//! A chain alone does not show that its newest entries were cut off, nor that the whole
//! chain was recomputed. **Checkpoints** anchor it: the number of entries, the head hash (the
//! hash of the last of them) and the time, signed with an Ed25519 key kept outside the
//! database (`[audit] key_file`, [`crate::witness`]). The running aggregator stores one every
//! `audit.checkpoint_interval_s` and at shutdown in `audit_checkpoints` and hands each to its
//! witnesses (a JSON-lines file, the alert hook, the log); `aggregator audit checkpoint --out
//! FILE` makes one by hand. [`Store::audit_verify_with`] then fails when the log is shorter
//! than a checkpoint, when the entry a checkpoint covers last has another hash, or when a
//! checkpoint's signature does not hold or is not by a trusted key; checkpoints given from an
//! outside file are checked the same way, so deleting rows *and* the stored checkpoints is
//! still caught.
//!
//! Invariants: `seq` runs 1, 2, 3… without gaps; appends are serialised (SQLite: the write
//! transaction, `seq` the primary key, so a racing append fails instead of forking the
//! chain; PostgreSQL: a transaction-level advisory lock); nothing updates or deletes rows
//! (retention leaves the log alone).

use serde::{Deserialize, Serialize};

use super::{Db, Dialect, Store, StoreError};
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
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    entries    INTEGER NOT NULL,
    head       TEXT    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    public_key TEXT    NOT NULL,
    signature  TEXT    NOT NULL,
    PRIMARY KEY (entries, ts_ms, public_key)
);
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
    /// Checkpoints checked (stored and witnessed).
    pub checkpoints: u64,
    /// The first broken entry, if any.
    pub broken: Option<AuditBreak>,
}

/// What [`Store::audit_verify_with`] trusts beyond the database.
#[derive(Debug, Clone, Default)]
pub struct AuditTrust {
    /// The public keys (hex) checkpoints must be signed with; empty: any key, as each
    /// checkpoint names it (then a checkpoint proves only that it was not altered).
    pub keys: Vec<String>,
    /// Checkpoints kept outside the database (`audit checkpoint --out`, `audit.witness_file`).
    pub witnessed: Vec<Checkpoint>,
}

/// A signed checkpoint of the audit log: its first `entries` entries end in `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// How many entries the log held.
    pub entries: u64,
    /// The hash of entry `entries` ([`GENESIS`] when 0).
    pub head: String,
    /// When, UTC ms.
    pub ts_ms: i64,
    /// The Ed25519 public key that signed it (hex, 64 digits).
    pub public_key: String,
    /// Ed25519 signature (hex) of [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: `sharpeyes-audit-checkpoint/1`, entries, head and time, one a line.
    pub fn message(entries: u64, head: &str, ts_ms: i64) -> Vec<u8> {
        format!("sharpeyes-audit-checkpoint/1\n{entries}\n{head}\n{ts_ms}\n").into_bytes()
    }

    /// Whether `signature` is `public_key`'s signature of this checkpoint.
    pub fn signature_holds(&self) -> bool {
        let (Some(pk), Some(sig)) = (unhex(&self.public_key), unhex(&self.signature)) else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk)
            .verify(&Self::message(self.entries, &self.head, self.ts_ms), &sig)
            .is_ok()
    }
}

/// Bytes of lower- or upper-case hex; None if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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

/// Appends `e` inside the transaction under way on `db` (appends are serialised: the SQLite
/// write transaction; PostgreSQL: an advisory lock).
pub(super) fn append_in(db: &mut Db, e: &AuditEntry) -> Result<AuditRow, StoreError> {
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
        &format!("INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
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
    /// Appends `e` to the chain in a transaction of its own; the stored row. (A change and
    /// its audit entry go together through [`Store::audited`].)
    pub fn audit_append(&self, e: &AuditEntry) -> Result<AuditRow, StoreError> {
        self.tx(|db| append_in(db, e))
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

    /// Makes a checkpoint of the log as it is now (entries, head hash, `ts_ms`), signed with
    /// `key`, and stores it in `audit_checkpoints`; the checkpoint (for the witnesses).
    pub fn audit_checkpoint(
        &self,
        key: &crate::witness::AuditKey,
        ts_ms: i64,
    ) -> Result<Checkpoint, StoreError> {
        self.tx(|db| {
            if db.dialect() == Dialect::Postgres {
                // The head read here is the one appends see (no append between).
                db.query("SELECT pg_advisory_xact_lock(?)", args![LOCK_AUDIT])?;
            }
            let (entries, head) = match db.one(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                &[],
            )? {
                Some(r) => (r.get::<u64>(0)?, r.get::<String>(1)?),
                None => (0, GENESIS.to_string()),
            };
            let cp = key.sign(entries, &head, ts_ms);
            db.execute(
                "INSERT INTO audit_checkpoints (entries, head, ts_ms, public_key, signature)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                args![cp.entries, cp.head, cp.ts_ms, cp.public_key, cp.signature],
            )?;
            Ok(cp)
        })
    }

    /// The stored checkpoints, oldest first.
    pub fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.db()
            .query(
                "SELECT entries, head, ts_ms, public_key, signature FROM audit_checkpoints
                 ORDER BY ts_ms, entries",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(Checkpoint {
                    entries: r.get(0)?,
                    head: r.get(1)?,
                    ts_ms: r.get(2)?,
                    public_key: r.get(3)?,
                    signature: r.get(4)?,
                })
            })
            .collect()
    }

    /// [`audit_verify_with`](Self::audit_verify_with) without trusted keys or outside
    /// checkpoints: the chain, and the stored checkpoints against the keys they name.
    pub fn audit_verify(&self) -> Result<AuditVerify, StoreError> {
        self.audit_verify_with(&AuditTrust::default())
    }

    /// Walks the chain from the first entry (in pages); stops at the first entry whose
    /// `seq`, `prev_hash` or `hash` is not what the chain before it implies. Every
    /// checkpoint, stored or in `trust.witnessed`, must be signed (by a key of `trust.keys`
    /// when any is given), the log must reach its `entries`, and entry `entries` must have
    /// its head hash. The first problem found is reported.
    pub fn audit_verify_with(&self, trust: &AuditTrust) -> Result<AuditVerify, StoreError> {
        const PAGE: u64 = 10_000;
        let mut checkpoints: Vec<(Checkpoint, &'static str)> = self
            .audit_checkpoints()?
            .into_iter()
            .map(|c| (c, "stored"))
            .collect();
        checkpoints.extend(trust.witnessed.iter().cloned().map(|c| (c, "witnessed")));
        let checked = checkpoints.len() as u64;
        let fail = |entries: u64, seq: u64, what: String| AuditVerify {
            entries,
            head: None,
            checkpoints: checked,
            broken: Some(AuditBreak { seq, what }),
        };
        // Signatures first: an unsigned or foreign checkpoint proves nothing.
        for (c, from) in &checkpoints {
            if !trust.keys.is_empty() && !trust.keys.contains(&c.public_key) {
                return Ok(fail(
                    0,
                    c.entries,
                    format!(
                        "the {from} checkpoint of {} ({} entries) is signed by key {}, not by the audit key ({}): it was not made by this aggregator",
                        crate::query::utc(c.ts_ms),
                        c.entries,
                        c.public_key,
                        trust.keys.join(", ")
                    ),
                ));
            }
            if !c.signature_holds() {
                return Ok(fail(
                    0,
                    c.entries,
                    format!(
                        "the {from} checkpoint of {} ({} entries) has an invalid signature: it was altered or forged",
                        crate::query::utc(c.ts_ms),
                        c.entries
                    ),
                ));
            }
            if c.entries == 0 && c.head != GENESIS {
                return Ok(fail(
                    0,
                    0,
                    format!(
                        "the {from} checkpoint of {} covers no entries but names head {}",
                        crate::query::utc(c.ts_ms),
                        c.head
                    ),
                ));
            }
        }
        let mut by_entries: std::collections::BTreeMap<u64, Vec<&(Checkpoint, &'static str)>> =
            Default::default();
        for c in &checkpoints {
            by_entries.entry(c.0.entries).or_default().push(c);
        }
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
                if row.seq != expect_seq {
                    return Ok(fail(
                        entries,
                        expect_seq,
                        format!("entry {expect_seq} is missing (next is {})", row.seq),
                    ));
                }
                if row.prev_hash != prev {
                    return Ok(fail(
                        entries,
                        row.seq,
                        format!(
                            "prev_hash {} is not the hash of entry {} ({prev})",
                            row.prev_hash,
                            row.seq - 1
                        ),
                    ));
                }
                let h = row.compute_hash();
                if row.hash != h {
                    return Ok(fail(
                        entries,
                        row.seq,
                        format!(
                            "its content does not match its hash (stored {}, computed {h}): the entry was altered",
                            row.hash
                        ),
                    ));
                }
                if let Some(cs) = by_entries.get(&row.seq)
                    && let Some((c, from)) = cs
                        .iter()
                        .map(|c| (&c.0, c.1))
                        .find(|(c, _)| c.head != row.hash)
                {
                    return Ok(fail(
                        entries,
                        row.seq,
                        format!(
                            "its hash {} is not the head {} that the {from} checkpoint of {} signed: the log was rewritten",
                            row.hash,
                            c.head,
                            crate::query::utc(c.ts_ms)
                        ),
                    ));
                }
                prev = row.hash;
                expect_seq += 1;
                entries += 1;
            }
            if n < PAGE {
                break;
            }
        }
        if let Some((&most, cs)) = by_entries.iter().next_back()
            && most > entries
        {
            let (c, from) = (&cs[0].0, cs[0].1);
            return Ok(fail(
                entries,
                entries + 1,
                format!(
                    "the log ends at entry {entries}, but the {from} checkpoint of {} covers {most} entries: entries {}..={most} were removed",
                    crate::query::utc(c.ts_ms),
                    entries + 1
                ),
            ));
        }
        Ok(AuditVerify {
            entries,
            head: (entries > 0).then_some(prev),
            checkpoints: checked,
            broken: None,
        })
    }
}
