//! Ingest benchmark: how many track updates per second one aggregator writer stores with
//! fusion on, on one core (the writer is one thread), through the writer's own path: payload
//! decode, [`FusionStage::prepare`] (the fuser), [`FusionStage::commit`] (one transaction with
//! the messages, tracks, sightings, identities, links and representative faces).
//!
//! ```text
//! INGEST_BATCHES=20000 INGEST_BACKENDS=sqlite,postgres cargo bench -p aggregator --bench ingest
//! ```
//!
//! Environment (all optional):
//! - `INGEST_BATCHES`: track batches to ingest per run (default `5000`);
//! - `INGEST_BACKENDS`: `sqlite`, `postgres` or both (default `sqlite`);
//! - `INGEST_GROUP`: batches per writer transaction, as `store.max_batch` groups them
//!   (default: `store.max_batch`'s default, 256: a writer that cannot keep up takes that
//!   many per transaction, so this is its throughput at saturation; `16` is a lightly
//!   loaded writer's);
//! - `INGEST_SQLITE_SYNC`: SQLite's `synchronous` for the `sqlite` runs, `full` (the
//!   aggregator's default, `store.sqlite_synchronous`), `normal`, or both (`full,normal`:
//!   one run each, labelled `sqlite/full`, `sqlite/normal`); default `full`;
//! - `INGEST_OUT`: a file to append one JSON line per result to.
//!
//! The traffic: 200 cameras at 20 sites around Chengdu; each batch is one camera's 500 ms:
//! about 4 updates of vehicle tracks (plates from a pool of 20,000 with repeats, one reading in
//! 50 off by a confusable character) and person tracks (128-d embeddings: one of 20,000
//! persons plus noise), tracks starting, updating about once a second and ending, cameras
//! visited in time order (2 s of capture time per round of cameras), so gating, clustering,
//! links and re-clustering all work as in service. The payloads are made (encoded, as the
//! agents do) before each transaction, outside the timed writer's path. Each run reports
//! updates/s of the writer (decode + fusion + store), the
//! share of time in decode, fusion and the store, and the writer thread's CPU time per
//! update (`cpu µs/u`: on a machine shared with other work the wall clock also counts the
//! time the writer waited for a core; the CPU time does not, nor the fsyncs' waits), then
//! one summary line per backend,
//! `ingest sqlite: N updates/s` (the aggregator's default `synchronous = full`) and
//! `ingest postgres: N updates/s` (a `normal` run prints `ingest sqlite/normal: …`), and,
//! on stderr, the fusion outputs by kind. Run it on an otherwise idle machine; the writer
//! is one thread (PostgreSQL's server is another process).

#[path = "../tests/common/pg.rs"]
mod pg;
#[path = "common/synth.rs"]
mod synth;

use std::io::Write as _;
use std::time::{Duration, Instant};

use aggregator::config::CameraPlace;
use aggregator::metrics::Metrics;
use aggregator::store::config::StoreConfig;
use aggregator::store::fusion::output_kind;
use aggregator::store::{SqliteSynchronous, Store};
use aggregator::subscribe::FusionStage;
use fusion::{CameraCatalog, FuseConfig, Fuser};
use sharpeyes_wire::{
    Body, Codec, Envelope, ObjectClass, PlateReading, QBox, QEmbedding, TrackBatch, TrackEvent,
    TrackUpdate, plate,
};
use synth::{Rng, plate_of};

const CAMERAS: usize = 200;
const SITES: usize = 20;
const PLATES: u64 = 20_000;
const PERSONS: u64 = 20_000;
const DIM: usize = 128;

/// One serial character swapped for another of its confusable group (`wire::plate`), if the
/// plate has one whose partner is a serial character too.
fn misread(p: &str) -> String {
    let swap = |c: char| {
        let g = plate::CONFUSABLE_GROUPS[plate::confusable_group(c)?];
        g.chars().find(|&o| o != c && plate::is_serial_char(o))
    };
    let mut out: Vec<char> = p.chars().collect();
    if let Some((i, o)) = (2..out.len()).find_map(|i| swap(out[i]).map(|o| (i, o))) {
        out[i] = o;
    }
    out.into_iter().collect()
}

/// Person `p`'s identity vector (unit length).
fn identity(p: u64) -> Vec<f32> {
    let mut r = Rng(p.wrapping_mul(0x9E37) ^ 0x5151);
    unit((0..DIM).map(|_| r.normal()).collect())
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Camera `c`: a denser district than `store_scale`'s (40 grids over about 10 × 10 km).
fn camera(c: usize) -> CameraPlace {
    synth::camera(c, SITES, 40, [30.6, 104.0], 0.1)
}

/// A live track of the generator.
struct Live {
    track: u64,
    class: ObjectClass,
    started: bool,
    left: u32,
    plate: Option<String>,
    face: Option<Vec<f32>>,
}

/// The synthetic traffic: encoded payloads with their topics, as the broker delivers them.
struct Traffic {
    rng: Rng,
    codec: Codec,
    live: Vec<Vec<Live>>,
    next_track: Vec<u64>,
    seq: Vec<u64>,
    round: i64,
    cam: usize,
    /// Capture time of the first round: the run's start. The writer gives the fuser the wall
    /// clock (memory retirement runs on it), so capture times must be near it, else the
    /// identities found would depend on how fast the run goes.
    t0: i64,
}

impl Traffic {
    fn new() -> Self {
        Self {
            rng: Rng(42),
            codec: Codec::default(),
            live: (0..CAMERAS).map(|_| Vec::new()).collect(),
            next_track: vec![1; CAMERAS],
            seq: vec![0; SITES],
            round: 0,
            cam: 0,
            t0: sharpeyes_wire::now_ms(),
        }
    }

    /// The next camera's batch: (payload, topic, updates in it).
    fn next(&mut self) -> (Vec<u8>, String, usize) {
        let c = self.cam;
        self.cam += 1;
        if self.cam == CAMERAS {
            self.cam = 0;
            self.round += 1;
        }
        let place = camera(c);
        let now = self.t0 + self.round * 2_000 + (c as i64 * 2_000 / CAMERAS as i64);
        // Keep about 6 tracks alive per camera.
        while self.live[c].len() < 6 {
            let vehicle = self.rng.below(10) < 6;
            let track = self.next_track[c];
            self.next_track[c] += 1;
            let (plate, face) = if vehicle {
                let v = (self.rng.unit().powi(3) * PLATES as f64) as u64;
                let p = plate_of(v);
                let p = if self.rng.below(50) == 0 {
                    misread(&p)
                } else {
                    p
                };
                (Some(p), None)
            } else {
                let id = (self.rng.unit().powi(3) * PERSONS as f64) as u64;
                let noise: Vec<f32> = identity(id)
                    .iter()
                    .map(|x| x + 0.02 * self.rng.normal())
                    .collect();
                (None, Some(unit(noise)))
            };
            self.live[c].push(Live {
                track,
                class: if vehicle {
                    ObjectClass::Car
                } else {
                    ObjectClass::Person
                },
                started: false,
                left: 2 + self.rng.below(8) as u32,
                plate,
                face,
            });
        }
        let mut updates = Vec::new();
        for (i, t) in self.live[c].iter_mut().enumerate() {
            // Each track speaks about once a second: every other batch, staggered.
            if t.started && (self.round as usize + i) % 2 == 1 && t.left > 0 {
                continue;
            }
            let event = if !t.started {
                t.started = true;
                TrackEvent::Start
            } else if t.left == 0 {
                TrackEvent::End
            } else {
                TrackEvent::Update
            };
            t.left = t.left.saturating_sub(1);
            let x = 100.0 + 80.0 * i as f32;
            updates.push(TrackUpdate {
                track: t.track,
                class: t.class,
                event,
                ts_ms: now,
                bbox: QBox::from_pixels([x, 300.0, 120.0, 240.0], 1920, 1080),
                score: 0.8,
                embedding: t.face.as_deref().map(QEmbedding::quantize),
                plate: t.plate.as_ref().map(|p| PlateReading {
                    text: p.clone(),
                    confidence: 0.9,
                }),
                link: None,
                thumb: None,
            });
        }
        self.live[c].retain(|t| !(t.started && t.left == 0 && ended(&updates, t.track)));
        let site = c % SITES;
        self.seq[site] += 1;
        let n = updates.len();
        let env = Envelope::new(
            place.agent.clone(),
            self.seq[site],
            now,
            Body::Tracks(TrackBatch {
                site: place.site.clone(),
                camera: place.camera.clone(),
                frame_w: 1920,
                frame_h: 1080,
                from_ms: now - 500,
                to_ms: now,
                frames: 5,
                updates,
            }),
        );
        let topic = format!(
            "sharpeyes/{}/{}/{}/tracks",
            place.site, place.agent, place.camera
        );
        (self.codec.encode(&env).expect("encodes"), topic, n)
    }
}

fn ended(updates: &[TrackUpdate], track: u64) -> bool {
    updates
        .iter()
        .any(|u| u.track == track && u.event == TrackEvent::End)
}

struct Result_ {
    backend: &'static str,
    batches: usize,
    updates: usize,
    wall: Duration,
    decode: Duration,
    fuse: Duration,
    store: Duration,
    /// The writer thread's CPU time over the same spans.
    cpu: Duration,
    vehicles: u64,
    persons: u64,
    /// Fusion outputs by kind.
    outputs: std::collections::BTreeMap<&'static str, u64>,
}

/// This thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn run(backend: &'static str, mut store: Store, batches: usize, group: usize) -> Result_ {
    let cameras: Vec<CameraPlace> = (0..CAMERAS).map(camera).collect();
    store.sync_cameras(&cameras).expect("cameras");
    let mut catalog = CameraCatalog::new();
    for c in &cameras {
        catalog.insert(c.key(), c.lat, c.lon).expect("camera");
    }
    let metrics = Metrics::default();
    let mut stage = FusionStage::new(Box::new(move |s: &Store| {
        let (v, p) = s.fusion_next_ids()?;
        Ok(Fuser::new(FuseConfig::default(), catalog.clone())
            .expect("fusion config")
            .with_next_ids(v, p))
    }));
    let mut traffic = Traffic::new();
    let codec = Codec::default();
    let (mut decode, mut fuse, mut commit) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut cpu = Duration::ZERO;
    let mut updates = 0;
    let mut done = 0;
    let mut outputs = std::collections::BTreeMap::new();
    while done < batches {
        let n = group.min(batches - done);
        let payloads: Vec<(Vec<u8>, String, usize)> = (0..n).map(|_| traffic.next()).collect();
        let c0 = thread_cpu();
        let t = Instant::now();
        let valid: Vec<(Envelope, String, usize)> = payloads
            .into_iter()
            .map(|(p, topic, u)| {
                updates += u;
                let len = p.len();
                (codec.decode(&p).expect("decodes"), topic, len)
            })
            .collect();
        let t1 = Instant::now();
        stage.prepare(&store, &valid, true, &metrics);
        for o in stage.outputs() {
            *outputs.entry(output_kind(o)).or_insert(0) += 1;
        }
        let t2 = Instant::now();
        stage.commit(&mut store, &valid, &metrics).expect("commit");
        let t3 = Instant::now();
        cpu += thread_cpu() - c0;
        decode += t1 - t;
        fuse += t2 - t1;
        commit += t3 - t2;
        done += n;
    }
    // The writer's time: making the payloads (the agents' work) is not counted.
    let wall = decode + fuse + commit;
    eprintln!(
        "{backend}: queued for another owner {}, taken from the inbox {}, owner {}",
        metrics
            .fusion_queued
            .load(std::sync::atomic::Ordering::Relaxed),
        metrics
            .fusion_dequeued
            .load(std::sync::atomic::Ordering::Relaxed),
        stage.is_owner()
    );
    let (v, p) = store.fusion_next_ids().expect("ids");
    Result_ {
        backend,
        batches,
        updates,
        wall,
        decode,
        fuse,
        store: commit,
        cpu,
        vehicles: v - 1,
        persons: p - 1,
        outputs,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, tiny.
    let quick = !std::env::args().any(|a| a == "--bench");
    let batches = if quick {
        50
    } else {
        env_usize("INGEST_BATCHES", 5000)
    };
    let group = env_usize("INGEST_GROUP", StoreConfig::default().max_batch).max(1);
    let backends = std::env::var("INGEST_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    let mut out = std::env::var("INGEST_OUT").ok().map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("INGEST_OUT opens")
    });
    println!(
        "{:<9} {:>8} {:>9} {:>9} {:>11} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8}",
        "backend",
        "batches",
        "updates",
        "wall s",
        "updates/s",
        "decode",
        "fusion",
        "store",
        "cpu µs/u",
        "vehicles",
        "persons"
    );
    let syncs = std::env::var("INGEST_SQLITE_SYNC").unwrap_or_else(|_| "full".into());
    let mut runs: Vec<&str> = Vec::new();
    for b in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        if b == "sqlite" {
            for s in syncs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                runs.push(match s {
                    "full" => "sqlite/full",
                    "normal" => "sqlite/normal",
                    other => panic!("INGEST_SQLITE_SYNC: {other:?} is neither full nor normal"),
                });
            }
        } else {
            runs.push(b);
        }
    }
    let mut summary = Vec::new();
    for b in runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let (r, _server) = match b {
            "sqlite/full" | "sqlite/normal" => {
                let store = Store::open(&dir.path().join("ingest.db")).expect("sqlite");
                let (mode, label) = if b == "sqlite/full" {
                    (SqliteSynchronous::Full, "sqlite/full")
                } else {
                    (SqliteSynchronous::Normal, "sqlite/normal")
                };
                store.set_sqlite_synchronous(mode).expect("synchronous");
                (run(label, store, batches, group), None)
            }
            "postgres" => {
                let server = pg::TempPostgres::start();
                let store = Store::open_postgres(&server.database("ingest")).expect("postgres");
                (run("postgres", store, batches, group), Some(server))
            }
            other => panic!("INGEST_BACKENDS: unknown backend {other:?}"),
        };
        let s = r.wall.as_secs_f64();
        let share = |d: Duration| format!("{:.0}%", 100.0 * d.as_secs_f64() / s.max(1e-9));
        println!(
            "{:<9} {:>8} {:>9} {:>9.2} {:>11.0} {:>7} {:>7} {:>7} {:>8.1} {:>9} {:>8}",
            r.backend,
            r.batches,
            r.updates,
            s,
            r.updates as f64 / s.max(1e-9),
            share(r.decode),
            share(r.fuse),
            share(r.store),
            1e6 * r.cpu.as_secs_f64() / r.updates.max(1) as f64,
            r.vehicles,
            r.persons
        );
        eprintln!("{}: fusion outputs {:?}", r.backend, r.outputs);
        let name = match r.backend {
            "sqlite/full" => "sqlite",
            other => other,
        };
        summary.push(format!(
            "ingest {name}: {:.0} updates/s",
            r.updates as f64 / s.max(1e-9)
        ));
        if let Some(f) = out.as_mut() {
            let _ = writeln!(
                f,
                "{}",
                serde_json::json!({
                    "bench": "ingest", "backend": r.backend, "batches": r.batches,
                    "updates": r.updates, "wall_s": s,
                    "updates_per_s": r.updates as f64 / s.max(1e-9),
                    "decode_s": r.decode.as_secs_f64(), "fusion_s": r.fuse.as_secs_f64(),
                    "store_s": r.store.as_secs_f64(),
                    "writer_cpu_s": r.cpu.as_secs_f64(), "vehicles": r.vehicles,
                    "persons": r.persons, "group": group,
                })
            );
        }
    }
    for line in summary {
        println!("{line}");
    }
}
