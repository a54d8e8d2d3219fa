//! Person face representatives in the store, and what a restarted fuser reads back.
//!
//! `person_faces` holds the representative embeddings the fuser keeps for each person
//! ([`FuseOutput::PersonFace`], [`FuseOutput::PersonFaceDropped`]), written in the same
//! transaction as the batch that produced them (`fusion::apply_fusion` calls [`apply`]).
//!
//! Invariants:
//! - One row per track (`agent`, `camera`, `track`): a track gives its person at most one
//!   representative; a newer face of the track replaces it, a track that moved to another
//!   person takes its row along.
//! - `person` is always a surviving id: a merge repoints the merged person's rows (the
//!   fuser keeps some as representatives of the survivor and drops the rest, which it says);
//!   an identity retired as empty loses its rows.
//! - `embedding` holds `dim` little-endian IEEE-754 f32 values, L2-normalised (a `BLOB`
//!   here, a `BYTEA` in PostgreSQL: the SQL below is plain and ports as is).
//! - Retirement from the fuser's memory (idle, capacity) leaves the rows: they stay
//!   searchable and are what a restart restores.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use sharpeyes_wire::ObjectClass;

use super::fusion::{LastWins, TRACK_KEY, TrackKey, track_key};
use super::sql::{Arg as _, Rows, Ty, Value};
use super::{Db, Store, StoreError};
use crate::args;
use fusion::{
    CameraKey, FuseOutput, Identity, PersonId, Reading, RestoredFace, RestoredLink, RestoredPerson,
    RestoredSighting, RestoredVehicle, RetireReason, Snapshot, VehicleId,
};

/// The face tables (schema 7).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS person_faces (
    agent     TEXT    NOT NULL,
    camera    TEXT    NOT NULL,
    track     INTEGER NOT NULL,
    site      TEXT    NOT NULL,
    person    INTEGER NOT NULL,
    model     TEXT    NOT NULL,
    dim       INTEGER NOT NULL,
    embedding BLOB    NOT NULL,
    quality   REAL    NOT NULL,
    ts_ms     INTEGER NOT NULL,
    PRIMARY KEY (agent, camera, track)
);
CREATE INDEX IF NOT EXISTS person_faces_by_person ON person_faces (person);
CREATE INDEX IF NOT EXISTS person_faces_by_time ON person_faces (ts_ms);
";

fn id(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `v` as little-endian f32 bytes.
pub fn encode_embedding(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The f32 values of little-endian bytes, if the length is `dim` values.
pub fn decode_embedding(b: &[u8], dim: usize) -> Option<Vec<f32>> {
    if b.len() != dim.checked_mul(4)? {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Representative faces kept for one write ([`super::fusion::apply_fusion`]): the last
/// output of each track wins (a newer face replaces the row, a drop deletes it).
#[derive(Default)]
pub(super) struct PendingFaces(LastWins<TrackKey, Option<Vec<Value>>>);

const FACES_ROWS: Rows<'static> = Rows {
    table: "person_faces",
    columns: &[
        ("agent", Ty::Text),
        ("camera", Ty::Text),
        ("track", Ty::Int),
        ("site", Ty::Text),
        ("person", Ty::Int),
        ("model", Ty::Text),
        ("dim", Ty::Int),
        ("embedding", Ty::Blob),
        ("quality", Ty::Real),
        ("ts_ms", Ty::Int),
    ],
    tail: "ON CONFLICT (agent, camera, track) DO UPDATE SET
           site = excluded.site, person = excluded.person, model = excluded.model,
           dim = excluded.dim, embedding = excluded.embedding,
           quality = excluded.quality, ts_ms = excluded.ts_ms",
};

impl PendingFaces {
    /// Keeps a [`FuseOutput::PersonFace`] or [`FuseOutput::PersonFaceDropped`]; `false` for
    /// any other output.
    pub(super) fn take(&mut self, o: &FuseOutput) -> bool {
        match o {
            FuseOutput::PersonFace { person, face } => {
                let cam = &face.track.camera;
                self.0.put(
                    track_key(&face.track),
                    Some(vec![
                        cam.agent.to_value(),
                        cam.camera.to_value(),
                        face.track.track.to_value(),
                        cam.site.to_value(),
                        id(person.0).to_value(),
                        face.model.to_value(),
                        face.embedding.len().to_value(),
                        Value::Blob(encode_embedding(&face.embedding)),
                        f64::from(face.quality).to_value(),
                        face.ts_ms.to_value(),
                    ]),
                );
            }
            FuseOutput::PersonFaceDropped { track, .. } => self.0.put(track_key(track), None),
            _ => return false,
        }
        true
    }

    /// Writes the kept faces: the drops in one statement, the upserts in another.
    pub(super) fn flush(&mut self, db: &mut Db) -> Result<(), StoreError> {
        let (mut drops, mut rows) = (Vec::new(), Vec::new());
        for (key, row) in self.0.take_keyed() {
            match row {
                Some(r) => rows.push(r),
                None => drops.push(vec![key.0.to_value(), key.1.to_value(), key.2.to_value()]),
            }
        }
        db.backend.delete_rows("person_faces", TRACK_KEY, &drops)?;
        db.backend.insert_rows(&FACES_ROWS, &rows)?;
        Ok(())
    }
}

/// Applies the face side of a fusion output that changes faces beyond their own rows (a
/// merge repoints them, an empty person loses them) inside the caller's transaction; a
/// face's own upsert or drop is [`PendingFaces`]'.
pub(super) fn apply(db: &mut Db, o: &FuseOutput) -> Result<(), StoreError> {
    match o {
        FuseOutput::PersonsMerged { from, into, .. } => {
            db.execute(
                "UPDATE person_faces SET person = ? WHERE person = ?",
                args![id(into.0), id(from.0)],
            )?;
        }
        FuseOutput::Retired {
            identity: Identity::Person(p),
            reason: RetireReason::Empty,
            ..
        } => {
            db.execute("DELETE FROM person_faces WHERE person = ?", args![id(p.0)])?;
        }
        _ => {}
    }
    Ok(())
}

/// A stored representative face, as face search indexes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonFaceRow {
    /// The person (a surviving id).
    pub person: u64,
    /// Site of the camera.
    pub site: String,
    /// Agent id.
    pub agent: String,
    /// Camera id.
    pub camera: String,
    /// The track it came from.
    pub track: u64,
    /// The embedding model.
    pub model: String,
    /// The embedding (unit length).
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// Detection score it came with.
    pub quality: f64,
    /// Capture time, UTC ms.
    pub ts_ms: i64,
}

/// A person's sightings within a window: how many, first and last capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PersonSummary {
    /// Sightings.
    pub sightings: u64,
    /// First capture time, UTC ms.
    pub first_ms: i64,
    /// Last capture time, UTC ms.
    pub last_ms: i64,
}

impl Store {
    /// Every stored representative face of `dim` values (of `model`, when given), with its
    /// person resolved through aliases; and how many rows did not decode (skipped).
    pub fn person_faces(
        &self,
        model: Option<&str>,
        dim: usize,
    ) -> Result<(Vec<PersonFaceRow>, usize), StoreError> {
        let rows = self.db().query(
            "SELECT coalesce(a.person, f.person), f.site, f.agent, f.camera, f.track, f.model,
                    f.embedding, f.quality, f.ts_ms
             FROM person_faces f LEFT JOIN person_aliases a ON a.alias = f.person
             WHERE f.dim = ?",
            args![dim],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        let mut bad = 0;
        for r in rows {
            let m: String = r.get(5)?;
            if model.is_some_and(|x| x != m) {
                continue;
            }
            let blob: Vec<u8> = r.get(6)?;
            let Some(embedding) = decode_embedding(&blob, dim) else {
                bad += 1;
                continue;
            };
            out.push(PersonFaceRow {
                person: r.get(0)?,
                site: r.get(1)?,
                agent: r.get(2)?,
                camera: r.get(3)?,
                track: r.get(4)?,
                model: m,
                embedding,
                quality: r.get(7)?,
                ts_ms: r.get(8)?,
            });
        }
        Ok((out, bad))
    }

    /// The sightings of `person` (a surviving id) overlapping `[from_ms, to_ms]`: count,
    /// first and last; `None` when there are none.
    pub fn person_summary(
        &self,
        person: u64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<PersonSummary>, StoreError> {
        let Some(r) = self.db().one(
            "SELECT count(*), min(first_ms), max(last_ms) FROM sightings
             WHERE kind = 'person' AND identity = ? AND last_ms >= ? AND first_ms <= ?",
            args![id(person), from_ms, to_ms],
        )?
        else {
            return Ok(None);
        };
        let (n, first, last): (i64, Option<i64>, Option<i64>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(match (first, last) {
            (Some(first_ms), Some(last_ms)) if n > 0 => Some(PersonSummary {
                sightings: n as u64,
                first_ms,
                last_ms,
            }),
            _ => None,
        })
    }

    /// What a restarting fuser rebuilds ([`fusion::Fuser::restore`]): the vehicles and
    /// persons with a sighting that started at or after `since_ms`, each with at most its
    /// newest `max_sightings` sightings of that window, the persons' representative faces and
    /// aliases, and their links. One pass over the window's sightings (by the time index)
    /// plus one query per table.
    pub fn fusion_snapshot(
        &self,
        since_ms: i64,
        max_sightings: usize,
    ) -> Result<Snapshot, StoreError> {
        let mut db = self.db();
        // (kind is vehicle, identity) → newest sightings; per vehicle: plate → (tracks, weight).
        let mut trails: HashMap<(bool, u64), VecDeque<RestoredSighting>> = HashMap::new();
        let mut readings: HashMap<u64, Vec<Reading>> = HashMap::new();
        for r in db.query(
            "SELECT kind, identity, site, agent, camera, track, class, first_ms, last_ms,
                    confidence, plate
             FROM sightings WHERE first_ms >= ? ORDER BY first_ms",
            args![since_ms],
        )? {
            let vehicle = r.get::<String>(0)? == "vehicle";
            let identity: u64 = r.get(1)?;
            let class: String = r.get(6)?;
            let Some(class) = ObjectClass::parse(&class) else {
                continue;
            };
            let confidence = r.get::<f64>(9)? as f32;
            let s = RestoredSighting {
                camera: CameraKey::new(
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<String>(4)?,
                ),
                track: r.get(5)?,
                class,
                first_ms: r.get(7)?,
                last_ms: r.get(8)?,
                confidence,
            };
            if vehicle && let Some(p) = r.get::<Option<String>>(10)? {
                let list = readings.entry(identity).or_default();
                match list.iter_mut().find(|x| x.text == p) {
                    Some(x) => {
                        x.tracks += 1;
                        x.weight += confidence;
                    }
                    None => list.push(Reading {
                        text: p,
                        tracks: 1,
                        weight: confidence,
                    }),
                }
            }
            let t = trails.entry((vehicle, identity)).or_default();
            t.push_back(s);
            if t.len() > max_sightings.max(1) {
                t.pop_front();
            }
        }
        let mut snap = Snapshot::default();
        let recent = "SELECT identity FROM sightings WHERE kind = ? AND first_ms >= ?";
        for r in db.query(
            &format!("SELECT id, plate, first_ms, clone_of FROM vehicles WHERE id IN ({recent})"),
            args!["vehicle", since_ms],
        )? {
            let v: u64 = r.get(0)?;
            let mut rd = readings.remove(&v).unwrap_or_default();
            rd.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.text.cmp(&b.text)));
            snap.vehicles.push(RestoredVehicle {
                vehicle: VehicleId(v),
                plate: r.get(1)?,
                readings: rd,
                first_ms: r.get(2)?,
                clone_of: r.get::<Option<u64>>(3)?.map(VehicleId),
                sightings: trails.remove(&(true, v)).unwrap_or_default().into(),
            });
        }
        let mut faces: HashMap<u64, Vec<RestoredFace>> = HashMap::new();
        for r in db.query(
            &format!(
                "SELECT person, site, agent, camera, track, model, dim, embedding, quality, ts_ms
                 FROM person_faces WHERE person IN ({recent})"
            ),
            args!["person", since_ms],
        )? {
            let dim = r.get::<i64>(6)?.max(0) as usize;
            let blob: Vec<u8> = r.get(7)?;
            let Some(embedding) = decode_embedding(&blob, dim) else {
                continue;
            };
            faces.entry(r.get(0)?).or_default().push(RestoredFace {
                camera: CameraKey::new(
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                ),
                track: r.get(4)?,
                model: r.get(5)?,
                embedding,
                quality: r.get::<f64>(8)? as f32,
                ts_ms: r.get(9)?,
            });
        }
        for r in db.query(
            &format!("SELECT id, first_ms FROM persons WHERE id IN ({recent})"),
            args!["person", since_ms],
        )? {
            let p: u64 = r.get(0)?;
            snap.persons.push(RestoredPerson {
                person: PersonId(p),
                first_ms: r.get(1)?,
                faces: faces.remove(&p).unwrap_or_default(),
                sightings: trails.remove(&(false, p)).unwrap_or_default().into(),
            });
        }
        for r in db.query(
            &format!("SELECT alias, person FROM person_aliases WHERE person IN ({recent})"),
            args!["person", since_ms],
        )? {
            snap.aliases
                .push((PersonId(r.get(0)?), PersonId(r.get(1)?)));
        }
        for r in db.query(
            &format!(
                "SELECT person, vehicle, count, strength, first_ms, last_ms FROM links
                 WHERE person IN ({recent})"
            ),
            args!["person", since_ms],
        )? {
            snap.links.push(RestoredLink {
                person: PersonId(r.get(0)?),
                vehicle: VehicleId(r.get(1)?),
                count: u32::try_from(r.get::<i64>(2)?.max(0)).unwrap_or(u32::MAX),
                strength: r.get::<f64>(3)? as f32,
                first_ms: r.get(4)?,
                last_ms: r.get(5)?,
            });
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sharpeyes_core::embedding::EmbeddingRef;
    use sharpeyes_wire::{PlateReading, QBox};

    use super::*;
    use fusion::{
        Assignment, CameraCatalog, FaceRep, FlagReason, FuseConfig, FuseInput, Fuser, Observation,
        TrackRef,
    };

    const T0: i64 = 1_767_000_000_000;
    const MIN: i64 = 60_000;

    fn key(c: &str) -> CameraKey {
        CameraKey::new("district-7", "gw-1", c)
    }

    /// `north`, `north2` 111 m away, `far` 111 km away.
    fn catalog() -> CameraCatalog {
        let mut c = CameraCatalog::new();
        c.insert(key("north"), 30.0, 104.0).unwrap();
        c.insert(key("north2"), 30.001, 104.0).unwrap();
        c.insert(key("far"), 31.0, 104.0).unwrap();
        c
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        (dir, s)
    }

    /// A unit vector: cosine `c` with axis `axis`, the rest on axis `noise`.
    fn face(axis: usize, c: f32, noise: usize) -> Vec<f32> {
        let mut v = vec![0.0; 128];
        v[axis] = c;
        v[noise] = (1.0 - c * c).sqrt();
        v
    }

    /// One ended track observed once: a car with a plate, or a person with a face (and an
    /// agent link to a car track).
    #[allow(clippy::too_many_arguments)]
    fn observe(
        f: &mut Fuser,
        camera: &str,
        track: u64,
        t: i64,
        plate: Option<&str>,
        embedding: Option<&[f32]>,
        link: Option<u64>,
    ) -> Vec<FuseOutput> {
        let cam = key(camera);
        let reading = plate.map(|p| PlateReading {
            text: p.into(),
            confidence: 0.9,
        });
        let o = Observation {
            camera: &cam,
            track,
            class: if plate.is_some() {
                ObjectClass::Car
            } else {
                ObjectClass::Person
            },
            first_ms: t,
            last_ms: t + 4000,
            ended: true,
            bbox: QBox([20_000, 20_000, 30_000, 50_000]),
            score: 0.8,
            embedding: embedding.map(EmbeddingRef::F32),
            plate: reading.as_ref(),
            link,
        };
        f.update(FuseInput::Observe(o), t + 5000)
    }

    fn identity_of(f: &Fuser, camera: &str, track: u64) -> (Identity, Assignment) {
        f.identity_of(&key(camera), track).expect("identified")
    }

    /// A fuser as the aggregator starts one: ids continued, identities restored.
    fn restarted(s: &Store, now: i64) -> (Fuser, fusion::RestoreStats) {
        let cfg = FuseConfig::default();
        let (nv, np) = s.fusion_next_ids().unwrap();
        let mut f = Fuser::new(cfg.clone(), catalog())
            .unwrap()
            .with_next_ids(nv, np);
        let since = now - cfg.restore_hours as i64 * 3_600_000;
        let snap = s.fusion_snapshot(since, cfg.memory.max_sightings).unwrap();
        let st = f.restore(snap);
        (f, st)
    }

    #[test]
    fn a_restarted_fuser_continues_vehicles_persons_and_links() {
        let (_d, mut s) = store();
        let mut f = Fuser::new(FuseConfig::default(), catalog()).unwrap();
        let alice = face(0, 0.9, 1);
        let mut out = observe(&mut f, "north", 1, T0, Some("京A12345"), None, None);
        out.extend(observe(&mut f, "north", 2, T0, None, Some(&alice), Some(1)));
        s.apply_fusion(&out).unwrap();
        let (Identity::Vehicle(v), _) = identity_of(&f, "north", 1) else {
            panic!("not a vehicle")
        };
        let (Identity::Person(p), _) = identity_of(&f, "north", 2) else {
            panic!("not a person")
        };
        assert_eq!(s.links_of_person(p.0).unwrap()[0].count, 1);
        let faces = s.person_faces(Some("sface_2021dec"), 128).unwrap().0;
        assert_eq!(faces.len(), 1);
        assert_eq!((faces[0].person, faces[0].track), (p.0, 2));
        assert!((faces[0].quality - 0.8).abs() < 1e-6);
        drop(f);

        // Restart ten minutes later.
        let (mut g, st) = restarted(&s, T0 + 10 * MIN);
        assert_eq!(
            (st.vehicles, st.persons, st.representatives, st.links),
            (1, 1, 1, 1)
        );
        assert_eq!(st.sightings, 2);
        // The same plate nearby: the same vehicle, not a new one.
        let t = T0 + 10 * MIN;
        let out = observe(&mut g, "north2", 7, t, Some("京A12345"), None, None);
        assert!(
            !out.iter()
                .any(|o| matches!(o, FuseOutput::NewVehicle { .. }))
        );
        assert!(matches!(
            identity_of(&g, "north2", 7),
            (Identity::Vehicle(x), Assignment::ExactPlate { .. }) if x == v
        ));
        // Another photo of the same face: the same person.
        let out2 = observe(
            &mut g,
            "north2",
            8,
            t,
            None,
            Some(&face(0, 0.85, 2)),
            Some(7),
        );
        assert!(
            !out2
                .iter()
                .any(|o| matches!(o, FuseOutput::NewPerson { .. }))
        );
        assert!(matches!(
            identity_of(&g, "north2", 8),
            (Identity::Person(x), Assignment::SimilarFace { .. }) if x == p
        ));
        // The link counts on from its stored count.
        let link = out2.iter().find_map(|o| match o {
            FuseOutput::Link { count, .. } => Some(*count),
            _ => None,
        });
        assert_eq!(link, Some(2));
        // Gating knows where the vehicle was: the plate 111 km away a minute later is a
        // possible clone of it.
        let out3 = observe(&mut g, "far", 9, t + MIN, Some("京A12345"), None, None);
        assert!(out3.iter().any(|o| matches!(
            o,
            FuseOutput::PlateFlagged { other, reason: FlagReason::PossibleClone, .. } if *other == v
        )));
        s.apply_fusion(&out).unwrap();
        s.apply_fusion(&out2).unwrap();
        s.apply_fusion(&out3).unwrap();
        assert_eq!(s.links_of_person(p.0).unwrap()[0].count, 2);
        assert_eq!(s.person_trajectory(p.0).unwrap().len(), 2);
    }

    #[test]
    fn restore_looks_back_only_restore_hours() {
        let (_d, mut s) = store();
        let mut f = Fuser::new(FuseConfig::default(), catalog()).unwrap();
        let out = observe(&mut f, "north", 1, T0, Some("京A12345"), None, None);
        s.apply_fusion(&out).unwrap();
        // Four days later (the default looks back 72 h): nothing to restore; a new vehicle
        // with a new id.
        let (mut g, st) = restarted(&s, T0 + 96 * 60 * MIN);
        assert_eq!(st, fusion::RestoreStats::default());
        let out = observe(
            &mut g,
            "north",
            2,
            T0 + 96 * 60 * MIN,
            Some("京A12345"),
            None,
            None,
        );
        assert!(
            out.iter()
                .any(|o| matches!(o, FuseOutput::NewVehicle { vehicle, .. } if vehicle.0 == 2))
        );
    }

    #[test]
    fn restore_on_an_empty_store_restores_nothing() {
        let (_d, s) = store();
        assert_eq!(s.fusion_snapshot(0, 64).unwrap(), Snapshot::default());
        let (g, st) = restarted(&s, T0);
        assert_eq!(st, fusion::RestoreStats::default());
        assert_eq!(g.stats().vehicles + g.stats().persons, 0);
    }

    #[test]
    fn faces_are_upserted_by_track_repointed_by_merges_and_deleted() {
        let (_d, mut s) = store();
        let cam = Arc::new(key("north"));
        let rep = |person: u64, track: u64, v: Vec<f32>| FuseOutput::PersonFace {
            person: PersonId(person),
            face: FaceRep {
                track: TrackRef {
                    camera: cam.clone(),
                    track,
                },
                model: "sface_2021dec".into(),
                embedding: v,
                quality: 0.7,
                ts_ms: T0,
            },
        };
        s.apply_fusion(&[
            rep(1, 1, face(0, 1.0, 1)),
            rep(2, 2, face(1, 1.0, 2)),
            rep(2, 2, face(2, 1.0, 3)),
            rep(3, 3, face(3, 1.0, 4)),
        ])
        .unwrap();
        let got = |s: &Store| {
            let mut v: Vec<(u64, u64, usize)> = s
                .person_faces(None, 128)
                .unwrap()
                .0
                .iter()
                .map(|f| {
                    let axis = f.embedding.iter().position(|x| *x == 1.0).unwrap_or(99);
                    (f.person, f.track, axis)
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(got(&s), vec![(1, 1, 0), (2, 2, 2), (3, 3, 3)]);
        s.apply_fusion(&[
            FuseOutput::PersonsMerged {
                from: PersonId(2),
                into: PersonId(1),
                similarity: 0.6,
                mean_similarity: 0.5,
                ts_ms: T0,
            },
            FuseOutput::PersonFaceDropped {
                person: PersonId(3),
                track: TrackRef {
                    camera: cam.clone(),
                    track: 3,
                },
            },
        ])
        .unwrap();
        assert_eq!(got(&s), vec![(1, 1, 0), (1, 2, 2)]);
        assert!(
            s.person_faces(Some("other_model"), 128)
                .unwrap()
                .0
                .is_empty()
        );
        assert!(s.person_faces(None, 512).unwrap().0.is_empty());
        s.apply_fusion(&[FuseOutput::Retired {
            identity: Identity::Person(PersonId(1)),
            last_seen_ms: T0,
            reason: RetireReason::Empty,
        }])
        .unwrap();
        assert!(got(&s).is_empty());
        assert_eq!(
            decode_embedding(&encode_embedding(&[1.5, -2.0]), 2),
            Some(vec![1.5, -2.0])
        );
        assert_eq!(decode_embedding(&[0, 0, 0], 1), None);
    }
}
