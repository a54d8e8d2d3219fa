//! Fusion results in the store: vehicles, persons and their aliases, sightings (a track as a
//! sighting of an identity), plate flags, person–vehicle links, and the camera places.
//!
//! Invariants:
//! - The rows are what the fuser's [`FuseOutput`] events said, applied in order in the same
//!   transaction as the messages that caused them ([`super::Store::apply_all_with_fusion`]),
//!   so a crash leaves a message with its fusion results or neither.
//! - A track is at most one sighting: `sightings` is keyed by `(agent, camera, track)` and
//!   an event for a track replaces its row (a track that moved to another identity moves).
//! - A merged person id is an alias of exactly one surviving person (`person_aliases` is
//!   repointed when the survivor is merged in turn); no sighting or link row names an alias.
//! - Vehicles store their plate normalised and its canonical form
//!   (`sharpeyes_wire::plate::canonical`), under which one-confusable readings collide: fuzzy
//!   search is an index lookup confirmed with `plate::compare`.
//! - Deletions are real: an identity retired as empty (its sightings moved) is deleted with
//!   its links. Idle or capacity retirements only leave the fuser's memory; the rows stay.
//! - `cameras` mirrors the configuration's `[[cameras]]` (rewritten at each start).

use std::collections::BTreeMap;

use serde::Serialize;
use sharpeyes_wire::{Body, Codec, Envelope, plate};

use super::sql::{Arg, Row, Value};
use super::{Db, Store, StoreError};
use crate::args;
use crate::config::CameraPlace;
use fusion::{FuseOutput, Identity, RetireReason, Sighting};

/// The fusion tables (schema 6).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vehicles (
    id       INTEGER PRIMARY KEY,
    plate    TEXT    NOT NULL,
    canon    TEXT    NOT NULL,
    first_ms INTEGER NOT NULL,
    clone_of INTEGER
);
CREATE INDEX IF NOT EXISTS vehicles_by_plate ON vehicles (plate);
CREATE INDEX IF NOT EXISTS vehicles_by_canon ON vehicles (canon);
CREATE TABLE IF NOT EXISTS persons (
    id       INTEGER PRIMARY KEY,
    first_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS person_aliases (
    alias           INTEGER PRIMARY KEY,
    person          INTEGER NOT NULL,
    similarity      REAL    NOT NULL,
    mean_similarity REAL    NOT NULL,
    merged_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS person_aliases_by_person ON person_aliases (person);
CREATE TABLE IF NOT EXISTS plate_flags (
    vehicle     INTEGER NOT NULL,
    other       INTEGER NOT NULL,
    plate       TEXT    NOT NULL,
    other_plate TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    gate_json   TEXT    NOT NULL,
    site        TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    camera      TEXT    NOT NULL,
    track       INTEGER NOT NULL,
    ts_ms       INTEGER NOT NULL,
    UNIQUE (agent, camera, track, vehicle, other)
);
CREATE INDEX IF NOT EXISTS plate_flags_by_vehicle ON plate_flags (vehicle);
CREATE INDEX IF NOT EXISTS plate_flags_by_other ON plate_flags (other);
CREATE TABLE IF NOT EXISTS links (
    person   INTEGER NOT NULL,
    vehicle  INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    strength REAL    NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    PRIMARY KEY (person, vehicle)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_by_vehicle ON links (vehicle);
CREATE TABLE IF NOT EXISTS link_evidence (
    person        INTEGER NOT NULL,
    vehicle       INTEGER NOT NULL,
    ts_ms         INTEGER NOT NULL,
    evidence_json TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS link_evidence_by_link ON link_evidence (person, vehicle, ts_ms);
CREATE TABLE IF NOT EXISTS cameras (
    site        TEXT NOT NULL,
    agent       TEXT NOT NULL,
    camera      TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    heading_deg REAL,
    fov_deg     REAL,
    grid        TEXT,
    PRIMARY KEY (site, agent, camera)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cameras_by_grid ON cameras (grid);
CREATE TABLE IF NOT EXISTS fusion_inbox (
    agent       TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    PRIMARY KEY (agent, seq)
);
CREATE INDEX IF NOT EXISTS fusion_inbox_by_time ON fusion_inbox (received_ms);
";

/// The sightings table on SQLite (PostgreSQL's is partitioned: `super::PG_SIGHTINGS`).
pub(super) const SIGHTINGS: &str = "
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
    PRIMARY KEY (agent, camera, track)
);
CREATE INDEX IF NOT EXISTS sightings_by_identity ON sightings (kind, identity, first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_time ON sightings (first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_camera_time ON sightings (agent, camera, first_ms, last_ms);
CREATE INDEX IF NOT EXISTS sightings_by_plate ON sightings (plate, kind, identity) WHERE plate IS NOT NULL;
CREATE INDEX IF NOT EXISTS sightings_by_place ON sightings (lat, lon, first_ms);
";

/// A stable short name of an output's kind (a metrics label).
pub fn output_kind(o: &FuseOutput) -> &'static str {
    match o {
        FuseOutput::NewVehicle { .. } => "new_vehicle",
        FuseOutput::VehiclePlate { .. } => "vehicle_plate",
        FuseOutput::VehicleSighting { .. } => "vehicle_sighting",
        FuseOutput::PlateFlagged { .. } => "plate_flagged",
        FuseOutput::NewPerson { .. } => "new_person",
        FuseOutput::PersonSighting { .. } => "person_sighting",
        FuseOutput::PersonsMerged { .. } => "persons_merged",
        FuseOutput::PersonFace { .. } => "person_face",
        FuseOutput::PersonFaceDropped { .. } => "person_face_dropped",
        FuseOutput::Link { .. } => "link",
        FuseOutput::Retired { .. } => "retired",
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn id(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Applies fusion outputs, in order, inside the caller's transaction.
pub(crate) fn apply_fusion(db: &mut Db, outputs: &[FuseOutput]) -> Result<(), StoreError> {
    for o in outputs {
        apply_one(db, o)?;
        super::faces::apply(db, o)?;
    }
    Ok(())
}

/// Queues a stored track batch for the fusion owner (another writer stored it).
pub(crate) fn queue(db: &mut Db, env: &Envelope, now: i64) -> Result<(), StoreError> {
    let payload = Codec::default()
        .encode(env)
        .map_err(|e| StoreError::Invalid(format!("encoding a batch for the fusion inbox: {e}")))?;
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

fn upsert_sighting(
    db: &mut Db,
    kind: &str,
    identity: u64,
    s: &Sighting,
    plate: Option<&str>,
    why: &str,
) -> Result<(), StoreError> {
    let cam = &s.track.camera;
    // Replace, not upsert: on PostgreSQL the key includes the partition column `first_ms`,
    // which a track's later events may move.
    db.execute(
        "DELETE FROM sightings WHERE agent = ? AND camera = ? AND track = ?",
        args![cam.agent, cam.camera, s.track.track],
    )?;
    db.ensure_partition("sightings", s.first_ms)?;
    db.execute(
        "INSERT INTO sightings (agent, camera, track, site, kind, identity, class, first_ms,
                                last_ms, lat, lon, confidence, ended, plate, why_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        args![
            cam.agent,
            cam.camera,
            s.track.track,
            cam.site,
            kind,
            identity,
            s.class.as_str(),
            s.first_ms,
            s.last_ms,
            s.position.map(|p| p[0]),
            s.position.map(|p| p[1]),
            f64::from(s.confidence),
            s.ended,
            plate,
            why,
        ],
    )?;
    Ok(())
}

fn apply_one(db: &mut Db, o: &FuseOutput) -> Result<(), StoreError> {
    match o {
        FuseOutput::NewVehicle {
            vehicle,
            plate: p,
            first_ms,
            clone_of,
        } => {
            db.execute(
                "INSERT INTO vehicles (id, plate, canon, first_ms, clone_of)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET plate = excluded.plate, canon = excluded.canon,
                    first_ms = excluded.first_ms, clone_of = excluded.clone_of",
                args![
                    id(vehicle.0),
                    p,
                    plate::canonical(p),
                    first_ms,
                    clone_of.map(|c| id(c.0))
                ],
            )?;
        }
        FuseOutput::VehiclePlate { vehicle, plate: p } => {
            db.execute(
                "UPDATE vehicles SET plate = ?, canon = ? WHERE id = ?",
                args![p, plate::canonical(p), id(vehicle.0)],
            )?;
        }
        FuseOutput::VehicleSighting {
            vehicle,
            sighting,
            plate: p,
            why,
        } => {
            let p = (!p.is_empty()).then_some(p.as_str());
            upsert_sighting(db, "vehicle", vehicle.0, sighting, p, &json(why))?;
        }
        FuseOutput::PersonSighting {
            person,
            sighting,
            why,
        } => upsert_sighting(db, "person", person.0, sighting, None, &json(why))?,
        FuseOutput::PlateFlagged {
            vehicle,
            other,
            plate: p,
            other_plate,
            reason,
            gate,
            track,
            ts_ms,
        } => {
            let reason = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            db.execute(
                "INSERT INTO plate_flags (vehicle, other, plate, other_plate, reason,
                     gate_json, site, agent, camera, track, ts_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                args![
                    id(vehicle.0),
                    id(other.0),
                    p,
                    other_plate,
                    reason,
                    json(gate),
                    track.camera.site,
                    track.camera.agent,
                    track.camera.camera,
                    id(track.track),
                    ts_ms
                ],
            )?;
        }
        FuseOutput::NewPerson { person, first_ms } => {
            db.execute(
                "INSERT INTO persons (id, first_ms) VALUES (?, ?)
                 ON CONFLICT (id) DO UPDATE SET first_ms = excluded.first_ms",
                args![id(person.0), first_ms],
            )?;
        }
        FuseOutput::PersonsMerged {
            from,
            into,
            similarity,
            mean_similarity,
            ts_ms,
        } => {
            let (from, into) = (id(from.0), id(into.0));
            db.execute(
                "INSERT INTO person_aliases (alias, person, similarity, mean_similarity, merged_ms)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (alias) DO UPDATE SET person = excluded.person,
                    similarity = excluded.similarity, mean_similarity = excluded.mean_similarity,
                    merged_ms = excluded.merged_ms",
                args![
                    from,
                    into,
                    f64::from(*similarity),
                    f64::from(*mean_similarity),
                    ts_ms
                ],
            )?;
            db.execute(
                "UPDATE person_aliases SET person = ?1 WHERE person = ?2",
                args![into, from],
            )?;
            db.execute(
                "UPDATE persons SET first_ms = LEAST(first_ms,
                     coalesce((SELECT p.first_ms FROM persons p WHERE p.id = ?2), first_ms))
                 WHERE id = ?1",
                args![into, from],
            )?;
            db.execute(
                "UPDATE sightings SET identity = ?1 WHERE kind = 'person' AND identity = ?2",
                args![into, from],
            )?;
            // The Link events that follow carry the combined state of `into`.
            db.execute("DELETE FROM links WHERE person = ?", args![from])?;
            db.execute(
                "UPDATE link_evidence SET person = ?1 WHERE person = ?2",
                args![into, from],
            )?;
        }
        FuseOutput::Link {
            person,
            vehicle,
            count,
            strength,
            first_ms,
            last_ms,
            evidence,
        } => {
            db.execute(
                "INSERT INTO links (person, vehicle, count, strength, first_ms, last_ms)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (person, vehicle) DO UPDATE SET count = excluded.count,
                    strength = excluded.strength, first_ms = excluded.first_ms,
                    last_ms = excluded.last_ms",
                args![
                    id(person.0),
                    id(vehicle.0),
                    count,
                    f64::from(*strength),
                    first_ms,
                    last_ms
                ],
            )?;
            if let Some(ev) = evidence {
                db.execute(
                    "INSERT INTO link_evidence (person, vehicle, ts_ms, evidence_json)
                     VALUES (?, ?, ?, ?)",
                    args![id(person.0), id(vehicle.0), ev.ts_ms, json(ev)],
                )?;
            }
        }
        FuseOutput::Retired {
            identity,
            reason: RetireReason::Empty,
            ..
        } => match identity {
            Identity::Vehicle(v) => {
                db.execute("DELETE FROM vehicles WHERE id = ?", args![id(v.0)])?;
                db.execute("DELETE FROM links WHERE vehicle = ?", args![id(v.0)])?;
                db.execute(
                    "DELETE FROM link_evidence WHERE vehicle = ?",
                    args![id(v.0)],
                )?;
            }
            Identity::Person(p) => {
                db.execute("DELETE FROM persons WHERE id = ?", args![id(p.0)])?;
                db.execute("DELETE FROM links WHERE person = ?", args![id(p.0)])?;
                db.execute("DELETE FROM link_evidence WHERE person = ?", args![id(p.0)])?;
            }
        },
        // Only the fuser's memory let it go; its history stays.
        FuseOutput::Retired { .. } => {}
        // Representative faces: `faces::apply`.
        FuseOutput::PersonFace { .. } | FuseOutput::PersonFaceDropped { .. } => {}
    }
    Ok(())
}

/// One sighting as the queries return it: a track of one camera as a sighting of a vehicle
/// or a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SightingRow {
    /// `vehicle` or `person`.
    pub kind: String,
    /// The vehicle's or person's id.
    pub identity: u64,
    /// Site of the camera.
    pub site: String,
    /// Agent id.
    pub agent: String,
    /// Camera id.
    pub camera: String,
    /// Track id (per agent and camera).
    pub track: u64,
    /// Object class of the track.
    pub class: String,
    /// First capture time, UTC ms.
    pub first_ms: i64,
    /// Last capture time, UTC ms.
    pub last_ms: i64,
    /// Camera latitude, if configured.
    pub lat: Option<f64>,
    /// Camera longitude, if configured.
    pub lon: Option<f64>,
    /// How sure the assignment is (0..=1).
    pub confidence: f64,
    /// Whether the track had ended when last written.
    pub ended: bool,
    /// The track's plate reading (vehicles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Why the track is this identity (rule, similarity, gating).
    pub why: serde_json::Value,
    /// The evidence: the stored track, as `agent/camera/track` (`aggregator tracks`).
    pub evidence: String,
    /// The SHA-256 (hex) of the track's best-shot crop in the evidence store
    /// ([`Store::evidence`]), when the agent sent one.
    pub evidence_crop: Option<String>,
}

impl SightingRow {
    /// `V-1` or `P-3`.
    pub fn identity_label(&self) -> String {
        match self.kind.as_str() {
            "vehicle" => format!("V-{}", self.identity),
            _ => format!("P-{}", self.identity),
        }
    }
}

const SIGHTING_COLUMNS: &str = "s.kind, s.identity, s.site, s.agent, s.camera, s.track, s.class,
    s.first_ms, s.last_ms, s.lat, s.lon, s.confidence, s.ended, s.plate, s.why_json,
    (SELECT t.evidence_crop FROM tracks t
      WHERE t.agent = s.agent AND t.camera = s.camera AND t.track = s.track)";

fn sighting_row(r: &Row) -> Result<SightingRow, StoreError> {
    let why: String = r.get(14)?;
    let (agent, camera, track): (String, String, u64) = (r.get(3)?, r.get(4)?, r.get(5)?);
    Ok(SightingRow {
        kind: r.get(0)?,
        identity: r.get(1)?,
        site: r.get(2)?,
        evidence: format!("{agent}/{camera}/{track}"),
        agent,
        camera,
        track,
        class: r.get(6)?,
        first_ms: r.get(7)?,
        last_ms: r.get(8)?,
        lat: r.get(9)?,
        lon: r.get(10)?,
        confidence: r.get(11)?,
        ended: r.get(12)?,
        plate: r.get(13)?,
        why: serde_json::from_str(&why).unwrap_or(serde_json::Value::Null),
        evidence_crop: r.get(15)?,
    })
}

/// How a vehicle matched a plate query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateMatchKind {
    /// Its plate is the query.
    Exact,
    /// One of its sightings read the query.
    Reading,
    /// Its plate is one OCR-confusable character off the query.
    Confusable,
}

impl PlateMatchKind {
    /// Its name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            PlateMatchKind::Exact => "exact",
            PlateMatchKind::Reading => "reading",
            PlateMatchKind::Confusable => "confusable",
        }
    }
}

/// A vehicle found by plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleRow {
    /// Its id.
    pub vehicle: u64,
    /// Its plate (its strongest reading).
    pub plate: String,
    /// First capture time, UTC ms.
    pub first_ms: i64,
    /// The vehicle with the same plate this one cannot be (a possible cloned plate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<u64>,
    /// How it matched the query.
    pub matched: PlateMatchKind,
}

/// A plate sighting that space-time gating kept apart from an existing vehicle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagRow {
    /// The vehicle the sighting went to.
    pub vehicle: u64,
    /// The vehicle it could not be.
    pub other: u64,
    /// The reading.
    pub plate: String,
    /// The other vehicle's plate then.
    pub other_plate: String,
    /// `possible_clone` or `near_plate_apart`.
    pub reason: String,
    /// The gating verdict against the other vehicle.
    pub gate: serde_json::Value,
    /// The evidence: the track, as `agent/camera/track`.
    pub evidence: String,
    /// Capture time, UTC ms.
    pub ts_ms: i64,
}

/// A person–vehicle link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkRow {
    /// The person.
    pub person: u64,
    /// The vehicle.
    pub vehicle: u64,
    /// The vehicle's plate.
    pub plate: String,
    /// Co-occurrences.
    pub count: u64,
    /// Strength (0..1), growing with each co-occurrence.
    pub strength: f64,
    /// First co-occurrence, UTC ms.
    pub first_ms: i64,
    /// Latest co-occurrence, UTC ms.
    pub last_ms: i64,
    /// The co-occurrences (rule, both tracks, time, weight), oldest first.
    pub evidence: Vec<serde_json::Value>,
}

/// Where sightings are searched.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    /// The cameras of a grid (`[[cameras]] grid`).
    Grid(String),
    /// A latitude/longitude box: two opposite corners `[lat, lon]`.
    BBox([f64; 2], [f64; 2]),
}

impl Store {
    /// Applies fusion outputs in their own transaction (tests, tools). Only the fusion owner
    /// may ([`StoreError::NotFusionOwner`]).
    pub fn apply_fusion(&mut self, outputs: &[FuseOutput]) -> Result<(), StoreError> {
        if !self.fusion_owner()? {
            return Err(StoreError::NotFusionOwner);
        }
        self.commit_batch(&[], outputs, super::Fusion::Fused(&[]))
            .map(|_| ())
    }

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

    /// Replaces the stored camera places with the configuration's.
    pub fn sync_cameras(&mut self, cameras: &[CameraPlace]) -> Result<(), StoreError> {
        self.tx(|db| {
            db.execute("DELETE FROM cameras", &[])?;
            for c in cameras {
                db.execute(
                    "INSERT INTO cameras (site, agent, camera, lat, lon, heading_deg, fov_deg, grid)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (site, agent, camera) DO UPDATE SET lat = excluded.lat,
                        lon = excluded.lon, heading_deg = excluded.heading_deg,
                        fov_deg = excluded.fov_deg, grid = excluded.grid",
                    args![
                        c.site,
                        c.agent,
                        c.camera,
                        c.lat,
                        c.lon,
                        c.heading_deg,
                        c.fov_deg,
                        c.grid
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Vehicles whose plate (or a sighting's reading) is `text` once normalised; with
    /// `fuzzy` also those whose plate is one OCR-confusable character off. Exact first.
    pub fn vehicles_by_plate(
        &self,
        text: &str,
        fuzzy: bool,
    ) -> Result<Vec<VehicleRow>, StoreError> {
        let q = plate::normalize(text);
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<u64, VehicleRow> = BTreeMap::new();
        let mut add = |r: &Row, matched: PlateMatchKind| -> Result<(), StoreError> {
            let vehicle: u64 = r.get(0)?;
            let row = VehicleRow {
                vehicle,
                plate: r.get(1)?,
                first_ms: r.get(2)?,
                clone_of: r.get(3)?,
                matched,
            };
            let e = found.entry(vehicle).or_insert(row);
            e.matched = e.matched.min(matched);
            Ok(())
        };
        let mut db = self.db();
        for r in db.query(
            "SELECT id, plate, first_ms, clone_of FROM vehicles WHERE plate = ?",
            args![q],
        )? {
            add(&r, PlateMatchKind::Exact)?;
        }
        for r in db.query(
            "SELECT v.id, v.plate, v.first_ms, v.clone_of FROM vehicles v
             WHERE v.id IN (SELECT identity FROM sightings WHERE plate = ? AND kind = 'vehicle')",
            args![q],
        )? {
            add(&r, PlateMatchKind::Reading)?;
        }
        if fuzzy {
            for r in db.query(
                "SELECT id, plate, first_ms, clone_of FROM vehicles WHERE canon = ?",
                args![plate::canonical(&q)],
            )? {
                let p: String = r.get(1)?;
                if matches!(plate::compare(&q, &p), plate::PlateMatch::Confusable { .. }) {
                    add(&r, PlateMatchKind::Confusable)?;
                }
            }
        }
        let mut out: Vec<VehicleRow> = found.into_values().collect();
        out.sort_by_key(|v| (v.matched, v.vehicle));
        Ok(out)
    }

    fn sightings_of(&self, kind: &str, ids: &[u64]) -> Result<Vec<SightingRow>, StoreError> {
        let sql = format!(
            "SELECT {SIGHTING_COLUMNS} FROM sightings s WHERE s.kind = ? AND s.identity = ?
             ORDER BY s.first_ms, s.agent, s.camera, s.track"
        );
        let mut out = Vec::new();
        let mut db = self.db();
        for &i in ids {
            for r in db.query(&sql, args![kind, i])? {
                out.push(sighting_row(&r)?);
            }
        }
        out.sort_by(|a, b| {
            (a.first_ms, a.identity, &a.agent, &a.camera, a.track)
                .cmp(&(b.first_ms, b.identity, &b.agent, &b.camera, b.track))
        });
        Ok(out)
    }

    /// The sightings of every vehicle [`vehicles_by_plate`](Self::vehicles_by_plate) finds,
    /// in time order (each row names its vehicle).
    pub fn vehicle_trajectory_by_plate(
        &self,
        text: &str,
        fuzzy: bool,
    ) -> Result<Vec<SightingRow>, StoreError> {
        let ids: Vec<u64> = self
            .vehicles_by_plate(text, fuzzy)?
            .iter()
            .map(|v| v.vehicle)
            .collect();
        self.sightings_of("vehicle", &ids)
    }

    /// The surviving id of a person (itself when never merged), if the person is known.
    pub fn resolve_person(&self, person: u64) -> Result<Option<u64>, StoreError> {
        let mut db = self.db();
        if let Some(r) = db.one(
            "SELECT person FROM person_aliases WHERE alias = ?",
            args![person],
        )? {
            return Ok(Some(r.get(0)?));
        }
        let known = db
            .one(
                "SELECT 1 FROM persons WHERE id = ?1
                 UNION ALL SELECT 1 FROM sightings WHERE kind = 'person' AND identity = ?1
                 LIMIT 1",
                args![person],
            )?
            .is_some();
        Ok(known.then_some(person))
    }

    /// A person's sightings (a merged id gives its survivor's), in time order.
    pub fn person_trajectory(&self, person: u64) -> Result<Vec<SightingRow>, StoreError> {
        match self.resolve_person(person)? {
            Some(p) => self.sightings_of("person", &[p]),
            None => Ok(Vec::new()),
        }
    }

    /// Plate flags about these vehicles (as the flagged one or the other), in time order.
    pub fn plate_flags_of(&self, vehicles: &[u64]) -> Result<Vec<FlagRow>, StoreError> {
        let mut out: Vec<FlagRow> = Vec::new();
        let mut db = self.db();
        for &v in vehicles {
            for r in db.query(
                "SELECT vehicle, other, plate, other_plate, reason, gate_json, agent, camera, track, ts_ms
                 FROM plate_flags WHERE vehicle = ?1 OR other = ?1",
                args![v],
            )? {
                let gate: String = r.get(5)?;
                let (agent, camera, track): (String, String, u64) =
                    (r.get(6)?, r.get(7)?, r.get(8)?);
                let r = FlagRow {
                    vehicle: r.get(0)?,
                    other: r.get(1)?,
                    plate: r.get(2)?,
                    other_plate: r.get(3)?,
                    reason: r.get(4)?,
                    gate: serde_json::from_str(&gate).unwrap_or(serde_json::Value::Null),
                    evidence: format!("{agent}/{camera}/{track}"),
                    ts_ms: r.get(9)?,
                };
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|f| (f.ts_ms, f.vehicle, f.other));
        Ok(out)
    }

    fn links_where(&self, cond: &str, a: &[Value]) -> Result<Vec<LinkRow>, StoreError> {
        let mut db = self.db();
        let mut rows: Vec<LinkRow> = db
            .query(
                &format!(
                    "SELECT l.person, l.vehicle, coalesce(v.plate, ''), l.count, l.strength, l.first_ms, l.last_ms
                     FROM links l LEFT JOIN vehicles v ON v.id = l.vehicle WHERE {cond}
                     ORDER BY l.strength DESC, l.last_ms DESC, l.person, l.vehicle"
                ),
                a,
            )?
            .iter()
            .map(|r| {
                Ok(LinkRow {
                    person: r.get(0)?,
                    vehicle: r.get(1)?,
                    plate: r.get(2)?,
                    count: r.get(3)?,
                    strength: r.get(4)?,
                    first_ms: r.get(5)?,
                    last_ms: r.get(6)?,
                    evidence: Vec::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        for l in &mut rows {
            for r in db.query(
                "SELECT evidence_json FROM link_evidence WHERE person = ? AND vehicle = ?
                 ORDER BY ts_ms, evidence_json",
                args![l.person, l.vehicle],
            )? {
                let e: String = r.get(0)?;
                l.evidence
                    .push(serde_json::from_str(&e).unwrap_or(serde_json::Value::Null));
            }
        }
        Ok(rows)
    }

    /// A person's links (a merged id gives its survivor's), strongest first.
    pub fn links_of_person(&self, person: u64) -> Result<Vec<LinkRow>, StoreError> {
        match self.resolve_person(person)? {
            Some(p) => self.links_where("l.person = ?", args![p]),
            None => Ok(Vec::new()),
        }
    }

    /// The links of the vehicles with this plate (exactly, or read so), strongest first.
    pub fn links_of_plate(&self, text: &str) -> Result<Vec<LinkRow>, StoreError> {
        let mut out = Vec::new();
        for v in self.vehicles_by_plate(text, false)? {
            out.extend(self.links_where("l.vehicle = ?", args![v.vehicle])?);
        }
        out.sort_by(|a, b| {
            b.strength
                .total_cmp(&a.strength)
                .then(b.last_ms.cmp(&a.last_ms))
        });
        Ok(out)
    }

    /// Sightings in an area overlapping `[from_ms, to_ms]`, in time order. An area is the
    /// cameras configured in it now (`[[cameras]]`: their grid, or their position inside
    /// the box); each camera's sightings are read through its (camera, time) index, so the
    /// cost grows with the area's cameras and the window, not with the store.
    ///
    /// A sighting overlaps when it starts by `to_ms` and ends at or after `from_ms`; the
    /// search also bounds `first_ms` from below by `from_ms` minus
    /// [`MAX_SIGHTING_SPAN_MS`], so the time index (and on PostgreSQL the partitions) narrow
    /// the scan.
    pub fn sightings_in(
        &self,
        area: &Area,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SightingRow>, StoreError> {
        self.sightings_in_page(area, from_ms, to_ms, &Page::default())
    }

    /// [`sightings_in`](Self::sightings_in), one page: the sightings after `page.after` in
    /// the same order, at most `page.limit` (the API's pagination; the limit is applied by
    /// the database, not by slicing).
    pub fn sightings_in_page(
        &self,
        area: &Area,
        from_ms: i64,
        to_ms: i64,
        page: &Page,
    ) -> Result<Vec<SightingRow>, StoreError> {
        let time = "s.first_ms <= ? AND s.last_ms >= ? AND s.first_ms >= ?";
        let lower = from_ms.saturating_sub(MAX_SIGHTING_SPAN_MS);
        let (cond, mut a): (String, Vec<Value>) = match area {
            Area::Grid(g) => (
                format!(
                    "FROM sightings s JOIN cameras c
                       ON c.site = s.site AND c.agent = s.agent AND c.camera = s.camera
                     WHERE c.grid = ? AND {time}"
                ),
                args![g, to_ms, from_ms, lower].to_vec(),
            ),
            Area::BBox(p, q) => {
                let (lat0, lat1) = (p[0].min(q[0]), p[0].max(q[0]));
                let (lon0, lon1) = (p[1].min(q[1]), p[1].max(q[1]));
                // The configured cameras inside the box first (a small table), then each
                // one's sightings by its (camera, time) index: a box is a grid drawn on the
                // map. The sighting's own recorded position must be inside too (a camera
                // moved since keeps its old sightings where they were seen).
                (
                    format!(
                        "FROM sightings s JOIN cameras c
                           ON c.site = s.site AND c.agent = s.agent AND c.camera = s.camera
                         WHERE c.lat BETWEEN ? AND ? AND c.lon BETWEEN ? AND ?
                           AND s.lat BETWEEN ? AND ? AND s.lon BETWEEN ? AND ? AND {time}"
                    ),
                    args![
                        lat0, lat1, lon0, lon1, lat0, lat1, lon0, lon1, to_ms, from_ms, lower
                    ]
                    .to_vec(),
                )
            }
        };
        let sql = format!("SELECT {SIGHTING_COLUMNS} {cond}{}", page.sql(&mut a));
        let rows = self.db().query(&sql, &a)?;
        rows.iter().map(sighting_row).collect()
    }

    /// The sightings of these identities (`kind` `vehicle` or `person`, ids already
    /// resolved), in time order, one page (see [`Page`]).
    ///
    /// With a `window` `[from_ms, to_ms]`, only sightings overlapping it.
    pub fn identity_sightings_page(
        &self,
        kind: &str,
        ids: &[u64],
        window: Option<(i64, i64)>,
        page: &Page,
    ) -> Result<Vec<SightingRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut a: Vec<Value> = args![kind].to_vec();
        a.extend(ids.iter().map(|i| i.to_value()));
        let marks = vec!["?"; ids.len()].join(", ");
        let mut time = String::new();
        if let Some((from, to)) = window {
            time.push_str(" AND s.first_ms <= ? AND s.last_ms >= ?");
            a.extend(args![to, from].iter().cloned());
        }
        let sql = format!(
            "SELECT {SIGHTING_COLUMNS} FROM sightings s
             WHERE s.kind = ? AND s.identity IN ({marks}){time}{}",
            page.sql(&mut a)
        );
        let rows = self.db().query(&sql, &a)?;
        rows.iter().map(sighting_row).collect()
    }
}

/// Where a page of sightings starts: the last row of the previous page, in the sightings'
/// time order `(first_ms, agent, camera, track)` (a track is one sighting, so the key is
/// unique).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SightingKey {
    /// The row's `first_ms`.
    pub first_ms: i64,
    /// Its agent.
    pub agent: String,
    /// Its camera.
    pub camera: String,
    /// Its track.
    pub track: u64,
}

impl SightingKey {
    /// The key of a row.
    pub fn of(r: &SightingRow) -> Self {
        Self {
            first_ms: r.first_ms,
            agent: r.agent.clone(),
            camera: r.camera.clone(),
            track: r.track,
        }
    }
}

/// A page of a sighting query: rows after `after` (keyset), at most `limit` (none: all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The last row of the previous page.
    pub after: Option<SightingKey>,
    /// Rows at most.
    pub limit: Option<usize>,
}

impl Page {
    /// The keyset condition (appended with `AND`), the order and the limit; binds the key.
    fn sql(&self, a: &mut Vec<Value>) -> String {
        let mut s = String::new();
        if let Some(k) = &self.after {
            s.push_str(" AND (s.first_ms, s.agent, s.camera, s.track) > (?, ?, ?, ?)");
            a.extend(
                args![k.first_ms, k.agent, k.camera, k.track]
                    .iter()
                    .cloned(),
            );
        }
        s.push_str(" ORDER BY s.first_ms, s.agent, s.camera, s.track");
        if let Some(l) = self.limit {
            s.push_str(&format!(" LIMIT {l}"));
        }
        s
    }
}

/// The longest a sighting (a track) is assumed to last, for the time bound of
/// [`Store::sightings_in`]: one day. A track seen longer than that is found by its start.
pub const MAX_SIGHTING_SPAN_MS: i64 = 86_400_000;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use fusion::{
        Assignment, CameraKey, FlagReason, Gate, LinkEvidence, LinkRule, PersonId, TrackRef,
        VehicleId,
    };
    use sharpeyes_wire::ObjectClass;

    const FEASIBLE: Gate = Gate::Feasible {
        distance_m: 3000.0,
        gap_ms: 300_000,
        needed_ms: 90_000,
    };

    fn cam(c: &str) -> Arc<CameraKey> {
        Arc::new(CameraKey::new("s1", "a1", c))
    }

    fn sighting(c: &str, track: u64, class: ObjectClass, t: i64, pos: [f64; 2]) -> Sighting {
        Sighting {
            track: TrackRef {
                camera: cam(c),
                track,
            },
            class,
            first_ms: t,
            last_ms: t + 5000,
            position: Some(pos),
            confidence: 0.9,
            ended: true,
        }
    }

    fn vs(v: u64, c: &str, track: u64, t: i64, plate: &str, pos: [f64; 2]) -> FuseOutput {
        FuseOutput::VehicleSighting {
            vehicle: VehicleId(v),
            sighting: sighting(c, track, ObjectClass::Car, t, pos),
            plate: plate.into(),
            why: Assignment::ExactPlate { gate: FEASIBLE },
        }
    }

    fn ps(p: u64, c: &str, track: u64, t: i64, pos: [f64; 2]) -> FuseOutput {
        FuseOutput::PersonSighting {
            person: PersonId(p),
            sighting: sighting(c, track, ObjectClass::Person, t, pos),
            why: Assignment::SimilarFace {
                similarity: 0.8,
                gate: FEASIBLE,
            },
        }
    }

    fn link(p: u64, v: u64, count: u32, ev: bool) -> FuseOutput {
        FuseOutput::Link {
            person: PersonId(p),
            vehicle: VehicleId(v),
            count,
            strength: 0.5,
            first_ms: 1000,
            last_ms: 1000,
            evidence: ev.then(|| LinkEvidence {
                rule: LinkRule::GotIn { gap_ms: 2000 },
                person_track: TrackRef {
                    camera: cam("cam-1"),
                    track: 1,
                },
                vehicle_track: TrackRef {
                    camera: cam("cam-1"),
                    track: 2,
                },
                ts_ms: 1000,
                weight: 0.5,
            }),
        }
    }

    const A: [f64; 2] = [30.657, 104.065];
    const B: [f64; 2] = [30.68, 104.08];
    const FAR: [f64; 2] = [31.56, 104.065];

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn plate_trajectories_exact_reading_and_fuzzy() {
        let (_d, mut s) = store();
        s.apply_fusion(&[
            FuseOutput::NewVehicle {
                vehicle: VehicleId(1),
                plate: "川A12345".into(),
                first_ms: 1000,
                clone_of: None,
            },
            vs(1, "cam-1", 2, 1000, "川A12345", A),
            vs(1, "cam-3", 1, 600_000, "川A1234S", B),
            vs(1, "cam-2", 3, 300_000, "川A12345", B),
            FuseOutput::NewVehicle {
                vehicle: VehicleId(2),
                plate: "川A12345".into(),
                first_ms: 610_000,
                clone_of: Some(VehicleId(1)),
            },
            vs(2, "cam-far", 2, 610_000, "川A12345", FAR),
            FuseOutput::PlateFlagged {
                vehicle: VehicleId(2),
                other: VehicleId(1),
                plate: "川A12345".into(),
                other_plate: "川A12345".into(),
                reason: FlagReason::PossibleClone,
                gate: Gate::Infeasible {
                    distance_m: 90_000.0,
                    gap_ms: 5000,
                    needed_ms: 2_700_000,
                },
                track: TrackRef {
                    camera: cam("cam-far"),
                    track: 2,
                },
                ts_ms: 610_000,
            },
            FuseOutput::NewVehicle {
                vehicle: VehicleId(3),
                plate: "川A1234B".into(),
                first_ms: 5000,
                clone_of: None,
            },
            vs(3, "cam-1", 9, 5000, "川A1234B", A),
        ])
        .unwrap();
        let v = s.vehicles_by_plate("川a 12345", false).unwrap();
        assert_eq!(
            v.iter()
                .map(|v| (v.vehicle, v.clone_of))
                .collect::<Vec<_>>(),
            vec![(1, None), (2, Some(1))]
        );
        // A reading of one of its sightings finds the vehicle too.
        let r = s.vehicles_by_plate("川A1234S", false).unwrap();
        assert_eq!(
            r.iter().map(|v| (v.vehicle, v.matched)).collect::<Vec<_>>(),
            vec![(1, PlateMatchKind::Reading)]
        );
        let t = s.vehicle_trajectory_by_plate("川A12345", false).unwrap();
        let mine: Vec<_> = t
            .iter()
            .filter(|r| r.identity == 1)
            .map(|r| (r.camera.as_str(), r.first_ms))
            .collect();
        assert_eq!(
            mine,
            vec![("cam-1", 1000), ("cam-2", 300_000), ("cam-3", 600_000)],
            "time order"
        );
        assert_eq!(t.len(), 4);
        assert_eq!(t[1].evidence, "a1/cam-2/3");
        assert_eq!(t[0].why["rule"], "exact_plate");
        // Fuzzy: 8/B one confusable character off.
        let f = s.vehicles_by_plate("川A12348", true).unwrap();
        assert_eq!(
            f.iter().map(|v| (v.vehicle, v.matched)).collect::<Vec<_>>(),
            vec![(3, PlateMatchKind::Confusable)]
        );
        assert!(s.vehicles_by_plate("川A12348", false).unwrap().is_empty());
        let flags = s.plate_flags_of(&[1]).unwrap();
        assert_eq!(flags.len(), 1);
        assert_eq!(
            (
                flags[0].vehicle,
                flags[0].reason.as_str(),
                flags[0].evidence.as_str()
            ),
            (2, "possible_clone", "a1/cam-far/2")
        );
        assert_eq!(s.fusion_next_ids().unwrap(), (4, 1));
        // A plate change re-indexes the vehicle.
        s.apply_fusion(&[FuseOutput::VehiclePlate {
            vehicle: VehicleId(3),
            plate: "川A1234S".into(),
        }])
        .unwrap();
        assert_eq!(s.vehicles_by_plate("川A1234S", false).unwrap().len(), 2);
    }

    #[test]
    fn a_moved_track_is_one_sighting_and_empty_identities_are_deleted() {
        let (_d, mut s) = store();
        s.apply_fusion(&[
            FuseOutput::NewVehicle {
                vehicle: VehicleId(1),
                plate: "京N8M2Q7".into(),
                first_ms: 0,
                clone_of: None,
            },
            vs(1, "cam-1", 4, 0, "京N8M2Q7", A),
            FuseOutput::NewVehicle {
                vehicle: VehicleId(2),
                plate: "京N8M2Q8".into(),
                first_ms: 0,
                clone_of: None,
            },
            vs(2, "cam-1", 4, 0, "京N8M2Q8", A),
            FuseOutput::Retired {
                identity: Identity::Vehicle(VehicleId(1)),
                last_seen_ms: 0,
                reason: RetireReason::Empty,
            },
            FuseOutput::Retired {
                identity: Identity::Vehicle(VehicleId(2)),
                last_seen_ms: 0,
                reason: RetireReason::Idle,
            },
        ])
        .unwrap();
        assert!(s.vehicles_by_plate("京N8M2Q7", false).unwrap().is_empty());
        let t = s.vehicle_trajectory_by_plate("京N8M2Q8", false).unwrap();
        assert_eq!(t.len(), 1, "idle retirement keeps the history");
        assert_eq!(t[0].identity, 2);
    }

    #[test]
    fn merges_repoint_sightings_aliases_and_links() {
        let (_d, mut s) = store();
        s.apply_fusion(&[
            FuseOutput::NewPerson {
                person: PersonId(1),
                first_ms: 1000,
            },
            ps(1, "cam-1", 1, 1000, A),
            FuseOutput::NewPerson {
                person: PersonId(2),
                first_ms: 500,
            },
            ps(2, "cam-2", 5, 500, B),
            FuseOutput::NewPerson {
                person: PersonId(3),
                first_ms: 900_000,
            },
            ps(3, "cam-2", 8, 900_000, B),
            FuseOutput::NewVehicle {
                vehicle: VehicleId(7),
                plate: "川A12345".into(),
                first_ms: 1000,
                clone_of: None,
            },
            link(3, 7, 1, true),
            // 3 into 2, then 2 into 1: 3 must resolve to 1.
            FuseOutput::PersonsMerged {
                from: PersonId(3),
                into: PersonId(2),
                similarity: 0.6,
                mean_similarity: 0.5,
                ts_ms: 1,
            },
            link(2, 7, 1, false),
            FuseOutput::PersonsMerged {
                from: PersonId(2),
                into: PersonId(1),
                similarity: 0.6,
                mean_similarity: 0.5,
                ts_ms: 2,
            },
            link(1, 7, 1, false),
        ])
        .unwrap();
        assert_eq!(s.resolve_person(3).unwrap(), Some(1));
        assert_eq!(s.resolve_person(1).unwrap(), Some(1));
        assert_eq!(s.resolve_person(99).unwrap(), None);
        let t = s.person_trajectory(3).unwrap();
        assert_eq!(
            t.iter()
                .map(|r| (r.identity, r.first_ms))
                .collect::<Vec<_>>(),
            vec![(1, 500), (1, 1000), (1, 900_000)]
        );
        let l = s.links_of_person(2).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].person, l[0].vehicle, l[0].plate.as_str()),
            (1, 7, "川A12345")
        );
        assert_eq!(l[0].evidence.len(), 1, "evidence follows the merge");
        assert_eq!(l[0].evidence[0]["rule"], "got_in");
        assert_eq!(s.links_of_plate("川A12345").unwrap(), l);
        assert_eq!(s.fusion_next_ids().unwrap(), (8, 4));
    }

    #[test]
    fn sightings_by_grid_and_box_within_a_window() {
        let (_d, mut s) = store();
        let place = |c: &str, p: [f64; 2], grid: Option<&str>| CameraPlace {
            site: "s1".into(),
            agent: "a1".into(),
            camera: c.into(),
            lat: p[0],
            lon: p[1],
            heading_deg: None,
            fov_deg: None,
            grid: grid.map(Into::into),
        };
        s.sync_cameras(&[
            place("cam-1", A, Some("g7")),
            place("cam-2", B, Some("g8")),
            place("cam-far", FAR, None),
        ])
        .unwrap();
        s.apply_fusion(&[
            ps(1, "cam-1", 1, 1000, A),
            ps(1, "cam-2", 2, 300_000, B),
            vs(4, "cam-far", 3, 400_000, "川A12345", FAR),
        ])
        .unwrap();
        let g = s
            .sightings_in(&Area::Grid("g7".into()), 0, 1_000_000)
            .unwrap();
        assert_eq!(g.iter().map(|r| r.track).collect::<Vec<_>>(), vec![1]);
        // The window overlaps a sighting's span (1000..6000).
        assert_eq!(
            s.sightings_in(&Area::Grid("g7".into()), 5999, 7000)
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.sightings_in(&Area::Grid("g7".into()), 6001, 7000)
                .unwrap()
                .is_empty()
        );
        let city = Area::BBox([30.7, 104.0], [30.6, 104.1]);
        let b = s.sightings_in(&city, 0, i64::MAX).unwrap();
        assert_eq!(b.iter().map(|r| r.track).collect::<Vec<_>>(), vec![1, 2]);
        // Re-syncing replaces the places.
        s.sync_cameras(&[place("cam-1", A, Some("g9"))]).unwrap();
        assert!(
            s.sightings_in(&Area::Grid("g7".into()), 0, i64::MAX)
                .unwrap()
                .is_empty()
        );
    }
}
