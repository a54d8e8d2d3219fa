//! The write path: a batch of messages applied in one transaction (tracks, alerts,
//! statuses, the fusion results or the inbox), and the isolating re-commit that sends a
//! message the store refuses to the dead letters while storing the rest.

use sharpeyes_wire::{AgentStatus, Body, Envelope, TrackBatch, TrackEvent};

use std::collections::BTreeSet;

use super::sql::{Arg as _, Rows, Ty, Value, rounds};
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
            let out = apply_messages(db, msgs, &fusion, now)?;
            fusion::apply_fusion(db, outputs)?;
            if let Fusion::Fused(consumed) = fusion {
                inbox::unqueue_all(db, consumed)?;
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
                let one = [(env.clone(), topic.clone(), *bytes)];
                match apply_messages(db, &one, &fusion, now) {
                    Ok(a) => {
                        db.backend.batch("RELEASE SAVEPOINT sharpeyes_msg")?;
                        out.push(Outcome::Applied(a[0]));
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
                inbox::unqueue_all(db, consumed)?;
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

/// `messages`: one row per stored message; `RETURNING` says which were new.
const MESSAGES_ROWS: Rows<'static> = Rows {
    table: "messages",
    columns: &[
        ("agent", Ty::Text),
        ("seq", Ty::Int),
        ("kind", Ty::Text),
        ("topic", Ty::Text),
        ("sent_ms", Ty::Int),
        ("received_ms", Ty::Int),
        ("bytes", Ty::Int),
    ],
    tail: "ON CONFLICT DO NOTHING RETURNING agent, seq",
};

/// `tracks`: one row per track, merged from its updates in any order (the earliest start,
/// the latest box, plate, link and best shot, the highest score, a count of updates).
const TRACKS_ROWS: Rows<'static> = Rows {
    table: "tracks",
    columns: &[
        ("agent", Ty::Text),
        ("camera", Ty::Text),
        ("track", Ty::Int),
        ("site", Ty::Text),
        ("class", Ty::Text),
        ("first_ms", Ty::Int),
        ("last_ms", Ty::Int),
        ("ended", Ty::Int),
        ("updates", Ty::Int),
        ("best_score", Ty::Real),
        ("frame_w", Ty::Int),
        ("frame_h", Ty::Int),
        ("x1", Ty::Real),
        ("y1", Ty::Real),
        ("x2", Ty::Real),
        ("y2", Ty::Real),
        ("plate", Ty::Text),
        ("plate_confidence", Ty::Real),
        ("link", Ty::Int),
        ("evidence_crop", Ty::Text),
    ],
    tail: "ON CONFLICT (agent, camera, track) DO UPDATE SET
        first_ms = LEAST(tracks.first_ms, excluded.first_ms),
        ended = GREATEST(tracks.ended, excluded.ended),
        updates = tracks.updates + excluded.updates,
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
};

/// `track_points`: one row per update (a repeat changes nothing).
const POINTS_ROWS: Rows<'static> = Rows {
    table: "track_points",
    columns: &[
        ("agent", Ty::Text),
        ("camera", Ty::Text),
        ("track", Ty::Int),
        ("ts_ms", Ty::Int),
        ("event", Ty::Text),
        ("score", Ty::Real),
        ("x1", Ty::Real),
        ("y1", Ty::Real),
        ("x2", Ty::Real),
        ("y2", Ty::Real),
    ],
    tail: "ON CONFLICT DO NOTHING",
};

/// A status last will: no sequence of its own, not deduplicated.
fn is_last_will(env: &Envelope) -> bool {
    matches!(env.body, Body::Status(_)) && env.seq == 0
}

/// Applies messages inside the caller's transaction with one statement per table (the
/// `messages` rows, then every track and track point of the stored track batches; alerts and
/// statuses, which are few, one by one), as applying them one after the other would: a
/// message whose `(agent, seq)` is stored already, or came earlier in `msgs`, is a
/// duplicate and changes nothing. Keeps the fusion inbox right: a new track batch of a
/// writer that is not the fusion owner is queued for it; a track batch this owner finds
/// stored already (another writer stored and queued it) leaves the inbox only if this owner
/// fused it (it is among `Fused`'s keys). If not (it was stored before this owner looked, so
/// the owner left it to the inbox), it stays there to be fused from it.
fn apply_messages(
    db: &mut Db,
    msgs: &[(Envelope, String, usize)],
    fusion: &Fusion<'_>,
    now: i64,
) -> Result<Vec<Applied>, StoreError> {
    let mut first: HashSet<(&str, u64)> = HashSet::with_capacity(msgs.len());
    let mut rows = Vec::with_capacity(msgs.len());
    for (env, topic, bytes) in msgs {
        if !is_last_will(env) && first.insert((env.agent.as_str(), env.seq)) {
            rows.push(vec![
                Value::Text(env.agent.clone()),
                env.seq.to_value(),
                Value::Text(env.body.kind().into()),
                Value::Text(topic.clone()),
                Value::Integer(env.sent_ms),
                Value::Integer(now),
                bytes.to_value(),
            ]);
        }
    }
    let mut new: HashSet<(String, u64)> = HashSet::with_capacity(rows.len());
    for r in db.backend.insert_rows(&MESSAGES_ROWS, &rows)? {
        new.insert((r.get(0)?, r.get(1)?));
    }
    let mut tracks = Vec::new();
    let mut points = Vec::new();
    let mut out = Vec::with_capacity(msgs.len());
    for (env, _, _) in msgs {
        let a = if let (Body::Status(s), true) = (&env.body, is_last_will(env)) {
            store_status(db, &env.agent, s, now)?;
            Applied::Stored
        } else if !new.remove(&(env.agent.clone(), env.seq)) {
            // Stored before, or earlier in this batch (`remove`: only its first copy is new).
            Applied::Duplicate
        } else {
            match &env.body {
                Body::Tracks(b) => {
                    track_rows(db, &env.agent, b, now, &mut tracks, &mut points)?;
                    Applied::Stored
                }
                Body::Status(s) => {
                    store_status(db, &env.agent, s, now)?;
                    Applied::Stored
                }
                Body::Alert(a) if store_alert(db, &env.agent, a, now)? => Applied::NewAlert,
                // The aggregator publishes the watchlists; its own store holds them (the
                // message row records a copy that came back).
                Body::Alert(_) | Body::Watchlists(_) | Body::Acks(_) => Applied::Stored,
            }
        };
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
        out.push(a);
    }
    // A track updated twice in these messages gets one upsert per round, in order.
    for round in rounds(tracks) {
        db.backend.insert_rows(&TRACKS_ROWS, &round)?;
    }
    let days: BTreeSet<i64> = points
        .iter()
        .filter_map(|r| match r[3] {
            Value::Integer(ms) => Some(ms.div_euclid(DAY_MS)),
            _ => None,
        })
        .collect();
    for d in days {
        db.ensure_partition("track_points", d * DAY_MS)?;
    }
    db.backend.insert_rows(&POINTS_ROWS, &points)?;
    Ok(out)
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

/// The `tracks` and `track_points` rows of a stored track batch (its best shots stored
/// now: the rows name them).
fn track_rows(
    db: &mut Db,
    agent: &str,
    b: &TrackBatch,
    now: i64,
    tracks: &mut Vec<(fusion::TrackKey, Vec<Value>)>,
    points: &mut Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    for u in &b.updates {
        let [x1, y1, x2, y2] = u.bbox.to_pixels(b.frame_w, b.frame_h);
        let thumb = match &u.thumb {
            Some(t) => evidence::put_thumb(db, agent, &b.camera, u.track, t, u.ts_ms, now)?,
            None => None,
        };
        let (x1, y1, x2, y2) = (
            Value::Real(f64::from(x1)),
            Value::Real(f64::from(y1)),
            Value::Real(f64::from(x2)),
            Value::Real(f64::from(y2)),
        );
        let key = (agent.to_string(), b.camera.clone(), u.track);
        tracks.push((
            key,
            vec![
                Value::Text(agent.to_string()),
                Value::Text(b.camera.clone()),
                u.track.to_value(),
                Value::Text(b.site.clone()),
                Value::Text(u.class.as_str().into()),
                Value::Integer(u.ts_ms),
                Value::Integer(u.ts_ms),
                (u.event == TrackEvent::End).to_value(),
                Value::Integer(1),
                Value::Real(f64::from(u.score)),
                b.frame_w.to_value(),
                b.frame_h.to_value(),
                x1.clone(),
                y1.clone(),
                x2.clone(),
                y2.clone(),
                u.plate.as_ref().map(|p| p.text.as_str()).to_value(),
                u.plate.as_ref().map(|p| f64::from(p.confidence)).to_value(),
                u.link.to_value(),
                thumb.to_value(),
            ],
        ));
        points.push(vec![
            Value::Text(agent.to_string()),
            Value::Text(b.camera.clone()),
            u.track.to_value(),
            Value::Integer(u.ts_ms),
            Value::Text(u.event.as_str().into()),
            Value::Real(f64::from(u.score)),
            x1,
            y1,
            x2,
            y2,
        ]);
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
