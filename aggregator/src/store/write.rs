//! The write path: a batch of messages applied in one transaction (tracks, alerts,
//! statuses, the fusion results or the inbox), and the isolating re-commit that sends a
//! message the store refuses to the dead letters while storing the rest.

use sharpeyes_wire::{AgentStatus, Body, Envelope, TrackBatch, TrackEvent};

use super::sql::Value;
use super::*;
use crate::args;

impl Store {
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
                    inbox::unqueue(db, agent, *seq)?;
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
                return Err(StoreError::Internal(format!(
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
                    inbox::unqueue(db, agent, *seq)?;
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
            (Applied::Stored, Fusion::Queue) => inbox::queue(db, env, now)?,
            (Applied::Duplicate, Fusion::Fused(fused))
                if fused.contains(&(env.agent.clone(), env.seq)) =>
            {
                inbox::unqueue(db, &env.agent, env.seq)?
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
