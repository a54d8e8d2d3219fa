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

use serde::Serialize;
use sharpeyes_wire::plate;

use std::collections::HashMap;

use super::sql::{Arg as _, Rows, Ty, Value};
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

/// Applies fusion outputs inside the caller's transaction, as applying them one by one in
/// order would, with one statement per table for the frequent ones ([`Pending`]).
pub(crate) fn apply_fusion(db: &mut Db, outputs: &[FuseOutput]) -> Result<(), StoreError> {
    let mut pending = Pending::default();
    for o in outputs {
        if !pending.take(o) {
            // It changes rows the pending ones may touch: those first.
            pending.flush(db)?;
            apply_one(db, o)?;
            super::faces::apply(db, o)?;
        }
    }
    pending.flush(db)
}

/// Rows kept in insertion order, a later row of a key replacing the earlier one in place.
#[derive(Debug)]
pub(super) struct LastWins<K, R> {
    at: HashMap<K, usize>,
    rows: Vec<R>,
}

impl<K, R> Default for LastWins<K, R> {
    fn default() -> Self {
        Self {
            at: HashMap::new(),
            rows: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq, R> LastWins<K, R> {
    pub(super) fn put(&mut self, key: K, row: R) {
        match self.at.get(&key) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.at.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    pub(super) fn take(&mut self) -> Vec<R> {
        self.at.clear();
        std::mem::take(&mut self.rows)
    }
}

impl<K: std::hash::Hash + Eq + Clone, R> LastWins<K, R> {
    /// The rows with their keys, in insertion order.
    pub(super) fn take_keyed(&mut self) -> Vec<(K, R)> {
        let mut keys: Vec<(usize, K)> = self.at.drain().map(|(k, i)| (i, k)).collect();
        keys.sort_unstable_by_key(|(i, _)| *i);
        keys.into_iter()
            .map(|(_, k)| k)
            .zip(std::mem::take(&mut self.rows))
            .collect()
    }
}

/// A track's key in the fusion tables: (agent, camera, track).
pub(super) type TrackKey = (String, String, u64);

pub(super) fn track_key(t: &fusion::TrackRef) -> TrackKey {
    (t.camera.agent.clone(), t.camera.camera.clone(), t.track)
}

/// The outputs whose rows are written together: each replaces its key's row whole (a
/// sighting, a new identity, a link, a representative face), so only the last of a key
/// counts, or only adds a row (link evidence, plate flags). Any other output (a merge, a
/// plate change, an empty identity's removal) changes rows these may touch: the pending
/// rows are written before it ([`apply_fusion`]).
#[derive(Default)]
struct Pending {
    sightings: LastWins<TrackKey, Vec<Value>>,
    vehicles: LastWins<u64, Vec<Value>>,
    persons: LastWins<u64, Vec<Value>>,
    links: LastWins<(u64, u64), Vec<Value>>,
    evidence: Vec<Vec<Value>>,
    flags: Vec<Vec<Value>>,
    faces: super::faces::PendingFaces,
}

const SIGHTINGS_ROWS: Rows<'static> = Rows {
    table: "sightings",
    columns: &[
        ("agent", Ty::Text),
        ("camera", Ty::Text),
        ("track", Ty::Int),
        ("site", Ty::Text),
        ("kind", Ty::Text),
        ("identity", Ty::Int),
        ("class", Ty::Text),
        ("first_ms", Ty::Int),
        ("last_ms", Ty::Int),
        ("lat", Ty::Real),
        ("lon", Ty::Real),
        ("confidence", Ty::Real),
        ("ended", Ty::Int),
        ("plate", Ty::Text),
        ("why_json", Ty::Text),
    ],
    tail: "",
};

/// A [`SIGHTINGS_ROWS`] row (its values bound in that order) written over the stored row of
/// its track when the identity, kind, start and plate are the stored ones, setting only
/// columns that no index holds but `last_ms` (SQLite rewrites an index entry for every
/// column an `UPDATE` sets, changed or not): the row the replacement would write, at the
/// cost of one index entry moved instead of six B-trees' deletes and inserts. Changes
/// nothing (0 rows) otherwise.
const SIGHTING_MOVES_ON: &str = "UPDATE sightings SET site = ?4, class = ?7, last_ms = ?9,
    lat = ?10, lon = ?11, confidence = ?12, ended = ?13, why_json = ?15
    WHERE agent = ?1 AND camera = ?2 AND track = ?3 AND kind = ?5 AND identity = ?6
      AND first_ms = ?8 AND plate IS ?14";

/// The key of `sightings`, `person_faces` and `tracks`.
pub(super) const TRACK_KEY: &[(&str, Ty)] = &[
    ("agent", Ty::Text),
    ("camera", Ty::Text),
    ("track", Ty::Int),
];

const VEHICLES_ROWS: Rows<'static> = Rows {
    table: "vehicles",
    columns: &[
        ("id", Ty::Int),
        ("plate", Ty::Text),
        ("canon", Ty::Text),
        ("first_ms", Ty::Int),
        ("clone_of", Ty::Int),
    ],
    tail: "ON CONFLICT (id) DO UPDATE SET plate = excluded.plate, canon = excluded.canon,
           first_ms = excluded.first_ms, clone_of = excluded.clone_of",
};

const PERSONS_ROWS: Rows<'static> = Rows {
    table: "persons",
    columns: &[("id", Ty::Int), ("first_ms", Ty::Int)],
    tail: "ON CONFLICT (id) DO UPDATE SET first_ms = excluded.first_ms",
};

const LINKS_ROWS: Rows<'static> = Rows {
    table: "links",
    columns: &[
        ("person", Ty::Int),
        ("vehicle", Ty::Int),
        ("count", Ty::Int),
        ("strength", Ty::Real),
        ("first_ms", Ty::Int),
        ("last_ms", Ty::Int),
    ],
    tail: "ON CONFLICT (person, vehicle) DO UPDATE SET count = excluded.count,
           strength = excluded.strength, first_ms = excluded.first_ms,
           last_ms = excluded.last_ms",
};

const LINK_EVIDENCE_ROWS: Rows<'static> = Rows {
    table: "link_evidence",
    columns: &[
        ("person", Ty::Int),
        ("vehicle", Ty::Int),
        ("ts_ms", Ty::Int),
        ("evidence_json", Ty::Text),
    ],
    tail: "",
};

const PLATE_FLAGS_ROWS: Rows<'static> = Rows {
    table: "plate_flags",
    columns: &[
        ("vehicle", Ty::Int),
        ("other", Ty::Int),
        ("plate", Ty::Text),
        ("other_plate", Ty::Text),
        ("reason", Ty::Text),
        ("gate_json", Ty::Text),
        ("site", Ty::Text),
        ("agent", Ty::Text),
        ("camera", Ty::Text),
        ("track", Ty::Int),
        ("ts_ms", Ty::Int),
    ],
    tail: "ON CONFLICT DO NOTHING",
};

impl Pending {
    /// Keeps `o`'s rows for [`flush`](Self::flush); `false` when `o` is not one of those.
    fn take(&mut self, o: &FuseOutput) -> bool {
        match o {
            FuseOutput::NewVehicle {
                vehicle,
                plate: p,
                first_ms,
                clone_of,
            } => self.vehicles.put(
                vehicle.0,
                vec![
                    id(vehicle.0).to_value(),
                    p.to_value(),
                    plate::canonical(p).to_value(),
                    first_ms.to_value(),
                    clone_of.map(|c| id(c.0)).to_value(),
                ],
            ),
            FuseOutput::VehicleSighting {
                vehicle,
                sighting,
                plate: p,
                why,
            } => {
                let p = (!p.is_empty()).then_some(p.as_str());
                self.sighting("vehicle", vehicle.0, sighting, p, json(why));
            }
            FuseOutput::PersonSighting {
                person,
                sighting,
                why,
            } => self.sighting("person", person.0, sighting, None, json(why)),
            FuseOutput::NewPerson { person, first_ms } => self
                .persons
                .put(person.0, vec![id(person.0).to_value(), first_ms.to_value()]),
            FuseOutput::Link {
                person,
                vehicle,
                count,
                strength,
                first_ms,
                last_ms,
                evidence,
            } => {
                self.links.put(
                    (person.0, vehicle.0),
                    vec![
                        id(person.0).to_value(),
                        id(vehicle.0).to_value(),
                        count.to_value(),
                        strength.to_value(),
                        first_ms.to_value(),
                        last_ms.to_value(),
                    ],
                );
                if let Some(ev) = evidence {
                    self.evidence.push(vec![
                        id(person.0).to_value(),
                        id(vehicle.0).to_value(),
                        ev.ts_ms.to_value(),
                        json(ev).to_value(),
                    ]);
                }
            }
            FuseOutput::PlateFlagged {
                vehicle,
                other,
                plate: p,
                other_plate,
                reason,
                gate,
                track,
                ts_ms,
            } => self.flags.push(vec![
                id(vehicle.0).to_value(),
                id(other.0).to_value(),
                p.to_value(),
                other_plate.to_value(),
                flag_reason(reason).to_value(),
                json(gate).to_value(),
                track.camera.site.to_value(),
                track.camera.agent.to_value(),
                track.camera.camera.to_value(),
                id(track.track).to_value(),
                ts_ms.to_value(),
            ]),
            FuseOutput::PersonFace { .. } | FuseOutput::PersonFaceDropped { .. } => {
                return self.faces.take(o);
            }
            // Only the fuser's memory let it go: nothing to write.
            FuseOutput::Retired {
                reason: RetireReason::Idle | RetireReason::Capacity,
                ..
            } => {}
            _ => return false,
        }
        true
    }

    fn sighting(
        &mut self,
        kind: &str,
        identity: u64,
        s: &Sighting,
        plate: Option<&str>,
        why: String,
    ) {
        let cam = &s.track.camera;
        self.sightings.put(
            track_key(&s.track),
            vec![
                cam.agent.to_value(),
                cam.camera.to_value(),
                s.track.track.to_value(),
                cam.site.to_value(),
                kind.to_value(),
                identity.to_value(),
                s.class.as_str().to_value(),
                s.first_ms.to_value(),
                s.last_ms.to_value(),
                s.position.map(|p| p[0]).to_value(),
                s.position.map(|p| p[1]).to_value(),
                f64::from(s.confidence).to_value(),
                s.ended.to_value(),
                plate.to_value(),
                why.to_value(),
            ],
        );
    }

    /// Writes what was kept, one statement per table (two for sightings and faces).
    fn flush(&mut self, db: &mut Db) -> Result<(), StoreError> {
        let mut sightings = self.sightings.take();
        if db.dialect() == super::Dialect::Sqlite {
            // Most are the next event of a track whose sighting is stored with the same
            // identity, start and plate: updated in place, only `sightings_by_camera_time`
            // (for `last_ms`) changes. The others are replaced below.
            let mut rest = Vec::new();
            for r in sightings {
                if db.execute(SIGHTING_MOVES_ON, &r)? == 0 {
                    rest.push(r);
                }
            }
            sightings = rest;
        }
        if !sightings.is_empty() {
            // Replace, not upsert: on PostgreSQL the key includes the partition column
            // `first_ms`, which a track's later events may move.
            let keys: Vec<Vec<Value>> = sightings.iter().map(|r| r[..3].to_vec()).collect();
            db.backend.delete_rows("sightings", TRACK_KEY, &keys)?;
            let days: std::collections::BTreeSet<i64> = sightings
                .iter()
                .filter_map(|r| match r[7] {
                    Value::Integer(ms) => Some(ms.div_euclid(super::DAY_MS)),
                    _ => None,
                })
                .collect();
            for d in days {
                db.ensure_partition("sightings", d * super::DAY_MS)?;
            }
            db.backend.insert_rows(&SIGHTINGS_ROWS, &sightings)?;
        }
        db.backend
            .insert_rows(&VEHICLES_ROWS, &self.vehicles.take())?;
        db.backend
            .insert_rows(&PERSONS_ROWS, &self.persons.take())?;
        db.backend.insert_rows(&LINKS_ROWS, &self.links.take())?;
        db.backend
            .insert_rows(&LINK_EVIDENCE_ROWS, &std::mem::take(&mut self.evidence))?;
        db.backend
            .insert_rows(&PLATE_FLAGS_ROWS, &std::mem::take(&mut self.flags))?;
        self.faces.flush(db)
    }
}

fn flag_reason(reason: &fusion::FlagReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// An output [`Pending`] does not keep, applied at once (its rows: merges, plate changes,
/// the removal of an identity left empty).
fn apply_one(db: &mut Db, o: &FuseOutput) -> Result<(), StoreError> {
    match o {
        FuseOutput::VehiclePlate { vehicle, plate: p } => {
            db.execute(
                "UPDATE vehicles SET plate = ?, canon = ? WHERE id = ?",
                args![p, plate::canonical(p), id(vehicle.0)],
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
        // The others are kept by `Pending` and written by its flush.
        _ => {}
    }
    Ok(())
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{Area, PlateMatchKind};
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
