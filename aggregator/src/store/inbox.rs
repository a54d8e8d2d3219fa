//! The fusion inbox: with several aggregators on one store, a writer that is not the fusion
//! owner stores a batch and queues it here, in the same transaction; the owner fuses queued
//! batches in order and removes them ([`super::Store::apply_all_with_fusion`]). Also the
//! id sequences a restarted fuser continues from.

use sharpeyes_wire::{Body, Codec, Envelope};

use std::collections::HashSet;

use super::sql::{Arg as _, Ty, Value};
use super::{Db, Store, StoreError};
use crate::args;

/// Queues a stored track batch for the fusion owner (another writer stored it).
pub(crate) fn queue(db: &mut Db, env: &Envelope, now: i64) -> Result<(), StoreError> {
    let payload = Codec::default()
        .encode(env)
        .map_err(|e| StoreError::Internal(format!("encoding a batch for the fusion inbox: {e}")))?;
    db.execute(
        "INSERT INTO fusion_inbox (agent, seq, received_ms, payload) VALUES (?, ?, ?, ?)
         ON CONFLICT DO NOTHING",
        args![env.agent, env.seq, now, payload],
    )?;
    Ok(())
}

/// Removes a batch from the fusion inbox (fused).
pub(crate) fn unqueue(db: &mut Db, agent: &str, seq: u64) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM fusion_inbox WHERE agent = ? AND seq = ?",
        args![agent, seq],
    )?;
    Ok(())
}

/// Removes batches from the fusion inbox (fused), in one statement.
pub(crate) fn unqueue_all(db: &mut Db, keys: &[(String, u64)]) -> Result<(), StoreError> {
    let keys: Vec<Vec<Value>> = keys
        .iter()
        .map(|(agent, seq)| vec![Value::Text(agent.clone()), seq.to_value()])
        .collect();
    db.backend.delete_rows(
        "fusion_inbox",
        &[("agent", Ty::Text), ("seq", Ty::Int)],
        &keys,
    )?;
    Ok(())
}

/// A batch another writer queued for the fusion owner.
#[derive(Debug)]
pub struct Queued {
    /// Agent id.
    pub agent: String,
    /// Sequence number.
    pub seq: u64,
    /// The decoded message, or why it does not decode (it is dropped from the inbox unfused).
    pub envelope: Result<Envelope, String>,
}

impl Store {
    /// Whether the message `(agent, seq)` is stored.
    pub fn message_stored(&self, agent: &str, seq: u64) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .one(
                "SELECT 1 FROM messages WHERE agent = ? AND seq = ?",
                args![agent, seq],
            )?
            .is_some())
    }

    /// Which of the messages `(agent, seq)` are stored (one statement on PostgreSQL; an index
    /// search per key on SQLite).
    pub fn messages_stored<'a>(
        &self,
        keys: &[(&'a str, u64)],
    ) -> Result<HashSet<(&'a str, u64)>, StoreError> {
        let rows: Vec<Vec<Value>> = keys
            .iter()
            .map(|(a, s)| vec![Value::Text(a.to_string()), s.to_value()])
            .collect();
        let stored: HashSet<(String, u64)> = self
            .db()
            .backend
            .find_rows("messages", &[("agent", Ty::Text), ("seq", Ty::Int)], &rows)?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(keys
            .iter()
            .filter(|(a, s)| stored.contains(&(a.to_string(), *s)))
            .copied()
            .collect())
    }

    /// Up to `limit` batches other writers queued for the fusion owner, oldest first.
    pub fn fusion_inbox(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let codec = Codec::default();
        self.db()
            .query(
                "SELECT agent, seq, payload FROM fusion_inbox
                 ORDER BY received_ms, agent, seq LIMIT ?",
                args![limit],
            )?
            .iter()
            .map(|r| {
                let payload: Vec<u8> = r.get(2)?;
                let envelope = codec
                    .decode(&payload)
                    .map_err(|e| e.to_string())
                    .and_then(|env| match env.body {
                        Body::Tracks(_) => Ok(env),
                        _ => Err("not a track batch".to_string()),
                    });
                Ok(Queued {
                    agent: r.get(0)?,
                    seq: r.get(1)?,
                    envelope,
                })
            })
            .collect()
    }

    /// Batches waiting in the fusion inbox.
    pub fn fusion_inbox_len(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM fusion_inbox", &[])
    }

    /// The next vehicle and person ids: one past the largest stored (aliases included), so a
    /// restarted fuser never reuses one.
    pub fn fusion_next_ids(&self) -> Result<(u64, u64), StoreError> {
        let r = self.db().one(
            "SELECT coalesce((SELECT max(id) FROM vehicles), 0),
                    GREATEST(coalesce((SELECT max(id) FROM persons), 0),
                             coalesce((SELECT max(alias) FROM person_aliases), 0))",
            &[],
        )?;
        let (v, p): (i64, i64) = match r {
            Some(r) => (r.get(0)?, r.get(1)?),
            None => (0, 0),
        };
        Ok((v.max(0) as u64 + 1, p.max(0) as u64 + 1))
    }
}
