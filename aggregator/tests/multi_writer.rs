//! Several aggregators, one PostgreSQL store: two writers (two store sessions, two writer
//! threads with their own fusion stage and fuser, as two `aggregator run` processes of one
//! shared-subscription group would have) receive the same site's track batches, split
//! between them, a third of them delivered to both (redeliveries). Afterwards every message
//! is stored once, every car track is exactly one sighting, and every plate is exactly one
//! vehicle with its full trajectory: one writer (the fusion owner) assigned identities, the
//! other queued its batches for it.

mod common;

use std::sync::Arc;

use aggregator::AggregatorConfig;
use aggregator::config::CameraPlace;
use aggregator::metrics::{Metrics, get};
use aggregator::store::{Area, Store, StoreError};
use aggregator::subscribe::{FusionStage, NewFuser};
use common::pg::TempPostgres;
use fusion::Fuser;
use sharpeyes_wire::{
    Body, Envelope, ObjectClass, PlateReading, QBox, TrackBatch, TrackEvent, TrackUpdate,
};

const PLATES: usize = 40;
const CAMERAS: [(&str, f64); 3] = [("a1", 104.060), ("a2", 104.070), ("a3", 104.080)];

fn config() -> AggregatorConfig {
    AggregatorConfig {
        cameras: CAMERAS
            .iter()
            .map(|(agent, lon)| CameraPlace {
                site: "s1".into(),
                agent: (*agent).into(),
                camera: "cam".into(),
                lat: 30.66,
                lon: *lon,
                heading_deg: None,
                fov_deg: None,
                grid: Some("g1".into()),
            })
            .collect(),
        ..Default::default()
    }
}

fn plate(i: usize) -> String {
    format!("川A{:05}", 10_000 + i * 7)
}

/// Car `i` passes camera `c` (one message: the track's start and end).
fn pass(i: usize, c: usize, base: i64) -> Envelope {
    let (agent, _) = CAMERAS[c];
    let t = base + i as i64 * 2_000 + c as i64 * 600_000;
    let update = |event, ts_ms| TrackUpdate {
        track: i as u64 + 1,
        class: ObjectClass::Car,
        event,
        ts_ms,
        bbox: QBox::from_pixels([100.0, 100.0, 500.0, 400.0], 1920, 1080),
        score: 0.9,
        embedding: None,
        plate: Some(PlateReading {
            text: plate(i),
            confidence: 0.95,
        }),
        link: None,
        thumb: None,
    };
    Envelope::new(
        agent,
        i as u64 + 1,
        t,
        Body::Tracks(TrackBatch {
            site: "s1".into(),
            camera: "cam".into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: t,
            to_ms: t + 4000,
            frames: 20,
            updates: vec![
                update(TrackEvent::Start, t),
                update(TrackEvent::End, t + 4000),
            ],
        }),
    )
}

fn new_fuser(cfg: &AggregatorConfig) -> NewFuser {
    let (fusion, catalog) = (cfg.fusion.clone(), cfg.camera_catalog().unwrap());
    Box::new(move |store: &Store| {
        let (v, p) = store.fusion_next_ids()?;
        Ok(Fuser::new(fusion.clone(), catalog.clone())
            .map_err(|e| StoreError::Invalid(e.to_string()))?
            .with_next_ids(v, p))
    })
}

/// One writer: stores its messages a few at a time, fusing as the owner or queueing, with
/// the writer's retry of a failed transaction.
fn writer(url: String, msgs: Vec<Envelope>, metrics: Arc<Metrics>) -> (Store, FusionStage) {
    let mut store = Store::open_postgres(&url).unwrap();
    let mut stage = FusionStage::new(new_fuser(&config()));
    for chunk in msgs.chunks(3) {
        let valid: Vec<(Envelope, String, usize)> =
            chunk.iter().map(|e| (e.clone(), "t".into(), 1)).collect();
        stage.prepare(&store, &valid, false, &metrics);
        let mut tries = 0;
        while let Err(e) = stage.commit(&mut store, &valid, &metrics) {
            // (Two writers' transactions may deadlock on the same rows: one is retried.)
            tries += 1;
            assert!(tries < 20, "store keeps failing: {e}");
        }
    }
    (store, stage)
}

#[test]
fn two_writers_store_once_and_assign_one_identity_per_plate() {
    let pg = TempPostgres::start();
    let url = pg.database("sharpeyes");
    Store::open_postgres(&url)
        .unwrap()
        .sync_cameras(&config().cameras)
        .unwrap();
    let base = sharpeyes_wire::now_ms() - 3_600_000;
    let all: Vec<Envelope> = (0..CAMERAS.len())
        .flat_map(|c| (0..PLATES).map(move |i| pass(i, c, base)))
        .collect();
    // The shared subscription splits the messages; a third also reach the other writer.
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    for (k, m) in all.iter().enumerate() {
        let h = (k * 7919) % 6;
        match h {
            0 | 1 => to_a.push(m.clone()),
            2 | 3 => to_b.push(m.clone()),
            4 => {
                to_a.push(m.clone());
                to_b.push(m.clone());
            }
            _ => {
                to_b.push(m.clone());
                to_a.push(m.clone());
            }
        }
    }
    to_b.reverse(); // and in another order
    let (ma, mb) = (Arc::new(Metrics::default()), Arc::new(Metrics::default()));
    let a = {
        let (url, m) = (url.clone(), ma.clone());
        std::thread::spawn(move || writer(url, to_a, m))
    };
    let b = {
        let (url, m) = (url.clone(), mb.clone());
        std::thread::spawn(move || writer(url, to_b, m))
    };
    let (mut sa, mut ga) = a.join().unwrap();
    let (mut sb, mut gb) = b.join().unwrap();
    assert!(
        ga.is_owner() != gb.is_owner(),
        "exactly one fusion owner (a: {}, b: {})",
        ga.is_owner(),
        gb.is_owner()
    );
    // The owner drains what the other queued last.
    let (owner, stage, m) = if ga.is_owner() {
        (&mut sa, &mut ga, &ma)
    } else {
        (&mut sb, &mut gb, &mb)
    };
    for _ in 0..50 {
        if owner.fusion_inbox_len().unwrap() == 0 {
            break;
        }
        stage.prepare(owner, &[], true, m);
        stage.commit(owner, &[], m).unwrap();
    }
    assert_eq!(owner.fusion_inbox_len().unwrap(), 0);
    let (queued, dequeued) = (
        get(&ma.fusion_queued) + get(&mb.fusion_queued),
        get(&ma.fusion_dequeued) + get(&mb.fusion_dequeued),
    );
    assert!(queued > 0, "the non-owner queued batches");
    // (A queued batch the owner had fused from its own delivery leaves the inbox unfused.)
    assert!(
        dequeued > 0 && dequeued <= queued,
        "queued {queued}, fused from the inbox {dequeued}"
    );

    let store = Store::open_postgres(&url).unwrap();
    assert_eq!(
        store.message_count().unwrap(),
        all.len() as u64,
        "stored once"
    );
    let sightings = store
        .sightings_in(&Area::Grid("g1".into()), 0, i64::MAX / 2)
        .unwrap();
    let mut keys: Vec<_> = sightings
        .iter()
        .map(|s| (s.agent.clone(), s.track))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), sightings.len(), "no track is two sightings");
    assert_eq!(
        sightings.len(),
        PLATES * CAMERAS.len(),
        "every car track fused"
    );
    for i in 0..PLATES {
        let v = store.vehicles_by_plate(&plate(i), false).unwrap();
        assert_eq!(v.len(), 1, "plate {} is one vehicle: {v:?}", plate(i));
        let t = store.vehicle_trajectory_by_plate(&plate(i), false).unwrap();
        assert_eq!(
            t.iter().map(|s| s.agent.as_str()).collect::<Vec<_>>(),
            vec!["a1", "a2", "a3"],
            "plate {}: its three cameras in time order",
            plate(i)
        );
        assert!(t.iter().all(|s| s.identity == v[0].vehicle));
    }
    assert_eq!(store.fusion_next_ids().unwrap().0, PLATES as u64 + 1);
}

/// The race of two writers, made deterministic: the non-owner stores and queues a batch that
/// the owner also receives, after the owner's inbox read has passed it by (here: the batch
/// is queued behind more than one inbox read's worth of others). The owner finds it stored,
/// so it does not fuse it from its delivery; it must then leave it in the inbox, to be fused
/// from there, instead of removing it as fused. Before the fix this batch was never fused.
#[test]
fn a_batch_the_owner_skipped_as_stored_stays_queued_until_fused() {
    let pg = TempPostgres::start();
    let url = pg.database("race");
    let m = Arc::new(Metrics::default());
    let mut owner = Store::open_postgres(&url).unwrap();
    owner.sync_cameras(&config().cameras).unwrap();
    let mut owner_stage = FusionStage::new(new_fuser(&config()));
    owner_stage.prepare(&owner, &[], false, &m);
    assert!(owner_stage.is_owner());
    let mut other = Store::open_postgres(&url).unwrap();
    let mut other_stage = FusionStage::new(new_fuser(&config()));

    let base = sharpeyes_wire::now_ms() - 3_600_000;
    // 300 passes on camera a1: more than one inbox read (256) ahead of the last one.
    const N: usize = 300;
    let all: Vec<(Envelope, String, usize)> = (0..N)
        .map(|i| (pass(i, 0, base), "t".to_string(), 1))
        .collect();
    let (first, last) = all.split_at(N - 1);
    for chunk in [first, last] {
        other_stage.prepare(&other, chunk, false, &m);
        other_stage.commit(&mut other, chunk, &m).unwrap();
    }
    assert!(!other_stage.is_owner());
    assert_eq!(owner.fusion_inbox_len().unwrap(), N as u64);

    // The owner receives the last batch as well (a redelivery, or the shared group's other
    // member): its inbox read (the oldest 256) does not hold it, and it is stored already.
    owner_stage.prepare(&owner, last, false, &m);
    let applied = owner_stage.commit(&mut owner, last, &m).unwrap();
    assert_eq!(applied, vec![aggregator::store::Applied::Duplicate]);
    let left = owner.fusion_inbox(1000).unwrap();
    assert!(
        left.iter()
            .any(|q| (q.agent.as_str(), q.seq) == ("a1", N as u64)),
        "the skipped batch left the inbox unfused"
    );
    // Draining the inbox fuses every batch: each car is one vehicle with its sighting.
    for _ in 0..10 {
        if owner.fusion_inbox_len().unwrap() == 0 {
            break;
        }
        owner_stage.prepare(&owner, &[], true, &m);
        owner_stage.commit(&mut owner, &[], &m).unwrap();
    }
    assert_eq!(owner.fusion_inbox_len().unwrap(), 0);
    for i in [0, 255, 256, N - 1] {
        let v = owner.vehicles_by_plate(&plate(i), false).unwrap();
        assert_eq!(
            v.len(),
            1,
            "plate {} (pass {i}) fused once: {v:?}",
            plate(i)
        );
    }
    let sightings = owner
        .sightings_in(&Area::Grid("g1".into()), 0, i64::MAX / 2)
        .unwrap();
    assert_eq!(sightings.len(), N, "every pass is one sighting");
}
