//! What the analysts' page needs from the server about the site: the offline basemap (an
//! MBTiles file the test makes, with real PNG tiles, served at `/api/v1/tiles/{z}/{x}/{y}`
//! with the TMS rows flipped), `check-config`'s verdict on bad tiles files and time zones,
//! the web configuration (tiles, time zone and offset, face verification threshold), and
//! face search marking which hits are matches, over the API and the CLI, with the real face
//! models.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::api::access::create_token;
use aggregator::config::ModelsConfig;
use aggregator::store::Store;
use aggregator::store::sql::Value;
use common::free_port;
use common::http::{self, Resp};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn models() -> ModelsConfig {
    ModelsConfig {
        dir: root().join("models/files"),
        onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: 1,
    }
}

/// A 256×256 PNG of one colour.
fn png(rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(256, 256, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const RED: [u8; 3] = [200, 30, 30];
const BLUE: [u8; 3] = [30, 30, 200];

/// An MBTiles file: `metadata` rows as given; tiles (TMS rows) z=1 column 0 row 1 red (XYZ
/// y 0: the north-west tile) and z=1 column 1 row 0 blue (XYZ y 1: the south-east tile).
fn mbtiles(path: &Path, metadata: &[(&str, &str)]) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
         CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);",
    )
    .unwrap();
    for (n, v) in metadata {
        c.execute("INSERT INTO metadata VALUES (?1, ?2)", [n, v])
            .unwrap();
    }
    for (z, x, row, rgb) in [(1i64, 0i64, 1i64, RED), (1, 1, 0, BLUE)] {
        c.execute(
            "INSERT INTO tiles VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![z, x, row, png(rgb)],
        )
        .unwrap();
    }
}

const CHENGDU: [(&str, &str); 6] = [
    ("name", "Chengdu test basemap"),
    ("format", "png"),
    ("minzoom", "0"),
    ("maxzoom", "1"),
    ("bounds", "103.9,30.5,104.2,30.8"),
    ("attribution", "© 测试 contributors"),
];

struct Server {
    _dir: tempfile::TempDir,
    db: PathBuf,
    addr: SocketAddr,
    analyst: String,
    metrics: std::sync::Arc<aggregator::metrics::Metrics>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), aggregator::AggregatorError>>,
}

impl Server {
    async fn get(&self, path: &str) -> Resp {
        http::request(self.addr, "GET", path, &[], vec![]).await
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// An aggregator over a fresh SQLite store with an analyst token, `tweak`ed.
async fn server(tweak: impl FnOnce(&mut AggregatorConfig, &Path)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let analyst = {
        let s = Store::open(&db).unwrap();
        create_token(&s, "analyst", "analyst", None, sharpeyes_wire::now_ms())
            .unwrap()
            .0
    };
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.store.path = db.clone();
    cfg.ops.enabled = false;
    cfg.api.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.api.rate_burst = 1000;
    cfg.api.rate_per_s = 1000.0;
    cfg.watchlist.models = models();
    tweak(&mut cfg, dir.path());
    let addr = cfg.api.listen;
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
        analyst,
        metrics,
        stop,
        task,
    }
}

fn problem(r: &Resp, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains(says), "{detail:?} should say {says:?}");
    assert!(!detail.contains("/tmp"), "no file paths: {detail}");
}

/// The colour of a PNG's centre.
fn colour(bytes: &[u8]) -> [u8; 3] {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    img.get_pixel(128, 128).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_are_served_from_the_mbtiles_file_with_y_flipped() {
    let s = server(|cfg, dir| {
        let p = dir.join("basemap.mbtiles");
        mbtiles(&p, &CHENGDU);
        cfg.api.tiles_file = Some(p);
        // The file wins over a tile server.
        cfg.api.tile_url = "https://tile.example/{z}/{x}/{y}.png".into();
    })
    .await;
    // XYZ y 0 at z 1 is TMS row 1: the red tile; with or without the suffix; no token.
    for path in ["/api/v1/tiles/1/0/0", "/api/v1/tiles/1/0/0.png"] {
        let r = s.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("image/png"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=86400"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.body, png(RED));
        assert_eq!(colour(&r.body), RED);
    }
    let r = s.get("/api/v1/tiles/1/1/1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(colour(&r.body), BLUE, "XYZ (1,1,1) is TMS row 0");
    // Not flipping would have found these: absent.
    problem(&s.get("/api/v1/tiles/1/0/1").await, 404, "no tile 1/0/1");
    problem(&s.get("/api/v1/tiles/1/1/0").await, 404, "no tile 1/1/0");
    problem(&s.get("/api/v1/tiles/0/0/0").await, 404, "no tile");
    // Another format's suffix: not here.
    problem(
        &s.get("/api/v1/tiles/1/0/0.webp").await,
        404,
        "png, not webp",
    );
    // Out of range or not numbers: the request is wrong.
    for (path, says) in [
        ("/api/v1/tiles/1/2/0", "x 2 is outside 0..=1"),
        ("/api/v1/tiles/1/0/2", "y 2 is outside 0..=1"),
        ("/api/v1/tiles/31/0/0", "z 31"),
        ("/api/v1/tiles/a/0/0", "not a whole number"),
        ("/api/v1/tiles/1/-1/0", "not a whole number"),
        ("/api/v1/tiles/1/0/0.gif", "suffix"),
        ("/api/v1/tiles/1/0/0x", "not a whole number"),
    ] {
        problem(&s.get(path).await, 400, says);
    }
    // The page's configuration points at them.
    let r = s.get("/api/v1/web-config").await;
    assert_eq!(r.status, 200);
    let c = r.json();
    assert_eq!(
        c["tiles"],
        serde_json::json!({
            "url": "/api/v1/tiles/{z}/{x}/{y}",
            "format": "png",
            "minzoom": 0,
            "maxzoom": 1,
            "bounds": [103.9, 30.5, 104.2, 30.8],
            "attribution": "© 测试 contributors",
        }),
        "{c}"
    );
    assert_eq!(c["tile_url"], "https://tile.example/{z}/{x}/{y}.png");
    // Counted per route like every other.
    assert_eq!(s.metrics.api_requests.get("tiles", 200), 3);
    assert_eq!(s.metrics.api_requests.get("tiles", 404), 4);
    assert_eq!(s.metrics.api_requests.get("tiles", 400), 7);
    assert_eq!(
        s.metrics.api_rejected.snapshot().get("bad_request"),
        Some(&7)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_gives_the_site_zone_offset_and_face_threshold() {
    // Defaults: no tiles, Beijing time, SFace's threshold.
    let s = server(|_, _| {}).await;
    let c = s.get("/api/v1/web-config").await.json();
    assert_eq!(c["tiles"], serde_json::Value::Null, "{c}");
    assert_eq!(c["time_zone"], "Asia/Shanghai");
    assert_eq!(c["utc_offset_minutes"], 480);
    assert_eq!(c["face_match_threshold"], 0.363);
    problem(
        &s.get("/api/v1/tiles/0/0/0").await,
        404,
        "api.tiles_file is not set",
    );
    s.stop().await;
    // Another zone (summer time or not, whatever it is now) and threshold; a file whose
    // metadata gives no zooms and no bounds: the tiles' own zooms, null bounds.
    let s = server(|cfg, dir| {
        cfg.api.time_zone = "America/New_York".into();
        cfg.watchlist.face_embedder.match_threshold = 0.5;
        let p = dir.join("plain.mbtiles");
        mbtiles(&p, &[("format", "PNG")]);
        cfg.api.tiles_file = Some(p);
    })
    .await;
    let c = s.get("/api/v1/web-config").await.json();
    let ny = aggregator::sitetime::SiteZone::resolve("America/New_York").unwrap();
    let now = sharpeyes_wire::now_ms();
    assert_eq!(c["time_zone"], "America/New_York");
    assert_eq!(c["utc_offset_minutes"], ny.offset_minutes(now), "{c}");
    assert!(matches!(ny.offset_minutes(now), -300 | -240));
    assert_eq!(c["face_match_threshold"], 0.5);
    assert_eq!(c["tiles"]["minzoom"], 1, "{c}");
    assert_eq!(c["tiles"]["maxzoom"], 1, "{c}");
    assert_eq!(c["tiles"]["bounds"], serde_json::Value::Null);
    assert_eq!(c["tiles"]["attribution"], "");
    s.stop().await;
}

/// `aggregator check-config` on `[api]` with `api`: (succeeded, stdout + stderr).
fn check_config(dir: &Path, api: &str) -> (bool, String) {
    let config = dir.join("aggregator.toml");
    std::fs::write(&config, format!("[api]\n{api}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_names_a_bad_tiles_file_or_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.mbtiles");
    mbtiles(&good, &CHENGDU);
    let (ok, out) = check_config(d, &format!("tiles_file = {good:?}"));
    assert!(ok, "{out}");
    assert!(out.contains(": ok"), "{out}");

    let text = d.join("notes.txt");
    std::fs::write(&text, "this is not a database, just some words in a file.").unwrap();
    let empty_db = d.join("empty.mbtiles");
    rusqlite::Connection::open(&empty_db)
        .unwrap()
        .execute_batch("CREATE TABLE other (a);")
        .unwrap();
    let no_meta = d.join("no-metadata.mbtiles");
    rusqlite::Connection::open(&no_meta)
        .unwrap()
        .execute_batch("CREATE TABLE tiles (zoom_level, tile_column, tile_row, tile_data);")
        .unwrap();
    let gif = d.join("gif.mbtiles");
    mbtiles(&gif, &[("format", "gif")]);
    let no_format = d.join("no-format.mbtiles");
    mbtiles(&no_format, &[("name", "x")]);
    let bad_bounds = d.join("bad-bounds.mbtiles");
    mbtiles(
        &bad_bounds,
        &[("format", "png"), ("bounds", "104.2,30.5,103.9")],
    );
    let bad_zoom = d.join("bad-zoom.mbtiles");
    mbtiles(&bad_zoom, &[("format", "png"), ("maxzoom", "99")]);
    for (file, says) in [
        (d.join("missing.mbtiles"), "no such file"),
        (text, "cannot read it as SQLite"),
        (empty_db, "not an MBTiles file: no tiles table"),
        (no_meta, "not an MBTiles file: no metadata table"),
        (
            gif,
            "metadata format \"gif\" is not one of png, jpg, jpeg, webp, pbf",
        ),
        (no_format, "metadata format \"\""),
        (bad_bounds, "metadata bounds"),
        (bad_zoom, "metadata maxzoom \"99\""),
    ] {
        let (ok, out) = check_config(d, &format!("tiles_file = {file:?}"));
        assert!(!ok, "{} accepted: {out}", file.display());
        assert!(out.contains("api.tiles_file"), "{out}");
        assert!(
            out.contains(says),
            "{} should say {says:?}: {out}",
            file.display()
        );
    }
    let (ok, out) = check_config(d, "tiles_file = ''");
    assert!(!ok && out.contains("api.tiles_file"), "{out}");

    for zone in ["Asia/Shanghai", "Asia/Urumqi", "UTC", "Europe/Berlin"] {
        let (ok, out) = check_config(d, &format!("time_zone = {zone:?}"));
        assert!(ok, "{zone}: {out}");
    }
    for zone in ["Beijing", "UTC+8", "asia shanghai", "", "Asia/Nowhere"] {
        let (ok, out) = check_config(d, &format!("time_zone = {zone:?}"));
        assert!(!ok, "{zone:?} accepted: {out}");
        assert!(out.contains("api.time_zone"), "{out}");
        assert!(out.contains("IANA"), "{out}");
    }
}

#[test]
fn beijing_time_resolves_from_the_bundled_database() {
    // What a server without tzdata gets.
    let z = aggregator::sitetime::SiteZone::resolve_bundled("Asia/Shanghai").unwrap();
    assert_eq!(z.offset_minutes(sharpeyes_wire::now_ms()), 480);
    assert_eq!(z.format(1_796_652_903_456), "2026-12-07T22:15:03+08:00");
}

// ---- face search: matches ----

/// The photos of a test identity, sorted.
fn photos(identity: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("testdata/identities").join(identity))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Stores person 7's face (a photo of John Salley) and person 8's (John Savage).
fn store_two_faces(db: &Path) {
    let cfg = aggregator::config::WatchlistConfig {
        models: models(),
        ..Default::default()
    };
    let mut enroller = aggregator::watchlist::Enroller::new(&cfg);
    let model = AggregatorConfig::default().fusion.persons.embedding_model;
    let ts = sharpeyes_wire::now_ms() - 3_600_000;
    let rows: Vec<Vec<Value>> = [(7i64, "John_Salley"), (8, "John_Savage")]
        .iter()
        .map(|(person, who)| {
            let e = enroller.embed_photo(&photos(who)[0]).unwrap();
            vec![
                Value::Text("agent-1".into()),
                Value::Text("cam-1".into()),
                Value::Integer(900 + person),
                Value::Text("s1".into()),
                Value::Integer(*person),
                Value::Text(model.clone()),
                Value::Integer(e.len() as i64),
                Value::Blob(aggregator::store::faces::encode_embedding(&e)),
                Value::Real(0.9),
                Value::Integer(ts),
            ]
        })
        .collect();
    Store::open(db)
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
}

/// (person, similarity, match) of each hit.
fn hits(report: &serde_json::Value) -> Vec<(i64, f64, bool)> {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {report}"))
        .iter()
        .map(|r| {
            (
                r["person"].as_i64().unwrap(),
                r["similarity"].as_f64().unwrap(),
                r["match"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_search_marks_matches_and_lists_only_them_by_default() {
    // The faces are written into the store behind the running aggregator's back (not
    // through its fusion), which its live index would see only at its next refresh: search
    // the store itself (`tests/face_index.rs` covers the live index).
    let s = server(|c, _| c.face_search.live_index = false).await;
    store_two_faces(&s.db);
    let auth = format!("Bearer {}", s.analyst);
    let h = [
        ("authorization", auth.as_str()),
        ("x-purpose", "盗窃案调查"),
        ("x-case", "2026/0042"),
        ("content-type", "image/jpeg"),
    ];
    let query = std::fs::read(&photos("John_Salley")[4]).unwrap();
    let search = |q: &'static str| {
        let (h, query) = (h, query.clone());
        let addr = s.addr;
        async move {
            let r =
                http::request(addr, "POST", &format!("/api/v1/faces/search{q}"), &h, query).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r.json()
        }
    };
    // Default: only matches, and the threshold is said.
    let report = search("").await;
    assert_eq!(report["threshold"], 0.363, "{report}");
    assert_eq!(report["min_similarity"], 0.363, "{report}");
    let found = hits(&report);
    assert_eq!(
        found.len(),
        1,
        "only John Salley's person matches: {report}"
    );
    assert_eq!(found[0].0, 7);
    assert!(found[0].2 && found[0].1 >= 0.363, "{report}");
    // Everyone: the stranger is listed as not a match.
    let report = search("?min_similarity=-1").await;
    let found = hits(&report);
    assert_eq!(found.len(), 2, "{report}");
    assert_eq!((found[0].0, found[0].2), (7, true), "{report}");
    assert_eq!((found[1].0, found[1].2), (8, false), "{report}");
    assert!(found[1].1 < 0.363, "{report}");
    assert_eq!(report["threshold"], 0.363);
    assert_eq!(report["min_similarity"], -1.0);
    // An explicit floor above the match: nothing.
    let report = search("?min_similarity=0.99").await;
    assert_eq!(hits(&report), vec![], "{report}");
    s.stop().await;
}

#[test]
fn the_cli_marks_matches_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    store_two_faces(&db);
    let m = models();
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n\n[watchlist.models]\ndir = {:?}\nonnxruntime = {:?}\n",
            db, m.dir, m.onnxruntime
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .arg("search-face")
            .arg(&photos("John_Salley")[4])
            .args(["--config", config.to_str().unwrap()])
            .args(["--purpose", "盗窃案调查", "--case", "2026/0042"])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{extra:?}: {err}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let v: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(v["threshold"], 0.363, "{v}");
    assert_eq!(
        hits(&v).iter().map(|h| (h.0, h.2)).collect::<Vec<_>>(),
        [(7, true)]
    );
    let v: serde_json::Value =
        serde_json::from_str(&run(&["--json", "--min-similarity", "-1"])).unwrap();
    assert_eq!(
        hits(&v).iter().map(|h| (h.0, h.2)).collect::<Vec<_>>(),
        [(7, true), (8, false)],
        "{v}"
    );
    let table = run(&["--min-similarity", "-1"]);
    assert!(table.contains("similarity >= 0.363"), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    let header = lines.iter().find(|l| l.starts_with("rank")).unwrap();
    assert!(header.contains("match"), "{table}");
    let p7 = lines.iter().find(|l| l.contains("P-7")).unwrap();
    let p8 = lines.iter().find(|l| l.contains("P-8")).unwrap();
    assert!(p7.contains(" yes ") && p8.contains(" no "), "{table}");
}
