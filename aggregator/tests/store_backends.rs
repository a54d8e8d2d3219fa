//! The store's test suite, run against both backends: SQLite (a temporary file) and
//! PostgreSQL (a real server from Debian's `postgresql` package, started by each test on
//! 127.0.0.1, see `common::pg`; the PostgreSQL tests fail, not skip, without it).
//!
//! Each body runs once per backend (`both!`): message application and deduplication, fusion
//! outputs, every query of the CLI (plate trajectory exact and fuzzy, person trajectory,
//! links, sightings by grid / box / time), alerts, watchlists, retention, and the fusion
//! owner and inbox that let several aggregators share one PostgreSQL store.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use aggregator::config::CameraPlace;
use aggregator::store::{
    AlertFilter, Applied, Area, Dialect, Fusion, Page, PlateMatchKind, RetentionPolicy, Store,
    StoreError, TrackFilter,
};
use common::pg::TempPostgres;
use fusion::{
    Assignment, CameraKey, FaceRep, FlagReason, FuseOutput, Gate, Identity, LinkEvidence, LinkRule,
    PersonId, RetireReason, Sighting, TrackRef, VehicleId,
};
use sharpeyes_wire::{
    Alert, AlertKind, Body, Envelope, Evidence, ObjectClass, PlateReading, Priority, QBox,
    TrackBatch, TrackEvent, TrackUpdate,
};

/// Where a test's store lives; kept alive for the test (the server stops on drop).
#[allow(dead_code)]
enum Fixture {
    Sqlite(tempfile::TempDir),
    Postgres(TempPostgres, String),
}

impl Fixture {
    fn sqlite() -> Self {
        Fixture::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Self {
        let pg = TempPostgres::start();
        let url = pg.database("sharpeyes");
        Fixture::Postgres(pg, url)
    }

    /// A new handle on the store (another session on PostgreSQL).
    /// `--db` for the CLI.
    fn db_arg(&self) -> String {
        match self {
            Fixture::Sqlite(d) => d.path().join("t.db").display().to_string(),
            Fixture::Postgres(_, url) => url.clone(),
        }
    }

    fn open(&self) -> Store {
        match self {
            Fixture::Sqlite(d) => Store::open(&d.path().join("t.db")).unwrap(),
            Fixture::Postgres(_, url) => Store::open_postgres(url).unwrap(),
        }
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Fixture::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(&super::Fixture::postgres());
            }
        }
    )*};
}

both!(
    messages_apply_once_and_tracks_merge_out_of_order,
    plate_trajectories_exact_reading_fuzzy_and_flags,
    a_moved_track_is_one_sighting_and_empty_identities_are_deleted,
    merges_repoint_sightings_aliases_and_links,
    sightings_by_grid_and_box_within_a_window,
    alerts_are_stored_updated_and_acknowledged,
    watchlists_version_and_entries,
    retention_deletes_old_rows_in_chunks,
    person_faces_age_out_with_the_sightings,
    one_fusion_owner_and_the_inbox,
    cli_queries_answer_from_either_backend,
    evidence_is_content_addressed_and_referenced,
    evidence_retention_by_kind_keeps_what_is_referenced,
    schema_8_alert_images_move_to_the_evidence_store,
    track_points_keep_either_key_and_sightings_by_place_goes,
    a_batch_writes_what_its_messages_write_one_by_one,
    a_refused_message_in_a_batch_is_isolated,
    batched_fusion_outputs_write_what_they_write_one_by_one,
    a_track_s_next_sighting_rewrites_its_one_row,
);

const DAY: i64 = 86_400_000;

fn batch(agent: &str, seq: u64, track: u64, event: TrackEvent, ts: i64, x: f32) -> Envelope {
    Envelope::new(
        agent,
        seq,
        ts,
        Body::Tracks(TrackBatch {
            site: "s1".into(),
            camera: "cam-1".into(),
            frame_w: 1000,
            frame_h: 1000,
            from_ms: ts,
            to_ms: ts,
            frames: 1,
            updates: vec![TrackUpdate {
                track,
                class: ObjectClass::Plate,
                event,
                ts_ms: ts,
                bbox: QBox::from_pixels([x, 10.0, x + 100.0, 110.0], 1000, 1000),
                score: 0.5 + x / 10_000.0,
                embedding: None,
                plate: Some(PlateReading {
                    text: format!("川A1234{}", seq % 10),
                    confidence: 0.5 + seq as f32 / 100.0,
                }),
                link: Some(3),
                thumb: None,
            }],
        }),
    )
}

fn apply(s: &mut Store, env: Envelope) -> Applied {
    s.apply(&env, "t", 10).unwrap()
}

fn messages_apply_once_and_tracks_merge_out_of_order(f: &Fixture) {
    let mut s = f.open();
    assert_eq!(
        apply(&mut s, batch("a1", 1, 7, TrackEvent::Start, 1000, 0.0)),
        Applied::Stored
    );
    assert_eq!(
        apply(&mut s, batch("a1", 2, 7, TrackEvent::Update, 2000, 100.0)),
        Applied::Stored
    );
    assert_eq!(
        apply(&mut s, batch("a1", 2, 7, TrackEvent::Update, 2000, 100.0)),
        Applied::Duplicate
    );
    // The end arrives before a late update; times, box and plate vote still come out right.
    apply(&mut s, batch("a1", 4, 7, TrackEvent::End, 4000, 300.0));
    apply(&mut s, batch("a1", 3, 7, TrackEvent::Update, 3000, 200.0));
    // Several messages in one transaction, a duplicate among them.
    let many = s
        .apply_all(&[
            (
                batch("a2", 1, 1, TrackEvent::Start, 5000, 0.0),
                "t".into(),
                1,
            ),
            (
                batch("a1", 1, 7, TrackEvent::Start, 1000, 0.0),
                "t".into(),
                1,
            ),
        ])
        .unwrap();
    assert_eq!(many, vec![Applied::Stored, Applied::Duplicate]);
    let rows = s.tracks(&TrackFilter::default()).unwrap();
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(
        (r.agent.as_str(), r.first_ms, r.last_ms, r.ended, r.updates),
        ("a1", 1000, 4000, true, 4)
    );
    assert!((r.bbox[0] - 300.0).abs() < 0.1, "{:?}", r.bbox);
    assert_eq!(r.plate.as_deref(), Some("川A12344"), "the newest vote");
    assert!((r.plate_confidence.unwrap() - 0.54).abs() < 1e-6);
    assert_eq!(r.link, Some(3));
    assert_eq!(s.message_count().unwrap(), 5);
    assert_eq!(
        s.message_keys_of("tracks").unwrap(),
        vec![
            ("a1".to_string(), 1),
            ("a1".into(), 2),
            ("a1".into(), 3),
            ("a1".into(), 4),
            ("a2".into(), 1)
        ]
    );
    assert!(s.message_stored("a1", 3).unwrap());
    assert!(!s.message_stored("a1", 9).unwrap());
    let filtered = s
        .tracks(&TrackFilter {
            camera: Some("cam-1".into()),
            since_ms: Some(4500),
            limit: None,
        })
        .unwrap();
    assert_eq!(
        filtered
            .iter()
            .map(|r| r.agent.as_str())
            .collect::<Vec<_>>(),
        vec!["a2"]
    );
    // Another handle (a second aggregator on PostgreSQL) sees it all and dedupes alike.
    let mut other = f.open();
    assert_eq!(
        apply(
            &mut other,
            batch("a1", 3, 7, TrackEvent::Update, 3000, 200.0)
        ),
        Applied::Duplicate
    );
}

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

fn new_vehicle(v: u64, plate: &str, first_ms: i64, clone_of: Option<u64>) -> FuseOutput {
    FuseOutput::NewVehicle {
        vehicle: VehicleId(v),
        plate: plate.into(),
        first_ms,
        clone_of: clone_of.map(VehicleId),
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

fn plate_trajectories_exact_reading_fuzzy_and_flags(f: &Fixture) {
    let mut s = f.open();
    s.apply_fusion(&[
        new_vehicle(1, "川A12345", 1000, None),
        vs(1, "cam-1", 2, 1000, "川A12345", A),
        // Two days later: another PostgreSQL partition.
        vs(1, "cam-3", 1, 2 * DAY, "川A1234S", B),
        vs(1, "cam-2", 3, 300_000, "川A12345", B),
        new_vehicle(2, "川A12345", 2 * DAY + 10_000, Some(1)),
        vs(2, "cam-far", 2, 2 * DAY + 10_000, "川A12345", FAR),
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
            ts_ms: 2 * DAY + 10_000,
        },
        new_vehicle(3, "川A1234B", 5000, None),
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
    let r = s.vehicles_by_plate("川A1234S", false).unwrap();
    assert_eq!(
        r.iter().map(|v| (v.vehicle, v.matched)).collect::<Vec<_>>(),
        vec![(1, PlateMatchKind::Reading)]
    );
    let t = s.vehicle_trajectory_by_plate("川A12345", false).unwrap();
    assert_eq!(
        t.iter()
            .map(|r| (r.identity, r.camera.as_str(), r.first_ms))
            .collect::<Vec<_>>(),
        vec![
            (1, "cam-1", 1000),
            (1, "cam-2", 300_000),
            (1, "cam-3", 2 * DAY),
            (2, "cam-far", 2 * DAY + 10_000)
        ],
        "time order"
    );
    assert_eq!(t[1].evidence, "a1/cam-2/3");
    assert_eq!(t[0].why["rule"], "exact_plate");
    assert_eq!((t[0].lat, t[0].lon), (Some(A[0]), Some(A[1])));
    let f8 = s.vehicles_by_plate("川A12348", true).unwrap();
    assert_eq!(
        f8.iter()
            .map(|v| (v.vehicle, v.matched))
            .collect::<Vec<_>>(),
        vec![(3, PlateMatchKind::Confusable)]
    );
    let fuzzy = s.vehicle_trajectory_by_plate("川A12348", true).unwrap();
    assert_eq!(fuzzy.len(), 1);
    assert_eq!(fuzzy[0].plate.as_deref(), Some("川A1234B"));
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
    s.apply_fusion(&[FuseOutput::VehiclePlate {
        vehicle: VehicleId(3),
        plate: "川A1234S".into(),
    }])
    .unwrap();
    assert_eq!(s.vehicles_by_plate("川A1234S", false).unwrap().len(), 2);
}

fn a_moved_track_is_one_sighting_and_empty_identities_are_deleted(f: &Fixture) {
    let mut s = f.open();
    let mut moved = vs(2, "cam-1", 4, DAY - 1000, "京N8M2Q8", A);
    if let FuseOutput::VehicleSighting { sighting, .. } = &mut moved {
        // A late earlier update moved the track's start into the day before.
        sighting.first_ms = DAY - 3 * 3_600_000 - 1;
    }
    s.apply_fusion(&[
        new_vehicle(1, "京N8M2Q7", 0, None),
        vs(1, "cam-1", 4, DAY + 1000, "京N8M2Q7", A),
        new_vehicle(2, "京N8M2Q8", 0, None),
        vs(2, "cam-1", 4, DAY + 1000, "京N8M2Q8", A),
        moved,
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
    assert_eq!(
        t.len(),
        1,
        "one track, one sighting, wherever its start moved"
    );
    assert_eq!((t[0].identity, t[0].first_ms), (2, DAY - 3 * 3_600_000 - 1));
    // An area is the cameras configured in it (see `Store::sightings_in`).
    s.sync_cameras(&[place("cam-1", A, None)]).unwrap();
    let all = s
        .sightings_in(&Area::BBox([0.0, 0.0], [90.0, 180.0]), 0, i64::MAX / 2)
        .unwrap();
    assert_eq!(all.len(), 1);
}

fn merges_repoint_sightings_aliases_and_links(f: &Fixture) {
    let mut s = f.open();
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
        new_vehicle(7, "川A12345", 1000, None),
        link(3, 7, 1, true),
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
        link(1, 7, 2, false),
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
        (l[0].person, l[0].vehicle, l[0].plate.as_str(), l[0].count),
        (1, 7, "川A12345", 2)
    );
    assert_eq!(l[0].evidence.len(), 1, "evidence follows the merge");
    assert_eq!(l[0].evidence[0]["rule"], "got_in");
    assert_eq!(s.links_of_plate("川A12345").unwrap(), l);
    assert_eq!(s.fusion_next_ids().unwrap(), (8, 4));
}

fn place(c: &str, p: [f64; 2], grid: Option<&str>) -> CameraPlace {
    CameraPlace {
        site: "s1".into(),
        agent: "a1".into(),
        camera: c.into(),
        lat: p[0],
        lon: p[1],
        heading_deg: None,
        fov_deg: None,
        grid: grid.map(Into::into),
    }
}

fn sightings_by_grid_and_box_within_a_window(f: &Fixture) {
    let mut s = f.open();
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
        ps(1, "cam-1", 4, 3 * DAY, A),
    ])
    .unwrap();
    let ids = |s: &Store, a: &Area, from, to| -> Vec<u64> {
        s.sightings_in(a, from, to)
            .unwrap()
            .iter()
            .map(|r| r.track)
            .collect()
    };
    let g7 = Area::Grid("g7".into());
    assert_eq!(ids(&s, &g7, 0, 1_000_000), vec![1]);
    assert_eq!(
        ids(&s, &g7, 5999, 7000),
        vec![1],
        "the window overlaps 1000..6000"
    );
    assert!(ids(&s, &g7, 6001, 7000).is_empty());
    assert_eq!(ids(&s, &g7, 0, 4 * DAY), vec![1, 4]);
    assert_eq!(ids(&s, &g7, 2 * DAY, 4 * DAY), vec![4]);
    let city = Area::BBox([30.7, 104.0], [30.6, 104.1]);
    assert_eq!(ids(&s, &city, 0, DAY), vec![1, 2]);
    s.sync_cameras(&[place("cam-1", A, Some("g9"))]).unwrap();
    assert!(ids(&s, &g7, 0, 4 * DAY).is_empty());
}

fn alert(seq: u64, id: &str, ts_ms: i64, priority: Priority, summary: &str) -> Envelope {
    Envelope::new(
        "agent-1",
        seq,
        ts_ms,
        Body::Alert(Alert {
            site: "s1".into(),
            camera: "cam-1".into(),
            alert_id: id.into(),
            kind: AlertKind::FaceWatchlist,
            priority,
            ts_ms,
            track: Some(7),
            summary: summary.into(),
            details: BTreeMap::from([("patient".to_string(), "p-1".to_string())]),
            evidence: vec![Evidence {
                role: "crop".into(),
                mime: "image/jpeg".into(),
                data: vec![0xff, 0xd8, seq as u8, 0xff, 0xd9],
            }],
        }),
    )
}

fn alerts_are_stored_updated_and_acknowledged(f: &Fixture) {
    let mut s = f.open();
    assert_eq!(
        apply(&mut s, alert(1, "x1", 10_000, Priority::High, "alone")),
        Applied::NewAlert
    );
    assert_eq!(
        apply(&mut s, alert(2, "x1", 20_000, Priority::Low, "accompanied")),
        Applied::Stored
    );
    // A late, older report counts but does not overwrite the newer one.
    apply(&mut s, alert(3, "x1", 15_000, Priority::High, "older"));
    apply(&mut s, alert(4, "x2", 30_000, Priority::Normal, "other"));
    let all = s.alerts(&AlertFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(),
        vec!["x2", "x1"]
    );
    let x1 = &all[1];
    assert_eq!(
        (x1.first_ms, x1.last_ms, x1.sightings, x1.priority.as_str()),
        (10_000, 20_000, 3, "low")
    );
    assert_eq!(x1.summary, "accompanied");
    assert_eq!(x1.details["patient"], "p-1");
    assert_eq!(x1.evidence, vec!["crop".to_string()]);
    assert_eq!(
        s.alert_evidence("agent-1", "x1", "crop").unwrap(),
        Some(("image/jpeg".to_string(), vec![0xff, 0xd8, 2, 0xff, 0xd9]))
    );
    assert!(s.ack_alert("agent-1", "x1", "op", "seen").unwrap());
    assert!(!s.ack_alert("agent-1", "x1", "op", "again").unwrap());
    let open = s
        .alerts(&AlertFilter {
            open_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].alert_id, "x2");
    let acked = s
        .alerts(&AlertFilter {
            since_ms: Some(20_000),
            kind: Some("face_watchlist".into()),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(acked[0].alert_id, "x2");
    let x1 = &s.alerts(&AlertFilter::default()).unwrap()[1];
    assert_eq!(
        (x1.acked_by.as_deref(), x1.ack_note.as_deref()),
        (Some("op"), Some("seen"))
    );
}

fn watchlists_version_and_entries(f: &Fixture) {
    use aggregator::store::{Contact, FaceEnrollment};
    use sharpeyes_wire::{FaceRole, QEmbedding};
    let mut s = f.open();
    let emb = |x: f32| QEmbedding::quantize(&[x, 1.0 - x, 0.5, 0.25]);
    let patient = FaceEnrollment {
        id: "P1".into(),
        role: FaceRole::Patient,
        name: "W. Li".into(),
        guardian_of: vec![],
        contacts: vec![Contact {
            name: "son".into(),
            phone: "123".into(),
        }],
        consent: Some("case-7".into()),
        embeddings: vec![emb(0.1), emb(0.2)],
    };
    let guardian = FaceEnrollment {
        id: "G1".into(),
        role: FaceRole::Guardian,
        name: "son".into(),
        guardian_of: vec!["P1".into()],
        contacts: vec![],
        consent: None,
        embeddings: vec![emb(0.9)],
    };
    assert_eq!(s.watchlist_version().unwrap(), 0);
    assert!(matches!(
        s.enroll_face(&guardian),
        Err(StoreError::UnknownPatient(_))
    ));
    assert_eq!(s.enroll_face(&patient).unwrap(), 1);
    assert_eq!(s.enroll_face(&guardian).unwrap(), 2);
    assert_eq!(s.add_plate("川a 12345", "stolen").unwrap(), 3);
    assert_eq!(s.add_plate("川A12345", "stolen").unwrap(), 3, "no change");
    let w = s.watchlists().unwrap();
    assert_eq!(w.version, 3);
    assert_eq!(
        w.faces.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        vec!["P1", "G1"]
    );
    assert_eq!(w.plates[0].plate, "川A12345");
    let l = s.watchlist_listing().unwrap();
    assert_eq!(l.faces[0].guardians, vec!["G1".to_string()]);
    assert_eq!(l.faces[0].photos, 2);
    let r = s.remove_face("P1").unwrap().unwrap();
    assert_eq!(r.guardians_removed, vec!["G1".to_string()]);
    assert_eq!(r.version, 4);
    assert_eq!(s.remove_plate("川A12345").unwrap(), Some(5));
    assert_eq!(s.remove_plate("川A12345").unwrap(), None);
    let reader = match f {
        Fixture::Sqlite(d) => Store::open_read_only(&d.path().join("t.db")).unwrap(),
        Fixture::Postgres(_, url) => Store::open_postgres(url).unwrap(),
    };
    assert_eq!(reader.watchlist_version().unwrap(), 5);
    assert!(reader.watchlists().unwrap().faces.is_empty());
}

/// Privacy by default: the representative faces of fused persons (embeddings of whoever
/// passed a camera) are deleted with the sightings they came from; on SQLite deleted rows
/// are overwritten (`secure_delete`), not left readable in the file's free pages.
fn person_faces_age_out_with_the_sightings(f: &Fixture) {
    let mut s = f.open();
    let now = 40 * DAY;
    let face = |track: u64, ts_ms: i64| FuseOutput::PersonFace {
        person: PersonId(1),
        face: FaceRep {
            track: TrackRef {
                camera: cam("cam-1"),
                track,
            },
            model: "sface_2021dec".into(),
            // A pattern of its own per track, to look for in the file afterwards.
            embedding: (0..128)
                .map(|i| (track * 1000 + i) as f32 / 1_000_003.0)
                .collect(),
            quality: 0.9,
            ts_ms,
        },
    };
    s.apply_fusion(&[
        ps(1, "cam-1", 1, 2 * DAY, A),
        ps(1, "cam-1", 2, 39 * DAY, A),
        face(1, 2 * DAY),
        face(2, 39 * DAY),
    ])
    .unwrap();
    assert_eq!(s.person_faces(None, 128).unwrap().0.len(), 2);
    let policy = RetentionPolicy {
        days: 30,
        alert_days: 30,
        evidence_sighting_days: 30,
        evidence_alert_days: 30,
        chunk: 100,
    };
    assert_eq!(
        s.retention_preview(&policy, now)
            .unwrap()
            .deleted
            .get("person_faces"),
        Some(&1)
    );
    while !s.retention_step(&policy, now).unwrap().done {}
    let left = s.person_faces(None, 128).unwrap().0;
    assert_eq!(
        left.iter().map(|r| r.track).collect::<Vec<_>>(),
        vec![2],
        "the face of the old sighting is gone, the recent one kept"
    );
    if let Fixture::Sqlite(dir) = f {
        // Closed (the WAL is checkpointed into the file): the old face's bytes are nowhere
        // in it, the kept one's are.
        drop(s);
        let file = std::fs::read(dir.path().join("t.db")).unwrap();
        let bytes_of = |track: u64| -> Vec<u8> {
            (0..16)
                .flat_map(|i| ((track * 1000 + i) as f32 / 1_000_003.0).to_le_bytes())
                .collect()
        };
        let found = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
        assert!(found(&bytes_of(2)), "the kept face is in the file");
        assert!(!found(&bytes_of(1)), "the deleted face was overwritten");
    }
}

fn retention_deletes_old_rows_in_chunks(f: &Fixture) {
    let mut s = f.open();
    let now = 40 * DAY + 3_600_000;
    // Ten old sightings (days 1..=5) and two recent ones (day 39, 40); old and new alerts.
    let mut out = Vec::new();
    for i in 0..10u64 {
        out.push(vs(
            1,
            "cam-1",
            i,
            (1 + i as i64 / 2) * DAY + 1000,
            "川A12345",
            A,
        ));
    }
    out.push(vs(1, "cam-1", 100, 39 * DAY + 5000, "川A12345", A));
    out.push(vs(1, "cam-1", 101, 40 * DAY + 5000, "川A12345", A));
    out.push(new_vehicle(1, "川A12345", DAY, None));
    s.apply_fusion(&out).unwrap();
    for i in 0..6u64 {
        apply(
            &mut s,
            batch("a1", i + 1, i, TrackEvent::End, (1 + i as i64) * DAY, 0.0),
        );
    }
    apply(&mut s, batch("a1", 50, 50, TrackEvent::End, 39 * DAY, 0.0));
    apply(&mut s, alert(1, "old", 2 * DAY, Priority::High, "old"));
    apply(&mut s, alert(2, "new", 39 * DAY, Priority::High, "new"));
    let policy = RetentionPolicy {
        days: 30,
        alert_days: 30,
        evidence_sighting_days: 30,
        evidence_alert_days: 30,
        chunk: 4,
    };
    let preview = s.retention_preview(&policy, now).unwrap();
    assert_eq!(preview.deleted.get("sightings"), Some(&10));
    assert_eq!(preview.deleted.get("tracks"), Some(&6));
    assert_eq!(preview.deleted.get("track_points"), Some(&6));
    assert_eq!(preview.deleted.get("alerts"), Some(&1));
    // Messages are aged by arrival, which is now here: none expire.
    assert_eq!(preview.deleted.get("messages"), None);
    let partitions = preview.partitions_dropped.len();
    match s.dialect() {
        Dialect::Sqlite => assert_eq!(partitions, 0),
        // Sightings of days 1..=5, track points of days 1..=6.
        Dialect::Postgres => assert_eq!(partitions, 11, "{:?}", preview.partitions_dropped),
    }
    assert_eq!(
        s.vehicle_trajectory_by_plate("川A12345", false)
            .unwrap()
            .len(),
        12,
        "a dry run changes nothing"
    );
    let mut steps = 0;
    let mut deleted: BTreeMap<&str, u64> = BTreeMap::new();
    let mut dropped = Vec::new();
    loop {
        let r = s.retention_step(&policy, now).unwrap();
        steps += 1;
        for (k, n) in r.deleted {
            assert!(n <= 4, "bounded chunks: {k} {n}");
            *deleted.entry(k).or_default() += n;
        }
        dropped.extend(r.partitions_dropped);
        if r.done {
            break;
        }
        assert!(steps < 10);
    }
    let t = s.vehicle_trajectory_by_plate("川A12345", false).unwrap();
    assert_eq!(
        t.iter().map(|r| r.track).collect::<Vec<_>>(),
        vec![100, 101],
        "only the recent sightings are left"
    );
    assert_eq!(
        s.tracks(&TrackFilter::default())
            .unwrap()
            .iter()
            .map(|t| t.track)
            .collect::<Vec<_>>(),
        vec![50]
    );
    let alerts = s.alerts(&AlertFilter::default()).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(s.alert_evidence("agent-1", "old", "crop").unwrap(), None);
    match s.dialect() {
        Dialect::Sqlite => {
            assert_eq!(deleted.get("sightings"), Some(&10));
            assert!(steps >= 3, "10 rows in chunks of 4");
        }
        Dialect::Postgres => {
            assert_eq!(dropped.len(), 11);
            assert_eq!(deleted.get("sightings"), None, "whole partitions dropped");
        }
    }
    // Partitions ahead: today's and the next two days' exist before anything is written.
    s.create_partitions_ahead(now, 2).unwrap();
    if let Fixture::Postgres(_, url) = f {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname IN ('sightings_d41', 'sightings_d42', 'track_points_d42')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
    }
    let again = s.retention_preview(&policy, now).unwrap();
    assert!(again.deleted.is_empty() && again.partitions_dropped.is_empty());
    // New rows for a dropped day still find (re-create) their partition.
    s.apply_fusion(&[vs(1, "cam-1", 200, DAY + 7, "川A12345", A)])
        .unwrap();
    assert_eq!(
        s.vehicle_trajectory_by_plate("川A12345", false)
            .unwrap()
            .len(),
        3
    );
    // 0 keeps forever.
    let keep = RetentionPolicy {
        days: 0,
        alert_days: 0,
        evidence_sighting_days: 0,
        evidence_alert_days: 0,
        chunk: 4,
    };
    assert!(s.retention_preview(&keep, now).unwrap().deleted.is_empty());
}

fn one_fusion_owner_and_the_inbox(f: &Fixture) {
    let mut a = f.open();
    let mut b = f.open();
    assert!(a.fusion_owner().unwrap());
    match a.dialect() {
        Dialect::Sqlite => {
            // One writer: it always owns fusion.
            assert!(b.fusion_owner().unwrap());
            return;
        }
        Dialect::Postgres => assert!(!b.fusion_owner().unwrap(), "one owner at a time"),
    }
    // B may not write fusion results; nothing of its transaction is written.
    let msg = batch("a1", 1, 7, TrackEvent::Start, 1000, 0.0);
    let err = b
        .commit_batch(
            &[(msg.clone(), "t".into(), 1)],
            &[new_vehicle(1, "川A12345", 0, None)],
            Fusion::Fused(&[]),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFusionOwner), "{err}");
    assert!(!a.message_stored("a1", 1).unwrap());
    // B stores and queues; a redelivery to A is a duplicate and queues nothing.
    let applied = b
        .commit_batch(&[(msg.clone(), "t".into(), 1)], &[], Fusion::Queue)
        .unwrap();
    assert_eq!(applied, vec![Applied::Stored]);
    b.commit_batch(&[(msg.clone(), "t".into(), 1)], &[], Fusion::Queue)
        .unwrap();
    assert_eq!(a.fusion_inbox_len().unwrap(), 1);
    let q = a.fusion_inbox(10).unwrap();
    assert_eq!((q[0].agent.as_str(), q[0].seq), ("a1", 1));
    assert_eq!(q[0].envelope.as_ref().unwrap(), &msg);
    // The owner fuses it and takes it out of the inbox in the same transaction.
    a.commit_batch(
        &[],
        &[new_vehicle(1, "川A12345", 0, None)],
        Fusion::Fused(&[("a1".into(), 1)]),
    )
    .unwrap();
    assert_eq!(a.fusion_inbox_len().unwrap(), 0);
    // The owner lets go (or dies): B takes over.
    a.release_fusion_owner().unwrap();
    assert!(b.fusion_owner().unwrap());
    assert!(!a.fusion_owner().unwrap());
    b.apply_fusion(&[new_vehicle(2, "川A12346", 0, None)])
        .unwrap();
    drop(b);
    // B's session ended: the lock is free again.
    let mut c = f.open();
    assert!(c.fusion_owner().unwrap());
    assert_eq!(c.fusion_next_ids().unwrap(), (3, 1));
    // C's session is cut (a network failure, a server restart): D takes over, and C, whose
    // store reconnects, may not write what it fused as the owner.
    let Fixture::Postgres(_, url) = f else {
        unreachable!()
    };
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND objid = 1 AND objsubid = 2 AND granted",
            &[],
        )
        .unwrap();
    assert_eq!(killed.len(), 1);
    let d = f.open();
    let mut took = false;
    for _ in 0..50 {
        took = d.fusion_owner().unwrap();
        if took {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(took, "the lock is freed with the session");
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(c.apply_fusion(&[new_vehicle(9, "川A99999", 0, None)]));
    }
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::NotFusionOwner))),
        "{results:?}"
    );
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    assert!(c.vehicles_by_plate("川A99999", false).unwrap().is_empty());
    assert!(!c.fusion_owner().unwrap());
}

fn cli(args: &[&str]) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

fn cli_queries_answer_from_either_backend(f: &Fixture) {
    let mut s = f.open();
    let now = sharpeyes_wire::now_ms();
    let t = now - 3_600_000;
    s.sync_cameras(&[place("cam-1", A, Some("g7")), place("cam-2", B, Some("g7"))])
        .unwrap();
    s.apply_fusion(&[
        new_vehicle(1, "川A1234B", t, None),
        vs(1, "cam-1", 2, t, "川A1234B", A),
        vs(1, "cam-2", 3, t + 600_000, "川A1234B", B),
        FuseOutput::NewPerson {
            person: PersonId(1),
            first_ms: t,
        },
        ps(1, "cam-1", 1, t - 10_000, A),
        link(1, 1, 1, true),
    ])
    .unwrap();
    apply(&mut s, alert(1, "x1", t, Priority::High, "alone"));
    apply(&mut s, batch("a1", 1, 7, TrackEvent::Start, t, 0.0));
    apply(
        &mut s,
        batch("a1", 2, 8, TrackEvent::Start, now - 40 * DAY, 0.0),
    );
    drop(s);
    let db = f.db_arg();
    let db = db.as_str();
    let traj = cli(&["trajectory", "--plate", "川A1234B", "--json", "--db", db]);
    assert_eq!(traj["sightings"].as_array().unwrap().len(), 2, "{traj:#}");
    let fuzzy = cli(&[
        "trajectory",
        "--plate",
        "川A12348",
        "--fuzzy",
        "--json",
        "--db",
        db,
    ]);
    assert_eq!(fuzzy["vehicles"][0]["matched"], "confusable", "{fuzzy:#}");
    let geo = cli(&["trajectory", "--plate", "川A1234B", "--geojson", "--db", db]);
    assert_eq!(geo["type"], "FeatureCollection");
    let person = cli(&["trajectory", "--person", "P-1", "--json", "--db", db]);
    assert_eq!(
        person["sightings"].as_array().unwrap().len(),
        1,
        "{person:#}"
    );
    let links = cli(&["links", "--person", "P-1", "--json", "--db", db]);
    assert_eq!(links[0]["plate"], "川A1234B", "{links:#}");
    let by_plate = cli(&["links", "--plate", "川A1234B", "--json", "--db", db]);
    assert_eq!(by_plate, links);
    let grid = cli(&[
        "sightings",
        "--grid",
        "g7",
        "--from",
        "3h",
        "--to",
        "0s",
        "--json",
        "--db",
        db,
    ]);
    assert_eq!(grid["sightings"].as_array().unwrap().len(), 3, "{grid:#}");
    let bbox = cli(&[
        "sightings",
        "--bbox",
        "30.6,104.0,30.7,104.1",
        "--from",
        "3h",
        "--json",
        "--db",
        db,
    ]);
    assert_eq!(bbox["sightings"].as_array().unwrap().len(), 3, "{bbox:#}");
    // CSV: a header and a row per sighting, the same as the library writes.
    let raw = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, csv, err) = raw(&["trajectory", "--plate", "川A1234B", "--csv", "--db", db]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{csv}");
    // A byte order mark for spreadsheets, then the header; local times in Beijing time (no
    // --config: the default api.time_zone).
    assert_eq!(
        lines[0],
        format!(
            "\u{feff}{}",
            aggregator::query::SIGHTINGS_CSV_HEADER.join(",")
        )
    );
    assert!(
        lines[1].starts_with("V-1,vehicle,s1,a1,cam-1,2,car,"),
        "{csv}"
    );
    assert!(lines[1].contains("+08:00,"), "{csv}");
    let (ok, csv, err) = raw(&[
        "sightings",
        "--grid",
        "g7",
        "--from",
        "3h",
        "--csv",
        "--db",
        db,
    ]);
    assert!(ok && csv.matches("\r\n").count() == 4, "{err}{csv}");
    // The shared parsers' errors reach the user; --csv and --json exclude each other.
    for (args, says) in [
        (
            &["trajectory", "--person", "P-x", "--json", "--db", db][..],
            "not a person id",
        ),
        (
            &[
                "sightings",
                "--bbox",
                "91,0,0,0",
                "--from",
                "3h",
                "--db",
                db,
            ][..],
            "latitude 91",
        ),
        (
            &["sightings", "--bbox", "1,2,3", "--from", "3h", "--db", db][..],
            "got 3",
        ),
        (
            &["sightings", "--grid", "g7", "--from", "soon", "--db", db][..],
            "neither an RFC 3339 time",
        ),
        (
            &["trajectory", "--plate", "x", "--csv", "--json", "--db", db][..],
            "cannot be used with",
        ),
    ] {
        let (ok, _, err) = raw(args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    // An alert's image through the evidence store.
    let out = tempfile::tempdir().unwrap();
    let crop = out.path().join("crop.jpg");
    let (ok, said, err) = raw(&[
        "alerts",
        "evidence",
        "agent-1/x1",
        "--role",
        "crop",
        "--out",
        crop.to_str().unwrap(),
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    assert!(said.contains("image/jpeg, 5 bytes"), "{said}");
    assert_eq!(
        std::fs::read(&crop).unwrap(),
        vec![0xff, 0xd8, 1, 0xff, 0xd9]
    );
    let by_hash = out.path().join("by-hash.jpg");
    let sha1 = sha(&[0xff, 0xd8, 1, 0xff, 0xd9]);
    let (ok, said, err) = raw(&[
        "evidence",
        &sha1,
        "--out",
        by_hash.to_str().unwrap(),
        "--db",
        db,
    ]);
    assert!(ok && said.contains("kind alert"), "{said}{err}");
    assert_eq!(
        std::fs::read(&by_hash).unwrap(),
        vec![0xff, 0xd8, 1, 0xff, 0xd9]
    );
    let (ok, _, err) = raw(&["evidence", "../../etc/passwd", "--out", "x", "--db", db]);
    assert!(!ok && err.contains("not a SHA-256"), "{err}");
    let (ok, _, err) = raw(&["evidence", &"0".repeat(64), "--out", "x", "--db", db]);
    assert!(!ok && err.contains("no evidence image"), "{err}");
    let alerts = cli(&["alerts", "--json", "--db", db]);
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(
        alerts[0]["evidence_refs"]["crop"],
        sha(&[0xff, 0xd8, 1, 0xff, 0xd9])
    );
    let tracks = cli(&["tracks", "--json", "--db", db]);
    assert_eq!(tracks.as_array().unwrap().len(), 2);
    let dry = cli(&["retention", "--dry-run", "--json", "--db", db]);
    assert_eq!(dry["deleted"]["tracks"], 1, "{dry:#}");
    let done = cli(&["retention", "--json", "--db", db]);
    assert_eq!(done["deleted"]["tracks"], 1, "{done:#}");
    assert_eq!(
        cli(&["tracks", "--json", "--db", db])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A tiny "JPEG" (SOI marker, then `tag`): the store checks the marker, not the whole image.
fn jpeg(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0xff, 0xd8, 0xff, 0xe0];
    v.extend(std::iter::repeat_n(tag, len));
    v.extend([0xff, 0xd9]);
    v
}

fn with_thumb(mut env: Envelope, data: Vec<u8>) -> Envelope {
    if let Body::Tracks(b) = &mut env.body {
        for u in &mut b.updates {
            u.thumb = Some(Evidence {
                role: "vehicle".into(),
                mime: "image/jpeg".into(),
                data: data.clone(),
            });
        }
    }
    env
}

fn sha(data: &[u8]) -> String {
    aggregator::store::evidence::sha256_hex(data)
}

fn alert_with(seq: u64, id: &str, ts_ms: i64, data: Vec<u8>) -> Envelope {
    let mut env = alert(seq, id, ts_ms, Priority::High, "x");
    if let Body::Alert(a) = &mut env.body {
        a.evidence = vec![
            Evidence {
                role: "crop".into(),
                mime: "image/jpeg".into(),
                data,
            },
            // Refused: not an image of its type, and a role that is not a plain name.
            Evidence {
                role: "frame".into(),
                mime: "image/jpeg".into(),
                data: b"<script>".to_vec(),
            },
            Evidence {
                role: "a=b,c".into(),
                mime: "image/jpeg".into(),
                data: jpeg(9, 3),
            },
        ];
    }
    env
}

fn evidence_is_content_addressed_and_referenced(f: &Fixture) {
    let mut s = f.open();
    let (j1, j2, j3) = (jpeg(1, 100), jpeg(2, 200), jpeg(3, 50));
    // Two tracks with the same best shot: stored once.
    apply(
        &mut s,
        with_thumb(batch("a1", 1, 7, TrackEvent::Start, 1000, 0.0), j1.clone()),
    );
    apply(
        &mut s,
        with_thumb(batch("a1", 2, 8, TrackEvent::Start, 1000, 0.0), j1.clone()),
    );
    // A redelivery changes nothing.
    apply(
        &mut s,
        with_thumb(batch("a1", 2, 8, TrackEvent::Start, 1000, 0.0), j1.clone()),
    );
    let counts = s.evidence_counts().unwrap();
    assert_eq!(counts.get("sighting"), Some(&(1, j1.len() as u64)));
    // A better shot later replaces track 7's; an older one arriving late does not.
    apply(
        &mut s,
        with_thumb(batch("a1", 4, 7, TrackEvent::Update, 3000, 0.0), j2.clone()),
    );
    apply(
        &mut s,
        with_thumb(batch("a1", 3, 7, TrackEvent::Update, 2000, 0.0), j3.clone()),
    );
    // An update without a shot keeps the one there.
    apply(&mut s, batch("a1", 5, 7, TrackEvent::End, 4000, 0.0));
    let tracks = s.tracks(&TrackFilter::default()).unwrap();
    let crop = |t: u64| {
        tracks
            .iter()
            .find(|r| r.track == t)
            .unwrap()
            .evidence_crop
            .clone()
    };
    assert_eq!(crop(7), Some(sha(&j2)));
    assert_eq!(crop(8), Some(sha(&j1)));
    // Sightings show their track's shot (PostgreSQL: the partitioned table joins tracks).
    s.apply_fusion(&[
        new_vehicle(1, "川A12345", 1000, None),
        vs(1, "cam-1", 7, 1000, "川A12345", A),
        vs(1, "cam-1", 8, 2 * DAY, "川A12345", B),
        vs(1, "cam-1", 99, 2 * DAY + 1, "川A12345", B),
    ])
    .unwrap();
    let rows = s.vehicle_trajectory_by_plate("川A12345", false).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.track, r.evidence_crop.clone()))
            .collect::<Vec<_>>(),
        vec![(7, Some(sha(&j2))), (8, Some(sha(&j1))), (99, None)]
    );
    let json = serde_json::to_value(&rows[2]).unwrap();
    assert!(json["evidence_crop"].is_null(), "{json}");
    let csv = aggregator::query::sightings_csv(&rows, &Default::default());
    assert!(csv.contains(&sha(&j2)), "{csv}");
    // Read back by hash; a malformed reference is an error, never a lookup.
    let blob = s.evidence(&sha(&j2)).unwrap().unwrap();
    assert_eq!(
        (blob.mime.as_str(), blob.kind.as_str(), &blob.bytes),
        ("image/jpeg", "sighting", &j2)
    );
    assert_eq!(blob.sha256, sha(&j2));
    assert_eq!(s.evidence(&"0".repeat(64)).unwrap(), None);
    for bad in [
        "".to_string(),
        sha(&j2).to_uppercase(),
        format!("{}'", &sha(&j2)[..63]),
        "../evidence".into(),
    ] {
        assert!(
            matches!(s.evidence(&bad), Err(StoreError::BadEvidenceRef(_))),
            "{bad}"
        );
    }
    // An alert showing the same image as a track: one row, now of kind alert (kept as long
    // as alerts). The refused images are left out, the alert is stored.
    assert_eq!(
        apply(&mut s, alert_with(10, "al-1", 5000, j1.clone())),
        Applied::NewAlert
    );
    let a = &s.alerts(&AlertFilter::default()).unwrap()[0];
    assert_eq!(a.evidence, vec!["crop".to_string()]);
    assert_eq!(
        a.evidence_refs,
        BTreeMap::from([("crop".to_string(), sha(&j1))])
    );
    assert_eq!(s.evidence(&sha(&j1)).unwrap().unwrap().kind, "alert");
    assert_eq!(
        s.alert_evidence("agent-1", "al-1", "crop").unwrap(),
        Some(("image/jpeg".to_string(), j1.clone()))
    );
    assert_eq!(s.alert_evidence("agent-1", "al-1", "frame").unwrap(), None);
    assert_eq!(s.take_evidence_refused(), 2, "the frame and the bad role");
    assert_eq!(s.take_evidence_refused(), 0);
    let counts = s.evidence_counts().unwrap();
    assert_eq!(counts.get("alert").map(|c| c.0), Some(1));
    assert_eq!(counts.get("sighting").map(|c| c.0), Some(2), "j2 and j3");
    // A thumb that is not an image is left out; the track is stored.
    apply(
        &mut s,
        with_thumb(
            batch("a1", 20, 30, TrackEvent::Start, 1000, 0.0),
            b"GIF89a".to_vec(),
        ),
    );
    assert_eq!(s.take_evidence_refused(), 1);
    let t30 = s.tracks(&TrackFilter::default()).unwrap();
    assert_eq!(
        t30.iter().find(|r| r.track == 30).unwrap().evidence_crop,
        None
    );
}

fn evidence_retention_by_kind_keeps_what_is_referenced(f: &Fixture) {
    let mut s = f.open();
    let now = 40 * DAY;
    let (old_shot, orphan, new_shot) = (jpeg(1, 10), jpeg(2, 10), jpeg(3, 10));
    let (old_alert, new_alert) = (jpeg(4, 10), jpeg(5, 10));
    // Track 1 (day 1): a shot, then a better one: the first is an orphan at once.
    apply(
        &mut s,
        with_thumb(
            batch("a1", 1, 1, TrackEvent::Start, DAY, 0.0),
            orphan.clone(),
        ),
    );
    apply(
        &mut s,
        with_thumb(
            batch("a1", 2, 1, TrackEvent::End, DAY + 10, 0.0),
            old_shot.clone(),
        ),
    );
    // Track 2 (day 39).
    apply(
        &mut s,
        with_thumb(
            batch("a1", 3, 2, TrackEvent::End, 39 * DAY, 0.0),
            new_shot.clone(),
        ),
    );
    apply(&mut s, alert_with(4, "old", 2 * DAY, old_alert.clone()));
    apply(&mut s, alert_with(5, "new", 39 * DAY, new_alert.clone()));
    let policy = RetentionPolicy {
        days: 30,
        alert_days: 30,
        evidence_sighting_days: 30,
        evidence_alert_days: 30,
        chunk: 1,
    };
    // Now only the orphan is expired and unreferenced.
    let preview = s.retention_preview(&policy, now).unwrap();
    assert_eq!(preview.deleted.get("evidence"), Some(&1));
    // Images of rows still kept are never deleted, however short their own days.
    let short = RetentionPolicy {
        days: 0,
        alert_days: 0,
        evidence_sighting_days: 1,
        evidence_alert_days: 1,
        chunk: 100,
    };
    let r = s.retention_step(&short, now).unwrap();
    assert_eq!(r.deleted.get("evidence"), Some(&1), "only the orphan");
    assert!(s.evidence(&sha(&orphan)).unwrap().is_none());
    for kept in [&old_shot, &new_shot, &old_alert, &new_alert] {
        assert!(s.evidence(&sha(kept)).unwrap().is_some());
    }
    // The policy of 30 days: the old track and alert go, and with them their images (in the
    // same steps); chunks of one row per kind and step (evidence: per evidence kind).
    let mut deleted: BTreeMap<&str, u64> = BTreeMap::new();
    for step in 0.. {
        assert!(step < 20);
        let r = s.retention_step(&policy, now).unwrap();
        for (k, n) in r.deleted {
            assert!(n <= if k == "evidence" { 2 } else { 1 }, "{k} {n}");
            *deleted.entry(k).or_default() += n;
        }
        if r.done {
            break;
        }
    }
    assert_eq!(deleted.get("evidence"), Some(&2), "{deleted:?}");
    assert!(s.evidence(&sha(&old_shot)).unwrap().is_none());
    assert!(s.evidence(&sha(&old_alert)).unwrap().is_none());
    assert!(s.evidence(&sha(&new_shot)).unwrap().is_some());
    assert_eq!(
        s.alert_evidence("agent-1", "new", "crop").unwrap(),
        Some(("image/jpeg".to_string(), new_alert.clone()))
    );
    // Kind by kind: 0 keeps that kind forever. The new alert goes (alert days 1), its image
    // stays (alert evidence days 0); the new track stays (days 0), so does its image.
    let by_kind = RetentionPolicy {
        days: 0,
        alert_days: 1,
        evidence_sighting_days: 1,
        evidence_alert_days: 0,
        chunk: 100,
    };
    // (A second past the day: the new alert and the new track's shot are older than a day.)
    let now = now + 1000;
    let r = s.retention_step(&by_kind, now).unwrap();
    assert_eq!(r.deleted.get("alerts"), Some(&1));
    assert_eq!(r.deleted.get("evidence"), None);
    assert!(s.evidence(&sha(&new_alert)).unwrap().is_some());
    // Unreferenced and old: the alert image goes once alert evidence days apply.
    let r = s
        .retention_step(
            &RetentionPolicy {
                evidence_alert_days: 1,
                ..by_kind
            },
            now,
        )
        .unwrap();
    assert_eq!(r.deleted.get("evidence"), Some(&1));
    assert!(s.evidence(&sha(&new_alert)).unwrap().is_none());
    assert_eq!(
        s.evidence_counts().unwrap().get("sighting").map(|c| c.0),
        Some(1)
    );
}

/// A schema-8 store (alert images inline in `alert_evidence.data`, no `evidence` table, no
/// `tracks.evidence_crop`) opened by this build: the images move to the evidence store, the
/// alerts keep them.
fn schema_8_alert_images_move_to_the_evidence_store(f: &Fixture) {
    let (j1, j2) = (jpeg(1, 30), jpeg(2, 30));
    {
        let mut s = f.open();
        apply(&mut s, batch("a1", 1, 7, TrackEvent::Start, 1000, 0.0));
        apply(&mut s, alert(2, "x1", 10_000, Priority::High, "alone"));
        apply(&mut s, alert(3, "x2", 20_000, Priority::High, "again"));
    }
    let downgrade = format!(
        "DROP INDEX tracks_by_evidence;
         ALTER TABLE tracks DROP COLUMN evidence_crop;
         DROP TABLE alert_evidence;
         DROP TABLE evidence;
         CREATE TABLE alert_evidence (
             agent TEXT NOT NULL, alert_id TEXT NOT NULL, role TEXT NOT NULL,
             mime TEXT NOT NULL, ts_ms {int} NOT NULL, data {blob} NOT NULL,
             PRIMARY KEY (agent, alert_id, role));",
        int = if matches!(f, Fixture::Sqlite(_)) {
            "INTEGER"
        } else {
            "BIGINT"
        },
        blob = if matches!(f, Fixture::Sqlite(_)) {
            "BLOB"
        } else {
            "BYTEA"
        },
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match f {
        Fixture::Sqlite(d) => {
            let c = rusqlite::Connection::open(d.path().join("t.db")).unwrap();
            c.execute_batch(&downgrade).unwrap();
            c.execute_batch(&format!(
                "INSERT INTO alert_evidence VALUES
                   ('agent-1', 'x1', 'crop', 'image/jpeg', 10000, x'{}'),
                   ('agent-1', 'x1', 'face', 'image/jpeg', 10000, x'{}'),
                   ('agent-1', 'x2', 'crop', 'image/jpeg', 20000, x'{}');
                 PRAGMA user_version = 8;",
                hex(&j1),
                hex(&j2),
                hex(&j1)
            ))
            .unwrap();
        }
        Fixture::Postgres(_, url) => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
            c.batch_execute(&downgrade).unwrap();
            c.batch_execute(&format!(
                "INSERT INTO alert_evidence VALUES
                   ('agent-1', 'x1', 'crop', 'image/jpeg', 10000, '\\x{}'),
                   ('agent-1', 'x1', 'face', 'image/jpeg', 10000, '\\x{}'),
                   ('agent-1', 'x2', 'crop', 'image/jpeg', 20000, '\\x{}');
                 UPDATE schema_version SET version = 8;",
                hex(&j1),
                hex(&j2),
                hex(&j1)
            ))
            .unwrap();
        }
    }
    let mut s = f.open();
    // Identical images stored once.
    assert_eq!(
        s.evidence_counts().unwrap(),
        BTreeMap::from([("alert".to_string(), (2, (j1.len() + j2.len()) as u64))])
    );
    assert_eq!(
        s.alert_evidence("agent-1", "x1", "face").unwrap(),
        Some(("image/jpeg".to_string(), j2.clone()))
    );
    let alerts = s.alerts(&AlertFilter::default()).unwrap();
    assert_eq!(alerts[1].alert_id, "x1");
    assert_eq!(
        alerts[1].evidence_refs,
        BTreeMap::from([
            ("crop".to_string(), sha(&j1)),
            ("face".to_string(), sha(&j2))
        ])
    );
    assert_eq!(alerts[0].evidence_refs["crop"], sha(&j1));
    let blob = s.evidence(&sha(&j1)).unwrap().unwrap();
    assert_eq!((blob.kind.as_str(), blob.created_ms), ("alert", 10_000));
    // The migrated store takes best shots.
    apply(
        &mut s,
        with_thumb(batch("a1", 9, 7, TrackEvent::End, 2000, 0.0), j2.clone()),
    );
    assert_eq!(
        s.tracks(&TrackFilter::default()).unwrap()[0].evidence_crop,
        Some(sha(&j2))
    );
    // Opening again changes nothing.
    drop(s);
    let s = f.open();
    assert_eq!(s.evidence_counts().unwrap()["alert"].0, 2);
}

/// Whether the index `name` exists.
fn index_exists(f: &Fixture, name: &str) -> bool {
    match f {
        Fixture::Sqlite(d) => {
            rusqlite::Connection::open(d.path().join("t.db"))
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                > 0
        }
        Fixture::Postgres(_, url) => {
            postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .query_one(
                    "SELECT count(*) FROM pg_indexes WHERE indexname = $1",
                    &[&name],
                )
                .unwrap()
                .get::<_, i64>(0)
                > 0
        }
    }
}

/// Writes points of track 7 on days 1 to 3, each twice (the second copy in another message:
/// the same point, which changes nothing), and one recent point; the old ones expire.
fn points_dedupe_and_expire(s: &mut Store, first_seq: u64) {
    let mut seq = first_seq;
    for day in 1..=3 {
        for _ in 0..2 {
            apply(
                s,
                batch("a1", seq, 7, TrackEvent::Update, day * DAY + 500, 1.0),
            );
            seq += 1;
        }
    }
    apply(s, batch("a1", seq, 7, TrackEvent::End, 39 * DAY, 1.0));
    let policy = RetentionPolicy {
        days: 30,
        alert_days: 30,
        evidence_sighting_days: 30,
        evidence_alert_days: 30,
        chunk: 2,
    };
    let now = 40 * DAY;
    let expired = |s: &Store| s.retention_preview(&policy, now).unwrap().deleted;
    assert_eq!(
        expired(s).get("track_points"),
        Some(&3),
        "one row per point"
    );
    while !s.retention_step(&policy, now).unwrap().done {}
    assert_eq!(expired(s).get("track_points"), None);
}

/// Track points are keyed by (time, agent, camera, track, event) since schema 14, with no
/// time index of their own; a schema-13 store keeps its (agent, camera, track, time, event)
/// key and time index, and both deduplicate and expire alike. `sightings_by_place` (which
/// no query read) is gone from both.
fn track_points_keep_either_key_and_sightings_by_place_goes(f: &Fixture) {
    {
        let mut s = f.open();
        assert!(!index_exists(f, "sightings_by_place"));
        assert!(!index_exists(f, "track_points_by_time"));
        points_dedupe_and_expire(&mut s, 1);
    }
    let (int, real, tail, version) = match f {
        Fixture::Sqlite(_) => (
            "INTEGER",
            "REAL",
            "WITHOUT ROWID",
            "PRAGMA user_version = 13",
        ),
        Fixture::Postgres(..) => (
            "BIGINT",
            "DOUBLE PRECISION",
            "PARTITION BY RANGE (ts_ms)",
            "UPDATE schema_version SET version = 13",
        ),
    };
    f.exec(&format!(
        "DROP TABLE track_points;
         CREATE TABLE track_points (
             agent TEXT NOT NULL, camera TEXT NOT NULL, track {int} NOT NULL,
             ts_ms {int} NOT NULL, event TEXT NOT NULL, score {real} NOT NULL,
             x1 {real} NOT NULL, y1 {real} NOT NULL, x2 {real} NOT NULL, y2 {real} NOT NULL,
             PRIMARY KEY (agent, camera, track, ts_ms, event)
         ) {tail};
         CREATE INDEX track_points_by_time ON track_points (ts_ms);
         CREATE INDEX sightings_by_place ON sightings (lat, lon, first_ms);
         {version};"
    ));
    let mut s = f.open();
    assert!(!index_exists(f, "sightings_by_place"));
    assert!(index_exists(f, "track_points_by_time"), "schema 13's kept");
    points_dedupe_and_expire(&mut s, 100);
}

impl Fixture {
    /// Another store beside this one (a file of its own; a database of its own).
    fn open_other(&self, name: &str) -> Store {
        match self {
            Fixture::Sqlite(d) => Store::open(&d.path().join(format!("{name}.db"))).unwrap(),
            Fixture::Postgres(pg, _) => Store::open_postgres(&pg.database(name)).unwrap(),
        }
    }

    /// Runs SQL on the store's database behind its back (a trigger a test installs).
    fn exec(&self, sql: &str) {
        match self {
            Fixture::Sqlite(d) => rusqlite::Connection::open(d.path().join("t.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Fixture::Postgres(_, url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }
}

/// A track batch of `camera` with several updates: (track, event, ts, plate).
fn plates(
    agent: &str,
    seq: u64,
    camera: &str,
    updates: &[(u64, TrackEvent, i64, &str)],
) -> (Envelope, String, usize) {
    let env = Envelope::new(
        agent,
        seq,
        updates[0].2,
        Body::Tracks(TrackBatch {
            site: "成都-高新".into(),
            camera: camera.into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: updates[0].2,
            to_ms: updates[updates.len() - 1].2,
            frames: 5,
            updates: updates
                .iter()
                .map(|&(track, event, ts, plate)| TrackUpdate {
                    track,
                    class: ObjectClass::Car,
                    event,
                    ts_ms: ts,
                    bbox: QBox::from_pixels([ts as f32 / 100.0, 10.0, 300.0, 200.0], 1920, 1080),
                    score: 0.5 + (ts % 7) as f32 / 20.0,
                    embedding: None,
                    plate: Some(PlateReading {
                        text: plate.into(),
                        confidence: 0.6 + (ts % 3) as f32 / 10.0,
                    }),
                    link: None,
                    thumb: None,
                })
                .collect(),
        }),
    );
    (env, format!("sharpeyes/v1/s/{agent}/{camera}/tracks"), 100)
}

/// The messages of one busy transaction: a track updated in several messages and twice in
/// one, a message repeated within the batch, one stored before, a status and an alert.
fn busy_batch() -> Vec<(Envelope, String, usize)> {
    use TrackEvent::*;
    let t = 3 * DAY + 1000;
    let status = sharpeyes_wire::AgentStatus {
        site: "成都-高新".into(),
        online: false,
        version: String::new(),
        started_ms: 0,
        cameras: Vec::new(),
        watchlist_version: None,
        counters: BTreeMap::new(),
    };
    vec![
        plates(
            "网关1",
            1,
            "南门",
            &[(7, Start, t, "川A12345"), (8, Start, t, "京N8M2Q7")],
        ),
        plates(
            "网关1",
            2,
            "南门",
            &[
                (7, Update, t + 500, "川A12845"),
                (7, Update, t + 900, "川A12345"),
            ],
        ),
        plates("网关2", 1, "北门", &[(7, Start, t + 100, "粤B12345")]),
        // Late: an older update after the newer ones.
        plates(
            "网关1",
            4,
            "南门",
            &[
                (7, End, t + 2000, "川A12345"),
                (8, End, t + 1500, "京N8M2Q7"),
            ],
        ),
        plates("网关1", 3, "南门", &[(7, Update, t + 1000, "川A1234S")]),
        plates("网关1", 2, "南门", &[(7, Update, t + 500, "川A12845")]),
        plates("网关2", 9, "北门", &[(7, Update, t + 400, "粤B12345")]),
        (
            Envelope::new("网关3", 0, t, Body::Status(status)),
            "sharpeyes/v1/s/网关3/status".into(),
            10,
        ),
        (
            alert(5, "告警-1", t, Priority::High, "布控车辆 川A12345"),
            "sharpeyes/v1/s1/agent-1/cam-1/alerts".into(),
            10,
        ),
    ]
}

fn a_batch_writes_what_its_messages_write_one_by_one(f: &Fixture) {
    let msgs = busy_batch();
    let mut batched = f.open();
    let mut one_by_one = f.open_other("one_by_one");
    for s in [&mut batched, &mut one_by_one] {
        // Stored before the batch: a duplicate in it.
        s.apply(&msgs[6].0, &msgs[6].1, 1).unwrap();
    }
    let together = batched.apply_all(&msgs).unwrap();
    let single: Vec<Applied> = msgs
        .iter()
        .map(|(e, t, b)| one_by_one.apply(e, t, *b).unwrap())
        .collect();
    use Applied::*;
    let expected = vec![
        Stored, Stored, Stored, Stored, Stored, Duplicate, Duplicate, Stored, NewAlert,
    ];
    assert_eq!(together, expected);
    assert_eq!(single, expected);
    let tracks = |s: &Store| s.tracks(&TrackFilter::default()).unwrap();
    let rows = tracks(&batched);
    assert_eq!(rows, tracks(&one_by_one));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let t7 = rows
        .iter()
        .find(|r| r.camera == "南门" && r.track == 7)
        .unwrap();
    assert_eq!(
        (
            t7.site.as_str(),
            t7.first_ms,
            t7.last_ms,
            t7.ended,
            t7.updates
        ),
        ("成都-高新", 3 * DAY + 1000, 3 * DAY + 3000, true, 5)
    );
    assert_eq!(t7.plate.as_deref(), Some("川A12345"), "the newest reading");
    assert_eq!(
        batched.message_keys().unwrap(),
        one_by_one.message_keys().unwrap()
    );
    let alerts = |s: &Store| s.alerts(&AlertFilter::default()).unwrap();
    assert_eq!(alerts(&batched).len(), 1);
    assert_eq!(alerts(&batched)[0].summary, "布控车辆 川A12345");
    // Applied again (a redelivery of the whole batch): nothing new.
    let again = batched.apply_all(&msgs).unwrap();
    assert!(again[..7].iter().all(|a| *a == Duplicate), "{again:?}");
    assert_eq!(tracks(&batched), rows);
}

fn a_refused_message_in_a_batch_is_isolated(f: &Fixture) {
    let mut s = f.open();
    assert!(s.fusion_owner().unwrap(), "the only writer owns fusion");
    let refuse = match s.dialect() {
        Dialect::Sqlite => {
            "CREATE TRIGGER refuse_x BEFORE INSERT ON tracks WHEN NEW.camera = '西门'
             BEGIN SELECT RAISE(ABORT, '西门 is refused by the operator'); END;"
        }
        Dialect::Postgres => {
            "CREATE FUNCTION refuse_x() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.camera = '西门' THEN
               RAISE EXCEPTION '西门 is refused by the operator' USING ERRCODE = 'check_violation';
             END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_x BEFORE INSERT ON tracks FOR EACH ROW EXECUTE FUNCTION refuse_x();"
        }
    };
    f.exec(refuse);
    let t = 3 * DAY;
    use TrackEvent::*;
    let msgs = vec![
        plates(
            "网关1",
            1,
            "南门",
            &[(1, Start, t, "川A12345"), (2, Start, t, "京N8M2Q7")],
        ),
        plates("网关1", 2, "西门", &[(1, Start, t + 10, "粤B12345")]),
        plates("网关1", 3, "南门", &[(1, End, t + 900, "川A12345")]),
    ];
    let raws: Vec<Vec<u8>> = msgs
        .iter()
        .map(|(e, _, _)| sharpeyes_wire::Codec::default().encode(e).unwrap())
        .collect();
    let raws: Vec<&[u8]> = raws.iter().map(Vec::as_slice).collect();
    let outputs = vec![
        new_vehicle(1, "川A12345", t, None),
        FuseOutput::VehicleSighting {
            vehicle: VehicleId(1),
            sighting: Sighting {
                track: TrackRef {
                    camera: Arc::new(CameraKey::new("成都-高新", "网关1", "南门")),
                    track: 1,
                },
                class: ObjectClass::Car,
                first_ms: t,
                last_ms: t + 900,
                position: Some([30.6, 104.0]),
                confidence: 0.9,
                ended: true,
            },
            plate: "川A12345".into(),
            why: Assignment::ExactPlate { gate: FEASIBLE },
        },
    ];
    // The batched transaction fails as a whole, for one message's reason...
    let e = s
        .commit_batch(&msgs, &outputs, Fusion::Fused(&[]))
        .unwrap_err();
    assert_ne!(e.scope(), aggregator::store::Scope::Store, "{e}");
    assert_eq!(s.message_count().unwrap(), 0, "nothing of it was written");
    // ... and isolated: that message is a dead letter, the others and the fusion results
    // are stored.
    let isolated = s
        .commit_batch_isolating(&msgs, &raws, &outputs, Fusion::Fused(&[]))
        .unwrap();
    assert_eq!(isolated.fusion_error, None);
    let o = &isolated.outcomes;
    assert_eq!(o[0], aggregator::store::Outcome::Applied(Applied::Stored));
    assert_eq!(o[2], aggregator::store::Outcome::Applied(Applied::Stored));
    let aggregator::store::Outcome::DeadLettered { id, error } = &o[1] else {
        panic!("{o:?}");
    };
    assert!(error.contains("西门 is refused"), "{error}");
    let letter = s.dead_letter(*id).unwrap().unwrap();
    assert_eq!((letter.agent.as_str(), letter.seq), ("网关1", 2));
    assert_eq!(s.dead_letter_count().unwrap(), 1);
    let rows = s.tracks(&TrackFilter::default()).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.camera.as_str(), r.track, r.plate.as_deref(), r.ended))
            .collect::<Vec<_>>(),
        vec![
            ("南门", 1, Some("川A12345"), true),
            ("南门", 2, Some("京N8M2Q7"), false)
        ]
    );
    let t = s.vehicle_trajectory_by_plate("川A12345", false).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].camera.as_str(), t[0].identity), ("南门", 1));
    assert_eq!(s.message_count().unwrap(), 2);
}

fn batched_fusion_outputs_write_what_they_write_one_by_one(f: &Fixture) {
    let face = |p: u64, track: u64, x: f32| FuseOutput::PersonFace {
        person: PersonId(p),
        face: FaceRep {
            track: TrackRef {
                camera: cam("cam-1"),
                track,
            },
            model: "arcface".into(),
            embedding: vec![x, (1.0 - x * x).sqrt()],
            quality: 0.8,
            ts_ms: 1000 + track as i64,
        },
    };
    let dropped = |p: u64, track: u64| FuseOutput::PersonFaceDropped {
        person: PersonId(p),
        track: TrackRef {
            camera: cam("cam-1"),
            track,
        },
    };
    let outputs = vec![
        new_vehicle(1, "川A12345", 1000, None),
        vs(1, "cam-1", 10, 1000, "川A12345", [30.6, 104.0]),
        // The same track again: its row is replaced.
        vs(1, "cam-1", 10, 1000, "川A1234S", [30.6, 104.0]),
        new_vehicle(2, "京N8M2Q7", 2000, None),
        vs(2, "cam-2", 11, 2000, "京N8M2Q7", [30.7, 104.1]),
        // A plate change in the middle: what came before is written first.
        FuseOutput::VehiclePlate {
            vehicle: VehicleId(2),
            plate: "京N8M2Q8".into(),
        },
        FuseOutput::NewPerson {
            person: PersonId(1),
            first_ms: 1000,
        },
        ps(1, "cam-1", 20, 1000, [30.6, 104.0]),
        face(1, 20, 0.6),
        FuseOutput::NewPerson {
            person: PersonId(2),
            first_ms: 3000,
        },
        ps(2, "cam-2", 21, 3000, [30.7, 104.1]),
        face(2, 21, 0.8),
        face(2, 22, 0.5),
        dropped(2, 22),
        link(2, 1, 1, true),
        link(2, 1, 2, true),
        FuseOutput::PlateFlagged {
            vehicle: VehicleId(2),
            other: VehicleId(1),
            plate: "京N8M2Q8".into(),
            other_plate: "川A12345".into(),
            reason: FlagReason::PossibleClone,
            gate: FEASIBLE,
            track: TrackRef {
                camera: cam("cam-2"),
                track: 11,
            },
            ts_ms: 2000,
        },
        // 2 into 1: the pending sightings, faces and links of 2 are written first.
        FuseOutput::PersonsMerged {
            from: PersonId(2),
            into: PersonId(1),
            similarity: 0.7,
            mean_similarity: 0.6,
            ts_ms: 4000,
        },
        link(1, 1, 3, false),
        face(1, 22, 0.4),
        ps(1, "cam-1", 23, 5000, [30.6, 104.0]),
        FuseOutput::Retired {
            identity: Identity::Person(PersonId(1)),
            last_seen_ms: 5000,
            reason: RetireReason::Idle,
        },
    ];
    let mut batched = f.open();
    batched.apply_fusion(&outputs).unwrap();
    let mut one_by_one = f.open_other("one_by_one");
    for o in &outputs {
        one_by_one.apply_fusion(std::slice::from_ref(o)).unwrap();
    }
    for s in [&batched, &one_by_one] {
        let p = s.person_trajectory(2).unwrap();
        assert_eq!(
            p.iter().map(|r| (r.identity, r.track)).collect::<Vec<_>>(),
            vec![(1, 20), (1, 21), (1, 23)]
        );
        let v = s.vehicles_by_plate("京N8M2Q8", false).unwrap();
        assert_eq!(v.len(), 1);
        let t = s.vehicle_trajectory_by_plate("川A12345", false).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].plate.as_deref(),
            Some("川A1234S"),
            "the later sighting"
        );
        let l = s.links_of_person(2).unwrap();
        assert_eq!((l.len(), l[0].count, l[0].evidence.len()), (1, 3, 2));
        assert_eq!(s.plate_flags_of(&[2]).unwrap().len(), 1);
        let (faces, bad) = s.person_faces(Some("arcface"), 2).unwrap();
        assert_eq!(bad, 0);
        let mut faces: Vec<(u64, u64)> = faces.iter().map(|r| (r.person, r.track)).collect();
        faces.sort();
        assert_eq!(faces, vec![(1, 20), (1, 21), (1, 22)]);
    }
    let all = |s: &Store| {
        s.sightings_in(&Area::BBox([31.0, 103.0], [30.0, 105.0]), 0, i64::MAX)
            .unwrap()
    };
    assert_eq!(all(&batched), all(&one_by_one));
    assert_eq!(
        batched.fusion_next_ids().unwrap(),
        one_by_one.fusion_next_ids().unwrap()
    );
}

/// A track's next sighting event rewrites its one row, whether it keeps its identity, start
/// and plate (SQLite updates the row in place) or not (the row is replaced).
fn a_track_s_next_sighting_rewrites_its_one_row(f: &Fixture) {
    let mut s = f.open();
    let ev = |v: u64, plate: &str, last_ms: i64, pos: [f64; 2], ended: bool| {
        FuseOutput::VehicleSighting {
            vehicle: VehicleId(v),
            sighting: Sighting {
                track: TrackRef {
                    camera: cam("cam-1"),
                    track: 10,
                },
                class: ObjectClass::Car,
                first_ms: 1000,
                last_ms,
                position: Some(pos),
                confidence: 0.5 + last_ms as f32 / 100_000.0,
                ended,
            },
            plate: plate.into(),
            why: Assignment::ExactPlate { gate: FEASIBLE },
        }
    };
    let row = |s: &Store| {
        let rows = s
            .identity_sightings_page("vehicle", &[1, 2], None, &Page::default())
            .unwrap();
        assert_eq!(rows.len(), 1, "one row per track: {rows:?}");
        let r = &rows[0];
        (
            r.identity,
            r.plate.clone().unwrap_or_default(),
            r.first_ms,
            r.last_ms,
            r.lat.unwrap(),
            r.ended,
            (r.confidence * 1000.0).round() as i64,
        )
    };
    s.apply_fusion(&[
        new_vehicle(1, "川A12345", 1000, None),
        new_vehicle(2, "京N8M2Q7", 1000, None),
        ev(1, "川A12345", 2000, A, false),
    ])
    .unwrap();
    // The same identity, start and plate: the later end, place, confidence and state.
    s.apply_fusion(&[ev(1, "川A12345", 6000, B, true)]).unwrap();
    assert_eq!(row(&s), (1, "川A12345".into(), 1000, 6000, B[0], true, 560));
    // Another identity.
    s.apply_fusion(&[ev(2, "京N8M2Q7", 7000, B, true)]).unwrap();
    assert_eq!(row(&s), (2, "京N8M2Q7".into(), 1000, 7000, B[0], true, 570));
    // The same identity, another reading; then an earlier event of it, in the same
    // transaction as a later one (the last written wins, as one by one).
    s.apply_fusion(&[ev(2, "京N8M2Q8", 8000, A, false)])
        .unwrap();
    assert_eq!(
        row(&s),
        (2, "京N8M2Q8".into(), 1000, 8000, A[0], false, 580)
    );
    s.apply_fusion(&[
        ev(2, "京N8M2Q8", 9000, B, true),
        ev(2, "京N8M2Q8", 8500, A, false),
    ])
    .unwrap();
    assert_eq!(
        row(&s),
        (2, "京N8M2Q8".into(), 1000, 8500, A[0], false, 585)
    );
    assert!(
        s.vehicle_trajectory_by_plate("川A12345", false)
            .unwrap()
            .iter()
            .all(|r| r.track != 10 || r.identity == 2),
        "the old reading's row is gone"
    );
}
