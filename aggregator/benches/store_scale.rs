//! Store scale benchmark: bulk-loads N synthetic sightings into a backend, then measures the
//! analysts' queries, and how the load time, the size on disk and each query's latency grow
//! with N.
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
//! - `STORE_SCALE_OUT`: a file to append one JSON line per query kind and one per store
//!   (`"query": "store"`: load time, rows, bytes on disk per table and index) to;
//! - `STORE_SCALE_KEEP`: a directory to keep each SQLite store in, as `scale-N.db` (e.g. for
//!   the API load benchmark, `API_LOAD_DB`); an existing file there is reused, not reloaded.
//!
//! PostgreSQL is a throw-away server from Debian's `postgresql` package (`tests/common/pg.rs`:
//! `fsync` off, 256 MB shared buffers), started on 127.0.0.1 for each size.
//!
//! The data: 2,000 cameras at 50 sites in 200 grids around Chengdu; sightings spread evenly
//! over 28 days and stored in time order, each camera's track ids rising (as the aggregator
//! writes them: the rows lie in time order, the primary key grows at each camera's end, so a
//! load does not rewrite the whole key per transaction); 70 % vehicle sightings of N/10 vehicles whose plates are drawn with repeats (a
//! skewed draw: a few vehicles are seen very often, most a few times), 30 % person sightings
//! of N/20 persons, drawn likewise. Vehicles and persons get their rows (a vehicle its plate
//! and its confusable-canonical form); each sighting carries its camera's position and, for
//! vehicles, the plate read. Loading: the sightings' secondary indexes (the schema's) are
//! dropped, the rows go in by COPY (PostgreSQL) or 100-row prepared inserts (SQLite), 100,000
//! rows per transaction, then the indexes are built again from the schema's own definitions
//! and the store is analysed (`common/scale_store.rs`: `load_then_index`); the queries run
//! on the product's schema and indexes.
//!
//! Queries, timed one by one (p50 / p99 / mean rows), each through the service layer as the
//! command line runs it (whole answers, no pages; the API's first page of 100 is cheaper),
//! without the audit entry: the plate trajectory of a random vehicle's plate, exact and
//! fuzzy (`aggregator trajectory --plate P [--fuzzy]`); a random person's trajectory
//! (`aggregator trajectory --person ID`); the sightings of a random grid (10 cameras) in a
//! random one-hour window (`aggregator sightings --grid`); the sightings in a random box of
//! 0.02° × 0.02° (about 2.2 × 1.9 km, 9 cameras on average) in a random hour (`aggregator
//! sightings --bbox`). The stores are queried right after loading, so what the OS page cache
//! holds of them is what the load left there (the machine's 23 GiB hold a 30 M store).
//!
//! At the end, a growth table: per backend and query, p50 / p99 at each size, and the load
//! time and bytes on disk per sighting.

#[path = "../tests/common/pg.rs"]
mod pg;
#[path = "common/scale_store.rs"]
mod scale_store;
#[path = "common/synth.rs"]
mod synth;

use std::io::Write as _;
use std::time::Instant;

use aggregator::service;
use aggregator::store::{Area, Location, Page, Store};
use scale_store::{DAY, DAYS, GRIDS, LoadTime, Side, T0, load_then_index};
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

/// Appends one JSON line to `STORE_SCALE_OUT`, if set.
fn record(out: &Option<std::ffi::OsString>, line: serde_json::Value) {
    if let Some(o) = out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(o)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

/// What one store (backend and size) measured, for the growth table.
struct Measured {
    backend: String,
    n: usize,
    load_s: f64,
    bytes_per_sighting: f64,
    queries: Vec<(&'static str, Timing)>,
}

const MB: f64 = 1_000_000.0;

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
    let keep = std::env::var_os("STORE_SCALE_KEEP").map(std::path::PathBuf::from);
    let mut measured: Vec<Measured> = Vec::new();
    for &n in &sizes {
        for b in &backends {
            let dir = tempfile::tempdir_in(&base).unwrap();
            // SAFETY: single-threaded here; the harness reads PG_TEST_DIR once per start.
            unsafe { std::env::set_var("PG_TEST_DIR", dir.path()) };
            let kept = match (&keep, b.as_str()) {
                (Some(k), "sqlite") => {
                    std::fs::create_dir_all(k).unwrap();
                    Some(k.join(format!("scale-{n}.db")))
                }
                _ => None,
            };
            let reuse = kept.as_ref().is_some_and(|p| p.exists());
            let (at, _server) = match b.as_str() {
                "sqlite" => {
                    let path = kept.clone().unwrap_or_else(|| dir.path().join("scale.db"));
                    (Location::Sqlite(path), None)
                }
                "postgres" => {
                    let server = pg::TempPostgres::start();
                    (Location::Postgres(server.database("scale")), Some(server))
                }
                other => panic!("unknown backend {other:?} (sqlite, postgres)"),
            };
            let mut store = Store::open_at(&at).unwrap();
            // A bulk load inserts into the primary key at random places.
            store.set_sqlite_cache_mib(1024).unwrap();
            let load = if reuse {
                LoadTime {
                    rows_s: 0.0,
                    indexes_s: 0.0,
                }
            } else {
                load_then_index(&mut store, &at, n)
            };
            if let Some(p) = &kept {
                eprintln!("store kept at {}", p.display());
            }
            // The product's own cache for the queries, not the load's.
            store.set_sqlite_cache_mib(64).unwrap();
            let mut side = Side::open(&at);
            let rows = side.count("sightings");
            assert_eq!(rows, n as u64, "sightings stored");
            let size = side.size();
            let load_s = load.rows_s + load.indexes_s;
            let per = size.total_bytes as f64 / n as f64;
            let parts: Vec<String> = size
                .sightings
                .iter()
                .map(|(k, v)| format!("{k} {:.0}", *v as f64 / MB))
                .collect();
            println!(
                "{b} {n}: loaded in {load_s:.1} s (rows {:.1} s, indexes + analyse {:.1} s); \
                 {:.0} MB on disk, {per:.0} B/sighting; MB: {}",
                load.rows_s,
                load.indexes_s,
                size.total_bytes as f64 / MB,
                parts.join(", ")
            );
            record(
                &out,
                serde_json::json!({
                    "backend": b, "sightings": n, "query": "store", "load_s": load_s,
                    "load_rows_s": load.rows_s, "load_indexes_s": load.indexes_s,
                    "rows": rows, "vehicles": side.count("vehicles"),
                    "persons": side.count("persons"), "disk_bytes": size.total_bytes,
                    "bytes_per_sighting": per, "sightings_bytes": size.sightings,
                }),
            );
            drop(side);

            let vehicles = (n / 10).max(1) as u64;
            let persons = (n / 20).max(1) as u64;
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
            let people: Vec<u64> = (0..queries).map(|_| r.below(persons) + 1).collect();
            // Boxes of 0.02° inside the cameras' 0.3° square (scale_store::camera).
            let boxes: Vec<(Area, i64)> = (0..queries)
                .map(|_| {
                    let (lat, lon) = (30.5 + r.unit() * 0.28, 103.9 + r.unit() * 0.28);
                    (
                        Area::BBox([lat, lon], [lat + 0.02, lon + 0.02]),
                        T0 + r.below((DAYS * DAY) as u64) as i64,
                    )
                })
                .collect();
            let all = Page::default();
            let plate_trajectory = |plate: &str, fuzzy: bool| {
                service::vehicle_trajectory(&store, plate, fuzzy, None, &all)
                    .unwrap()
                    .result
                    .sightings
                    .len()
            };
            let area = |a: &Area, from: i64| {
                service::sightings(&store, a, from, from + 3_600_000, &all)
                    .unwrap()
                    .result
                    .sightings
                    .len()
            };
            let results = vec![
                (
                    "trajectory --plate",
                    time(queries, |i| plate_trajectory(&plates[i], false)),
                ),
                (
                    "trajectory --fuzzy",
                    time(queries, |i| plate_trajectory(&plates[i], true)),
                ),
                (
                    "trajectory --person",
                    time(queries, |i| {
                        service::person_trajectory(&store, people[i], None, &all)
                            .unwrap()
                            .result
                            .sightings
                            .len()
                    }),
                ),
                (
                    "sightings --grid 1h",
                    time(queries, |i| {
                        area(&Area::Grid(windows[i].0.clone()), windows[i].1)
                    }),
                ),
                (
                    "sightings --bbox 1h",
                    time(queries, |i| area(&boxes[i].0, boxes[i].1)),
                ),
            ];
            println!(
                "{:<9} {:>11} {:<22} {:>9} {:>9} {:>9}",
                "backend", "sightings", "query", "p50 ms", "p99 ms", "rows"
            );
            for (q, t) in &results {
                println!(
                    "{b:<9} {n:>11} {q:<22} {:>9.3} {:>9.3} {:>9.1}",
                    t.p50_ms, t.p99_ms, t.mean_rows
                );
                record(
                    &out,
                    serde_json::json!({
                        "backend": b, "sightings": n, "load_s": load_s, "query": q,
                        "p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "mean_rows": t.mean_rows,
                        "queries": queries,
                    }),
                );
            }
            drop(store);
            measured.push(Measured {
                backend: b.clone(),
                n,
                load_s,
                bytes_per_sighting: per,
                queries: results,
            });
        }
    }
    print!("{}", growth_table(&measured, &sizes, &backends));
}

/// Per backend and query, p50 / p99 ms at each size; then load seconds and bytes on disk per
/// sighting.
fn growth_table(m: &[Measured], sizes: &[usize], backends: &[String]) -> String {
    let mut s = format!(
        "\ngrowth: p50 / p99 ms by sightings\n{:<9} {:<22}",
        "backend", ""
    );
    for n in sizes {
        s.push_str(&format!(" {n:>17}"));
    }
    s.push('\n');
    for b in backends {
        let of = |n: usize| m.iter().find(|x| &x.backend == b && x.n == n);
        let Some(first) = m.iter().find(|x| &x.backend == b) else {
            continue;
        };
        let mut line = |label: &str, cell: &dyn Fn(&Measured) -> String| {
            s.push_str(&format!("{b:<9} {label:<22}"));
            for &n in sizes {
                s.push_str(&format!(" {:>17}", of(n).map_or(String::new(), cell)));
            }
            s.push('\n');
        };
        for (k, (q, _)) in first.queries.iter().enumerate() {
            line(q, &|x| {
                let t = &x.queries[k].1;
                format!("{:.2} / {:.2}", t.p50_ms, t.p99_ms)
            });
        }
        line("load s", &|x| format!("{:.0}", x.load_s));
        line("bytes/sighting", &|x| {
            format!("{:.0}", x.bytes_per_sighting)
        });
    }
    s
}
