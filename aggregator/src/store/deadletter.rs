//! Dead letters (schema 13): messages that decoded and passed every check of
//! [`sharpeyes_wire::validate`] but that the store still refused for a reason of its own (a
//! constraint, a value the database cannot hold). Each is kept with its raw payload, topic
//! and the error, so nothing an agent sent is lost; the writer acknowledges it and goes on
//! with the rest of its batch. `aggregator dead-letters` lists them; `aggregator replay ID`
//! asks the running aggregator to apply one again (after a fix), through the same path as a
//! message from the broker: checks, fusion, store.
//!
//! How a batch is isolated ([`Store::commit_batch_isolating`]): the writer first commits a
//! batch in one transaction; when that fails for a reason that is not store-wide
//! ([`StoreError::scope`]), it commits the batch again with each message in a savepoint of
//! its own: a message whose savepoint fails is rolled back to it and written here instead,
//! in the same transaction, and every other message is stored as usual.
//!
//! Invariants: `(agent, seq)` is the key (a message dead-lettered again, e.g. a replay that
//! failed again, updates its row: error, attempts); `id` is unique and assigned under the
//! writer's transaction (PostgreSQL: under an advisory lock); a dead-lettered message has no
//! row in `messages`, so a replay is not taken for a duplicate; a replayed message that is
//! stored (or found stored already) leaves this table.

use serde::Serialize;

use super::{Db, Dialect, Store, StoreError};
use crate::args;

/// The dead-letter table.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dead_letters (
    agent        TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    id           INTEGER NOT NULL UNIQUE,
    kind         TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    received_ms  INTEGER NOT NULL,
    error        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    replay_ms    INTEGER,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (agent, seq)
);
";

/// Serialises id assignment on PostgreSQL (`pg_advisory_xact_lock`).
const LOCK_DEAD_LETTERS: i64 = 0x5348_4152_5004;

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Short id (`aggregator replay ID`).
    pub id: u64,
    /// The sending agent.
    pub agent: String,
    /// Its sequence number.
    pub seq: u64,
    /// The body kind (`tracks`, `alert`, `status`).
    pub kind: String,
    /// The topic it came on.
    pub topic: String,
    /// When it was (last) refused, UTC ms.
    pub received_ms: i64,
    /// What the store said.
    pub error: String,
    /// How many times it was refused.
    pub attempts: u64,
    /// When a replay was asked for (pending until the running aggregator takes it).
    pub replay_ms: Option<i64>,
    /// Size of the raw payload, bytes.
    pub bytes: u64,
}

/// A dead letter to replay: what the writer needs to process it again.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Its id.
    pub id: u64,
    /// The topic it came on.
    pub topic: String,
    /// The raw payload.
    pub payload: Vec<u8>,
}

/// One message the store refused, to keep as a dead letter.
pub(super) struct Letter<'a> {
    pub agent: &'a str,
    pub seq: u64,
    pub kind: &'a str,
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub error: &'a str,
}

/// Writes (or updates) the dead letter of one message, inside the caller's transaction.
pub(super) fn put(db: &mut Db, l: &Letter<'_>, now: i64) -> Result<u64, StoreError> {
    let Letter {
        agent,
        seq,
        kind,
        topic,
        payload,
        error,
    } = *l;
    if db.dialect() == Dialect::Postgres {
        db.query("SELECT pg_advisory_xact_lock(?)", args![LOCK_DEAD_LETTERS])?;
    }
    if let Some(r) = db.one(
        "SELECT id FROM dead_letters WHERE agent = ? AND seq = ?",
        args![agent, seq],
    )? {
        let id: u64 = r.get(0)?;
        db.execute(
            "UPDATE dead_letters SET error = ?, received_ms = ?, attempts = attempts + 1,
                 replay_ms = NULL, payload = ?, topic = ?
             WHERE agent = ? AND seq = ?",
            args![error, now, payload, topic, agent, seq],
        )?;
        return Ok(id);
    }
    let id: u64 = db
        .one("SELECT coalesce(max(id), 0) + 1 FROM dead_letters", &[])?
        .map(|r| r.get(0))
        .transpose()?
        .unwrap_or(1);
    db.execute(
        "INSERT INTO dead_letters (agent, seq, id, kind, topic, received_ms, error, attempts,
                                   payload)
         VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
        args![agent, seq, id, kind, topic, now, error, payload],
    )?;
    Ok(id)
}

impl Store {
    /// The dead letters, oldest first (at most `limit`).
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_where(&format!("ORDER BY id LIMIT {limit}"), &[])
    }

    /// Dead letter `id`, if there is one.
    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self
            .dead_letters_where("WHERE id = ?", args![id])?
            .into_iter()
            .next())
    }

    fn dead_letters_where(
        &self,
        tail: &str,
        a: &[super::Value],
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.db()
            .query(
                &format!(
                    "SELECT id, agent, seq, kind, topic, received_ms, error, attempts, replay_ms,
                            length(payload)
                     FROM dead_letters {tail}"
                ),
                a,
            )?
            .iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    agent: r.get(1)?,
                    seq: r.get(2)?,
                    kind: r.get(3)?,
                    topic: r.get(4)?,
                    received_ms: r.get(5)?,
                    error: r.get(6)?,
                    attempts: r.get(7)?,
                    replay_ms: r.get(8)?,
                    bytes: r.get(9)?,
                })
            })
            .collect()
    }

    /// The raw payload and topic of dead letter `id`.
    pub fn dead_letter_payload(&self, id: u64) -> Result<Option<Replay>, StoreError> {
        self.db()
            .one(
                "SELECT topic, payload FROM dead_letters WHERE id = ?",
                args![id],
            )?
            .map(|r| {
                Ok(Replay {
                    id,
                    topic: r.get(0)?,
                    payload: r.get(1)?,
                })
            })
            .transpose()
    }

    /// Asks the running aggregator to apply dead letter `id` again; false if there is none.
    pub fn request_replay(&self, id: u64, now_ms: i64) -> Result<bool, StoreError> {
        let n = self.db().execute(
            "UPDATE dead_letters SET replay_ms = ? WHERE id = ?",
            args![now_ms, id],
        )?;
        Ok(n > 0)
    }

    /// Dead letters whose replay was asked for (at most `limit`), for the writer.
    pub fn replays_requested(&self, limit: usize) -> Result<Vec<Replay>, StoreError> {
        self.db()
            .query(
                &format!(
                    "SELECT id, topic, payload FROM dead_letters WHERE replay_ms IS NOT NULL
                     ORDER BY id LIMIT {limit}"
                ),
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(Replay {
                    id: r.get(0)?,
                    topic: r.get(1)?,
                    payload: r.get(2)?,
                })
            })
            .collect()
    }

    /// Removes dead letter `id` (replayed and stored).
    pub fn remove_dead_letter(&self, id: u64) -> Result<(), StoreError> {
        self.db()
            .execute("DELETE FROM dead_letters WHERE id = ?", args![id])?;
        Ok(())
    }

    /// Marks a replayed dead letter as refused again (`error`), its replay no longer pending.
    pub fn replay_refused(&self, id: u64, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE dead_letters SET replay_ms = NULL, error = ?, received_ms = ?,
                 attempts = attempts + 1
             WHERE id = ?",
            args![error, now_ms, id],
        )?;
        Ok(())
    }

    /// How many dead letters there are.
    pub fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM dead_letters", &[])
    }
}
