//! The HTTP API against a running aggregator (embedded broker, SQLite store) over real HTTP:
//! the role × endpoint matrix from the one route table, purposes, the audit chain (and its
//! tamper check, on both backends), the OpenAPI document against the routes, hostile
//! requests, pagination and export formats, and the live alert stream fed by an alert
//! published through the broker.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::api::access::{ROUTES, Role, create_token};
use aggregator::config::{CameraPlace, ModelsConfig};
use aggregator::metrics::Metrics;
use aggregator::store::sql::Value;
use aggregator::store::{Area, Store};
use common::http::{self, Resp};
use common::{free_port, wait};
use http_body_util::BodyExt;
use sharpeyes_wire::{Alert, AlertKind, Body, Envelope, Evidence, Priority, Topics};

const PLATE: &str = "%E4%BA%ACA12345"; // 京A12345
const PURPOSE: [(&str, &str); 2] = [
    ("x-purpose", "theft investigation"),
    ("x-case", "2026/0042"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Server {
    _dir: tempfile::TempDir,
    db: PathBuf,
    addr: SocketAddr,
    broker_port: u16,
    tokens: HashMap<String, String>,
    metrics: std::sync::Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), aggregator::AggregatorError>>,
}

impl Server {
    fn token(&self, name: &str) -> &str {
        &self.tokens[name]
    }

    async fn get(&self, path: &str, who: &str) -> Resp {
        http::get(self.addr, path, self.token(who)).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        who: Option<&str>,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let auth = who.map(|w| format!("Bearer {}", self.token(w)));
        let mut h: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &auth {
            h.push(("authorization", a));
        }
        http::request(self.addr, method, path, &h, body).await
    }

    /// Stops the aggregator; the store's directory lives on with the returned value.
    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        self._dir
    }
}

/// An hour ago: the seeded sightings' time base.
fn t0() -> i64 {
    sharpeyes_wire::now_ms() - 3_600_000
}

fn alert_env(seq: u64, id: &str, ts_ms: i64) -> Envelope {
    Envelope::new(
        "agent-1",
        seq,
        ts_ms,
        Body::Alert(Alert {
            site: "s1".into(),
            camera: "cam-1".into(),
            alert_id: id.into(),
            kind: AlertKind::PlateWatchlist,
            priority: Priority::High,
            ts_ms,
            track: Some(3),
            summary: format!("wanted plate seen ({id})"),
            details: BTreeMap::new(),
            evidence: vec![Evidence {
                role: "crop".into(),
                mime: "image/jpeg".into(),
                data: vec![0xff, 0xd8, 0x01, 0xff, 0xd9],
            }],
        }),
    )
}

/// Seeds a store: a token per role (named after it) and a few more, vehicles 1 and 2 with
/// sightings, person 7, alerts, wanted plates.
fn seed(db: &Path) -> HashMap<String, String> {
    let mut s = Store::open(db).unwrap();
    let now = sharpeyes_wire::now_ms();
    let mut tokens = HashMap::new();
    for name in [
        "viewer", "analyst", "enroller", "admin", "victim", "revoked", "limited",
    ] {
        let role = match name {
            "victim" | "revoked" | "limited" => "analyst",
            r => r,
        };
        let (t, _) = create_token(&s, name, role, None, now).unwrap();
        tokens.insert(name.to_string(), t);
    }
    let (t, _) = create_token(&s, "expired", "admin", Some(now + 50), now).unwrap();
    tokens.insert("expired".into(), t);
    assert!(s.revoke_token("revoked", now).unwrap());
    tokens.insert(
        "bogus".into(),
        "se_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    );
    let t0 = t0();
    s.bulk_insert(
        "vehicles",
        &["id", "plate", "canon", "first_ms", "clone_of"],
        &[1i64, 2].map(|id| {
            let plate = if id == 1 { "京A12345" } else { "京A1234S" };
            vec![
                Value::Integer(id),
                Value::Text(plate.into()),
                Value::Text(sharpeyes_wire::plate::canonical(plate)),
                Value::Integer(t0),
                Value::Null,
            ]
        }),
        None,
    )
    .unwrap();
    s.bulk_insert(
        "persons",
        &["id", "first_ms"],
        &[vec![Value::Integer(7), Value::Integer(t0)]],
        None,
    )
    .unwrap();
    let mut rows = Vec::new();
    for i in 0..7i64 {
        let (kind, identity, class, plate) = match i {
            0..=4 => ("vehicle", 1, "car", Some("京A12345")),
            5 => ("vehicle", 2, "car", Some("京A1234S")),
            _ => ("person", 7, "person", None),
        };
        let cam = if i % 2 == 0 { "cam-1" } else { "cam-2" };
        rows.push(vec![
            Value::Text("agent-1".into()),
            Value::Text(cam.into()),
            Value::Integer(100 + i),
            Value::Text("s1".into()),
            Value::Text(kind.into()),
            Value::Integer(identity),
            Value::Text(class.into()),
            Value::Integer(t0 + i * 60_000),
            Value::Integer(t0 + i * 60_000 + 5_000),
            Value::Real(if cam == "cam-1" { 30.657 } else { 30.68 }),
            Value::Real(if cam == "cam-1" { 104.065 } else { 104.08 }),
            Value::Real(0.9),
            Value::Integer(1),
            plate.map_or(Value::Null, |p| Value::Text(p.into())),
            Value::Text("{\"rule\":\"exact_plate\"}".into()),
        ]);
    }
    s.bulk_insert(
        "sightings",
        &[
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
        ],
        &rows,
        Some(7),
    )
    .unwrap();
    let topic = Topics::default().alerts("s1", "agent-1", "cam-1");
    for (seq, id) in ["a-1", "ack-analyst", "ack-admin", "ack-twice"]
        .iter()
        .enumerate()
    {
        s.apply(&alert_env(seq as u64 + 1, id, t0 + seq as i64), &topic, 100)
            .unwrap();
    }
    for p in ["京B00001", "京B00002", "京B00003", "京B00004"] {
        aggregator::watchlist::enroll_plate(&mut s, p, "stolen").unwrap();
    }
    tokens
}

fn cameras() -> Vec<CameraPlace> {
    ["cam-1", "cam-2"]
        .iter()
        .map(|c| CameraPlace {
            site: "s1".into(),
            agent: "agent-1".into(),
            camera: c.to_string(),
            lat: if *c == "cam-1" { 30.657 } else { 30.68 },
            lon: if *c == "cam-1" { 104.065 } else { 104.08 },
            heading_deg: None,
            fov_deg: None,
            grid: Some("g1".into()),
        })
        .collect()
}

async fn server(tweak: impl FnOnce(&mut AggregatorConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let tokens = seed(&db);
    let mut cfg = AggregatorConfig::default();
    let broker_port = free_port();
    cfg.broker.listen = ([127, 0, 0, 1], broker_port).into();
    cfg.store.path = db.clone();
    cfg.ops.enabled = false;
    cfg.api.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.api.rate_burst = 1000;
    cfg.api.rate_per_s = 1000.0;
    cfg.cameras = cameras();
    cfg.watchlist.models = ModelsConfig {
        dir: root().join("models/files"),
        onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: 1,
    };
    tweak(&mut cfg);
    let addr: SocketAddr = cfg.api.listen;
    let (task, stop, metrics) = common::start(cfg).await;
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the API did not come up on {addr}");
    Server {
        _dir: dir,
        db,
        addr,
        broker_port,
        tokens,
        metrics,
        stop,
        task,
    }
}

/// A grey PNG: a photo without a face.
fn faceless_png() -> Vec<u8> {
    let img = image::GrayImage::from_pixel(160, 160, image::Luma([128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A request for route `id` made by `role` (each role gets its own target where the route
/// changes something), and the status an allowed caller gets.
fn sample(id: &str, role: &str) -> (String, Vec<u8>, Option<&'static str>, u16) {
    let i = Role::ALL
        .iter()
        .position(|r| r.as_str() == role)
        .unwrap_or(0)
        + 1;
    let json = Some("application/json");
    let (path, body, ct, ok): (String, Vec<u8>, Option<&str>, u16) = match id {
        "openapi" => ("/openapi.json".into(), vec![], None, 200),
        "web_config" => ("/web-config".into(), vec![], None, 200),
        // No api.tiles_file here: no tiles (api_tiles_and_site.rs serves a file).
        "tiles" => ("/tiles/0/0/0.png".into(), vec![], None, 404),
        "site" => ("/site.geojson".into(), vec![], None, 200),
        "me" => ("/me".into(), vec![], None, 200),
        "cameras" => ("/cameras".into(), vec![], None, 200),
        "vehicles" => (
            format!("/vehicles?plate={PLATE}&fuzzy=true"),
            vec![],
            None,
            200,
        ),
        "vehicles.trajectory" => (
            format!("/vehicles/trajectory?plate={PLATE}"),
            vec![],
            None,
            200,
        ),
        "vehicles.id.trajectory" => ("/vehicles/V-1/trajectory".into(), vec![], None, 200),
        "persons.trajectory" => ("/persons/P-7/trajectory".into(), vec![], None, 200),
        "faces.search" => (
            "/faces/search?top=3".into(),
            faceless_png(),
            Some("image/png"),
            422,
        ),
        "links" => (format!("/links?plate={PLATE}"), vec![], None, 200),
        "sightings" => ("/sightings?grid=g1&from=1d".into(), vec![], None, 200),
        "alerts" => ("/alerts?limit=2".into(), vec![], None, 200),
        "alerts.stream" => ("/alerts/stream".into(), vec![], None, 200),
        "alerts.ack" => (
            format!("/alerts/agent-1/ack-{role}/ack"),
            br#"{"note":"handled"}"#.to_vec(),
            json,
            200,
        ),
        "alerts.evidence" => (
            "/alerts/agent-1/a-1/evidence/crop".into(),
            vec![],
            None,
            200,
        ),
        // The crop every seeded alert carries, by its hash.
        "evidence" => (
            format!(
                "/evidence/{}",
                aggregator::store::evidence::sha256_hex(&[0xff, 0xd8, 0x01, 0xff, 0xd9])
            ),
            vec![],
            None,
            200,
        ),
        "watchlist" => ("/watchlist".into(), vec![], None, 200),
        "watchlist.plates.add" => (
            "/watchlist/plates".into(),
            format!(r#"{{"plate":"京C0000{i}","reason":"wanted"}}"#).into_bytes(),
            json,
            201,
        ),
        "watchlist.plates.remove" => (
            format!("/watchlist/plates/%E4%BA%ACB0000{i}"),
            vec![],
            None,
            200,
        ),
        // Without a photo: past the role check, refused as incomplete.
        "watchlist.faces.add" => (
            "/watchlist/faces".into(),
            b"--b\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nP-1\r\n--b--\r\n".to_vec(),
            Some("multipart/form-data; boundary=b"),
            400,
        ),
        "watchlist.faces.remove" => ("/watchlist/faces/nobody".into(), vec![], None, 404),
        "audit" => ("/audit?limit=5".into(), vec![], None, 200),
        "tokens" => ("/tokens".into(), vec![], None, 200),
        "tokens.create" => (
            "/tokens".into(),
            format!(r#"{{"name":"made-by-{role}","role":"viewer","expires":"1d"}}"#).into_bytes(),
            json,
            201,
        ),
        "tokens.revoke" => ("/tokens/victim".into(), vec![], None, 200),
        other => panic!("no sample request for route {other}: add one"),
    };
    (format!("/api/v1{path}"), body, ct, ok)
}

async fn call(s: &Server, method: &str, id: &str, who: Option<&str>) -> (u16, String) {
    let (path, body, ct, _) = sample(id, who.unwrap_or("viewer"));
    let auth = who.map(|w| format!("Bearer {}", s.token(w)));
    let mut h: Vec<(&str, &str)> = PURPOSE.to_vec();
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    if let Some(c) = ct {
        h.push(("content-type", c));
    }
    if id == "alerts.stream" {
        // The stream never ends: the head is the answer.
        let r = http::open(s.addr, method, &path, &h, body).await;
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        return (r.status().as_u16(), ct);
    }
    let r = http::request(s.addr, method, &path, &h, body).await;
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_what_the_table_allows() {
    let s = server(|_| {}).await;
    let mut walked = 0;
    for r in ROUTES {
        for who in [
            None,
            Some("viewer"),
            Some("analyst"),
            Some("enroller"),
            Some("admin"),
        ] {
            let (status, body) = call(&s, r.method, r.id, who).await;
            let (_, _, _, ok) = sample(r.id, who.unwrap_or("viewer"));
            let expected = match who {
                _ if r.public() => ok,
                None => 401,
                Some(w) if r.allows(Role::parse(w).unwrap()) => ok,
                Some(_) => 403,
            };
            assert_eq!(status, expected, "{} {} as {who:?}: {body}", r.method, r.id);
            walked += 1;
        }
    }
    assert_eq!(walked, ROUTES.len() * 5);
    // What the allowed calls did.
    let store = Store::open_read_only(&s.db).unwrap();
    let acked: Vec<_> = store
        .alerts(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|a| a.acked_by.is_some())
        .map(|a| (a.alert_id, a.acked_by.unwrap()))
        .collect();
    assert_eq!(acked.len(), 2, "{acked:?}");
    assert!(acked.contains(&("ack-analyst".into(), "analyst".into())));
    let names: BTreeSet<String> = store
        .tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains("made-by-admin") && !names.contains("made-by-analyst"));
    assert!(store.audit_verify().unwrap().broken.is_none());
    s.stop().await;
}

/// A vehicle by its id answers what the plate search answers for it; an unknown id answers
/// nothing, a malformed one 400; both audited under their route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vehicle_by_its_id_gives_its_trajectory() {
    let s = server(|_| {}).await;
    let get = |path: String| {
        let s = &s;
        async move {
            s.send("GET", &path, Some("analyst"), &PURPOSE, vec![])
                .await
        }
    };
    let by_plate = get(format!(
        "/api/v1/vehicles/trajectory?plate={PLATE}&limit=1000"
    ))
    .await;
    assert_eq!(by_plate.status, 200, "{}", by_plate.text());
    let by_plate = by_plate.json();
    let vehicles = by_plate["vehicles"].as_array().unwrap();
    assert_eq!(vehicles.len(), 1, "{by_plate}");
    let v = vehicles[0]["vehicle"].as_u64().unwrap();
    for id in [format!("V-{v}"), v.to_string()] {
        let r = get(format!("/api/v1/vehicles/{id}/trajectory?limit=1000")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let doc = r.json();
        assert_eq!(doc["vehicle"], v);
        assert_eq!(doc["known"], true);
        assert_eq!(doc["plate"], "京A12345");
        assert_eq!(doc["sightings"], by_plate["sightings"], "{doc}");
        assert_eq!(doc["flags"], by_plate["flags"]);
    }
    // A time window that ends before the first sighting: none.
    let r = get(format!(
        "/api/v1/vehicles/V-{v}/trajectory?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z"
    ))
    .await;
    assert_eq!(r.json()["sightings"].as_array().unwrap().len(), 0);
    let r = get("/api/v1/vehicles/V-999999/trajectory".into()).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(
        (doc["known"].clone(), doc["plate"].clone()),
        (serde_json::json!(false), serde_json::json!(null))
    );
    assert!(doc["sightings"].as_array().unwrap().is_empty());
    for bad in ["V-x", "P-3", "V-99999999999999999999"] {
        let r = get(format!("/api/v1/vehicles/{bad}/trajectory")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("not a vehicle id"), "{}", r.text());
    }
    // CSV, like the other trajectories.
    let r = get(format!("/api/v1/vehicles/V-{v}/trajectory?format=csv")).await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with('\u{feff}'), "{}", r.text());
    let audit = Store::open_read_only(&s.db)
        .unwrap()
        .audit_entries(&Default::default())
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "vehicles.id.trajectory" && e.status == 200),
        "{audit:#?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_need_a_purpose_and_everything_is_audited() {
    let s = server(|_| {}).await;
    let path = format!("/api/v1/vehicles/trajectory?plate={PLATE}");
    let r = s.get(&path, "analyst").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["type"], "urn:sharpeyes:problem:purpose-required");
    let auth = format!("Bearer {}", s.token("analyst"));
    let short = [
        ("authorization", auth.as_str()),
        ("x-purpose", "ab"),
        ("x-case", "C1"),
    ];
    assert_eq!(
        http::request(s.addr, "GET", &path, &short, vec![])
            .await
            .status,
        400
    );
    let bad_case = [
        ("authorization", auth.as_str()),
        ("x-purpose", "looking"),
        ("x-case", "no spaces"),
    ];
    assert_eq!(
        http::request(s.addr, "GET", &path, &bad_case, vec![])
            .await
            .status,
        400
    );
    let r = s
        .send("GET", &path, Some("analyst"), &PURPOSE, vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["plate"], "京A12345");
    assert_eq!(doc["sightings"].as_array().unwrap().len(), 5);
    // Viewing alerts needs no purpose.
    assert_eq!(s.get("/api/v1/alerts", "viewer").await.status, 200);
    let audit = Store::open_read_only(&s.db)
        .unwrap()
        .audit_entries(&Default::default())
        .unwrap();
    assert_eq!(audit.len(), 5, "{audit:#?}");
    let ok = &audit[1];
    assert_eq!(
        (
            ok.who.as_str(),
            ok.role.as_str(),
            ok.action.as_str(),
            ok.status
        ),
        ("analyst", "analyst", "vehicles.trajectory", 200)
    );
    assert_eq!(ok.purpose.as_deref(), Some("theft investigation"));
    assert_eq!(ok.case_ref.as_deref(), Some("2026/0042"));
    assert_eq!(ok.result_count, Some(5));
    assert!(ok.params_json.contains("京A12345"), "{}", ok.params_json);
    assert!(
        audit[2..]
            .iter()
            .all(|e| e.status == 400 && e.result_count.is_none())
    );
    // The admin reads the log through the API, newest first, paged.
    let r = s.get("/api/v1/audit?limit=3", "admin").await;
    let page = r.json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 3);
    let next = page["next_cursor"].as_str().unwrap().to_string();
    let r = s
        .get(&format!("/api/v1/audit?limit=3&cursor={next}"), "admin")
        .await;
    assert_eq!(
        r.json()["entries"].as_array().unwrap().len(),
        2,
        "entries 2 and 1"
    );
    assert!(aggregator::metrics::get(&s.metrics.audit_entries) >= 7);
    let db = s.db.clone();
    let dir = s.stop().await;
    // Evidence saved from the command line is audited too.
    let out = dir.path().join("crop.jpg");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(["alerts", "evidence", "agent-1/a-1", "--out"])
        .arg(&out)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let store = Store::open_read_only(&db).unwrap();
    let last = &store.audit_entries(&Default::default()).unwrap()[0];
    assert_eq!(
        (last.action.as_str(), last.role.as_str(), last.result_count),
        ("alerts.evidence", "cli", Some(1))
    );
    assert!(last.who.starts_with("cli:") && last.params_json.contains("a-1"));
    assert!(store.audit_verify().unwrap().broken.is_none());
    drop(store);
    // So are the command line's queries, with their purpose and case when given; a bad
    // purpose is refused before anything is read.
    let aggregator = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap()
    };
    let run = aggregator(&[
        "trajectory",
        "--plate",
        "京A12345",
        "--json",
        "--purpose",
        "theft investigation",
        "--case",
        "2026/0042",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let store = Store::open_read_only(&db).unwrap();
    let last = &store.audit_entries(&Default::default()).unwrap()[0];
    assert_eq!(
        (
            last.action.as_str(),
            last.purpose.as_deref(),
            last.case_ref.as_deref(),
            last.result_count
        ),
        (
            "vehicles.trajectory",
            Some("theft investigation"),
            Some("2026/0042"),
            Some(shown["sightings"].as_array().unwrap().len() as u64)
        )
    );
    let before = store.audit_entries(&Default::default()).unwrap().len();
    drop(store);
    let run = aggregator(&[
        "sightings",
        "--grid",
        "g1",
        "--from",
        "1d",
        "--purpose",
        "x",
        "--case",
        "c1",
    ]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--purpose"));
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(
        store.audit_entries(&Default::default()).unwrap().len(),
        before
    );
    assert!(store.audit_verify().unwrap().broken.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes() {
    let s = server(|_| {}).await;
    let r = http::request(s.addr, "GET", "/api/v1/openapi.json", &[], vec![]).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            // Every path parameter of the template is described.
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(['{', '}']);
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: {name} undocumented"
                );
            }
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, routes);
    // Every reference resolves.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 10);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a local schema");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // And the server answers each of them (not the 404 of an unknown route).
    for r in ROUTES {
        let path = format!(
            "/api/v1{}",
            r.path
                .replace("{id}", "x")
                .replace("{agent}", "x")
                .replace("{alert_id}", "x")
                .replace("{role}", "x")
                .replace("{plate}", "x")
                .replace("{name}", "x")
                .replace("{z}", "0")
                .replace("{x}", "0")
                .replace("{y}", "0")
        );
        if r.id == "alerts.stream" {
            continue;
        }
        let resp = http::request(s.addr, r.method, &path, &[], vec![]).await;
        assert!(
            resp.json()["detail"] != "no such route",
            "{} {path} is not routed",
            r.method
        );
    }
    s.stop().await;
}

fn problem_ok(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let b = r.json();
    assert_eq!(b["status"], status, "{what}");
    let text = r.text().to_lowercase();
    for leak in [
        "sqlite", "select ", "postgres", "panicked", "/tmp", "se_", "stack",
    ] {
        assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_a_clear_4xx_are_counted_and_the_server_keeps_serving() {
    let s = server(|c| {
        c.api.max_body_bytes = 4096;
        c.api.rate_per_s = 0.5;
        c.api.rate_burst = 1000;
    })
    .await;
    let j = [("content-type", "application/json")];
    // Oversized body.
    let big = format!(r#"{{"plate":"京A1","reason":"{}"}}"#, "x".repeat(10_000));
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/plates",
            Some("admin"),
            &j,
            big.into_bytes(),
        )
        .await;
    problem_ok(&r, 413, "oversized");
    // Malformed JSON, wrong fields.
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/plates",
            Some("admin"),
            &j,
            b"{\"plate\": ".to_vec(),
        )
        .await;
    problem_ok(&r, 400, "malformed JSON");
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/plates",
            Some("admin"),
            &j,
            br#"{"plate":"x","why":1}"#.to_vec(),
        )
        .await;
    problem_ok(&r, 400, "unknown field");
    let r = s
        .send(
            "POST",
            "/api/v1/alerts/agent-1/a-1/ack",
            Some("admin"),
            &[],
            b"{}".to_vec(),
        )
        .await;
    problem_ok(&r, 415, "no content type");
    // Path traversal, in every path parameter and in the path itself.
    for p in [
        "/api/v1/alerts/..%2F..%2Fetc/passwd/evidence/crop",
        "/api/v1/alerts/agent-1/..%2F..%2F..%2Fetc%2Fpasswd/evidence/crop",
        "/api/v1/alerts/agent-1/a-1/evidence/..%2F..%2Fetc%2Fshadow",
        "/api/v1/alerts/agent-1/a-1/evidence/%2e%2e",
        "/api/v1/persons/..%2F1/trajectory",
        "/api/v1/../../../etc/passwd",
        "/api/v1/alerts/agent-1/a-1/evidence/crop/../../../../etc/passwd",
        "/api/v1/alerts/%ff%fe/x/evidence/crop",
        "/api/v1/evidence/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/evidence/%2e%2e",
        "/api/v1/evidence/ABCDEF0000000000000000000000000000000000000000000000000000000000",
    ] {
        let r = s.send("GET", p, Some("admin"), &PURPOSE, vec![]).await;
        assert!(matches!(r.status, 400 | 404), "{p}: {}", r.status);
        problem_ok(&r, r.status, p);
    }
    let r = s
        .send(
            "DELETE",
            "/api/v1/watchlist/plates/..%2F..%2Fx",
            Some("admin"),
            &[],
            vec![],
        )
        .await;
    problem_ok(&r, 400, "traversal in plate");
    // SQL metacharacters are data.
    for q in [
        "/api/v1/vehicles?plate=%27%20OR%201%3D1%20--",
        "/api/v1/vehicles?plate=A%27%3B%20DROP%20TABLE%20sightings%3B%20--",
        "/api/v1/sightings?grid=g1%27%20OR%20%271%27%3D%271&from=1d",
        "/api/v1/links?person=1%20OR%201%3D1",
        "/api/v1/alerts?kind=loitering%27--",
        "/api/v1/audit?who=x%27%20OR%20%271%27%3D%271",
    ] {
        let r = s.send("GET", q, Some("admin"), &PURPOSE, vec![]).await;
        assert!(
            matches!(r.status, 200 | 400),
            "{q}: {} {}",
            r.status,
            r.text()
        );
        if r.status == 200 {
            let b = r.json();
            let n = ["vehicles", "sightings", "links", "alerts", "entries"]
                .iter()
                .filter_map(|k| b[k].as_array())
                .map(Vec::len)
                .sum::<usize>();
            assert_eq!(n, 0, "{q} matched something: {b}");
        } else {
            problem_ok(&r, 400, q);
        }
    }
    // Tokens: none, malformed, unknown, expired, revoked; a role too weak.
    tokio::time::sleep(Duration::from_millis(100)).await; // "expired" lives 50 ms
    let p = "/api/v1/me";
    problem_ok(
        &http::request(s.addr, "GET", p, &[], vec![]).await,
        401,
        "no token",
    );
    problem_ok(
        &http::request(
            s.addr,
            "GET",
            p,
            &[("authorization", "Bearer ' OR 1=1 --")],
            vec![],
        )
        .await,
        401,
        "malformed token",
    );
    for who in ["bogus", "expired", "revoked"] {
        let r = s.get(p, who).await;
        problem_ok(&r, 401, who);
    }
    problem_ok(
        &s.get("/api/v1/audit", "viewer").await,
        403,
        "viewer reads audit",
    );
    // Missing purpose, unknown route, wrong method, bad parameters.
    problem_ok(
        &s.get("/api/v1/sightings?grid=g1&from=1d", "analyst").await,
        400,
        "no purpose",
    );
    problem_ok(
        &s.get("/api/v1/nothing-here", "admin").await,
        404,
        "unknown route",
    );
    problem_ok(
        &s.send("PUT", "/api/v1/alerts", Some("admin"), &[], vec![])
            .await,
        405,
        "PUT",
    );
    for q in [
        "/api/v1/sightings?grid=g1&from=yesterday",
        "/api/v1/sightings?bbox=1,2,3&from=1d",
        "/api/v1/sightings?grid=g1&from=1d&limit=100000000",
        "/api/v1/sightings?grid=g1&from=1d&cursor=AAAA",
        "/api/v1/sightings?grid=g1&from=1d&format=xml",
        "/api/v1/sightings?grid=g1&grid=g2&from=1d",
        "/api/v1/vehicles?plate=%00%01",
        "/api/v1/alerts?limit=-1",
    ] {
        problem_ok(
            &s.send("GET", q, Some("admin"), &PURPOSE, vec![]).await,
            400,
            q,
        );
    }
    // Rate limit: "limited" spends its burst of 1000 quickly? No: its own bucket is full;
    // drain it, then the next one is refused with Retry-After.
    let mut limited = None;
    for _ in 0..1100 {
        let r = s.get("/api/v1/me", "limited").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("the rate limit never refused");
    problem_ok(&r, 429, "rate limited");
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    // Counted, by reason.
    let rejected = s.metrics.api_rejected.snapshot();
    for reason in [
        "unauthorized",
        "forbidden",
        "purpose_required",
        "bad_request",
        "too_large",
        "rate_limited",
        "not_found",
    ] {
        assert!(
            rejected.get(reason).copied().unwrap_or(0) > 0,
            "{reason}: {rejected:?}"
        );
    }
    use sharpeyes_common::ops::OpsSource as _;
    let text = s.metrics.metrics();
    assert!(
        text.contains("sharpeyes_aggregator_api_rejected_total{reason=\"too_large\"} 1"),
        "{text}"
    );
    assert!(text.contains("sharpeyes_aggregator_api_requests_total{route=\"me\",status=\"401\"}"));
    // Still serving; the audit chain intact.
    let r = s
        .send(
            "GET",
            &format!("/api/v1/vehicles/trajectory?plate={PLATE}"),
            Some("analyst"),
            &PURPOSE,
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["sightings"].as_array().unwrap().len(), 5);
    assert!(
        Store::open_read_only(&s.db)
            .unwrap()
            .audit_verify()
            .unwrap()
            .broken
            .is_none()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sightings_page_through_and_export() {
    let s = server(|_| {}).await;
    let all = Store::open_read_only(&s.db)
        .unwrap()
        .sightings_in(&Area::Grid("g1".into()), t0() - 1, sharpeyes_wire::now_ms())
        .unwrap();
    assert_eq!(all.len(), 7);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut p = "/api/v1/sightings?grid=g1&from=1d&limit=3".to_string();
        if let Some(c) = &cursor {
            p.push_str(&format!("&cursor={c}"));
        }
        let doc = s
            .send("GET", &p, Some("analyst"), &PURPOSE, vec![])
            .await
            .json();
        for r in doc["sightings"].as_array().unwrap() {
            seen.push((
                r["agent"].as_str().unwrap().to_string(),
                r["camera"].as_str().unwrap().to_string(),
                r["track"].as_u64().unwrap(),
            ));
        }
        pages += 1;
        match doc["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<_> = all
        .iter()
        .map(|r| (r.agent.clone(), r.camera.clone(), r.track))
        .collect();
    assert_eq!(seen, want, "pages in order, each row once");
    // A trajectory page by page too.
    let p = format!("/api/v1/vehicles/trajectory?plate={PLATE}&limit=2");
    let doc = s
        .send("GET", &p, Some("analyst"), &PURPOSE, vec![])
        .await
        .json();
    assert_eq!(doc["sightings"].as_array().unwrap().len(), 2);
    assert!(doc["next_cursor"].is_string());
    // GeoJSON: a LineString for vehicle 1's path, a Point per sighting.
    let r = s
        .send(
            "GET",
            &format!("/api/v1/vehicles/trajectory?plate={PLATE}&format=geojson"),
            Some("analyst"),
            &PURPOSE,
            vec![],
        )
        .await;
    assert_eq!(r.header("content-type"), Some("application/geo+json"));
    let g = r.json();
    assert_eq!(g["type"], "FeatureCollection");
    let kinds: Vec<&str> = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["geometry"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "LineString").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "Point").count(), 5);
    // CSV: a header and one line per sighting; the next page's cursor in a header.
    let r = s
        .send(
            "GET",
            "/api/v1/sightings?grid=g1&from=1d&format=csv&limit=4",
            Some("analyst"),
            &PURPOSE,
            vec![],
        )
        .await;
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(r.header("x-next-cursor").is_some());
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    // A UTF-8 byte order mark (spreadsheets), the header, local times in Beijing time.
    assert_eq!(
        lines[0],
        format!(
            "{}{}",
            aggregator::query::CSV_BOM,
            aggregator::query::SIGHTINGS_CSV_HEADER.join(",")
        )
    );
    assert!(
        lines[1].starts_with("V-1,vehicle,s1,agent-1,cam-1,100,"),
        "{}",
        lines[1]
    );
    let cells: Vec<&str> = lines[1].split(',').collect();
    let at = |name: &str| {
        aggregator::query::SIGHTINGS_CSV_HEADER
            .iter()
            .position(|h| *h == name)
            .unwrap()
    };
    let first_ms: i64 = cells[at("first_ms")].parse().unwrap();
    assert_eq!(
        cells[at("first_local")],
        aggregator::sitetime::SiteZone::resolve("Asia/Shanghai")
            .unwrap()
            .format(first_ms)
    );
    assert!(cells[at("first_local")].ends_with("+08:00"), "{}", lines[1]);
    // A person's trajectory, by alias form.
    let doc = s
        .send(
            "GET",
            "/api/v1/persons/7/trajectory",
            Some("analyst"),
            &PURPOSE,
            vec![],
        )
        .await
        .json();
    assert_eq!(doc["resolved"], 7);
    assert_eq!(doc["sightings"].as_array().unwrap().len(), 1);
    // bbox around cam-2 only.
    let doc = s
        .send(
            "GET",
            "/api/v1/sightings?bbox=30.67,104.07,30.69,104.09&from=1d",
            Some("analyst"),
            &PURPOSE,
            vec![],
        )
        .await
        .json();
    assert_eq!(doc["sightings"].as_array().unwrap().len(), 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_relays_a_published_alert_and_its_acknowledgement() {
    let s = server(|_| {}).await;
    let auth = format!("Bearer {}", s.token("viewer"));
    let resp = http::open(
        s.addr,
        "GET",
        "/api/v1/alerts/stream",
        &[("authorization", &auth)],
        vec![],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // Publish an alert through the embedded broker, as an agent does.
    let client = common::client(s.broker_port);
    let env = alert_env(99, "live-1", sharpeyes_wire::now_ms());
    client
        .publish(
            Topics::default().alerts("s1", "agent-1", "cam-1"),
            rumqttc::QoS::AtLeastOnce,
            false,
            sharpeyes_wire::Codec::default().encode(&env).unwrap(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("live-1") {
        let f = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("no alert event within 20 s")
            .expect("stream ended")
            .unwrap();
        if let Ok(d) = f.into_data() {
            text.push_str(&String::from_utf8_lossy(&d));
        }
    }
    assert!(text.contains("event: alert"), "{text}");
    let data = text
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("live-1"))
        .unwrap();
    let row: serde_json::Value =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(row["kind"], "plate_watchlist");
    assert_eq!(row["evidence"], serde_json::json!(["crop"]));
    // Wait until it is stored, then acknowledge it through the API.
    assert!(
        wait(Duration::from_secs(10), || aggregator::metrics::get(
            &s.metrics.alerts
        ) >= 1)
        .await
    );
    let r = s
        .send(
            "POST",
            "/api/v1/alerts/agent-1/live-1/ack",
            Some("analyst"),
            &[("content-type", "application/json")],
            br#"{"note":"unit 12 sent"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let again = s
        .send(
            "POST",
            "/api/v1/alerts/agent-1/live-1/ack",
            Some("analyst"),
            &[("content-type", "application/json")],
            br#"{}"#.to_vec(),
        )
        .await;
    problem_ok(&again, 409, "second ack");
    text.clear();
    while !text.contains("event: ack") || !text.contains("unit 12 sent") {
        let f = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("no ack event within 20 s")
            .expect("stream ended")
            .unwrap();
        if let Ok(d) = f.into_data() {
            text.push_str(&String::from_utf8_lossy(&d));
        }
    }
    assert!(text.contains("\"acked_by\":\"analyst\""), "{text}");
    drop(body);
    s.stop().await;
}

/// Appends entries, alters one behind the store's back, and checks that verify names it.
fn tamper_check(s: &Store, alter: impl FnOnce()) {
    for i in 0..5 {
        s.audit_append(&aggregator::store::audit::AuditEntry {
            ts_ms: 1000 + i,
            who: "ana".into(),
            role: "analyst".into(),
            action: "vehicles.trajectory".into(),
            purpose: Some("theft".into()),
            case_ref: Some("C-1".into()),
            params: serde_json::json!({"plate": "京A12345"}),
            result_count: Some(i as u64),
            status: 200,
        })
        .unwrap();
    }
    let v = s.audit_verify().unwrap();
    assert_eq!((v.entries, v.broken.as_ref()), (5, None));
    alter();
    let v = s.audit_verify().unwrap();
    let b = v.broken.expect("the altered entry is caught");
    assert_eq!(b.seq, 3, "{}", b.what);
    assert!(b.what.contains("altered"), "{}", b.what);
    assert_eq!(v.entries, 2);
}

#[test]
fn audit_verify_catches_an_altered_entry_sqlite_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let s = Store::open(&db).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .args(args)
            .args(["--db", db.to_str().unwrap()])
            .output()
            .unwrap()
    };
    tamper_check(&s, || {
        let ok = cli(&["audit", "verify"]);
        assert!(ok.status.success());
        assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: 5 entries, head "));
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute("UPDATE audit_log SET result_count = 0 WHERE seq = 3", [])
            .unwrap();
    });
    let out = cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("broken at entry 3"), "{text}");
    let listed = cli(&["audit", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 5);
    // A removed entry is caught as well.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE audit_log SET result_count = 2 WHERE seq = 3", [])
        .unwrap();
    assert!(s.audit_verify().unwrap().broken.is_none(), "restored");
    c.execute("DELETE FROM audit_log WHERE seq = 4", [])
        .unwrap();
    let b = s.audit_verify().unwrap().broken.unwrap();
    assert_eq!(b.seq, 4);
    assert!(b.what.contains("missing"), "{}", b.what);
    // Tokens from the CLI: made, listed without secrets, revoked.
    let made = cli(&[
        "token",
        "create",
        "--name",
        "ops-1",
        "--role",
        "viewer",
        "--expires",
        "7d",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(token.starts_with("se_") && token.len() == 46, "{token}");
    let list = String::from_utf8_lossy(&cli(&["token", "list"]).stdout).into_owned();
    assert!(
        list.contains("ops-1") && !list.contains(&token[3..]),
        "{list}"
    );
    assert!(
        !cli(&["token", "create", "--name", "ops-1", "--role", "viewer"])
            .status
            .success()
    );
    assert!(
        !cli(&["token", "create", "--name", "x", "--role", "boss"])
            .status
            .success()
    );
    assert!(cli(&["token", "revoke", "ops-1"]).status.success());
    assert!(!cli(&["token", "revoke", "ops-1"]).status.success());
    assert!(
        s.token_by_hash(&aggregator::api::access::hash_token(&token))
            .unwrap()
            .unwrap()
            .revoked_ms
            .is_some()
    );
}

#[test]
fn audit_verify_catches_an_altered_entry_postgres() {
    let pg = common::pg::TempPostgres::start();
    let url = pg.database("audit");
    let s = Store::open_postgres(&url).unwrap();
    tamper_check(&s, || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.execute("UPDATE audit_log SET who = 'mallory' WHERE seq = 3", &[])
            .unwrap();
    });
}

fn testdata() -> PathBuf {
    match std::env::var_os("SHARPEYES_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => root().join("testdata"),
    }
}

fn photos(identity: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata().join("identities").join(identity))
        .expect("identity folder")
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// A multipart/form-data body (boundary `XbX`): text fields, then the photos.
fn form(fields: &[(&str, &str)], photos: &[PathBuf]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--XbX\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for p in photos {
        b.extend_from_slice(
            b"--XbX\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
        );
        b.extend_from_slice(&std::fs::read(p).unwrap());
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--XbX--\r\n");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_search_by_upload_and_face_enrollment_use_the_real_models() {
    // The faces are written into the store behind the running aggregator's back: without the
    // live index (which would see them only at its next refresh), each search reads them.
    let s = server(|c| c.face_search.live_index = false).await;
    // Person 7's stored face: a photo of John Salley; person 8: John Savage.
    let cfg = aggregator::config::WatchlistConfig {
        models: ModelsConfig {
            dir: root().join("models/files"),
            onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
            intra_threads: 1,
        },
        ..Default::default()
    };
    let mut enroller = aggregator::watchlist::Enroller::new(&cfg);
    let model = AggregatorConfig::default().fusion.persons.embedding_model;
    let mut rows = Vec::new();
    for (person, who) in [(7i64, "John_Salley"), (8, "John_Savage")] {
        let e = enroller.embed_photo(&photos(who)[0]).unwrap();
        rows.push(vec![
            Value::Text("agent-1".into()),
            Value::Text("cam-1".into()),
            Value::Integer(900 + person),
            Value::Text("s1".into()),
            Value::Integer(person),
            Value::Text(model.clone()),
            Value::Integer(e.len() as i64),
            Value::Blob(aggregator::store::faces::encode_embedding(&e)),
            Value::Real(0.9),
            Value::Integer(t0()),
        ]);
    }
    Store::open(&s.db)
        .unwrap()
        .bulk_insert(
            "person_faces",
            &[
                "agent",
                "camera",
                "track",
                "site",
                "person",
                "model",
                "dim",
                "embedding",
                "quality",
                "ts_ms",
            ],
            &rows,
            None,
        )
        .unwrap();
    let auth = format!("Bearer {}", s.token("analyst"));
    let mut h: Vec<(&str, &str)> = PURPOSE.to_vec();
    h.push(("authorization", &auth));
    h.push(("content-type", "image/jpeg"));
    let query = std::fs::read(&photos("John_Salley")[4]).unwrap();
    let r = http::request(s.addr, "POST", "/api/v1/faces/search?top=2", &h, query).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(
        (&report["faces"], &report["index"]),
        (&2.into(), &"store".into())
    );
    assert_eq!(report["results"][0]["person"], 7, "{report}");
    assert_eq!(
        report["results"][0]["sightings"]["sightings"], 1,
        "{report}"
    );
    // A photo without a face is refused with the reason (and without a file path).
    h.pop();
    h.push(("content-type", "image/png"));
    let r = http::request(s.addr, "POST", "/api/v1/faces/search", &h, faceless_png()).await;
    problem_ok(&r, 422, "faceless photo");
    assert!(r.json()["detail"].as_str().unwrap().contains("no face"));
    // Enrollment of a patient with two photos, then its removal.
    let body = form(
        &[
            ("id", "P-0042"),
            ("role", "patient"),
            ("name", "W."),
            ("consent", "C-2026-7"),
            ("contact", "Son:13800000000"),
        ],
        &photos("John_Savage")[1..3],
    );
    let ct = [("content-type", "multipart/form-data; boundary=XbX")];
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/faces",
            Some("enroller"),
            &ct,
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["photos"], 2);
    let listing = s.get("/api/v1/watchlist", "enroller").await.json();
    assert!(
        listing["faces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "P-0042"),
        "{listing}"
    );
    // Two different people as one patient's photos are refused.
    let mixed = form(
        &[
            ("id", "P-0043"),
            ("role", "patient"),
            ("name", "X."),
            ("consent", "C-1"),
        ],
        &[photos("John_Savage")[1].clone(), photos("obama")[0].clone()],
    );
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/faces",
            Some("enroller"),
            &ct,
            mixed,
        )
        .await;
    problem_ok(&r, 422, "mixed photos");
    let r = s
        .send(
            "DELETE",
            "/api/v1/watchlist/faces/P-0042",
            Some("enroller"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[test]
fn store_pages_on_postgres() {
    let pg = common::pg::TempPostgres::start();
    let url = pg.database("pages");
    let mut s = Store::open_postgres(&url).unwrap();
    let t = 1_767_000_000_000i64;
    s.sync_cameras(&cameras()).unwrap();
    let rows: Vec<Vec<Value>> = (0..7i64)
        .map(|i| {
            vec![
                Value::Text("agent-1".into()),
                Value::Text(if i % 2 == 0 { "cam-1" } else { "cam-2" }.into()),
                Value::Integer(100 + i),
                Value::Text("s1".into()),
                Value::Text("vehicle".into()),
                Value::Integer(1 + i % 2),
                Value::Text("car".into()),
                // Two rows share a first_ms: the key's tie-breakers order them.
                Value::Integer(t + (i / 2) * 60_000),
                Value::Integer(t + (i / 2) * 60_000 + 5_000),
                Value::Real(if i % 2 == 0 { 30.657 } else { 30.68 }),
                Value::Real(if i % 2 == 0 { 104.065 } else { 104.08 }),
                Value::Real(0.9),
                Value::Integer(1),
                Value::Text("京A12345".into()),
                Value::Text("{}".into()),
            ]
        })
        .collect();
    s.bulk_insert(
        "sightings",
        &[
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
        ],
        &rows,
        Some(7),
    )
    .unwrap();
    let all = s
        .sightings_in(&Area::Grid("g1".into()), t, t + 600_000)
        .unwrap();
    assert_eq!(all.len(), 7);
    let mut paged = Vec::new();
    let mut page = aggregator::store::Page {
        after: None,
        limit: Some(3),
    };
    loop {
        let rows = s
            .sightings_in_page(&Area::Grid("g1".into()), t, t + 600_000, &page)
            .unwrap();
        if rows.is_empty() {
            break;
        }
        page.after = rows.last().map(aggregator::store::SightingKey::of);
        paged.extend(rows);
    }
    assert_eq!(paged, all);
    let v = s
        .identity_sightings_page(
            "vehicle",
            &[1, 2],
            Some((t + 60_000, t + 60_000)),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(v.len(), 2, "the window holds the second minute's two");
    let topic = Topics::default().alerts("s1", "agent-1", "cam-1");
    for i in 0..5u64 {
        s.apply(
            &alert_env(i + 1, &format!("al-{i}"), t + (i as i64 / 2)),
            &topic,
            10,
        )
        .unwrap();
    }
    let mut after = None;
    let mut ids = Vec::new();
    loop {
        let f = aggregator::store::AlertFilter {
            limit: Some(2),
            ..Default::default()
        };
        let rows = s.alerts_page(&f, after.as_ref()).unwrap();
        if rows.is_empty() {
            break;
        }
        after = rows.last().map(aggregator::store::AlertKey::of);
        ids.extend(rows.into_iter().map(|r| r.alert_id));
    }
    let all: Vec<String> = s
        .alerts(&Default::default())
        .unwrap()
        .into_iter()
        .map(|r| r.alert_id)
        .collect();
    assert_eq!(ids, all);
    assert_eq!(ids.len(), 5);
}

/// `ms` (whole seconds) as RFC 3339 local time at `offset_min` east of UTC
/// (`2026-12-07T08:00:00+08:00`).
fn at_offset(ms: i64, offset_min: i64) -> String {
    let local = std::time::UNIX_EPOCH + Duration::from_millis((ms + offset_min * 60_000) as u64);
    let z = humantime::format_rfc3339_seconds(local).to_string();
    let sign = if offset_min < 0 { '-' } else { '+' };
    let m = offset_min.abs();
    format!("{}{sign}{:02}:{:02}", &z[..z.len() - 1], m / 60, m % 60)
}

const PURPOSE_ZH: &str = "盗窃案调查";
const CASE_ZH: &str = "京公（刑）字〔2026〕42号";

/// Percent-encodes every byte outside A-Z a-z 0-9 (what a browser sends).
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_purposes_and_local_times_work_over_http() {
    let s = server(|_| {}).await;
    let auth = format!("Bearer {}", s.token("analyst"));
    let path = format!("/api/v1/vehicles/trajectory?plate={PLATE}");
    // Raw UTF-8 in the headers.
    let raw = [
        ("authorization", auth.as_str()),
        ("x-purpose", PURPOSE_ZH),
        ("x-case", CASE_ZH),
    ];
    let r = http::request(s.addr, "GET", &path, &raw, vec![]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Percent-encoded.
    let (p, c) = (pct(PURPOSE_ZH), pct(CASE_ZH));
    assert!(p.starts_with("%E7%9B%97"), "{p}");
    let enc = [
        ("authorization", auth.as_str()),
        ("x-purpose", p.as_str()),
        ("x-case", c.as_str()),
    ];
    let r = http::request(s.addr, "GET", &path, &enc, vec![]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Two Chinese characters are 6 bytes but too short a purpose; bad UTF-8 is refused.
    let short = [
        ("authorization", auth.as_str()),
        ("x-purpose", "盗窃"),
        ("x-case", CASE_ZH),
    ];
    let r = http::request(s.addr, "GET", &path, &short, vec![]).await;
    problem_ok(&r, 400, "two characters");
    let cut = [
        ("authorization", auth.as_str()),
        ("x-purpose", "%E7%9B%97%E7%AA"),
        ("x-case", "C1"),
    ];
    let r = http::request(s.addr, "GET", &path, &cut, vec![]).await;
    problem_ok(&r, 400, "cut UTF-8");
    // Times with any offset: the same instant whichever way it is written.
    let now = sharpeyes_wire::now_ms();
    let from = (now / 1000 - 7200) * 1000;
    let to = (now / 1000 + 60) * 1000;
    for (f, t) in [
        (
            at_offset(from, 480).replace('+', "%2B"),
            at_offset(to, -300),
        ),
        // An unencoded + arrives as a space: still +08:00.
        (
            at_offset(from, 480),
            at_offset(to, 0).replace("+00:00", "Z"),
        ),
        (
            at_offset(from, 330).replace('+', "%2B"),
            at_offset(to, 480).replace('+', "%2B"),
        ),
    ] {
        let r = s
            .send(
                "GET",
                &format!("/api/v1/sightings?grid=g1&from={f}&to={t}"),
                Some("analyst"),
                &PURPOSE,
                vec![],
            )
            .await;
        assert_eq!(r.status, 200, "{f} {t}: {}", r.text());
        let doc = r.json();
        assert_eq!(
            (doc["from_ms"].as_i64(), doc["to_ms"].as_i64()),
            (Some(from), Some(to)),
            "{f} {t}"
        );
        assert_eq!(doc["sightings"].as_array().unwrap().len(), 7);
    }
    let r = s
        .get(
            &format!(
                "/api/v1/audit?from={}",
                at_offset(from, 480).replace('+', "%2B")
            ),
            "admin",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .send(
            "GET",
            "/api/v1/sightings?grid=g1&from=2026-12-07T08:00:00%2B25:00",
            Some("analyst"),
            &PURPOSE,
            vec![],
        )
        .await;
    problem_ok(&r, 400, "offset out of range");
    // The audit log holds the decoded Chinese, raw and percent-encoded alike.
    let audit = Store::open_read_only(&s.db)
        .unwrap()
        .audit_entries(&Default::default())
        .unwrap();
    let ok: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "vehicles.trajectory" && e.status == 200)
        .collect();
    assert_eq!(ok.len(), 2, "{audit:#?}");
    for e in ok {
        assert_eq!(e.purpose.as_deref(), Some(PURPOSE_ZH));
        assert_eq!(e.case_ref.as_deref(), Some(CASE_ZH));
        assert_eq!(e.who, "analyst");
    }
    let short = audit
        .iter()
        .find(|e| e.status == 400 && e.purpose.as_deref() == Some("盗窃"))
        .expect("the refused purpose is recorded as sent");
    assert_eq!(short.who, "analyst");
    let db = s.db.clone();
    let _dir = s.stop().await;
    // The command line: Chinese purpose and case, times with offsets.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(["sightings", "--grid", "g1", "--json", "--from"])
        .arg(at_offset(from, 480))
        .arg("--to")
        .arg(at_offset(to, -300))
        .args(["--purpose", PURPOSE_ZH, "--case", CASE_ZH, "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        (doc["from_ms"].as_i64(), doc["to_ms"].as_i64()),
        (Some(from), Some(to))
    );
    assert_eq!(doc["sightings"].as_array().unwrap().len(), 7);
    let store = Store::open_read_only(&db).unwrap();
    let last = &store.audit_entries(&Default::default()).unwrap()[0];
    assert_eq!(
        (
            last.action.as_str(),
            last.purpose.as_deref(),
            last.case_ref.as_deref()
        ),
        ("sightings", Some(PURPOSE_ZH), Some(CASE_ZH))
    );
    assert!(store.audit_verify().unwrap().broken.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_record_the_token_and_what_was_sent() {
    let s = server(|c| {
        c.api.rate_burst = 2;
        c.api.rate_per_s = 0.1;
    })
    .await;
    let path = format!("/api/v1/vehicles/trajectory?plate={PLATE}");
    let addr = s.addr;
    let with = |who: &str, purpose: &str, case: &str| {
        let auth = format!("Bearer {}", s.token(who));
        let (p, c) = (purpose.to_string(), case.to_string());
        let path = path.clone();
        async move {
            let h = [
                ("authorization", auth.as_str()),
                ("x-purpose", p.as_str()),
                ("x-case", c.as_str()),
            ];
            http::request(addr, "GET", &path, &h, vec![]).await.status
        }
    };
    assert_eq!(with("viewer", PURPOSE_ZH, CASE_ZH).await, 403);
    assert_eq!(with("analyst", PURPOSE_ZH, "").await, 400);
    assert_eq!(with("revoked", PURPOSE_ZH, CASE_ZH).await, 401);
    assert_eq!(with("bogus", PURPOSE_ZH, CASE_ZH).await, 401);
    assert_eq!(with("limited", PURPOSE_ZH, "C-1").await, 200);
    assert_eq!(with("limited", PURPOSE_ZH, "C-2").await, 200);
    assert_eq!(with("limited", PURPOSE_ZH, "C-3").await, 429);
    let audit = Store::open_read_only(&s.db)
        .unwrap()
        .audit_entries(&Default::default())
        .unwrap();
    /// Who, role, status, purpose, case.
    type Seen = (String, String, u16, Option<String>, Option<String>);
    let got: Vec<Seen> = audit
        .iter()
        .rev()
        .map(|e| {
            (
                e.who.clone(),
                e.role.clone(),
                e.status,
                e.purpose.clone(),
                e.case_ref.clone(),
            )
        })
        .collect();
    let p = Some(PURPOSE_ZH.to_string());
    let row = |who: &str, role: &str, st: u16, case: Option<&str>| {
        (
            who.to_string(),
            role.to_string(),
            st,
            p.clone(),
            case.map(str::to_string),
        )
    };
    assert_eq!(
        got,
        vec![
            row("viewer", "viewer", 403, Some(CASE_ZH)),
            row("analyst", "analyst", 400, Some("")),
            row("revoked", "analyst", 401, Some(CASE_ZH)),
            row("-", "-", 401, Some(CASE_ZH)),
            row("limited", "analyst", 200, Some("C-1")),
            row("limited", "analyst", 200, Some("C-2")),
            row("limited", "analyst", 429, Some("C-3")),
        ]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_routes_audit_in_the_transaction_of_their_change() {
    let s = server(|_| {}).await;
    let json = [("content-type", "application/json")];
    // An administrator left a trigger that refuses audit entries: every change is refused
    // and nothing changes.
    let c = rusqlite::Connection::open(&s.db).unwrap();
    c.execute_batch(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
    )
    .unwrap();
    let plate = r#"{"plate": "京C12345", "reason": "stolen"}"#.as_bytes().to_vec();
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/plates",
            Some("admin"),
            &json,
            plate.clone(),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    let r = s
        .send(
            "DELETE",
            "/api/v1/tokens/victim",
            Some("admin"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    let r = s
        .send(
            "POST",
            "/api/v1/alerts/agent-1/ack-analyst/ack",
            Some("analyst"),
            &json,
            r#"{"note": "已处理"}"#.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    let r = s
        .send(
            "POST",
            "/api/v1/tokens",
            Some("admin"),
            &json,
            br#"{"name": "new-1", "role": "viewer"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    {
        let st = Store::open_read_only(&s.db).unwrap();
        let l = st.watchlist_listing().unwrap();
        assert!(!l.plates.iter().any(|p| p.plate == "京C12345"), "{l:?}");
        let toks = st.tokens().unwrap();
        assert!(
            toks.iter()
                .any(|t| t.name == "victim" && t.revoked_ms.is_none())
        );
        assert!(!toks.iter().any(|t| t.name == "new-1"));
        assert!(
            st.alerts(&Default::default())
                .unwrap()
                .iter()
                .any(|a| a.alert_id == "ack-analyst" && a.acked_ms.is_none())
        );
    }
    c.execute_batch("DROP TRIGGER refuse_audit").unwrap();
    assert_eq!(
        s.get("/api/v1/me", "victim").await.status,
        200,
        "still valid"
    );
    // Now each change is stored with its entry.
    let before = Store::open_read_only(&s.db).unwrap().audit_len().unwrap();
    let r = s
        .send(
            "POST",
            "/api/v1/watchlist/plates",
            Some("admin"),
            &json,
            plate,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s
        .send(
            "DELETE",
            "/api/v1/tokens/victim",
            Some("admin"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .send(
            "DELETE",
            "/api/v1/tokens/victim",
            Some("admin"),
            &[],
            vec![],
        )
        .await;
    problem_ok(&r, 404, "revoked already");
    let st = Store::open_read_only(&s.db).unwrap();
    let audit = st.audit_entries(&Default::default()).unwrap();
    assert_eq!(audit.len() as u64, before + 3, "one entry each: {audit:#?}");
    assert_eq!(
        (
            audit[2].action.as_str(),
            audit[2].status,
            audit[2].who.as_str(),
            audit[2].result_count
        ),
        ("watchlist.plates.add", 201, "admin", Some(1))
    );
    assert_eq!(
        (audit[1].action.as_str(), audit[1].status),
        ("tokens.revoke", 200)
    );
    assert!(audit[1].params_json.contains("victim"));
    assert_eq!(
        (audit[0].action.as_str(), audit[0].status),
        ("tokens.revoke", 404)
    );
    assert!(st.audit_verify().unwrap().broken.is_none());
    s.stop().await;
}

/// Reads the stream until it ends; its text (panics after 20 s).
async fn read_to_end(body: &mut hyper::body::Incoming) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the stream did not end within 20 s: {text}"))
        {
            None => return text,
            Some(f) => {
                if let Ok(d) = f.unwrap().into_data() {
                    text.push_str(&String::from_utf8_lossy(&d));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_their_token_is_revoked_or_expires() {
    let s = server(|c| c.api.stream_check_ms = 200).await;
    let addr = s.addr;
    let open = |token: String| async move {
        let auth = format!("Bearer {token}");
        let r = http::open(
            addr,
            "GET",
            "/api/v1/alerts/stream",
            &[("authorization", &auth)],
            vec![],
        )
        .await;
        assert_eq!(r.status(), 200);
        r.into_body()
    };
    // Revoked while streaming.
    let mut body = open(s.token("victim").to_string()).await;
    let r = s
        .send(
            "DELETE",
            "/api/v1/tokens/victim",
            Some("admin"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = read_to_end(&mut body).await;
    assert!(
        text.contains("event: end") && text.contains("revoked"),
        "{text}"
    );
    // Expiring while streaming (made with a 2 s life).
    let r = s
        .send(
            "POST",
            "/api/v1/tokens",
            Some("admin"),
            &[("content-type", "application/json")],
            br#"{"name": "short", "role": "viewer", "expires": "2s"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let mut body = open(token).await;
    let text = read_to_end(&mut body).await;
    assert!(
        text.contains("event: end") && text.contains("expired"),
        "{text}"
    );
    assert_eq!(aggregator::metrics::get(&s.metrics.streams_ended_token), 2);
    // A valid token's stream stays open (it gets keep-alives and events, not an end).
    let mut body = open(s.token("viewer").to_string()).await;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), read_to_end(&mut body)).await;
    assert!(quiet.is_err(), "the viewer's stream ended: {quiet:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_aggregator_signs_checkpoints_and_hands_them_to_its_witnesses() {
    let witness_dir = tempfile::tempdir().unwrap();
    let witness_file = witness_dir.path().join("witness.jsonl");
    let hooked = witness_dir.path().join("hook.txt");
    let (wf, hf) = (witness_file.clone(), hooked.clone());
    let s = server(move |c| {
        c.audit.checkpoint_interval_s = 1;
        c.audit.witness_file = Some(wf);
        c.audit.checkpoint_hook = true;
        c.alerts.hook = vec![
            "sh".into(),
            "-c".into(),
            format!(
                "{{ echo \"$SHARPEYES_EVENT\"; cat; echo; }} >> '{}'",
                hf.display()
            ),
        ];
    })
    .await;
    for _ in 0..3 {
        assert_eq!(s.get("/api/v1/me", "viewer").await.status, 200);
    }
    // A checkpoint within a few intervals, in the table and the witness file.
    let db = s.db.clone();
    assert!(
        wait(Duration::from_secs(20), || {
            Store::open_read_only(&db)
                .and_then(|st| st.audit_checkpoints())
                .is_ok_and(|c| c.iter().any(|c| c.entries >= 3))
        })
        .await,
        "no checkpoint within 20 s"
    );
    assert!(aggregator::metrics::get(&s.metrics.audit_checkpoints) >= 1);
    assert_eq!(s.get("/api/v1/me", "viewer").await.status, 200);
    let dir = s.stop().await;
    // The last one, at shutdown, covers every entry.
    let st = Store::open_read_only(&db).unwrap();
    let n = st.audit_len().unwrap();
    let stored = st.audit_checkpoints().unwrap();
    assert_eq!(stored.last().unwrap().entries, n, "{stored:?}");
    let witnessed = aggregator::witness::read(&witness_file).unwrap();
    assert_eq!(witnessed, stored, "every stored checkpoint was witnessed");
    let key_file = {
        let mut p = db.as_os_str().to_owned();
        p.push(".audit-key");
        PathBuf::from(p)
    };
    let key = aggregator::witness::AuditKey::load(&key_file).unwrap();
    assert!(
        stored
            .iter()
            .all(|c| c.public_key == key.public_hex() && c.signature_holds())
    );
    // The hook got them too.
    assert!(
        wait(Duration::from_secs(10), || std::fs::read_to_string(&hooked)
            .is_ok_and(
                |t| t.contains("audit_checkpoint") && t.contains(&format!("\"entries\":{n}"))
            ))
        .await,
        "{:?}",
        std::fs::read_to_string(&hooked)
    );
    drop(st);
    // Cut the newest entries and every stored checkpoint: the witness file catches it.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 2 FROM audit_log);
         DELETE FROM audit_checkpoints;",
    )
    .unwrap();
    let verify = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .args(["audit", "verify", "--db"])
            .arg(&db)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = verify(&["--checkpoints", witness_file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("were removed"));
    drop(dir);
}
