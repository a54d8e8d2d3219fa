//! Store scale benchmark: bulk-loads N synthetic sightings into a backend, then measures the
//! analysts' queries.
//!
//! ```text
//! STORE_SCALE_SIZES=1000000,10000000 STORE_SCALE_BACKENDS=sqlite,postgres \
//!   cargo bench -p aggregator --bench store_scale
//! ```
//!
//! Environment (all optional):
//! - `STORE_SCALE_SIZES`: sightings per store, comma-separated (default `1000000`);
//! - `STORE_SCALE_BACKENDS`: `sqlite`, `postgres` or both (default both);
//! - `STORE_SCALE_QUERIES`: queries per kind (default `500`);
//! - `STORE_SCALE_DIR`: where the SQLite file and the PostgreSQL data directory go
//!   (default the temporary directory; deleted after each size);
//! - `STORE_SCALE_OUT`: a file to append one JSON line per result to.
//!
//! PostgreSQL is a throw-away server from Debian's `postgresql` package (`tests/common/pg.rs`:
//! `fsync` off, 256 MB shared buffers), started on 127.0.0.1 for each size.
//!
//! The data: 2,000 cameras at 50 sites in 200 grids around Chengdu; sightings spread over 28
//! days; 70 % vehicle sightings of N/10 vehicles whose plates are drawn with repeats (a
//! skewed draw: a few vehicles are seen very often, most a few times), 30 % person sightings
//! of N/20 persons. Vehicles get their rows (plate and its confusable-canonical form); each
//! sighting carries its camera's position and, for vehicles, the plate read. Loading: COPY
//! (PostgreSQL) or 100-row prepared inserts (SQLite), 100,000 rows per transaction.
//!
//! Queries, timed one by one (p50 / p99 / mean rows): the plate trajectory of a random
//! vehicle's plate, exact and fuzzy (`aggregator trajectory --plate P [--fuzzy]`), and the
//! sightings of a random grid in a random one-hour window (`aggregator sightings --grid`).

#[path = "../tests/common/pg.rs"]
mod pg;
#[path = "common/scale_store.rs"]
mod scale_store;
#[path = "common/synth.rs"]
mod synth;

use std::io::Write as _;
use std::time::Instant;

use aggregator::store::{Area, Store};
use scale_store::{DAY, DAYS, GRIDS, T0, load};
use synth::{Rng, plate_of};

struct Timing {
    p50_ms: f64,
    p99_ms: f64,
    mean_rows: f64,
}

fn time(q: usize, mut f: impl FnMut(usize) -> usize) -> Timing {
    let mut us = Vec::with_capacity(q);
    let mut rows = 0usize;
    for i in 0..q {
        let t = Instant::now();
        rows += f(i);
        us.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    us.sort_by(f64::total_cmp);
    let at = |p: f64| us[((us.len() as f64 - 1.0) * p).round() as usize];
    Timing {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        mean_rows: rows as f64 / q as f64,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("STORE_SCALE_SIZES")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .expect("STORE_SCALE_SIZES")
        })
        .collect();
    let backends: Vec<String> = std::env::var("STORE_SCALE_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let queries: usize = std::env::var("STORE_SCALE_QUERIES")
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(500);
    let base = std::env::var_os("STORE_SCALE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let out = std::env::var_os("STORE_SCALE_OUT");
    println!(
        "{:<9} {:>11} {:>9} {:<22} {:>9} {:>9} {:>9}",
        "backend", "sightings", "load s", "query", "p50 ms", "p99 ms", "rows"
    );
    for &n in &sizes {
        for b in &backends {
            let dir = tempfile::tempdir_in(&base).unwrap();
            // SAFETY: single-threaded here; the harness reads PG_TEST_DIR once per start.
            unsafe { std::env::set_var("PG_TEST_DIR", dir.path()) };
            let (mut store, _server) = match b.as_str() {
                "sqlite" => (Store::open(&dir.path().join("scale.db")).unwrap(), None),
                "postgres" => {
                    let server = pg::TempPostgres::start();
                    let url = server.database("scale");
                    (Store::open_postgres(&url).unwrap(), Some(server))
                }
                other => panic!("unknown backend {other:?} (sqlite, postgres)"),
            };
            let load_s = load(&mut store, n);
            let vehicles = (n / 10).max(1) as u64;
            let mut r = Rng(7);
            let plates: Vec<String> = (0..queries).map(|_| plate_of(r.below(vehicles))).collect();
            let windows: Vec<(String, i64)> = (0..queries)
                .map(|_| {
                    (
                        format!("g{}", r.below(GRIDS as u64)),
                        T0 + r.below((DAYS * DAY) as u64) as i64,
                    )
                })
                .collect();
            let results = [
                (
                    "trajectory --plate",
                    time(queries, |i| {
                        store
                            .vehicle_trajectory_by_plate(&plates[i], false)
                            .unwrap()
                            .len()
                    }),
                ),
                (
                    "trajectory --fuzzy",
                    time(queries, |i| {
                        store
                            .vehicle_trajectory_by_plate(&plates[i], true)
                            .unwrap()
                            .len()
                    }),
                ),
                (
                    "sightings --grid 1h",
                    time(queries, |i| {
                        let (g, from) = &windows[i];
                        store
                            .sightings_in(&Area::Grid(g.clone()), *from, from + 3_600_000)
                            .unwrap()
                            .len()
                    }),
                ),
            ];
            for (q, t) in &results {
                println!(
                    "{b:<9} {n:>11} {load_s:>9.1} {q:<22} {:>9.3} {:>9.3} {:>9.1}",
                    t.p50_ms, t.p99_ms, t.mean_rows
                );
                if let Some(o) = &out {
                    let line = serde_json::json!({
                        "backend": b, "sightings": n, "load_s": load_s, "query": q,
                        "p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "mean_rows": t.mean_rows,
                        "queries": queries,
                    });
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(o)
                        .unwrap();
                    writeln!(f, "{line}").unwrap();
                }
            }
            drop(store);
        }
    }
}
