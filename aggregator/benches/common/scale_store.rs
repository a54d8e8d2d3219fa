//! The synthetic store of the scale benchmarks (`store_scale`, `api_load`): cameras, vehicles
//! and sightings loaded in bulk (see `store_scale`'s docs for the data's shape).

#![allow(dead_code)] // each benchmark uses its own subset

use std::time::Instant;

use aggregator::config::CameraPlace;
use aggregator::store::{Store, Value};
use sharpeyes_wire::plate;

use super::synth::{Rng, plate_of};

pub const CAMERAS: usize = 2000;
pub const SITES: usize = 50;
pub const GRIDS: usize = 200;
pub const DAY: i64 = 86_400_000;
pub const DAYS: i64 = 28;
pub const T0: i64 = 1_760_000_000_000 / DAY * DAY;
pub const CHUNK: usize = 100_000;

/// Camera `c`: 2,000 cameras in 200 grids over about 30 × 30 km around Chengdu.
pub fn camera(c: usize) -> CameraPlace {
    super::synth::camera(c, SITES, GRIDS, [30.5, 103.9], 0.3)
}

/// Skewed draw of `0..n`: low ids far more often.
pub fn skewed(r: &mut Rng, n: u64) -> u64 {
    let u = r.unit();
    ((u * u * u) * n as f64) as u64 % n.max(1)
}

pub const SIGHTING_COLUMNS: [&str; 15] = [
    "agent",
    "camera",
    "track",
    "site",
    "kind",
    "identity",
    "class",
    "first_ms",
    "last_ms",
    "lat",
    "lon",
    "confidence",
    "ended",
    "plate",
    "why_json",
];

pub fn load(store: &mut Store, n: usize) -> f64 {
    let cams: Vec<CameraPlace> = (0..CAMERAS).map(camera).collect();
    store.sync_cameras(&cams).unwrap();
    let vehicles = (n / 10).max(1) as u64;
    let persons = (n / 20).max(1) as u64;
    let t = Instant::now();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
    for v in 0..vehicles {
        let p = plate_of(v);
        rows.push(vec![
            Value::Integer(v as i64 + 1),
            Value::Text(plate::canonical(&p)),
            Value::Text(p),
            Value::Integer(T0),
        ]);
        if rows.len() == CHUNK || v + 1 == vehicles {
            store
                .bulk_insert(
                    "vehicles",
                    &["id", "canon", "plate", "first_ms"],
                    &rows,
                    None,
                )
                .unwrap();
            rows.clear();
        }
    }
    let mut r = Rng(42);
    for i in 0..n {
        let c = &cams[r.below(CAMERAS as u64) as usize];
        let first = T0 + r.below((DAYS * DAY) as u64) as i64;
        let last = first + 2000 + r.below(60_000) as i64;
        let vehicle = r.below(10) < 7;
        let (kind, identity, class, plate, why) = if vehicle {
            let v = skewed(&mut r, vehicles);
            let mut p = plate_of(v);
            if r.below(50) == 0 {
                // A misread: one character swapped for a confusable one.
                p = p.replacen('0', "D", 1).replacen('8', "B", 1);
            }
            (
                "vehicle",
                v + 1,
                "car",
                Value::Text(p),
                r#"{"rule":"exact_plate"}"#,
            )
        } else {
            (
                "person",
                skewed(&mut r, persons) + 1,
                "person",
                Value::Null,
                r#"{"rule":"similar_face","similarity":0.71}"#,
            )
        };
        rows.push(vec![
            Value::Text(c.agent.clone()),
            Value::Text(c.camera.clone()),
            Value::Integer(i as i64),
            Value::Text(c.site.clone()),
            Value::Text(kind.into()),
            Value::Integer(identity as i64),
            Value::Text(class.into()),
            Value::Integer(first),
            Value::Integer(last),
            Value::Real(c.lat),
            Value::Real(c.lon),
            Value::Real(0.9),
            Value::Integer(1),
            plate,
            Value::Text(why.into()),
        ]);
        if rows.len() == CHUNK || i + 1 == n {
            store
                .bulk_insert("sightings", &SIGHTING_COLUMNS, &rows, Some(7))
                .unwrap();
            rows.clear();
        }
    }
    store.analyze().unwrap();
    t.elapsed().as_secs_f64()
}
