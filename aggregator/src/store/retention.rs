//! Retention by age: real deletions, in bounded steps.
//!
//! What expires, by kind and the time it is aged by:
//! | kind | rows | aged by | policy |
//! | --- | --- | --- | --- |
//! | `sightings` | fusion sightings | `first_ms` | `days` |
//! | `track_points` | per-update boxes | `ts_ms` | `days` |
//! | `tracks` | per-camera tracks | `last_ms` | `days` |
//! | `messages` | the `(agent, seq)` dedupe log | `received_ms` | `days` |
//! | `link_evidence` | co-occurrences behind links | `ts_ms` | `days` |
//! | `person_faces` | representative face embeddings of fused persons (passers-by) | `ts_ms` | `days` |
//! | `alerts` | alerts and their references to evidence images | `last_ms` | `alert_days` |
//! | `evidence` | evidence images of kind `sighting` (tracks' best shots) | `last_ref_ms` | `evidence_sighting_days` |
//! | `evidence` | evidence images of kind `alert` | `last_ref_ms` | `evidence_alert_days` |
//!
//! An evidence image ([`super::evidence`]) is deleted only when it is older than its kind's
//! days (by `last_ref_ms`, the newest capture time of anything that referred to it) **and**
//! nothing kept refers to it any more: no alert (`alert_evidence`) and no track
//! (`tracks.evidence_crop`, which the sightings show). So an image lives as long as the
//! longer of its kind's days and the rows that show it: with evidence days shorter than
//! `days`, best shots stay as long as their tracks; with longer ones, they outlive them (an
//! orphan kept until its own days are up). Evidence runs after the other kinds in the same
//! step, so the images of rows deleted in that step go in that step when they are old
//! enough. `0` keeps a kind's images forever.
//!
//! On PostgreSQL the daily partitions of `sightings` and `track_points` that lie wholly
//! before the cut-off are dropped (`DROP TABLE`, instant, space returned to the system);
//! what remains (the partly expired day) is deleted like everything else: at most `chunk`
//! rows of a kind per transaction, so the writer is never held up long. On SQLite every kind
//! is deleted in such chunks through its time index; the file keeps its size and reuses the
//! freed pages (SQLite runs with `secure_delete`, so deleted faces and images are overwritten,
//! not left in free pages). Identities (vehicles, persons), links and aliases are not aged:
//! they are small ids without biometrics, and a later sighting may need them. A person's
//! representative faces (embeddings of whoever passed a camera) go with the sightings they
//! came from; the persons looked for are on the face watchlist, whose enrolled photos are
//! kept apart (watchlist tables) and never aged.
//!
//! A message row older than `days` is forgotten, so an agent replaying a batch older than
//! that would have it stored again: keep `days` above the agents' spool age.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sql::Dialect;
use super::{DAY_MS, Db, Store, StoreError};
use crate::args;

/// How long each kind is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days sightings, tracks, track points, messages and link evidence are kept (0: forever).
    pub days: u32,
    /// Days alerts (and their references to evidence images) are kept (0: forever).
    pub alert_days: u32,
    /// Days evidence images of kind `sighting` (tracks' best shots) are kept once nothing
    /// refers to them (0: forever).
    pub evidence_sighting_days: u32,
    /// Days evidence images of kind `alert` are kept once nothing refers to them (0:
    /// forever).
    pub evidence_alert_days: u32,
    /// Rows deleted per kind (and per evidence kind) and transaction at most.
    pub chunk: usize,
}

/// What a retention step did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Rows deleted (or expired, dry run) by kind.
    pub deleted: BTreeMap<&'static str, u64>,
    /// PostgreSQL partitions dropped (or droppable, dry run), by name.
    pub partitions_dropped: Vec<String>,
    /// Whether nothing expired is left (always true for a dry run).
    pub done: bool,
}

impl RetentionReport {
    /// Rows deleted, all kinds.
    pub fn total(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// A kind of row that expires: table, time column, key columns (for chunked deletes).
struct Kind {
    name: &'static str,
    table: &'static str,
    time: &'static str,
    key: &'static str,
    partitioned: bool,
    alerts: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "sightings",
        table: "sightings",
        time: "first_ms",
        key: "agent, camera, track, first_ms",
        partitioned: true,
        alerts: false,
    },
    Kind {
        name: "track_points",
        table: "track_points",
        time: "ts_ms",
        key: "agent, camera, track, ts_ms, event",
        partitioned: true,
        alerts: false,
    },
    Kind {
        name: "tracks",
        table: "tracks",
        time: "last_ms",
        key: "agent, camera, track",
        partitioned: false,
        alerts: false,
    },
    Kind {
        name: "messages",
        table: "messages",
        time: "received_ms",
        key: "agent, seq",
        partitioned: false,
        alerts: false,
    },
    Kind {
        name: "link_evidence",
        table: "link_evidence",
        time: "ts_ms",
        key: "",
        partitioned: false,
        alerts: false,
    },
    Kind {
        name: "person_faces",
        table: "person_faces",
        time: "ts_ms",
        key: "agent, camera, track",
        partitioned: false,
        alerts: false,
    },
    Kind {
        name: "alerts",
        table: "alerts",
        time: "last_ms",
        key: "agent, alert_id",
        partitioned: false,
        alerts: true,
    },
];

/// The evidence kinds: name in `evidence.kind`, and its days in a policy.
type DaysOf = fn(&RetentionPolicy) -> u32;
const EVIDENCE_KINDS: [(&str, DaysOf); 2] = [
    (super::evidence::KIND_SIGHTING, |p| p.evidence_sighting_days),
    (super::evidence::KIND_ALERT, |p| p.evidence_alert_days),
];

/// Expired evidence of one kind: older than the cut-off and referred to by nothing.
const EVIDENCE_EXPIRED: &str = "FROM evidence e WHERE e.kind = ? AND e.last_ref_ms < ?
    AND NOT EXISTS (SELECT 1 FROM alert_evidence a WHERE a.sha256 = e.sha256)
    AND NOT EXISTS (SELECT 1 FROM tracks t WHERE t.evidence_crop = e.sha256)";

impl RetentionPolicy {
    /// The cut-off for a kind at `now_ms`: rows older than it expire (None: kept forever).
    fn cutoff(&self, k: &Kind, now_ms: i64) -> Option<i64> {
        let days = if k.alerts { self.alert_days } else { self.days };
        days_cutoff(days, now_ms)
    }
}

fn days_cutoff(days: u32, now_ms: i64) -> Option<i64> {
    (days > 0).then(|| now_ms - i64::from(days) * DAY_MS)
}

/// The partitions of `table` wholly before `cutoff` (PostgreSQL).
fn expired_partitions(
    db: &mut Db,
    table: &str,
    cutoff: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(db
        .partitions_of(table)?
        .into_iter()
        .filter(|(_, day)| day.saturating_add(1).saturating_mul(DAY_MS) <= cutoff)
        .collect())
}

impl Store {
    /// One bounded retention step at `now_ms`: drops the expired partitions, then deletes up
    /// to `policy.chunk` expired rows of each kind, each kind in its own transaction. Call
    /// again until [`RetentionReport::done`].
    pub fn retention_step(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport {
            done: true,
            ..Default::default()
        };
        let chunk = policy.chunk.max(1);
        for k in KINDS {
            let Some(cutoff) = policy.cutoff(k, now_ms) else {
                continue;
            };
            if k.partitioned && self.dialect() == Dialect::Postgres {
                let dropped = self.tx(|db| {
                    let parts = expired_partitions(db, k.table, cutoff)?;
                    for (name, day) in &parts {
                        db.backend.batch(&format!("DROP TABLE IF EXISTS {name}"))?;
                        db.partitions.remove(&(k.table, *day));
                    }
                    Ok(parts)
                })?;
                report
                    .partitions_dropped
                    .extend(dropped.into_iter().map(|p| p.0));
            }
            let n = self.tx(|db| delete_chunk(db, k, cutoff, chunk))?;
            if n > 0 {
                *report.deleted.entry(k.name).or_default() += n;
            }
            if n as usize >= chunk {
                report.done = false;
            }
        }
        for (kind, days) in EVIDENCE_KINDS {
            let Some(cutoff) = days_cutoff(days(policy), now_ms) else {
                continue;
            };
            let n = self.tx(|db| {
                db.execute(
                    &format!(
                        "DELETE FROM evidence WHERE sha256 IN
                           (SELECT e.sha256 {EVIDENCE_EXPIRED} ORDER BY e.last_ref_ms LIMIT ?)"
                    ),
                    args![kind, cutoff, chunk],
                )
            })?;
            if n > 0 {
                *report.deleted.entry("evidence").or_default() += n;
            }
            if n as usize >= chunk {
                report.done = false;
            }
        }
        Ok(report)
    }

    /// What retention would delete at `now_ms` (a dry run: nothing changes).
    pub fn retention_preview(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport {
            done: true,
            ..Default::default()
        };
        for k in KINDS {
            let Some(cutoff) = policy.cutoff(k, now_ms) else {
                continue;
            };
            if k.partitioned && self.dialect() == Dialect::Postgres {
                let parts = expired_partitions(&mut self.db(), k.table, cutoff)?;
                report
                    .partitions_dropped
                    .extend(parts.into_iter().map(|p| p.0));
            }
            let n = self.count(
                &format!("SELECT count(*) FROM {} WHERE {} < ?", k.table, k.time),
                args![cutoff],
            )?;
            if n > 0 {
                report.deleted.insert(k.name, n);
            }
        }
        // What the other kinds' deletions would orphan is not counted here: a dry run counts
        // the images expired and unreferenced now.
        for (kind, days) in EVIDENCE_KINDS {
            let Some(cutoff) = days_cutoff(days(policy), now_ms) else {
                continue;
            };
            let n = self.count(
                &format!("SELECT count(*) {EVIDENCE_EXPIRED}"),
                args![kind, cutoff],
            )?;
            if n > 0 {
                *report.deleted.entry("evidence").or_default() += n;
            }
        }
        Ok(report)
    }
}

/// Deletes up to `chunk` rows of `k` older than `cutoff`; how many.
fn delete_chunk(db: &mut Db, k: &Kind, cutoff: i64, chunk: usize) -> Result<u64, StoreError> {
    let (table, time) = (k.table, k.time);
    if k.alerts {
        let keys = db.query(
            "SELECT agent, alert_id FROM alerts WHERE last_ms < ? ORDER BY last_ms LIMIT ?",
            args![cutoff, chunk],
        )?;
        for r in &keys {
            let (agent, id): (String, String) = (r.get(0)?, r.get(1)?);
            db.execute(
                "DELETE FROM alert_evidence WHERE agent = ? AND alert_id = ?",
                args![agent, id],
            )?;
            db.execute(
                "DELETE FROM alerts WHERE agent = ? AND alert_id = ?",
                args![agent, id],
            )?;
        }
        return Ok(keys.len() as u64);
    }
    let key = if k.key.is_empty() {
        // No key: the engine's row id.
        match db.dialect() {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "ctid",
        }
    } else {
        k.key
    };
    db.execute(
        &format!(
            "DELETE FROM {table} WHERE ({key}) IN
               (SELECT {key} FROM {table} WHERE {time} < ? ORDER BY {time} LIMIT ?)"
        ),
        args![cutoff, chunk],
    )
}
