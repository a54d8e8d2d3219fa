//! Fusion driven with synthetic sightings and synthetic time: plates merged, kept apart and
//! flagged by space-time gating; persons clustered, separated, gated, merged with stable ids;
//! person–vehicle links; eviction; trajectories; hostile input; real SFace embeddings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sharpeyes_core::config::ConfigError;
use sharpeyes_core::embedding::EmbeddingRef;
use sharpeyes_wire::{
    ObjectClass, PlateReading, QBox, QEmbedding, TrackBatch, TrackEvent, TrackUpdate,
};

use super::*;

/// A Monday morning, UTC ms.
const T0: i64 = 1_767_000_000_000;
const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;

fn cam(name: &str) -> CameraKey {
    CameraKey::new("district-7", "gw-1", name)
}

/// `north`; `north2` 111 m away; `east` 9.6 km away; `far` 111 km away; `dark` has no
/// position.
fn catalog() -> CameraCatalog {
    let mut c = CameraCatalog::new();
    c.insert(cam("north"), 30.0, 104.0).unwrap();
    c.insert(cam("north2"), 30.001, 104.0).unwrap();
    c.insert(cam("east"), 30.0, 104.1).unwrap();
    c.insert(cam("far"), 31.0, 104.0).unwrap();
    c
}

/// A fuser with what the store would have recorded: each track's latest identity and why.
struct H {
    f: Fuser,
    seen: HashMap<(String, u64), (Identity, Assignment)>,
}

impl H {
    fn with(cfg: FuseConfig, catalog: CameraCatalog) -> Self {
        Self {
            f: Fuser::new(cfg, catalog).unwrap(),
            seen: HashMap::new(),
        }
    }

    fn record(&mut self, out: &[FuseOutput]) {
        for o in out {
            let (id, s, why) = match o {
                FuseOutput::VehicleSighting {
                    vehicle,
                    sighting,
                    why,
                    ..
                } => (Identity::Vehicle(*vehicle), sighting, why),
                FuseOutput::PersonSighting {
                    person,
                    sighting,
                    why,
                } => (Identity::Person(*person), sighting, why),
                _ => continue,
            };
            self.seen.insert(
                (s.track.camera.camera.clone(), s.track.track),
                (id, why.clone()),
            );
        }
    }
}

impl std::ops::Deref for H {
    type Target = Fuser;
    fn deref(&self) -> &Fuser {
        &self.f
    }
}

impl std::ops::DerefMut for H {
    fn deref_mut(&mut self) -> &mut Fuser {
        &mut self.f
    }
}

fn fuser() -> H {
    H::with(FuseConfig::default(), catalog())
}

/// A track observation the tests build.
#[derive(Debug, Clone)]
struct Obs {
    camera: CameraKey,
    track: u64,
    class: ObjectClass,
    first_ms: i64,
    last_ms: i64,
    ended: bool,
    first_box: QBox,
    last_box: QBox,
    embedding: Option<Vec<f32>>,
    plate: Option<PlateReading>,
    link: Option<u64>,
}

const SOMEWHERE: QBox = QBox([20_000, 20_000, 30_000, 50_000]);

/// An ended car track with a plate reading.
fn car(camera: &str, track: u64, first_ms: i64, plate: &str, confidence: f32) -> Obs {
    Obs {
        camera: cam(camera),
        track,
        class: ObjectClass::Car,
        first_ms,
        last_ms: first_ms + 4 * SEC,
        ended: true,
        first_box: SOMEWHERE,
        last_box: SOMEWHERE,
        embedding: None,
        plate: Some(PlateReading {
            text: plate.into(),
            confidence,
        }),
        link: None,
    }
}

/// An ended person track with a face embedding.
fn walker(camera: &str, track: u64, first_ms: i64, embedding: Vec<f32>) -> Obs {
    Obs {
        camera: cam(camera),
        track,
        class: ObjectClass::Person,
        first_ms,
        last_ms: first_ms + 5 * SEC,
        ended: true,
        first_box: SOMEWHERE,
        last_box: SOMEWHERE,
        embedding: Some(embedding),
        plate: None,
        link: None,
    }
}

/// Feeds an observation: its first box at `first_ms`, then (if it spans time) its last box.
fn feed(h: &mut H, o: &Obs, now: i64) -> Vec<FuseOutput> {
    let obs = |first_ms: i64, last_ms: i64, bbox: QBox, ended: bool| Observation {
        camera: &o.camera,
        track: o.track,
        class: o.class,
        first_ms,
        last_ms,
        ended,
        bbox,
        score: 0.9,
        embedding: o.embedding.as_deref().map(EmbeddingRef::F32),
        plate: o.plate.as_ref(),
        link: o.link,
    };
    let mut out = h.f.update(
        FuseInput::Observe(obs(o.first_ms, o.first_ms, o.first_box, false)),
        now,
    );
    out.extend(h.f.update(
        FuseInput::Observe(obs(o.first_ms, o.last_ms, o.last_box, o.ended)),
        now,
    ));
    h.record(&out);
    out
}

fn tick(h: &mut H, now: i64) -> Vec<FuseOutput> {
    let out = h.f.update(FuseInput::Tick, now);
    h.record(&out);
    out
}

/// The identity of a test track as the store would have it (merged persons resolved).
fn id_of(h: &H, o: &Obs) -> Option<Identity> {
    match h.seen.get(&(o.camera.camera.clone(), o.track))?.0 {
        Identity::Person(p) => h.resolve_person(p).map(Identity::Person),
        v => Some(v),
    }
}

fn why_of(h: &H, o: &Obs) -> Assignment {
    h.seen
        .get(&(o.camera.camera.clone(), o.track))
        .expect("identified")
        .1
        .clone()
}

fn vehicle_of(f: &H, o: &Obs) -> VehicleId {
    match id_of(f, o) {
        Some(Identity::Vehicle(v)) => v,
        other => panic!("{o:?} is {other:?}, not a vehicle"),
    }
}

fn person_of(f: &H, o: &Obs) -> PersonId {
    match id_of(f, o) {
        Some(Identity::Person(p)) => p,
        other => panic!("{o:?} is {other:?}, not a person"),
    }
}

/// A unit vector of `DIM` dimensions at `deg` degrees in the plane of axes `a` and `b`.
fn in_plane(a: usize, b: usize, deg: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    let (s, c) = deg.to_radians().sin_cos();
    v[a] = c;
    v[b] = s;
    v
}

/// A face of "person" `axis`: cosine `c` with the person's axis, the rest on `noise`.
fn face(axis: usize, c: f32, noise: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[axis] = c;
    v[noise] = (1.0 - c * c).sqrt();
    v
}

const DIM: usize = 128;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn count<F: Fn(&FuseOutput) -> bool>(out: &[FuseOutput], f: F) -> usize {
    out.iter().filter(|o| f(o)).count()
}

// ---- vehicles ---------------------------------------------------------------------------

#[test]
fn the_same_plate_at_two_cameras_is_one_vehicle_with_an_ordered_trajectory() {
    let mut f = fuser();
    let a = car("north", 1, T0, "京A·12345", 0.9);
    let out = feed(&mut f, &a, T0 + 5 * SEC);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::NewVehicle { .. })),
        1
    );
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehicleSighting { plate, why: Assignment::NewPlate, sighting, .. }
            if plate == "京A12345" && sighting.ended && sighting.position == Some([30.0, 104.0]))));
    // 9.6 km in ten minutes: feasible.
    let b = car("east", 7, T0 + 10 * MIN, "京A12345", 0.8);
    let out = feed(&mut f, &b, T0 + 11 * MIN);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::NewVehicle { .. })),
        0
    );
    let v = vehicle_of(&f, &a);
    assert_eq!(vehicle_of(&f, &b), v);
    assert!(matches!(
        why_of(&f, &b),
        Assignment::ExactPlate {
            gate: Gate::Feasible { .. }
        }
    ));
    let traj = f.vehicle_trajectory(v).unwrap();
    let cams: Vec<&str> = traj
        .points
        .iter()
        .map(|p| p.camera.camera.as_str())
        .collect();
    assert_eq!(cams, ["north", "east"]);
    assert_eq!(traj.points[1].tracks, [7]);
    assert!((traj.points[1].confidence - 0.8).abs() < 1e-6);
    let hits = f.find_plate("京a 12345", false);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].vehicle, v);
    assert_eq!(hits[0].matched, PlateHitKind::Exact);
}

#[test]
fn a_one_confusable_misread_merges_when_feasible() {
    let mut f = fuser();
    let a = car("north", 1, T0, "京A12345", 0.9);
    feed(&mut f, &a, T0);
    // The last character misread as S ten minutes later 9.6 km away.
    let b = car("east", 2, T0 + 10 * MIN, "京A1234S", 0.7);
    let out = feed(&mut f, &b, T0 + 10 * MIN);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::NewVehicle { .. })),
        0
    );
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::PlateFlagged { .. })),
        0
    );
    let v = vehicle_of(&f, &a);
    assert_eq!(vehicle_of(&f, &b), v);
    assert!(matches!(
        why_of(&f, &b),
        Assignment::ConfusablePlate {
            position: 6,
            read: 'S',
            listed: '5',
            ..
        }
    ));
    let info = f.vehicle(v).unwrap();
    assert_eq!(
        info.plate, "京A12345",
        "the stronger reading stays the plate"
    );
    assert_eq!(info.readings.len(), 2);
    // Misread sightings carry lower confidence.
    let traj = f.vehicle_trajectory(v).unwrap();
    assert!(
        traj.points[1].confidence < 0.7 * 0.75,
        "{:?}",
        traj.points[1]
    );
    // Fuzzy search finds it by either reading; exact search by the misread too.
    assert_eq!(f.find_plate("京A1234S", false)[0].vehicle, v);
    assert_eq!(
        f.find_plate("京A12З45", true).len(),
        0,
        "not a plate character"
    );
    let fuzzy = f.find_plate("京A1Z345", true);
    assert_eq!(fuzzy.len(), 1);
    assert_eq!(fuzzy[0].matched, PlateHitKind::Confusable);
    assert!(f.find_plate("京A1Z345", false).is_empty());
}

#[test]
fn a_one_confusable_reading_where_the_vehicle_cannot_be_stays_apart_and_is_flagged() {
    let mut f = fuser();
    let a = car("north", 1, T0, "京A12345", 0.9);
    feed(&mut f, &a, T0);
    // 111 km in a minute: not the same vehicle.
    let b = car("far", 2, T0 + MIN, "京A1234S", 0.9);
    let out = feed(&mut f, &b, T0 + MIN);
    let (va, vb) = (vehicle_of(&f, &a), vehicle_of(&f, &b));
    assert_ne!(va, vb);
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::NewVehicle { vehicle, plate, clone_of: None, .. } if *vehicle == vb && plate == "京A1234S")));
    let flag = out
        .iter()
        .find_map(|o| match o {
            FuseOutput::PlateFlagged {
                vehicle,
                other,
                reason,
                gate,
                ..
            } => Some((*vehicle, *other, *reason, *gate)),
            _ => None,
        })
        .expect("flagged");
    assert_eq!(
        (flag.0, flag.1, flag.2),
        (vb, va, FlagReason::NearPlateApart)
    );
    assert!(matches!(flag.3, Gate::Infeasible { .. }));
    assert_eq!(why_of(&f, &b), Assignment::NewPlate);
    // With fuzzy merging off, a feasible one-confusable reading is a vehicle of its own.
    let mut cfg = FuseConfig::default();
    cfg.vehicles.fuzzy = false;
    let mut f = H::with(cfg, catalog());
    feed(&mut f, &a, T0);
    let c = car("east", 3, T0 + 10 * MIN, "京A1234S", 0.9);
    let out = feed(&mut f, &c, T0 + 10 * MIN);
    assert_ne!(vehicle_of(&f, &c), vehicle_of(&f, &a));
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::PlateFlagged { .. })),
        0
    );
}

#[test]
fn the_same_plate_at_two_far_cameras_within_seconds_is_a_possible_clone() {
    let mut f = fuser();
    let a = car("north", 1, T0, "粤B88888", 0.95);
    feed(&mut f, &a, T0);
    let b = car("far", 2, T0 + 5 * SEC, "粤B88888", 0.95);
    let out = feed(&mut f, &b, T0 + 10 * SEC);
    let (va, vb) = (vehicle_of(&f, &a), vehicle_of(&f, &b));
    assert_ne!(va, vb, "not merged silently");
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::NewVehicle { vehicle, clone_of: Some(c), .. } if *vehicle == vb && *c == va)));
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::PlateFlagged { vehicle, other, reason: FlagReason::PossibleClone,
            gate: Gate::Infeasible { distance_m, .. }, plate, other_plate, .. }
            if *vehicle == vb && *other == va && *distance_m > 100_000.0
                && plate == "粤B88888" && other_plate == "粤B88888")));
    let hits = f.find_plate("粤B88888", false);
    assert_eq!(hits.len(), 2, "an analyst sees both");
    assert_eq!(hits[0].vehicle, vb, "most recent first");
    assert_eq!(hits[0].clone_of, Some(va));
    // Ten minutes later at `far` only the twin can be there: it joins the twin, no flag.
    let c = car("far", 3, T0 + 10 * MIN, "粤B88888", 0.9);
    let out = feed(&mut f, &c, T0 + 10 * MIN);
    assert_eq!(vehicle_of(&f, &c), vb);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::PlateFlagged { .. })),
        0
    );
    // Two hours later at `north` both could be there: the most recently seen one is chosen.
    let d = car("north", 4, T0 + 120 * MIN, "粤B88888", 0.9);
    feed(&mut f, &d, T0 + 120 * MIN);
    assert_eq!(vehicle_of(&f, &d), vb);
}

#[test]
fn a_camera_without_position_gates_as_unknown_with_lower_confidence() {
    let mut f = fuser();
    let a = car("north", 1, T0, "川A12345", 1.0);
    feed(&mut f, &a, T0);
    let b = car("dark", 2, T0 + 5 * SEC, "川A12345", 1.0);
    let out = feed(&mut f, &b, T0 + 10 * SEC);
    assert_eq!(vehicle_of(&f, &b), vehicle_of(&f, &a));
    assert_eq!(
        why_of(&f, &b),
        Assignment::ExactPlate {
            gate: Gate::Unknown
        }
    );
    let s = out
        .iter()
        .find_map(|o| match o {
            FuseOutput::VehicleSighting { sighting, .. } => Some(sighting.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(s.position, None);
    assert!((s.confidence - 0.8).abs() < 1e-6, "{}", s.confidence);
}

#[test]
fn a_configured_travel_time_replaces_distance_over_speed() {
    let mut c = catalog();
    // north and north2 are 111 m apart but a river lies between them: 10 minutes by road.
    c.set_travel_ms(&cam("north"), &cam("north2"), 10 * MIN as u64)
        .unwrap();
    assert!(c.set_travel_ms(&cam("north"), &cam("north"), 1).is_err());
    let mut f = H::with(FuseConfig::default(), c);
    let a = car("north", 1, T0, "川A12345", 1.0);
    feed(&mut f, &a, T0);
    let b = car("north2", 2, T0 + MIN, "川A12345", 1.0);
    feed(&mut f, &b, T0 + MIN);
    assert_ne!(vehicle_of(&f, &b), vehicle_of(&f, &a));
    let c2 = car("north2", 3, T0 + 15 * MIN, "川A12345", 1.0);
    feed(&mut f, &c2, T0 + 15 * MIN);
    assert!(matches!(why_of(&f, &c2), Assignment::ExactPlate { .. }));
}

#[test]
fn unreadable_plates_and_plateless_vehicles_get_no_identity() {
    let mut f = fuser();
    let mut out = Vec::new();
    for (i, (text, conf)) in [
        ("", 0.9),
        ("ABC123", 0.9),
        ("京A1234", 0.9),
        ("京A12345", 0.2),
        ("京A12345", f32::NAN),
    ]
    .into_iter()
    .enumerate()
    {
        out.extend(feed(&mut f, &car("north", i as u64, T0, text, conf), T0));
    }
    let mut bike = car("north", 99, T0, "京A12345", 0.9);
    bike.plate = None;
    bike.class = ObjectClass::Bicycle;
    out.extend(feed(&mut f, &bike, T0));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(f.stats().vehicles, 0);
    assert_eq!(f.stats().tracks, 6);
}

#[test]
fn the_plate_is_the_reading_with_most_confidence() {
    let mut f = fuser();
    let a = car("north", 1, T0, "京A1234S", 0.6);
    feed(&mut f, &a, T0);
    let v = vehicle_of(&f, &a);
    assert_eq!(f.vehicle(v).unwrap().plate, "京A1234S");
    let b = car("north", 2, T0 + MIN, "京A12345", 0.9);
    let out = feed(&mut f, &b, T0 + MIN);
    assert_eq!(vehicle_of(&f, &b), v);
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehiclePlate { vehicle, plate } if *vehicle == v && plate == "京A12345")));
    assert_eq!(f.vehicle(v).unwrap().plate, "京A12345");
}

#[test]
fn a_track_is_decided_after_a_while_and_moves_when_its_vote_changes() {
    let mut f = fuser();
    let key = cam("north");
    let upd = |ts_ms: i64, event: TrackEvent, plate: &str| TrackUpdate {
        track: 5,
        class: ObjectClass::Car,
        event,
        ts_ms,
        bbox: SOMEWHERE,
        score: 0.9,
        embedding: None,
        plate: Some(PlateReading {
            text: plate.into(),
            confidence: 0.8,
        }),
        link: None,
        thumb: None,
    };
    let mut step = |u: TrackUpdate| {
        f.update(
            FuseInput::Observe(Observation::from_update(&key, &u)),
            u.ts_ms,
        )
    };
    assert!(
        step(upd(T0, TrackEvent::Start, "京A12345")).is_empty(),
        "too early"
    );
    assert!(step(upd(T0 + SEC, TrackEvent::Update, "京A12345")).is_empty());
    let out = step(upd(T0 + 2 * SEC, TrackEvent::Update, "京A12345"));
    let first = out
        .iter()
        .find_map(|o| match o {
            FuseOutput::NewVehicle { vehicle, .. } => Some(*vehicle),
            _ => None,
        })
        .expect("decided after decide_after_ms");
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehicleSighting { sighting, .. } if !sighting.ended && sighting.last_ms == T0 + 2 * SEC)));
    // Within refresh_ms the sighting is not re-emitted; a duplicate changes nothing.
    assert!(step(upd(T0 + 3 * SEC, TrackEvent::Update, "京A12345")).is_empty());
    assert!(step(upd(T0 + 3 * SEC, TrackEvent::Update, "京A12345")).is_empty());
    // More frames vote another plate: the sighting moves, the emptied vehicle is retired.
    let out = step(upd(T0 + 4 * SEC, TrackEvent::Update, "粤B88888"));
    let second = out
        .iter()
        .find_map(|o| match o {
            FuseOutput::NewVehicle { vehicle, .. } => Some(*vehicle),
            _ => None,
        })
        .expect("a vehicle for the new plate");
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::Retired { identity: Identity::Vehicle(v), reason: RetireReason::Empty, .. } if *v == first)));
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehicleSighting { vehicle, plate, .. } if *vehicle == second && plate == "粤B88888")));
    // The end is always emitted.
    let out = step(upd(T0 + 5 * SEC, TrackEvent::End, "粤B88888"));
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehicleSighting { sighting, .. } if sighting.ended && sighting.last_ms == T0 + 5 * SEC)));
    assert!(f.find_plate("京A12345", true).is_empty());
    // A whole batch through observe_batch.
    let batch = TrackBatch {
        site: "district-7".into(),
        camera: "east".into(),
        frame_w: 1920,
        frame_h: 1080,
        from_ms: T0 + 20 * MIN,
        to_ms: T0 + 20 * MIN + 500,
        frames: 5,
        updates: vec![
            TrackUpdate {
                track: 1,
                ..upd(T0 + 20 * MIN, TrackEvent::Start, "粤B88888")
            },
            TrackUpdate {
                track: 1,
                ..upd(T0 + 20 * MIN + 500, TrackEvent::End, "粤B88888")
            },
        ],
    };
    let out = f.observe_batch("gw-1", &batch, T0 + 21 * MIN);
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehicleSighting { vehicle, sighting, .. }
            if *vehicle == second && sighting.track.camera.camera == "east")));
}

// ---- persons ----------------------------------------------------------------------------

#[test]
fn faces_of_one_person_join_and_other_people_stay_apart() {
    let mut f = fuser();
    // Person 0: two photos with cosine 0.81; person 1 orthogonal to both.
    let (a1, a2, b) = (face(0, 0.9, 10), face(0, 0.9, 11), face(1, 0.9, 12));
    assert!((cosine(&a1, &a2) - 0.81).abs() < 1e-3);
    let o1 = walker("north", 1, T0, a1);
    let out = feed(&mut f, &o1, T0);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::NewPerson { .. })),
        1
    );
    assert!(matches!(
        why_of(&f, &o1),
        Assignment::NewPerson {
            nearest: None,
            gated: None
        }
    ));
    let o2 = walker("east", 2, T0 + 10 * MIN, a2);
    let out = feed(&mut f, &o2, T0 + 10 * MIN);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::NewPerson { .. })),
        0
    );
    assert_eq!(person_of(&f, &o2), person_of(&f, &o1));
    match why_of(&f, &o2) {
        Assignment::SimilarFace {
            similarity,
            gate: Gate::Feasible { .. },
        } => assert!((similarity - 0.81).abs() < 1e-3),
        other => panic!("{other:?}"),
    }
    let o3 = walker("east", 3, T0 + 10 * MIN, b);
    feed(&mut f, &o3, T0 + 10 * MIN);
    assert_ne!(person_of(&f, &o3), person_of(&f, &o1));
    assert_eq!(f.stats().persons, 2);
}

#[test]
fn a_look_alike_where_the_person_cannot_be_is_a_new_person() {
    let mut f = fuser();
    let o1 = walker("north", 1, T0, face(0, 0.9, 10));
    feed(&mut f, &o1, T0);
    let p = person_of(&f, &o1);
    // As similar as a genuine pair, but 111 km away a minute later.
    let o2 = walker("far", 2, T0 + MIN, face(0, 0.9, 11));
    feed(&mut f, &o2, T0 + MIN);
    assert_ne!(person_of(&f, &o2), p);
    match why_of(&f, &o2) {
        Assignment::NewPerson {
            nearest: Some(n),
            gated: Some(g),
        } => {
            assert_eq!((n.person, g.person), (p, p));
            assert!(matches!(g.gate, Some(Gate::Infeasible { .. })));
            assert!((g.similarity - 0.81).abs() < 1e-3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_person_seen_by_three_cameras_has_them_in_time_order_even_when_reported_late() {
    let mut f = fuser();
    let faces = [face(0, 0.9, 10), face(0, 0.9, 11), face(0, 0.9, 12)];
    let north = walker("north", 1, T0, faces[0].clone());
    let east = walker("east", 2, T0 + 15 * MIN, faces[1].clone());
    let far = walker("far", 3, T0 + 3 * 60 * MIN, faces[2].clone());
    // `east`'s agent was offline: its spool delivers the middle sighting last.
    feed(&mut f, &north, T0);
    feed(&mut f, &far, T0 + 3 * 60 * MIN);
    feed(&mut f, &east, T0 + 3 * 60 * MIN + SEC);
    let p = person_of(&f, &north);
    assert_eq!(person_of(&f, &east), p);
    assert_eq!(person_of(&f, &far), p);
    let traj = f.person_trajectory(p).unwrap();
    let cams: Vec<&str> = traj
        .points
        .iter()
        .map(|x| x.camera.camera.as_str())
        .collect();
    assert_eq!(cams, ["north", "east", "far"]);
    assert!(
        traj.points
            .windows(2)
            .all(|w| w[0].first_ms <= w[1].first_ms)
    );
    assert_eq!(traj.points[2].position, Some([31.0, 104.0]));
}

#[test]
fn re_clustering_merges_persons_and_keeps_ids_stable_through_aliases() {
    let mut f = fuser();
    // e1 and e2 are one person in poses too different to join (cosine 0.42); e3, between
    // them, joins e1's person and bridges the two.
    let (e1, e2, e3) = (
        in_plane(0, 1, 0.0),
        in_plane(0, 1, 65.0),
        in_plane(0, 1, 30.0),
    );
    assert!(cosine(&e1, &e2) < 0.45 && cosine(&e1, &e2) > 0.363);
    let o1 = walker("north", 1, T0, e1);
    let o2 = walker("east", 2, T0 + 10 * MIN, e2.clone());
    let o3 = walker("north2", 3, T0 + 20 * MIN, e3);
    feed(&mut f, &o1, T0);
    feed(&mut f, &o2, T0 + 10 * MIN);
    let (p1, p2) = (person_of(&f, &o1), person_of(&f, &o2));
    assert_ne!(p1, p2);
    match why_of(&f, &o2) {
        Assignment::NewPerson {
            nearest: Some(n),
            gated: None,
        } => assert_eq!(n.person, p1, "the near miss is recorded"),
        other => panic!("{other:?}"),
    }
    feed(&mut f, &o3, T0 + 20 * MIN);
    assert_eq!(person_of(&f, &o3), p1);
    // Not yet time to re-cluster; then it is.
    assert!(tick(&mut f, T0 + 20 * MIN + SEC).is_empty());
    let out = tick(&mut f, T0 + 30 * MIN);
    let merged: Vec<(PersonId, PersonId)> = out
        .iter()
        .filter_map(|o| match o {
            FuseOutput::PersonsMerged { from, into, .. } => Some((*from, *into)),
            _ => None,
        })
        .collect();
    assert_eq!(merged, [(p2, p1)], "the older id survives");
    assert_eq!(f.resolve_person(p2), Some(p1));
    assert_eq!(f.resolve_person(p1), Some(p1));
    let traj = f.person_trajectory(p2).unwrap();
    assert_eq!(traj.identity, Identity::Person(p1));
    assert_eq!(traj.points.len(), 3);
    assert_eq!(person_of(&f, &o2), p1, "tracks resolve through the alias");
    // A new face like e2 now joins the surviving id.
    let o4 = walker("east", 4, T0 + 40 * MIN, e2);
    let out = feed(&mut f, &o4, T0 + 40 * MIN);
    assert_eq!(person_of(&f, &o4), p1);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::NewPerson { .. })),
        0
    );
    assert_eq!(f.stats().aliases, 1);
    // Nothing more to merge.
    assert_eq!(
        count(&tick(&mut f, T0 + 50 * MIN), |o| matches!(
            o,
            FuseOutput::PersonsMerged { .. }
        )),
        0
    );
}

#[test]
fn re_clustering_does_not_merge_look_alikes_that_cannot_be_one_person() {
    let mut f = fuser();
    let (e1, e2, e3) = (
        in_plane(0, 1, 0.0),
        in_plane(0, 1, 65.0),
        in_plane(0, 1, 30.0),
    );
    feed(&mut f, &walker("north", 1, T0, e1), T0);
    feed(&mut f, &walker("north", 3, T0 + MIN, e3), T0 + MIN);
    // e2's person is 111 km away a minute later: never the same.
    feed(&mut f, &walker("far", 2, T0 + 2 * MIN, e2), T0 + 2 * MIN);
    let out = tick(&mut f, T0 + 10 * MIN);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::PersonsMerged { .. })),
        0
    );
    assert_eq!(f.stats().persons, 2);
}

#[test]
fn representatives_stay_few_and_diverse() {
    let mut f = fuser();
    let base = walker("north", 0, T0, face(0, 0.95, 1));
    feed(&mut f, &base, T0);
    let p = person_of(&f, &base);
    for i in 1..40u64 {
        // Near-duplicates (redundant) and varied poses of the same person.
        let v = if i % 2 == 0 {
            face(0, 0.95, 1)
        } else {
            face(0, 0.8, 1 + i as usize)
        };
        let o = walker("north", i, T0 + i as i64 * MIN, v);
        feed(&mut f, &o, T0 + i as i64 * MIN);
        assert_eq!(person_of(&f, &o), p);
    }
    let reps = f.stats().representatives;
    assert_eq!(reps, FuseConfig::default().persons.max_representatives);
}

#[test]
fn a_face_and_its_body_are_one_person_and_one_trajectory_point() {
    let mut f = fuser();
    let mut face_track = walker("north", 10, T0, face(0, 0.9, 10));
    face_track.class = ObjectClass::Face;
    face_track.link = Some(11);
    // The body arrives first, without an embedding of its own, linked to the face.
    let body = Obs {
        embedding: None,
        class: ObjectClass::Person,
        track: 11,
        link: Some(10),
        ..face_track.clone()
    };
    feed(&mut f, &body, T0);
    assert_eq!(id_of(&f, &body), None, "no face, no identity yet");
    let out = feed(&mut f, &face_track, T0 + SEC);
    let p = person_of(&f, &face_track);
    assert_eq!(person_of(&f, &body), p, "woken by its face's identity");
    assert_eq!(why_of(&f, &body), Assignment::LinkedTrack { track: 10 });
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::PersonSighting { .. })),
        2
    );
    let traj = f.person_trajectory(p).unwrap();
    assert_eq!(traj.points.len(), 1);
    let mut tracks = traj.points[0].tracks.clone();
    tracks.sort();
    assert_eq!(tracks, [10, 11]);
}

#[test]
fn a_better_face_of_someone_else_moves_the_track() {
    let mut f = fuser();
    let a = walker("north", 1, T0, face(0, 0.9, 10));
    feed(&mut f, &a, T0);
    let b = walker("north", 2, T0 + MIN, face(1, 0.9, 11));
    feed(&mut f, &b, T0 + MIN);
    let (pa, pb) = (person_of(&f, &a), person_of(&f, &b));
    // Track 3 first shows a blurry face like a's, then its best face is clearly b's.
    let mut c = walker("north", 3, T0 + 2 * MIN, face(0, 0.9, 12));
    feed(&mut f, &c, T0 + 2 * MIN);
    assert_eq!(person_of(&f, &c), pa);
    c.embedding = Some(face(1, 0.9, 13));
    c.last_ms += SEC;
    feed(&mut f, &c, T0 + 2 * MIN + SEC);
    assert_eq!(person_of(&f, &c), pb);
    assert_eq!(f.person_trajectory(pa).unwrap().points.len(), 1);
    assert_eq!(f.person_trajectory(pb).unwrap().points.len(), 2);
}

// ---- links ------------------------------------------------------------------------------

#[test]
fn a_person_getting_into_a_car_links_them_and_repeats_strengthen_the_link() {
    let mut f = fuser();
    let person_box = QBox([30_000, 20_000, 36_000, 60_000]);
    let car_box = QBox([34_000, 30_000, 60_000, 60_000]);
    let mut walk = walker("north", 1, T0, face(0, 0.9, 10));
    walk.last_box = person_box;
    let mut drive = car("north", 2, walk.last_ms + 3 * SEC, "京A12345", 0.9);
    drive.first_box = car_box;
    feed(&mut f, &walk, T0 + 10 * SEC);
    let out = feed(&mut f, &drive, T0 + 20 * SEC);
    let (p, v) = (person_of(&f, &walk), vehicle_of(&f, &drive));
    let link = out
        .iter()
        .find_map(|o| match o {
            FuseOutput::Link {
                person,
                vehicle,
                count,
                strength,
                evidence: Some(e),
                ..
            } => Some((*person, *vehicle, *count, *strength, e.clone())),
            _ => None,
        })
        .expect("linked");
    assert_eq!((link.0, link.1, link.2), (p, v, 1));
    assert!((link.3 - 0.5).abs() < 1e-6);
    assert_eq!(link.4.rule, LinkRule::GotIn { gap_ms: 3 * SEC });
    assert_eq!(
        (link.4.person_track.track, link.4.vehicle_track.track),
        (1, 2)
    );
    // Twelve hours later at another camera they get out together (car ends, person starts).
    let day = 12 * 60 * MIN;
    let mut park = car("east", 5, T0 + day, "京A12345", 0.9);
    park.last_box = car_box;
    let mut leave = walker("east", 6, park.last_ms + 2 * SEC, face(0, 0.9, 11));
    leave.first_box = person_box;
    feed(&mut f, &park, T0 + day);
    let out = feed(&mut f, &leave, T0 + day + MIN);
    assert_eq!(person_of(&f, &leave), p);
    assert!(out.iter().any(|o| matches!(
        o,
        FuseOutput::Link {
            count: 2,
            evidence: Some(LinkEvidence {
                rule: LinkRule::GotOut { gap_ms: 2000 },
                ..
            }),
            ..
        }
    )));
    let links = f.links_of(Identity::Person(p));
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].count, 2);
    assert!(
        (links[0].strength - 0.75).abs() < 1e-6,
        "grows with repetition"
    );
    assert_eq!(links[0].evidence.len(), 2);
    assert_eq!(f.links_of(Identity::Vehicle(v)), links);
    // Feeding the same tracks again does not count them again.
    feed(&mut f, &leave, T0 + day + MIN);
    assert_eq!(f.links_of(Identity::Person(p))[0].count, 2);
}

#[test]
fn no_link_when_too_late_or_too_far_in_the_frame() {
    let mut f = fuser();
    let mut walk = walker("north", 1, T0, face(0, 0.9, 10));
    walk.last_box = QBox([0, 0, 5_000, 20_000]);
    feed(&mut f, &walk, T0);
    // Starts in time but on the other side of the frame.
    let mut far_side = car("north", 2, walk.last_ms + SEC, "京A12345", 0.9);
    far_side.first_box = QBox([50_000, 40_000, 65_000, 65_000]);
    far_side.last_box = far_side.first_box;
    // Right box, but a minute later.
    let mut late = car("north", 3, walk.last_ms + MIN, "粤B88888", 0.9);
    late.first_box = walk.last_box;
    let mut out = feed(&mut f, &far_side, T0 + 10 * SEC);
    out.extend(feed(&mut f, &late, T0 + 2 * MIN));
    assert_eq!(count(&out, |o| matches!(o, FuseOutput::Link { .. })), 0);
    assert!(
        f.links_of(Identity::Person(person_of(&f, &walk)))
            .is_empty()
    );
}

#[test]
fn a_face_the_agent_saw_inside_a_vehicle_links_them() {
    let mut f = fuser();
    let drive = car("north", 2, T0, "京A12345", 0.9);
    feed(&mut f, &drive, T0);
    let mut driver = walker("north", 7, T0, face(0, 0.9, 10));
    driver.class = ObjectClass::Face;
    driver.link = Some(2);
    driver.first_box = QBox([0, 0, 1, 1]);
    driver.last_box = QBox([0, 0, 1, 1]);
    let out = feed(&mut f, &driver, T0 + SEC);
    let (p, v) = (person_of(&f, &driver), vehicle_of(&f, &drive));
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::Link { person, vehicle, evidence: Some(LinkEvidence { rule: LinkRule::Inside, weight, .. }), .. }
            if *person == p && *vehicle == v && (*weight - 0.9).abs() < 1e-6)));
}

#[test]
fn links_follow_a_person_merge() {
    let mut f = fuser();
    let (e1, e2, e3) = (
        in_plane(0, 1, 0.0),
        in_plane(0, 1, 65.0),
        in_plane(0, 1, 30.0),
    );
    let mut a = walker("north", 1, T0, e1);
    a.class = ObjectClass::Face;
    a.link = Some(9);
    feed(&mut f, &car("north", 9, T0, "京A12345", 0.9), T0);
    feed(&mut f, &a, T0);
    let mut b = walker("east", 2, T0 + 10 * MIN, e2);
    b.class = ObjectClass::Face;
    b.link = Some(8);
    feed(
        &mut f,
        &car("east", 8, T0 + 10 * MIN, "京A12345", 0.9),
        T0 + 10 * MIN,
    );
    feed(&mut f, &b, T0 + 10 * MIN);
    let (p1, p2) = (person_of(&f, &a), person_of(&f, &b));
    assert_ne!(p1, p2);
    feed(
        &mut f,
        &walker("north2", 3, T0 + 20 * MIN, e3),
        T0 + 20 * MIN,
    );
    let out = tick(&mut f, T0 + 30 * MIN);
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::Link { person, count: 2, evidence: None, .. } if *person == p1)));
    let links = f.links_of(Identity::Person(p2));
    assert_eq!(links.len(), 1);
    assert_eq!((links[0].person, links[0].count), (p1, 2));
}

// ---- memory -----------------------------------------------------------------------------

#[test]
fn idle_identities_are_evicted_and_reported() {
    let mut f = fuser();
    let a = car("north", 1, T0, "京A12345", 0.9);
    let w = walker("north", 2, T0, face(0, 0.9, 10));
    feed(&mut f, &a, T0);
    feed(&mut f, &w, T0);
    let (v, p) = (vehicle_of(&f, &a), person_of(&f, &w));
    let day = 24 * 60 * MIN;
    // Tracks linger for the timeout, then go.
    tick(&mut f, T0 + 3 * MIN);
    assert_eq!(f.stats().tracks, 0);
    let out = tick(&mut f, T0 + day + MIN);
    let mut retired: Vec<Identity> = out
        .iter()
        .filter_map(|o| match o {
            FuseOutput::Retired {
                identity,
                reason: RetireReason::Idle,
                last_seen_ms,
            } if *last_seen_ms == T0 + 5 * SEC || *last_seen_ms == T0 + 4 * SEC => Some(*identity),
            _ => None,
        })
        .collect();
    retired.sort();
    assert_eq!(retired, [Identity::Vehicle(v), Identity::Person(p)]);
    assert!(f.find_plate("京A12345", true).is_empty());
    assert!(f.vehicle_trajectory(v).is_none());
    assert!(f.person_trajectory(p).is_none());
    let s = f.stats();
    assert_eq!((s.vehicles, s.persons, s.representatives), (0, 0, 0));
    // The plate starts a new vehicle.
    let b = car("north", 3, T0 + day + 2 * MIN, "京A12345", 0.9);
    feed(&mut f, &b, T0 + day + 2 * MIN);
    assert_ne!(vehicle_of(&f, &b), v);
}

#[test]
fn a_track_its_agent_stopped_reporting_is_closed_and_decided() {
    let mut f = fuser();
    let mut a = car("north", 1, T0, "京A12345", 0.9);
    a.last_ms = T0 + 500;
    a.ended = false;
    assert!(feed(&mut f, &a, T0 + SEC).is_empty(), "too short to decide");
    let out = tick(&mut f, T0 + 3 * MIN);
    assert!(out.iter().any(|o| matches!(o,
        FuseOutput::VehicleSighting { sighting, .. } if sighting.ended)));
    assert_eq!(f.stats().tracks, 0);
}

#[test]
fn memory_caps_evict_the_least_recently_seen() {
    let mut cfg = FuseConfig::default();
    cfg.memory.max_vehicles = 16;
    let mut f = H::with(cfg, catalog());
    let mut retired = Vec::new();
    for i in 0..20i64 {
        let plate = format!("京A{:05}", 10_000 + i);
        let out = feed(
            &mut f,
            &car("north", i as u64, T0 + i * MIN, &plate, 0.9),
            T0 + i * MIN,
        );
        retired.extend(out.into_iter().filter_map(|o| match o {
            FuseOutput::Retired {
                identity: Identity::Vehicle(v),
                reason: RetireReason::Capacity,
                ..
            } => Some(v),
            _ => None,
        }));
    }
    assert!(f.stats().vehicles <= 16);
    assert!(!retired.is_empty());
    assert!(retired.contains(&VehicleId(1)), "{retired:?}");
    assert!(
        f.find_plate("京A10019", false).len() == 1,
        "the newest stays"
    );
}

// ---- hostile input ----------------------------------------------------------------------

#[test]
fn hostile_input_is_ignored_without_panics() {
    let mut f = fuser();
    let key = cam("north");
    let bad_embeddings: Vec<Vec<f32>> = vec![
        vec![f32::NAN; DIM],
        vec![0.0; DIM],
        vec![f32::INFINITY; DIM],
        vec![1.0; 3],
        Vec::new(),
    ];
    for (i, e) in bad_embeddings.iter().enumerate() {
        let o = Observation {
            camera: &key,
            track: i as u64,
            class: ObjectClass::Face,
            first_ms: T0,
            last_ms: T0 + MIN,
            ended: true,
            bbox: QBox([u16::MAX, u16::MAX, 0, 0]),
            score: 0.9,
            embedding: Some(EmbeddingRef::F32(e)),
            plate: None,
            link: Some(i as u64),
        };
        assert!(f.update(FuseInput::Observe(o), T0).is_empty());
    }
    let q = QEmbedding {
        scale: f32::NAN,
        q: vec![1; DIM],
    };
    let empty = PlateReading {
        text: String::new(),
        confidence: 1.0,
    };
    let extreme = [i64::MIN, i64::MAX, 0, -1];
    for (i, &t) in extreme.iter().enumerate() {
        for &u in &extreme {
            let o = Observation {
                camera: &key,
                track: 100 + i as u64,
                class: ObjectClass::Person,
                first_ms: t,
                last_ms: u,
                ended: false,
                bbox: QBox::default(),
                score: 0.9,
                embedding: Some(EmbeddingRef::Quantized(&q)),
                plate: Some(&empty),
                link: None,
            };
            f.update(FuseInput::Observe(o), u);
            f.update(FuseInput::Tick, t);
        }
    }
    // Extreme times on good input: identities form, nothing overflows.
    let good = face(0, 0.9, 10);
    for (i, &t) in extreme.iter().enumerate() {
        let o = Observation {
            camera: &key,
            track: 200 + i as u64,
            class: ObjectClass::Person,
            first_ms: t,
            last_ms: t,
            ended: true,
            bbox: QBox::default(),
            score: 0.9,
            embedding: Some(EmbeddingRef::F32(&good)),
            plate: None,
            link: None,
        };
        f.update(FuseInput::Observe(o), t);
        let plate = PlateReading {
            text: "京A12345".into(),
            confidence: 1.0,
        };
        let o = Observation {
            class: ObjectClass::Truck,
            track: 300 + i as u64,
            embedding: None,
            plate: Some(&plate),
            ..o
        };
        f.update(FuseInput::Observe(o), t);
    }
    f.update(FuseInput::Tick, i64::MAX);
    f.update(FuseInput::Tick, i64::MIN);
    let _ = f.find_plate("", true);
    let _ = f.find_plate("\u{3000}·", true);
    let _ = f.person_trajectory(PersonId(u64::MAX));
    let _ = f.links_of(Identity::Vehicle(VehicleId(0)));
}

#[test]
fn repeated_observations_change_nothing() {
    let mut f = fuser();
    let a = car("north", 1, T0, "京A12345", 0.9);
    let w = walker("north", 2, T0, face(0, 0.9, 10));
    assert!(!feed(&mut f, &a, T0).is_empty());
    assert!(!feed(&mut f, &w, T0).is_empty());
    // The broker redelivers the same messages.
    assert!(feed(&mut f, &a, T0 + SEC).is_empty());
    assert!(feed(&mut f, &w, T0 + SEC).is_empty());
    assert_eq!(f.stats().vehicles, 1);
    assert_eq!(f.stats().persons, 1);
}

#[test]
fn outputs_serialise_to_json_for_the_store() {
    let mut f = fuser();
    let out = feed(&mut f, &car("north", 1, T0, "京A12345", 0.9), T0);
    let json = serde_json::to_value(&out).unwrap();
    let s = &json[1];
    assert_eq!(s["event"], "vehicle_sighting");
    assert_eq!(s["sighting"]["track"]["camera"]["camera"], "north");
    assert_eq!(s["why"]["rule"], "new_plate");
    let out = feed(&mut f, &car("east", 2, T0 + 10 * MIN, "京A12345", 0.9), T0);
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json[0]["why"]["rule"], "exact_plate");
    assert_eq!(json[0]["why"]["gate"]["result"], "feasible");
}

// ---- determinism ------------------------------------------------------------------------

/// Many tracks of three cameras (`north`, `far` 111 km away, `dark` without a position) that
/// their agents stop reporting before they are decided, all timing out in one tick: cars with
/// plates (the same plates at every camera: exact joins and possible clones), persons with
/// faces (look-alikes that join, or are gated apart), some seen inside cars that were decided
/// earlier and are still in memory (links). Every output, in order.
fn many_tracks_time_out_together(h: &mut H) -> Vec<FuseOutput> {
    let mut all = Vec::new();
    for camera in ["north", "far", "dark"] {
        // Decided (ended) cars, kept in memory until their timeout: link partners.
        for k in 0..4u64 {
            let c = car(camera, 100 + k, T0, &format!("京B{:05}", 20_000 + k), 0.9);
            all.extend(feed(h, &c, T0));
        }
        // Persons, too short to be decided, half of them seen inside a decided car.
        for k in 0..8u64 {
            let mut w = walker(
                camera,
                1 + k,
                T0,
                face(k as usize % 3, 0.95, 20 + k as usize),
            );
            w.last_ms = T0 + 500;
            w.ended = false;
            w.link = (k % 2 == 0).then_some(100 + k / 2);
            all.extend(feed(h, &w, T0));
        }
        // Cars, too short to be decided: two tracks of each plate.
        for k in 0..8u64 {
            let mut c = car(
                camera,
                200 + k,
                T0,
                &format!("京A{:05}", 10_000 + k % 4),
                0.9,
            );
            c.last_ms = T0 + 500;
            c.ended = false;
            all.extend(feed(h, &c, T0));
        }
    }
    all.extend(tick(h, T0 + 3 * MIN));
    all
}

#[test]
fn tracks_timing_out_in_one_tick_are_decided_alike_by_every_fuser() {
    // Each fuser's hash maps have their own random seed: a decision that followed hash
    // iteration order would differ between them.
    let runs: Vec<Vec<FuseOutput>> = (0..4)
        .map(|_| many_tracks_time_out_together(&mut fuser()))
        .collect();
    let tick = |out: &[FuseOutput], f: fn(&FuseOutput) -> bool| count(out, f);
    let first = &runs[0];
    assert!(tick(first, |o| matches!(o, FuseOutput::NewVehicle { .. })) >= 8);
    assert!(tick(first, |o| matches!(o, FuseOutput::NewPerson { .. })) >= 3);
    assert!(tick(first, |o| matches!(o, FuseOutput::PlateFlagged { .. })) > 0);
    assert!(
        tick(first, |o| matches!(
            o,
            FuseOutput::Link {
                evidence: Some(_),
                ..
            }
        )) > 0
    );
    assert!(tick(first, |o| matches!(o, FuseOutput::Retired { .. })) == 0);
    for (i, run) in runs.iter().enumerate().skip(1) {
        let (a, b): (Vec<String>, Vec<String>) = (
            first.iter().map(|o| format!("{o:?}")).collect(),
            run.iter().map(|o| format!("{o:?}")).collect(),
        );
        if let Some(at) = (0..a.len().max(b.len())).find(|&j| a.get(j) != b.get(j)) {
            panic!(
                "fuser {i} differs from fuser 0 at output {at} of {}/{}:\n{:?}\n{:?}",
                a.len(),
                b.len(),
                a.get(at),
                b.get(at)
            );
        }
    }
}

// ---- configuration ----------------------------------------------------------------------

#[test]
fn configuration_defaults_validate_and_bad_values_are_named() {
    FuseConfig::default().validate().unwrap();
    let parsed: FuseConfig = toml::from_str(
        "[gate]\nmax_speed_kmh = 80.0\n[persons]\njoin_similarity = 0.5\nmerge_similarity = 0.55\n",
    )
    .unwrap();
    parsed.validate().unwrap();
    assert_eq!(parsed.gate.max_speed_kmh, 80.0);
    assert_eq!(
        parsed.gate.clock_skew_ms, 3000,
        "others keep their defaults"
    );
    assert!(toml::from_str::<FuseConfig>("[gate]\nmax_speed = 1.0\n").is_err());
    let field = |cfg: FuseConfig| match cfg.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let mut c = FuseConfig::default();
    c.gate.max_speed_kmh = f64::NAN;
    assert_eq!(field(c), "fusion.gate.max_speed_kmh");
    let mut c = FuseConfig::default();
    c.persons.merge_similarity = 0.4;
    assert_eq!(field(c), "fusion.persons.merge_similarity");
    let mut c = FuseConfig::default();
    c.persons.join_similarity = 0.3;
    assert_eq!(field(c), "fusion.persons.join_similarity");
    let mut c = FuseConfig::default();
    c.memory.max_persons = 0;
    assert_eq!(field(c.clone()), "fusion.memory.max_persons");
    assert!(Fuser::new(c, CameraCatalog::new()).is_err());
    let mut cat = CameraCatalog::new();
    assert!(cat.insert(cam("x"), 91.0, 0.0).is_err());
    assert!(cat.insert(cam("x"), 0.0, f64::NAN).is_err());
    assert!(cat.is_empty());
}

// ---- real faces -------------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The test data (`testdata/` of the checkout, or `$SHARPEYES_TESTDATA`: e.g. a held-out set).
fn testdata() -> PathBuf {
    match std::env::var_os("SHARPEYES_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => root().join("testdata"),
    }
}

#[test]
fn real_sface_embeddings_cluster_by_identity() {
    let models = perception::config::ModelsConfig {
        dir: root().join("models/files"),
        onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: 1,
    };
    let mut detector = perception::face_detector(&models, &Default::default()).unwrap();
    let mut embedder = perception::face_embedder(&models, &Default::default()).unwrap();
    // The largest face of each photo (each shows one person), as enrollment embeds it.
    let mut embed_photo = |path: &Path| -> Result<Vec<f32>, perception::InferError> {
        let img = perception::BgrImage::open(path)?;
        let faces = detector.detect(&img)?;
        let height = |f: &perception::FaceDetection| f.bbox[3] - f.bbox[1];
        let face = faces
            .iter()
            .max_by(|a, b| height(a).total_cmp(&height(b)))
            .ok_or_else(|| perception::InferError::BadImage("no face".into()))?;
        embedder.embed(&img, &face.landmarks)
    };
    let ids = testdata().join("identities");
    let photos = [
        ("p01", "deepface_p01/img1.jpg"),
        ("obama", "obama/obama.jpg"),
        ("p01", "deepface_p01/img4.jpg"),
        ("biden", "biden/biden.jpg"),
        ("obama", "obama/obama2.jpg"),
        ("p01", "deepface_p01/img2.jpg"),
    ];
    let mut f = fuser();
    let cams = ["north", "east", "dark"];
    let mut seen: Vec<(&str, PersonId)> = Vec::new();
    for (i, (who, file)) in photos.iter().enumerate() {
        let e = embed_photo(&ids.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        // One photo every 15 minutes at the cameras in turn: always feasible.
        let t = T0 + i as i64 * 15 * MIN;
        let o = walker(cams[i % cams.len()], i as u64, t, e);
        feed(&mut f, &o, t);
        let p = person_of(&f, &o);
        // A later photo of someone already seen joins directly, by similarity.
        if seen.iter().any(|(w, _)| w == who) {
            assert!(
                matches!(why_of(&f, &o), Assignment::SimilarFace { .. }),
                "{file}: {:?}",
                why_of(&f, &o)
            );
        }
        seen.push((who, p));
    }
    tick(&mut f, T0 + 3 * 60 * MIN);
    let resolved: Vec<(&str, PersonId)> = seen
        .iter()
        .map(|(w, p)| (*w, f.resolve_person(*p).unwrap()))
        .collect();
    for (a, pa) in &resolved {
        for (b, pb) in &resolved {
            assert_eq!(a == b, pa == pb, "{a} {pa} vs {b} {pb}: {resolved:?}");
        }
    }
    assert_eq!(f.stats().persons, 3);
}

// ---- representative faces as outputs -----------------------------------------------------

/// The representatives as the store sees them after applying `outputs` in order: (camera,
/// track) → person.
fn stored_faces(outputs: &[FuseOutput]) -> std::collections::BTreeMap<(String, u64), PersonId> {
    let mut m = std::collections::BTreeMap::new();
    for o in outputs {
        match o {
            FuseOutput::PersonFace { person, face } => {
                assert_eq!(face.embedding.len(), DIM);
                assert_eq!(face.model, "sface_2021dec");
                let n: f32 = face.embedding.iter().map(|x| x * x).sum();
                assert!((n - 1.0).abs() < 1e-4, "stored embeddings are unit vectors");
                m.insert(
                    (face.track.camera.camera.clone(), face.track.track),
                    *person,
                );
            }
            FuseOutput::PersonFaceDropped { track, .. } => {
                m.remove(&(track.camera.camera.clone(), track.track));
            }
            FuseOutput::PersonsMerged { from, into, .. } => {
                for p in m.values_mut() {
                    if p == from {
                        *p = *into;
                    }
                }
            }
            FuseOutput::Retired {
                identity: Identity::Person(p),
                reason: RetireReason::Empty,
                ..
            } => m.retain(|_, q| q != p),
            _ => {}
        }
    }
    m
}

/// The fuser's representatives: (camera, track) → person.
fn memory_faces(h: &H) -> std::collections::BTreeMap<(String, u64), PersonId> {
    let mut m = std::collections::BTreeMap::new();
    for (&p, person) in &h.f.persons.map {
        for r in &person.reps {
            let c = h.f.cams.get(r.src.cam).unwrap();
            m.insert((c.key.camera.clone(), r.src.track), p);
        }
    }
    m
}

#[test]
fn representative_faces_are_outputs_that_mirror_memory_through_moves_and_merges() {
    let mut f = fuser();
    let mut all = Vec::new();
    // A merge (as in the re-clustering test).
    let (e1, e2, e3) = (
        in_plane(0, 1, 0.0),
        in_plane(0, 1, 65.0),
        in_plane(0, 1, 30.0),
    );
    all.extend(feed(&mut f, &walker("north", 1, T0, e1), T0));
    all.extend(feed(
        &mut f,
        &walker("east", 2, T0 + 10 * MIN, e2),
        T0 + 10 * MIN,
    ));
    all.extend(feed(
        &mut f,
        &walker("north2", 3, T0 + 20 * MIN, e3),
        T0 + 20 * MIN,
    ));
    let out = tick(&mut f, T0 + 30 * MIN);
    assert_eq!(
        count(&out, |o| matches!(o, FuseOutput::PersonsMerged { .. })),
        1
    );
    all.extend(out);
    assert_eq!(stored_faces(&all), memory_faces(&f));
    assert_eq!(memory_faces(&f).len(), 3);
    // More faces than representatives kept: eight alike (pairwise 0.90), then diverse ones
    // that replace the most redundant.
    for i in 10..20u64 {
        let v = if i < 18 {
            face(5, 0.95, 6 + i as usize)
        } else {
            face(5, 0.7, 40 + i as usize)
        };
        let t = T0 + 40 * MIN + i as i64 * MIN;
        all.extend(feed(&mut f, &walker("north", i, t, v), t));
    }
    assert!(
        count(&all, |o| matches!(o, FuseOutput::PersonFaceDropped { .. })) > 0,
        "replaced representatives are dropped"
    );
    let quality = all.iter().find_map(|o| match o {
        FuseOutput::PersonFace { face, .. } => Some(face.quality),
        _ => None,
    });
    assert_eq!(quality, Some(0.9), "the detection score comes along");
    // A track whose better face is someone else moves, and takes its face along.
    let t = T0 + 90 * MIN;
    let mut o = walker("east", 100, t, face(5, 0.95, 6));
    all.extend(feed(&mut f, &o, t));
    let before = person_of(&f, &o);
    o.embedding = Some(face(9, 1.0, 10));
    o.last_ms += SEC;
    all.extend(feed(&mut f, &o, t + SEC));
    assert_ne!(person_of(&f, &o), before);
    assert_eq!(stored_faces(&all), memory_faces(&f));
    assert_eq!(
        stored_faces(&all).get(&("east".to_string(), 100)),
        Some(&person_of(&f, &o))
    );
}
