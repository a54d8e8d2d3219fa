//! Face search through the HTTP API on a store of N synthetic persons, from the live index.
//!
//! 1. A SQLite store gets N persons' representative faces (`person_faces`, bulk-inserted in
//!    one transaction: not through MQTT and fusion), 128-d unit embeddings: each person a
//!    random centre, each face the centre plus noise (cosine with the centre ≈ 0.78, like
//!    SFace photos of one person), `SHARPEYES_BENCH_FACES_PER_PERSON` faces each (default 1).
//! 2. The live index starts on it twice: without a snapshot (every face read from the store:
//!    the *rebuild*, which writes the snapshot), then from the snapshot (the *snapshot load*:
//!    read, checksum, catch-up comparison with the store). Both times are printed, with the
//!    index's memory.
//! 3. The API (`aggregator::api::serve_with`, the live index) answers
//!    `POST /api/v1/faces/search` with a query embedding (JSON) of another noisy face of a
//!    random person, one request at a time over one keep-alive connection: p50 / p99 and
//!    how often the person came first are printed, then the same searches in process (the
//!    scan alone, without HTTP, JSON and the sightings look-up).
//!
//! `cargo bench -p aggregator --bench face_search` runs 100 000 persons;
//! `SHARPEYES_BENCH_FACES=1000000 cargo bench -p aggregator --bench face_search` 1 M (about
//! 0.7 GB of index and 0.8 GB of store; `SHARPEYES_BENCH_DIR` picks the store's directory,
//! default a temporary one). `SHARPEYES_BENCH_HNSW=20000` also builds the HNSW index
//! ([`aggregator::facesearch::FaceIndex`]) of that many faces and times both indexes on it
//! (the crossover measurement in `docs/benchmarks.md`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use aggregator::facesearch::live::{LiveConfig, LiveFaces};
use aggregator::facesearch::{FaceIndex, FaceKey, FaceMeta, FlatIndex, HnswParams, SearchOptions};
use aggregator::metrics::Metrics;
use aggregator::store::{Location, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

const DIM: usize = 128;
const MODEL: &str = "sface_2021dec";
/// Per-value noise of a face around its person's centre: cosine ≈ 1/√(1 + 128·σ²) ≈ 0.78.
const NOISE: f32 = 0.07;

/// SplitMix64 with Box–Muller normals: the same data on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    fn around(&mut self, centre: &[f32], noise: f32) -> Vec<f32> {
        let v: Vec<f32> = centre.iter().map(|x| x + noise * self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Person `p`'s centre: derived from `p` alone, so the queries need no table of centres.
fn centre(p: usize) -> Vec<f32> {
    Rng(0xC0FFEE ^ (p as u64).wrapping_mul(0x9E37_79B9)).around(&[0.0; DIM], 1.0)
}

/// N persons' faces into the store's `person_faces`, in one transaction.
fn fill(db: &Path, persons: usize, per_person: usize) {
    Store::open(db).expect("creating the store");
    let mut c = rusqlite::Connection::open(db).unwrap();
    c.pragma_update(None, "synchronous", "off").unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut st = tx
            .prepare(
                "INSERT INTO person_faces (agent, camera, track, site, person, model, dim,
                                           embedding, quality, ts_ms)
                 VALUES (?1, ?2, ?3, '东区', ?4, ?5, 128, ?6, 0.9, ?7)",
            )
            .unwrap();
        let mut rng = Rng(7);
        let mut blob = Vec::with_capacity(DIM * 4);
        for p in 0..persons {
            let c = centre(p);
            for f in 0..per_person {
                let track = (p * per_person + f) as i64;
                blob.clear();
                for x in rng.around(&c, NOISE) {
                    blob.extend_from_slice(&x.to_le_bytes());
                }
                let agent = format!("gw-{}", p % 1000);
                let camera = format!("cam-{}", f % 16);
                st.execute(rusqlite::params![
                    agent,
                    camera,
                    track,
                    p as i64 + 1,
                    MODEL,
                    blob,
                    1_700_000_000_000i64 + track
                ])
                .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// Starts the live index and waits until it is loaded: it, and the time it took.
fn start_index(at: &Location, snapshot: &Path, metrics: &Arc<Metrics>) -> (LiveFaces, Duration) {
    let t0 = Instant::now();
    let live = LiveFaces::start(
        LiveConfig {
            store: at.clone(),
            snapshot: snapshot.to_path_buf(),
            model: MODEL.into(),
            dim: DIM,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            snapshot_every: None,
            refresh_every: None,
        },
        metrics.clone(),
    )
    .unwrap();
    while !live.is_ready() {
        std::thread::sleep(Duration::from_millis(5));
    }
    (live, t0.elapsed())
}

struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    async fn post(&mut self, path: &str, token: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            stream.set_nodelay(true).ok();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let s = self.sender.as_mut().expect("connected");
        s.ready().await.unwrap();
        let req = hyper::Request::post(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("x-purpose", "face search benchmark")
            .header("x-case", "BENCH-1")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = s.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body.to_vec())
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let persons = env_usize("SHARPEYES_BENCH_FACES", 100_000).max(1);
    let per_person = env_usize("SHARPEYES_BENCH_FACES_PER_PERSON", 1).clamp(1, 16);
    let queries = env_usize("SHARPEYES_BENCH_QUERIES", 300).max(10);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("SHARPEYES_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let db = dir.join(format!("faces-{persons}x{per_person}.db"));
    let snap = dir.join(format!("faces-{persons}x{per_person}.db.faces"));
    let _ = std::fs::remove_file(&snap);
    if !db.exists() {
        let t = Instant::now();
        fill(&db, persons, per_person);
        println!(
            "store: {persons} persons × {per_person} face(s) inserted in {:.1} s ({})",
            t.elapsed().as_secs_f64(),
            db.display()
        );
    }
    let at = Location::Sqlite(db.clone());
    let metrics = Arc::new(Metrics::default());
    let (live, rebuild) = start_index(&at, &snap, &metrics);
    live.stop();
    let snap_mb = std::fs::metadata(&snap).map_or(0.0, |m| m.len() as f64 / 1e6);
    let metrics = Arc::new(Metrics::default());
    let (live, loaded) = start_index(&at, &snap, &metrics);
    assert_eq!(
        metrics.face_index_loads.snapshot().get("snapshot"),
        Some(&1),
        "the second start loads the snapshot"
    );
    let (faces, indexed, bytes) = live.size();
    let load_in_thread = metrics
        .face_index_load_us
        .load(std::sync::atomic::Ordering::Relaxed) as f64
        / 1e6;
    // The snapshot load's parts: reading the file, and the catch-up with the store.
    let t = Instant::now();
    let (read, info) = aggregator::facesearch::snapshot::read(&snap, DIM, MODEL).unwrap();
    let read_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let store = Store::open(&db).unwrap();
    let lock = std::sync::RwLock::new(read);
    let c = aggregator::facesearch::live::catch_up_since(&store, &lock, MODEL, info.watermark_ms)
        .unwrap();
    println!(
        "snapshot read {read_s:.2} s, catch-up with the store {:.2} s ({c:?})",
        t.elapsed().as_secs_f64()
    );
    drop((lock, store));
    println!(
        "face index: {faces} faces of {indexed} persons, {:.0} MB in memory ({:.0} bytes/face); \
         rebuild from the store {:.1} s; snapshot ({snap_mb:.0} MB) load + catch-up {:.2} s \
         ({load_in_thread:.2} s of it in the load itself)",
        bytes as f64 / 1e6,
        bytes as f64 / faces.max(1) as f64,
        rebuild.as_secs_f64(),
        loaded.as_secs_f64(),
    );

    let mut rng = Rng(99);
    let asked: Vec<(usize, Vec<f32>)> = (0..queries)
        .map(|i| {
            let p = (i * 7919 + 13) % persons;
            (p, rng.around(&centre(p), NOISE))
        })
        .collect();
    let token = {
        let s = Store::open(&db).unwrap();
        let name = format!("face-bench-{}", sharpeyes_wire::now_ms());
        aggregator::api::access::create_token(&s, &name, "analyst", None, sharpeyes_wire::now_ms())
            .unwrap()
            .0
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut lat, first) = rt.block_on(async {
        let mut cfg = AggregatorConfig::default();
        cfg.store.path = db.clone();
        cfg.api.listen = ([127, 0, 0, 1], 0).into();
        cfg.api.rate_per_s = 100_000.0;
        cfg.api.rate_burst = 1_000_000;
        let stop = tokio_util::sync::CancellationToken::new();
        let addr = aggregator::api::serve_with(
            &cfg,
            metrics.clone(),
            aggregator::api::alert_events(),
            Some(live.clone()),
            stop.clone(),
        )
        .await
        .unwrap();
        let mut conn = Conn { addr, sender: None };
        let mut lat = Vec::with_capacity(queries);
        let mut first = 0;
        for (i, (p, q)) in asked.iter().enumerate() {
            let body = serde_json::to_vec(&serde_json::json!({ "embedding": q })).unwrap();
            let t = Instant::now();
            let (status, body) = conn
                .post(
                    "/api/v1/faces/search?top=10&min_similarity=-1",
                    &token,
                    body,
                )
                .await;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["index"], "live");
            first += usize::from(v["results"][0]["person"].as_u64() == Some(*p as u64 + 1));
            // The first few warm the connection and the caches.
            if i >= 3 {
                lat.push(ms);
            }
        }
        stop.cancel();
        (lat, first)
    });
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!(
        "api face search: {persons} persons, p50 {p50:.1} ms, p99 {p99:.1} ms \
         ({} requests, top 10, the person first in {first} of {queries})",
        lat.len()
    );
    let o = SearchOptions::top(10);
    let mut scan: Vec<f64> = asked
        .iter()
        .map(|(_, q)| {
            let t = Instant::now();
            std::hint::black_box(live.search(q, &o).unwrap());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    println!(
        "index scan alone (in process, {} threads): p50 {:.1} ms, p99 {:.1} ms",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        pct(&mut scan, 0.5),
        pct(&mut scan, 0.99)
    );
    live.stop();
    let hnsw = env_usize("SHARPEYES_BENCH_HNSW", 0);
    if hnsw > 0 {
        crossover(hnsw);
    }
}

/// HNSW (graph + exact re-rank) against the flat scan on the same `n` faces (4 per person).
fn crossover(n: usize) {
    let persons = (n / 4).max(1);
    let mut rng = Rng(42);
    let faces: Vec<(FaceMeta, Vec<f32>)> = (0..n)
        .map(|i| {
            let p = i % persons;
            let meta = FaceMeta {
                person: p as u64,
                key: FaceKey {
                    agent: "gw".into(),
                    camera: "cam".into(),
                    track: i as u64,
                },
                site: "s".into(),
                ts_ms: 0,
                quality: 1.0,
            };
            (meta, rng.around(&centre(p), NOISE))
        })
        .collect();
    let mut flat = FlatIndex::new(DIM);
    for (m, v) in &faces {
        flat.insert(m, v).unwrap();
    }
    let t0 = Instant::now();
    let (graph, _) = FaceIndex::build(DIM, HnswParams::default(), faces);
    let build = t0.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let o = SearchOptions::top(10);
    let qs: Vec<Vec<f32>> = (0..300)
        .map(|i| rng.around(&centre((i * 7919) % persons), NOISE))
        .collect();
    let time = |f: &dyn Fn(&[f32])| {
        let mut v: Vec<f64> = qs
            .iter()
            .map(|q| {
                let t = Instant::now();
                f(q);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        (pct(&mut v, 0.5), pct(&mut v, 0.99))
    };
    let (g50, g99) = time(&|q| {
        std::hint::black_box(graph.search(q, &o).unwrap());
    });
    let (f50, f99) = time(&|q| {
        std::hint::black_box(flat.search(q, &o, threads).unwrap());
    });
    println!(
        "crossover at {n} faces: hnsw (built in {build:.0} s) p50 {g50:.2} ms p99 {g99:.2} ms; \
         flat scan ({threads} threads) p50 {f50:.2} ms p99 {f99:.2} ms"
    );
}
