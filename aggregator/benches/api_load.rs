//! API load benchmark: N concurrent clients against the HTTP API over an existing store, for a
//! bounded time; p50 / p99 latency per route and requests per second.
//!
//! ```text
//! API_LOAD_DB=/data/store.db cargo bench -p aggregator --bench api_load
//! # build a synthetic store first (the store_scale data) if the file is missing:
//! API_LOAD_DB=/data/store10m.db API_LOAD_SIGHTINGS=10000000 cargo bench -p aggregator --bench api_load
//! ```
//!
//! Environment:
//! - `API_LOAD_DB` (required): the store, a SQLite file or a `postgres://` URL;
//! - `API_LOAD_SIGHTINGS`: when the SQLite file does not exist, build it with this many
//!   synthetic sightings first (`benches/common/scale_store.rs`, as `store_scale` does);
//! - `API_LOAD_CLIENTS`: concurrent clients (default `50`), each a Tokio task with one
//!   keep-alive HTTP/1.1 connection, sending its next request when the last one is answered;
//! - `API_LOAD_SECONDS`: how long to run (default `30`); the clients then stop by
//!   themselves, the server shuts down;
//! - `API_LOAD_OUT`: a file to append one JSON line per route to;
//! - `API_LOAD_COLD`: set, the SQLite file is not read once before the run (by default it
//!   is, so the run starts from the OS page cache as a serving aggregator's store does, and
//!   measures the API and the queries rather than the disk).
//!
//! The API runs in this process on 127.0.0.1 (an ephemeral port) exactly as the aggregator
//! serves it (`aggregator::api::serve`, rate limits raised out of the way), with an analyst
//! token made for the run. Requests, in turn per client: a plate trajectory (first page,
//! 100 sightings), sightings in a ~1 km box during one hour around a sampled sighting, the
//! newest 50 alerts. Plates, places and times are sampled from the store's vehicles first.
//! Every request is audited as in production: **the run appends its requests to the store's
//! audit log**.

#[path = "common/scale_store.rs"]
mod scale_store;
#[path = "common/synth.rs"]
mod synth;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use aggregator::store::{Location, Page, SightingRow, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// One keep-alive connection.
struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    async fn get(&mut self, path: &str, token: &str) -> Result<(u16, usize), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).ok();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let s = self.sender.as_mut().expect("connected");
        s.ready().await.map_err(|e| e.to_string())?;
        let req = hyper::Request::get(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header("x-purpose", "load benchmark")
            .header("x-case", "BENCH-1")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body.len()))
    }
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const ROUTES: [&str; 3] = ["vehicles.trajectory", "sightings", "alerts"];

fn main() {
    let db = std::env::var("API_LOAD_DB")
        .expect("API_LOAD_DB: the store to load (a SQLite file or a postgres:// URL)");
    let env_n = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{k}: not a number")))
            .unwrap_or(d)
    };
    let clients = env_n("API_LOAD_CLIENTS", 50) as usize;
    let seconds = env_n("API_LOAD_SECONDS", 30);
    let at = Location::parse(&db);
    if let Location::Sqlite(p) = &at
        && !p.exists()
    {
        let n = env_n("API_LOAD_SIGHTINGS", 0) as usize;
        assert!(
            n > 0,
            "{} does not exist (set API_LOAD_SIGHTINGS to build it)",
            p.display()
        );
        let mut s = Store::open(p).unwrap();
        let secs = scale_store::load(&mut s, n);
        println!("built {} with {n} sightings in {secs:.1} s", p.display());
    }
    // A serving aggregator's store is in the OS page cache; a store just built or copied
    // may not be (the run would measure the disk): read the SQLite file once first, unless
    // API_LOAD_COLD is set.
    if let Location::Sqlite(p) = &at
        && std::env::var_os("API_LOAD_COLD").is_none()
    {
        use std::io::Read as _;
        let t = Instant::now();
        let mut f = std::fs::File::open(p).unwrap();
        let mut buf = vec![0u8; 8 << 20];
        let mut bytes = 0u64;
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
        println!(
            "warmed {} ({:.1} GB) in {:.1} s",
            p.display(),
            bytes as f64 / 1e9,
            t.elapsed().as_secs_f64()
        );
    }
    // Sample plates, places and times from the store's vehicles.
    let (token, sample) = {
        let s = Store::open_at(&at).unwrap();
        let ids: Vec<u64> = (1..=20u64).chain((1..200).map(|i| 1 + i * 97)).collect();
        let rows = s
            .identity_sightings_page(
                "vehicle",
                &ids,
                None,
                &Page {
                    after: None,
                    limit: Some(5000),
                },
            )
            .unwrap();
        let name = format!(
            "api-load-{}-{}",
            std::process::id(),
            sharpeyes_wire::now_ms()
        );
        let (token, _) = aggregator::api::access::create_token(
            &s,
            &name,
            "analyst",
            None,
            sharpeyes_wire::now_ms(),
        )
        .unwrap();
        (token, rows)
    };
    let sample: Vec<SightingRow> = sample
        .into_iter()
        .filter(|r| r.plate.is_some() && r.lat.is_some() && r.lon.is_some())
        .collect();
    assert!(
        !sample.is_empty(),
        "no placed vehicle sightings to sample in {db}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = match &at {
            Location::Sqlite(p) => aggregator::config::StoreConfig {
                path: p.clone(),
                ..Default::default()
            },
            Location::Postgres(u) => aggregator::config::StoreConfig {
                backend: aggregator::config::StoreBackend::Postgres,
                postgres_url: Some(u.clone().into()),
                ..Default::default()
            },
        };
        let mut cfg = AggregatorConfig {
            store,
            ..Default::default()
        };
        cfg.api.listen = ([127, 0, 0, 1], 0).into();
        cfg.api.rate_per_s = 100_000.0;
        cfg.api.rate_burst = 1_000_000;
        let stop = tokio_util::sync::CancellationToken::new();
        let addr = aggregator::api::serve(
            &cfg,
            Arc::new(aggregator::metrics::Metrics::default()),
            aggregator::api::alert_events(),
            stop.clone(),
        )
        .await
        .unwrap();
        let sample = Arc::new(sample);
        let token = Arc::new(token);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (sample, token) = (sample.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn { addr, sender: None };
                let mut lat: [Vec<f64>; 3] = Default::default();
                let mut errors = 0u64;
                let mut i = c;
                while Instant::now() < end {
                    let r = &sample[(i * 7919) % sample.len()];
                    let k = i % 3;
                    let path = match k {
                        0 => format!(
                            "/api/v1/vehicles/trajectory?plate={}",
                            enc(r.plate.as_deref().unwrap_or(""))
                        ),
                        1 => {
                            let (la, lo) = (r.lat.unwrap(), r.lon.unwrap());
                            let from = aggregator::query::utc(r.first_ms - 1_800_000);
                            let to = aggregator::query::utc(r.first_ms + 1_800_000);
                            format!(
                                "/api/v1/sightings?bbox={},{},{},{}&from={}&to={}",
                                la - 0.005,
                                lo - 0.005,
                                la + 0.005,
                                lo + 0.005,
                                enc(&from),
                                enc(&to)
                            )
                        }
                        _ => "/api/v1/alerts?limit=50".to_string(),
                    };
                    let t = Instant::now();
                    match conn.get(&path, &token).await {
                        Ok((200, _)) => lat[k].push(t.elapsed().as_secs_f64() * 1000.0),
                        Ok(_) | Err(_) => {
                            errors += 1;
                            conn.sender = None;
                        }
                    }
                    i += 1;
                }
                (lat, errors)
            }));
        }
        let mut all: [Vec<f64>; 3] = Default::default();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.unwrap();
            for (a, l) in all.iter_mut().zip(lat) {
                a.extend(l);
            }
            errors += e;
        }
        let wall = t0.elapsed().as_secs_f64();
        stop.cancel();
        let total: usize = all.iter().map(Vec::len).sum();
        println!(
            "{clients} clients, {wall:.1} s, store {}: {total} requests ok, {errors} failed, {:.0} requests/s",
            at.describe(),
            total as f64 / wall
        );
        println!("{:<22} {:>9} {:>9} {:>9} {:>9}", "route", "requests", "p50 ms", "p99 ms", "max ms");
        let out = std::env::var_os("API_LOAD_OUT");
        for (route, mut l) in ROUTES.iter().zip(all) {
            if l.is_empty() {
                println!("{route:<22} {:>9}", 0);
                continue;
            }
            l.sort_by(f64::total_cmp);
            let at = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
            let (p50, p99, max) = (at(0.5), at(0.99), l[l.len() - 1]);
            println!("{route:<22} {:>9} {p50:>9.2} {p99:>9.2} {max:>9.2}", l.len());
            if let Some(o) = &out {
                let line = serde_json::json!({
                    "route": route, "clients": clients, "seconds": wall, "requests": l.len(),
                    "p50_ms": p50, "p99_ms": p99, "max_ms": max,
                    "requests_per_s_all": total as f64 / wall, "errors": errors,
                });
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(o).unwrap();
                writeln!(f, "{line}").unwrap();
            }
        }
    });
}
