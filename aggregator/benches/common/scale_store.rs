//! The synthetic store of the scale benchmarks (`store_scale`, `api_load`): cameras, vehicles,
//! persons and sightings loaded in bulk (see `store_scale`'s docs for the data's shape), and
//! what `store_scale` measures beside the queries: a faster load that builds the sightings'
//! secondary indexes after the rows, the rows stored and the bytes on disk per table and
//! index.

#![allow(dead_code)] // each benchmark uses its own subset

use std::collections::BTreeMap;
use std::time::Instant;

use aggregator::config::CameraPlace;
use aggregator::store::{Location, Store, Value};
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

/// Loads `n` sightings (and their vehicles and persons) into the store with its indexes
/// in place, then `ANALYZE`; the seconds it took.
pub fn load(store: &mut Store, n: usize) -> f64 {
    let t = Instant::now();
    load_rows(store, n);
    store.analyze().unwrap();
    t.elapsed().as_secs_f64()
}

/// The cameras, vehicles, persons and `n` sightings, in transactions of [`CHUNK`] rows.
fn load_rows(store: &mut Store, n: usize) {
    let cams: Vec<CameraPlace> = (0..CAMERAS).map(camera).collect();
    store.sync_cameras(&cams).unwrap();
    let vehicles = (n / 10).max(1) as u64;
    let persons = (n / 20).max(1) as u64;
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
    for p in 0..persons {
        rows.push(vec![Value::Integer(p as i64 + 1), Value::Integer(T0)]);
        if rows.len() == CHUNK || p + 1 == persons {
            store
                .bulk_insert("persons", &["id", "first_ms"], &rows, None)
                .unwrap();
            rows.clear();
        }
    }
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
    // In time order, as the aggregator stores them (each camera's track ids rising), so
    // the table's rows lie in time order and the primary key grows at each camera's end.
    let step = (DAYS * DAY) as f64 / n.max(1) as f64;
    let mut tracks = vec![0i64; CAMERAS];
    for i in 0..n {
        let cam = r.below(CAMERAS as u64) as usize;
        let c = &cams[cam];
        let first = T0 + ((i as f64 + r.unit()) * step) as i64;
        let track = tracks[cam];
        tracks[cam] += 1;
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
            Value::Integer(track),
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
}

/// How long a [`load_then_index`] took.
pub struct LoadTime {
    /// Inserting the rows (the sightings' primary key in place, its other indexes not).
    pub rows_s: f64,
    /// Building the sightings' secondary indexes, then `ANALYZE`.
    pub indexes_s: f64,
}

/// [`load`], faster for large stores: the sightings' secondary indexes (the product's, as
/// the schema made them) are dropped first, and built again from their own definitions
/// once the rows are in (a sort each, instead of inserts at random places of five B-trees);
/// then `ANALYZE`. `at` is where `store` is open. Panics unless the same indexes are back.
pub fn load_then_index(store: &mut Store, at: &Location, n: usize) -> LoadTime {
    let mut side = Side::open(at);
    let indexes = side.secondary_indexes("sightings");
    assert!(
        !indexes.is_empty(),
        "the schema made no secondary index on sightings"
    );
    for name in indexes.keys() {
        side.exec(&format!("DROP INDEX {name}"));
    }
    let t = Instant::now();
    load_rows(store, n);
    let rows_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    side.exec(match at {
        // The sorter of CREATE INDEX works in the page cache (1 GiB), not in small spills.
        Location::Sqlite(_) => "PRAGMA cache_size = -1048576",
        Location::Postgres(_) => "SET maintenance_work_mem = '1GB'",
    });
    for sql in indexes.values() {
        side.exec(sql);
    }
    assert_eq!(
        side.secondary_indexes("sightings"),
        indexes,
        "the sightings' indexes after the load differ from the schema's"
    );
    store.analyze().unwrap();
    LoadTime {
        rows_s,
        indexes_s: t.elapsed().as_secs_f64(),
    }
}

/// A store's size on disk.
pub struct StoreSize {
    /// The whole store: the SQLite file and its WAL (after a checkpoint), or PostgreSQL's
    /// `pg_database_size`.
    pub total_bytes: u64,
    /// Bytes of `sightings` (its rows; all partitions on PostgreSQL) and of each of its
    /// indexes (`sightings_pkey`: the primary key), by name.
    pub sightings: BTreeMap<String, u64>,
}

/// A connection of its own beside the store's, for what the benchmark does and the product
/// does not: dropping and rebuilding indexes, counting rows, measuring sizes.
pub enum Side {
    Sqlite(rusqlite::Connection, std::path::PathBuf),
    Postgres(postgres::Client),
}

impl Side {
    pub fn open(at: &Location) -> Self {
        match at {
            Location::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(60)).unwrap();
                Side::Sqlite(c, p.clone())
            }
            Location::Postgres(url) => {
                Side::Postgres(postgres::Client::connect(url, postgres::NoTls).unwrap())
            }
        }
    }

    pub fn exec(&mut self, sql: &str) {
        let r = match self {
            Side::Sqlite(c, _) => c.execute_batch(sql).map_err(|e| e.to_string()),
            Side::Postgres(c) => c.batch_execute(sql).map_err(|e| e.to_string()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn one_i64(&mut self, sql: &str) -> i64 {
        match self {
            Side::Sqlite(c, _) => c.query_row(sql, [], |r| r.get(0)).unwrap(),
            Side::Postgres(c) => c.query_one(sql, &[]).unwrap().get(0),
        }
    }

    /// The indexes of `table` other than its primary key: name → the statement that makes
    /// it (PostgreSQL's definition of a partitioned table's index says `ON ONLY`, which
    /// would make it for the parent alone: made for the partitions too here).
    pub fn secondary_indexes(&mut self, table: &str) -> BTreeMap<String, String> {
        match self {
            Side::Sqlite(c, _) => {
                let mut st = c
                    .prepare(
                        "SELECT name, sql FROM sqlite_master
                         WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
                    )
                    .unwrap();
                st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Side::Postgres(c) => c
                .query(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i
                     WHERE i.schemaname = current_schema() AND i.tablename = $1
                       AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                                       WHERE k.conname = i.indexname AND k.contype = 'p')",
                    &[&table],
                )
                .unwrap()
                .iter()
                .map(|r| {
                    let def: String = r.get(1);
                    (r.get(0), def.replace(" ON ONLY ", " ON "))
                })
                .collect(),
        }
    }

    /// The rows of `table`.
    pub fn count(&mut self, table: &str) -> u64 {
        self.one_i64(&format!("SELECT count(*) FROM {table}")) as u64
    }

    /// The store's size (SQLite: checkpointed first, so the file holds everything; the
    /// per-table figures read every page, `dbstat`).
    pub fn size(&mut self) -> StoreSize {
        match self {
            Side::Sqlite(c, path) => {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
                let file = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                let total_bytes = file(path) + file(std::path::Path::new(&wal));
                let mut st = c
                    .prepare(
                        "SELECT name, sum(pgsize) FROM dbstat
                         WHERE name GLOB 'sightings*' OR name = 'sqlite_autoindex_sightings_1'
                         GROUP BY name",
                    )
                    .unwrap();
                let sightings = st
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .map(|(name, b)| {
                        let name = match name.as_str() {
                            "sqlite_autoindex_sightings_1" => "sightings_pkey".to_string(),
                            _ => name,
                        };
                        (name, b as u64)
                    })
                    .collect();
                StoreSize {
                    total_bytes,
                    sightings,
                }
            }
            Side::Postgres(c) => {
                let total_bytes: i64 = c
                    .query_one("SELECT pg_database_size(current_database())", &[])
                    .unwrap()
                    .get(0);
                // Each partitioned table or index summed over its partitions.
                let rows = c
                    .query(
                        "SELECT 'sightings',
                                (SELECT coalesce(sum(pg_table_size(t.relid)), 0)::bigint
                                 FROM pg_partition_tree('sightings') t)
                         UNION ALL
                         SELECT i.relname::text,
                                (SELECT coalesce(sum(pg_relation_size(t.relid)), 0)::bigint
                                 FROM pg_partition_tree(i.oid) t)
                         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                         WHERE x.indrelid = 'sightings'::regclass",
                        &[],
                    )
                    .unwrap();
                StoreSize {
                    total_bytes: total_bytes as u64,
                    sightings: rows
                        .iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                        .collect(),
                }
            }
        }
    }
}
