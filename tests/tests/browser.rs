//! The analyst web page in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` (package `chromium-driver`, W3C WebDriver) on the demo's data.
//!
//! The data comes through the demo's real path (the demo clip over RTSP → edge agent → MQTT →
//! aggregator → SQLite, with the demo's wanted plate enrolled so a plate-watchlist alert with
//! evidence fires, and the camera placed on the map, with its heading and field of view). The
//! test adds one high-priority alert and one person–vehicle link (with its evidence) to the
//! store and makes a small MBTiles basemap (tiles around the camera, one PNG) given as
//! `api.tiles_file`. Then the real `aggregator` binary
//! serves that store with its HTTP API and embedded page on free 127.0.0.1 ports, tokens are
//! made with `aggregator token create` (an analyst and a viewer), and the browser, once at
//! 1280×800 and once at 1920×1080:
//!
//! - shows the page in English to an English browser and in Chinese after the language switch
//!   (`<html lang="zh-CN">`), every time in Beijing time with its label;
//! - draws the basemap from the aggregator's tiles, the camera and its field of view; the
//!   high-priority alert beeps and flashes the tab title until the alert list is clicked;
//! - asks for the purpose and case first, in Chinese (盗窃案调查, 京公(刑)立字〔2026〕0042号: the
//!   case pattern compiles with the `v` flag), and the audit log records them as given;
//! - searches the plate: one marker per camera with the count of its sightings, timeline bars
//!   and the list match the API's sightings, in time order; a bar selects the sighting in the
//!   list and on the map; the CSV export starts with a UTF-8 BOM and has site times (+08:00);
//! - (first pass) opens an evidence crop and acknowledges the plate alert, which the API then
//!   reports acknowledged by the token's name;
//! - filters by a time range, searches an area by a box dragged on the map and by grid, a
//!   person id and a vehicle id (when the API has that route), the links of the plate with
//!   their evidence; each count equals the API's;
//! - searches a face that is nobody in the clip (every hit marked "不是同一人", the previous
//!   trajectory gone), then another photo of the clip's first person (a match, the query photo
//!   beside the hit's best face), and opens their trajectory;
//! - opens the case report (map, timeline, sightings with crops, purpose, case, who, when; no
//!   buttons or inputs in it; a print style sheet);
//! - logs out (nothing of the analyst left: results, purpose, case, map, face, links) and logs
//!   in as a viewer, who has no search, export or acknowledge controls.
//!
//! Screenshots of each step go to `target/browser-test/NN-step-WxH.png` (paths printed).
//! Without chromium / chromedriver the test fails with what to install (`scripts/setup.sh`
//! installs both, and CI runs it): a missing browser is never a silent pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aggregator::store::audit::AuditFilter;
use aggregator::store::{AlertFilter, Store};
use serde_json::{Value, json};
use sharpeyes_e2e::webdriver::{ChromeDriver, Session, http};
use sharpeyes_e2e::{
    BrokerKind, DEMO_CAMERA_AT, DEMO_WANTED_PLATE, ScenarioOptions, free_port, models_config,
    run_face_scenario, scenario_camera_place, testdata_dir, workspace_bin, workspace_bin_dir,
};

const TOKEN_NAME: &str = "browser-analyst";
const VIEWER_NAME: &str = "browser-viewer";
const PURPOSE: &str = "盗窃案调查";
const CASE: &str = "京公(刑)立字〔2026〕0042号";
const HIGH_ALERT: &str = "cam-1-loiter-browser";
const WAIT: Duration = Duration::from_secs(30);

/// The aggregator process (killed on drop).
struct Served(Child);
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Screenshots, numbered in order, named with the window size.
struct Shots {
    dir: PathBuf,
    n: usize,
    size: String,
}
impl Shots {
    fn take(&mut self, s: &Session, step: &str) -> PathBuf {
        self.n += 1;
        let p = self
            .dir
            .join(format!("{:02}-{step}-{}.png", self.n, self.size));
        s.screenshot(&p).expect("screenshot");
        println!("screenshot {}", p.display());
        p
    }
}

fn token_create(db: &Path, name: &str, role: &str) -> String {
    let out = Command::new(workspace_bin("aggregator"))
        .args(["token", "create", "--name", name, "--role", role, "--db"])
        .arg(db)
        .output()
        .expect("running aggregator token create");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aggregator token create failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("se_"))
        .unwrap_or_else(|| panic!("no se_ token in {stdout:?}"))
        .to_string()
}

/// GET under /api/v1 with the token and the purpose headers (percent-encoded, as the page
/// sends them); the JSON.
fn api_get(port: u16, token: &str, path: &str) -> Value {
    let auth = format!("Bearer {token}");
    let (purpose, case) = (encode(PURPOSE), encode(CASE));
    let r = http(
        port,
        "GET",
        &format!("/api/v1{path}"),
        &[
            ("Authorization", &auth),
            ("X-Purpose", &purpose),
            ("X-Case", &case),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap()
}

fn rows<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v.as_array()
        .or_else(|| v[key].as_array())
        .or_else(|| v["items"].as_array())
        .unwrap_or_else(|| panic!("no list in {v}"))
}

/// `encodeURIComponent`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The XYZ tile holding `lat`, `lon` at zoom `z`.
fn tile_of(lat: f64, lon: f64, z: u32) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let r = lat.to_radians();
    let y = ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x.clamp(0.0, n - 1.0) as u32, y.clamp(0.0, n - 1.0) as u32)
}

/// A small MBTiles basemap: one 256×256 PNG (a light ground with a border) for the 3×3 tiles
/// around `at` at every zoom 0..=16 (rows in TMS order, as MBTiles stores them).
fn make_mbtiles(path: &Path, at: [f64; 2]) -> usize {
    let mut img = image::RgbImage::from_pixel(256, 256, image::Rgb([226, 236, 218]));
    for i in 0..256 {
        for (x, y) in [(i, 0), (i, 255), (0, i), (255, i)] {
            img.put_pixel(x, y, image::Rgb([170, 190, 160]));
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
         CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);",
    )
    .unwrap();
    for (k, v) in [
        ("name", "browser test basemap"),
        ("format", "png"),
        ("type", "baselayer"),
        ("version", "1"),
        ("minzoom", "0"),
        ("maxzoom", "16"),
        ("bounds", "-180,-85.0511,180,85.0511"),
        ("attribution", "browser test tiles"),
    ] {
        db.execute("INSERT INTO metadata VALUES (?1, ?2)", [k, v])
            .unwrap();
    }
    let mut n = 0;
    for z in 0..=16u32 {
        let max = (1i64 << z) - 1;
        let (cx, cy) = tile_of(at[0], at[1], z);
        for dx in -1i64..=1 {
            for dy in -1i64..=1 {
                let (x, y) = (i64::from(cx) + dx, i64::from(cy) + dy);
                if !(0..=max).contains(&x) || !(0..=max).contains(&y) {
                    continue;
                }
                n += db
                    .execute(
                        "INSERT OR IGNORE INTO tiles VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![z, x, max - y, png],
                    )
                    .unwrap();
            }
        }
    }
    n
}

/// Adds a high-priority open alert (loitering at the demo's camera) to the store.
fn add_high_alert(db: &Path, agent: &str, site: &str) {
    let now = sharpeyes_wire::now_ms();
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute(
        "INSERT INTO alerts (agent, alert_id, site, camera, kind, priority, first_ms, last_ms,
           sightings, track, summary, details_json, received_ms)
         VALUES (?1, ?2, ?3, 'cam-1', 'loitering', 'high', ?4, ?4, 1, NULL, ?5, '{}', ?4)",
        rusqlite::params![
            agent,
            HIGH_ALERT,
            site,
            now,
            "徘徊超过 120 秒（浏览器测试）"
        ],
    )
    .unwrap();
}

/// Links a person of the store with the plate's vehicle, with one piece of evidence (the
/// demo's clip has no one getting into a car), so the page has links to show.
fn add_link(db: &Path, plate: &str, site: &str, agent: &str) {
    let now = sharpeyes_wire::now_ms();
    let c = rusqlite::Connection::open(db).unwrap();
    let (person, vehicle): (i64, i64) = c
        .query_row(
            "SELECT (SELECT min(id) FROM persons), (SELECT min(id) FROM vehicles WHERE plate = ?1)",
            [plate],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let camera = json!({"site": site, "agent": agent, "camera": "cam-1"});
    let evidence = json!({"rule": "got_in", "gap_ms": 1500,
        "person_track": {"camera": camera, "track": 7}, "vehicle_track": {"camera": camera, "track": 8},
        "ts_ms": now, "weight": 0.4});
    c.execute(
        "INSERT INTO links (person, vehicle, count, strength, first_ms, last_ms) VALUES (?1, ?2, 1, 0.4, ?3, ?3)",
        rusqlite::params![person, vehicle, now],
    )
    .unwrap();
    c.execute(
        "INSERT INTO link_evidence (person, vehicle, ts_ms, evidence_json) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![person, vehicle, now, evidence.to_string()],
    )
    .unwrap();
}

/// What both passes need.
struct Ctx {
    base: String,
    db: PathBuf,
    agent: String,
    port: u16,
    token: String,
    viewer: String,
    plate_alert: String,
    vehicle_route: bool,
}

/// Small helpers over a session.
trait Page {
    fn js(&self, script: &str) -> Value;
    fn wait(&self, what: &str, script: &str) -> Value;
    fn click_on(&self, css: &str);
    fn type_in(&self, css: &str, text: &str);
    fn set_value(&self, css: &str, value: &str);
    fn count(&self, css: &str) -> u64;
}
impl Page for Session {
    fn js(&self, script: &str) -> Value {
        self.script(script, vec![]).unwrap()
    }
    fn wait(&self, what: &str, script: &str) -> Value {
        self.wait_for(what, WAIT, script)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }
    fn click_on(&self, css: &str) {
        let e = self
            .find(css)
            .unwrap_or_else(|e| panic!("finding {css}: {e}"));
        self.click(&e)
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }
    fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css).unwrap();
        self.type_into(&e, text).unwrap();
    }
    /// Sets an input's or select's value as a user would (input and change events).
    fn set_value(&self, css: &str, value: &str) {
        self.script(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true})); \
             e.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(css), json!(value)],
        )
        .unwrap();
    }
    fn count(&self, css: &str) -> u64 {
        self.script(
            "return document.querySelectorAll(arguments[0]).length",
            vec![json!(css)],
        )
        .unwrap()
        .as_u64()
        .unwrap()
    }
}

/// Waits until the trajectory shown has `n` sightings in the list and `n` timeline bars, and
/// the map one marker per camera position whose counts add up to `n`.
fn wait_trajectory(s: &Session, what: &str, n: usize) {
    s.wait(
        what,
        &format!(
            "const n = document.querySelectorAll('#sightings li').length; \
             const m = [...document.querySelectorAll('#map .traj-marker')]; \
             const c = m.reduce((a, e) => a + Number(e.dataset.count || 0), 0); \
             return n === {n} && document.querySelectorAll('#timeline rect.bar-s').length === {n} \
               && (n === 0 ? m.length === 0 : m.length > 0 && c === {n})"
        ),
    );
}

/// The page's search result: nothing shown of a previous search while a new one runs.
fn no_trajectory(s: &Session) -> bool {
    s.count("#sightings li") == 0
        && s.count("#map .traj-marker") == 0
        && s.count("#timeline rect.bar-s") == 0
}

/// A site-time `datetime-local` value (Asia/Shanghai, the default site zone) of `ms`.
fn site_input(s: &Session, ms: i64) -> String {
    s.script(
        "const f = new Intl.DateTimeFormat('sv-SE', {timeZone: 'Asia/Shanghai', year: 'numeric', \
           month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', \
           hourCycle: 'h23'}); return f.format(new Date(arguments[0])).replace(' ', 'T')",
        vec![json!(ms)],
    )
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

fn no_error(s: &Session, step: &str) {
    let error = s.find("#error").unwrap();
    assert!(
        !s.displayed(&error).unwrap(),
        "{step}: the page shows an error: {}",
        s.text(&error).unwrap()
    );
}

/// One pass through the page in a `width`×`height` window; `first`: also the steps that
/// change the store (acknowledging) and the English start.
fn walk(driver: &ChromeDriver, ctx: &Ctx, shots_dir: &Path, width: u32, height: u32, first: bool) {
    let s = driver.session(width, height).unwrap();
    let mut shots = Shots {
        dir: shots_dir.to_path_buf(),
        n: if first { 0 } else { 50 },
        size: format!("{width}x{height}"),
    };
    let port = ctx.port;
    let token = &ctx.token;

    // 1. The log-in, in the browser's language (English), then in Chinese.
    if first {
        s.goto(&ctx.base).unwrap();
        s.wait(
            "the log-in form in English",
            "return !document.getElementById('login').hidden \
               && document.documentElement.lang === 'en' \
               && document.getElementById('login-title').textContent === 'Log in'",
        );
        shots.take(&s, "login-en");
        s.click_on("#lang option[value='zh-CN']");
    } else {
        s.goto(&format!("{}?lang=zh-CN", ctx.base)).unwrap();
    }
    s.wait(
        "the log-in form in Chinese",
        "return !document.getElementById('login').hidden \
           && document.documentElement.lang === 'zh-CN' \
           && document.getElementById('login-title').textContent === '登录'",
    );
    shots.take(&s, "login-zh");
    s.type_in("#token", token);
    s.click_on("#login-submit");

    // 2. The map (the aggregator's basemap tiles, the camera and its field of view), the
    // alerts and their live feed; the high-priority alert beeps and flashes the title.
    s.wait(
        "the page after log-in: user shown, camera on the map, live alert feed",
        &format!(
            "return !document.getElementById('app').hidden \
             && document.getElementById('who').textContent.includes('{TOKEN_NAME}') \
             && document.getElementById('who').textContent.includes('研判员') \
             && document.querySelectorAll('#map path.leaflet-interactive').length > 0 \
             && document.querySelectorAll('#map path.cam-fov').length > 0 \
             && document.getElementById('stream-state').classList.contains('live') \
             && document.getElementById('stream-state').textContent === '实时' \
             && document.querySelectorAll('#alerts li').length > 0"
        ),
    );
    s.wait(
        "basemap tiles from /api/v1/tiles drawn",
        "return [...document.querySelectorAll('#map img.leaflet-tile-loaded')] \
                 .some(i => i.src.includes('/api/v1/tiles/') && i.naturalWidth === 256) \
               && performance.getEntriesByType('resource').some(e => e.name.includes('/api/v1/tiles/'))",
    );
    s.wait(
        "the high-priority alert's beep and flashing title",
        "return document.body.dataset.alerting === '1' \
           && Number(document.getElementById('alerts-panel').dataset.beeps) >= 1",
    );
    let high = format!("#alerts li[data-key=\"{}/{HIGH_ALERT}\"]", ctx.agent);
    s.wait(
        "the high-priority alert listed in Chinese",
        &format!(
            "const l = document.querySelector('{high}'); \
             return l && l.classList.contains('high') && l.textContent.includes('高优先级') \
               && l.textContent.includes('北京时间')"
        ),
    );
    s.wait(
        "the title flashing",
        "return document.title.includes('高优先级警报')",
    );
    shots.take(&s, "map-tiles-alerts");
    s.click_on("#alerts-panel h2");
    s.wait(
        "the title back once the alerts were seen",
        "return !document.body.dataset.alerting && document.title === 'Sharp Eyes · 研判'",
    );
    // Every text of the page comes from the catalogue: no element is left empty.
    let empty = s.js(
        "return [...document.querySelectorAll('[data-i18n]')].filter(e => !e.textContent.trim()).map(e => e.dataset.i18n)",
    );
    assert_eq!(empty, json!([]), "messages missing from the catalogue");

    // 3. A search asks for the purpose and the case first; Chinese ones.
    s.type_in("#plate", DEMO_WANTED_PLATE);
    s.click_on("#plate-search");
    s.wait(
        "the purpose prompt",
        "return !document.getElementById('purpose').hidden",
    );
    assert!(
        s.find_all("#sightings li").unwrap().is_empty(),
        "searched before the purpose was given"
    );
    // The case pattern compiles as Chrome compiles `pattern` (the v flag) and is checked.
    let checks = s.js(
        "const c = document.getElementById('case-ref'); new RegExp('^(?:' + c.pattern + ')$', 'v'); \
         const ok = (v) => { c.value = v; c.dispatchEvent(new Event('input')); return c.checkValidity(); }; \
         const r = [ok('a b'), ok('CASE-2026/0042'), ok('京公(刑)立字〔2026〕0042号')]; \
         c.value = ''; c.dispatchEvent(new Event('input')); return r",
    );
    assert_eq!(checks, json!([false, true, true]), "case-reference check");
    s.type_in("#purpose-text", PURPOSE);
    s.type_in("#case-ref", CASE);
    shots.take(&s, "purpose-zh");
    s.click_on("#purpose-submit");

    // 4. The plate's trajectory: list, one marker per camera with its count, timeline bars.
    let traj = api_get(
        port,
        token,
        &format!(
            "/vehicles/trajectory?plate={}&fuzzy=false&limit=1000",
            encode(DEMO_WANTED_PLATE)
        ),
    );
    let sightings = rows(&traj, "sightings").clone();
    let n = sightings.len();
    assert!(n > 0, "no sightings of {DEMO_WANTED_PLATE}: {traj}");
    wait_trajectory(
        &s,
        "the plate's trajectory on the list, the map and the timeline",
        n,
    );
    let marks = s.js(
        "return [...document.querySelectorAll('#map .traj-marker')].map(e => [e.querySelector('span').textContent, e.dataset.sightings])",
    );
    let places: std::collections::BTreeSet<String> = sightings
        .iter()
        .map(|v| {
            format!(
                "{:.6},{:.6}",
                v["lat"].as_f64().unwrap(),
                v["lon"].as_f64().unwrap()
            )
        })
        .collect();
    assert_eq!(
        marks.as_array().unwrap().len(),
        places.len(),
        "one marker per camera position: {marks}"
    );
    if places.len() == 1 {
        let all: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        assert_eq!(marks, json!([["1", all.join(",")]]), "the grouped marker");
        if n > 1 {
            s.wait(
                "the marker's count",
                &format!("return document.querySelector('#map .traj-marker .count').textContent === '×{n}'"),
            );
        }
    }
    let xs: Vec<f64> = s
        .js("return [...document.querySelectorAll('#timeline rect.bar-s')].map(r => +r.getAttribute('x'))")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        xs.windows(2).all(|w| w[0] <= w[1]),
        "timeline not in time order: {xs:?}"
    );
    // Times in Beijing time, labelled.
    s.wait(
        "site times with their label",
        "return [...document.querySelectorAll('#sightings .time')].every(e => e.textContent.includes('北京时间')) \
           && document.getElementById('timeline-range').textContent.includes('UTC+08:00')",
    );
    // The timeline drives the list and the map.
    s.click_on(&format!("#bar-{}", n - 1));
    s.wait(
        "the clicked sighting selected in the list and on the map",
        &format!(
            "return document.getElementById('sighting-{last}').classList.contains('sel') \
             && document.querySelectorAll('#map .traj-marker.sel').length === 1",
            last = n - 1
        ),
    );
    shots.take(&s, "trajectory-zh");
    // The audit log has the purpose and case as given.
    {
        // The aggregator keeps the store open; SQLite (WAL) lets the test read it meanwhile.
        let store = Store::open(&ctx.db).unwrap();
        let entries = store
            .audit_entries(&AuditFilter {
                who: Some(TOKEN_NAME.into()),
                ..Default::default()
            })
            .unwrap();
        assert!(
            entries.iter().any(|e| e.action == "vehicles.trajectory"
                && e.purpose.as_deref() == Some(PURPOSE)
                && e.case_ref.as_deref() == Some(CASE)),
            "no audited plate search with purpose {PURPOSE} and case {CASE}: {:?}",
            entries.iter().take(5).collect::<Vec<_>>()
        );
    }
    // The CSV export: a UTF-8 BOM, Chinese headers, site times.
    s.js(
        "window.__blobs = []; if (!window.__cou) { window.__cou = URL.createObjectURL; \
           URL.createObjectURL = function (b) { window.__blobs.push(b); return window.__cou.call(URL, b); }; } \
         window.__csv = null;",
    );
    s.click_on("#export-csv");
    let csv = s.wait(
        "the CSV export",
        "const b = (window.__blobs || []).find(b => b.type.startsWith('text/csv')); if (!b) return null; \
         if (!window.__csvp) window.__csvp = b.arrayBuffer().then(a => window.__csv = Array.from(new Uint8Array(a))); \
         return window.__csv",
    );
    let bytes: Vec<u8> = csv
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "the CSV has no BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    assert!(text.starts_with("序号,"), "CSV header: {text}");
    assert!(
        text.contains(DEMO_WANTED_PLATE) && text.contains("+08:00"),
        "{text}"
    );
    assert_eq!(text.lines().count(), n + 1, "{text}");
    s.js("window.__csvp = null; window.__csv = null; window.__blobs = [];");

    if first {
        // 5. An evidence crop: the alert's, fetched with the token, opened large.
        let li = format!("#alerts li[data-key=\"{}\"]", ctx.plate_alert);
        s.wait(
            "the alert's evidence crop loaded",
            &format!(
                "const i = document.querySelector('{li} img.alert-crop'); return i && i.complete && i.naturalWidth > 0"
            ),
        );
        s.click_on(&format!("{li} img.alert-crop"));
        let width = s.wait(
            "the evidence crop opened",
            "const i = document.getElementById('lightbox-img'); \
             return !document.getElementById('lightbox').hidden && i.complete && i.naturalWidth",
        );
        println!("evidence crop: natural width {width} px");
        shots.take(&s, "evidence");
        s.click_on("#lightbox-close");

        // 6. Acknowledge the alert; the API reports who did.
        let note = "车辆已由 7 号巡逻车拦停";
        s.type_in(&format!("{li} .ack-note"), note);
        s.click_on(&format!("{li} button.ack"));
        s.wait(
            "the alert shown acknowledged",
            &format!(
                "const l = document.querySelector('{li}'); return l && l.classList.contains('acked')"
            ),
        );
        shots.take(&s, "acknowledged");
        let listed = api_get(port, token, "/alerts?limit=1000");
        let row = rows(&listed, "alerts")
            .iter()
            .find(|a| {
                format!(
                    "{}/{}",
                    a["agent"].as_str().unwrap(),
                    a["alert_id"].as_str().unwrap()
                ) == ctx.plate_alert
            })
            .unwrap_or_else(|| panic!("alert {} not listed: {listed}", ctx.plate_alert));
        assert_eq!(row["acked_by"], TOKEN_NAME, "{row}");
        assert_eq!(row["ack_note"], note, "{row}");
        assert!(row["acked_ms"].as_i64().is_some(), "{row}");
    }

    // 7. The time range: before the first sighting nothing, around them all.
    let first_ms = sightings
        .iter()
        .map(|v| v["first_ms"].as_i64().unwrap())
        .min()
        .unwrap();
    let last_ms = sightings
        .iter()
        .map(|v| v["last_ms"].as_i64().unwrap())
        .max()
        .unwrap();
    let before = site_input(&s, first_ms - 60_000);
    s.set_value("#time-to", &before);
    s.click_on("#plate-search");
    s.wait(
        "no sightings before the first",
        "const r = document.getElementById('result').textContent; \
         return r.includes('0 次出现') && r.includes('北京时间')",
    );
    assert!(no_trajectory(&s), "sightings outside the time range shown");
    s.set_value("#time-from", &before);
    s.set_value("#time-to", &site_input(&s, last_ms + 60_000));
    s.click_on("#plate-search");
    wait_trajectory(&s, "every sighting inside the time range", n);
    shots.take(&s, "time-filter");
    s.click_on("#time-clear");

    // 8. An area: a box dragged on the map around the camera, then the camera's grid.
    s.click_on("#tab-area");
    s.click_on("#draw-box");
    let bbox = s
        .js(
            "const m = document.getElementById('map'); \
             const c = document.querySelector('#map path.cam-dot').getBoundingClientRect(); \
             const x = c.left + c.width / 2, y = c.top + c.height / 2; \
             const ev = (type, dx, dy) => m.dispatchEvent(new MouseEvent(type, {clientX: x + dx, clientY: y + dy, \
               bubbles: true, cancelable: true, button: 0, buttons: type === 'mouseup' ? 0 : 1, view: window})); \
             ev('mousedown', -90, -70); ev('mousemove', 0, 0); ev('mousemove', 90, 70); ev('mouseup', 90, 70); \
             return document.getElementById('bbox').value",
        )
        .as_str()
        .unwrap()
        .to_string();
    let corners: Vec<f64> = bbox.split(',').map(|v| v.parse().unwrap()).collect();
    let [lat, lon] = DEMO_CAMERA_AT;
    assert!(
        corners.len() == 4
            && corners[0] < lat
            && lat < corners[2]
            && corners[1] < lon
            && lon < corners[3],
        "the box drawn {bbox} does not hold the camera"
    );
    assert!(s.count("#map path.area-box") == 1, "the box is not drawn");
    s.click_on("#area-box-search");
    let in_box = api_get(
        port,
        token,
        &format!("/sightings?bbox={bbox}&from=7d&limit=1000"),
    );
    let in_box = rows(&in_box, "sightings").clone();
    assert!(!in_box.is_empty(), "nothing in the box {bbox}");
    wait_trajectory(&s, "the sightings in the box", in_box.len());
    shots.take(&s, "area-box");
    s.set_value("#grid", "grid-1");
    s.click_on("#area-grid-search");
    let in_grid = api_get(port, token, "/sightings?grid=grid-1&from=7d&limit=1000");
    let in_grid = rows(&in_grid, "sightings").len();
    s.wait(
        "the grid search's summary",
        "return document.getElementById('result').textContent.includes('网格 grid-1')",
    );
    wait_trajectory(&s, "the sightings in the grid", in_grid);
    shots.take(&s, "area-grid");

    // 9. A person id, and a vehicle id where the API has that route.
    let person = in_box
        .iter()
        .find(|v| v["kind"] == "person")
        .map(|v| v["identity"].as_u64().unwrap())
        .expect("a person in the box");
    s.click_on("#tab-ids");
    s.type_in("#person-id", &format!("P-{person}"));
    s.click_on("#person-search");
    let pt = api_get(
        port,
        token,
        &format!("/persons/P-{person}/trajectory?limit=1000"),
    );
    wait_trajectory(&s, "the person's trajectory", rows(&pt, "sightings").len());
    shots.take(&s, "person-id");
    assert!(
        ctx.vehicle_route,
        "the API has GET /vehicles/{{id}}/trajectory"
    );
    let vehicle = traj["vehicles"][0]["vehicle"]
        .as_u64()
        .expect("a vehicle id");
    s.type_in("#vehicle-id", &format!("V-{vehicle}"));
    s.click_on("#vehicle-search");
    let vt = api_get(
        port,
        token,
        &format!("/vehicles/V-{vehicle}/trajectory?limit=1000"),
    );
    wait_trajectory(&s, "the vehicle's trajectory", rows(&vt, "sightings").len());
    shots.take(&s, "vehicle-id");

    // 10. The links of the plate, with their evidence.
    s.click_on("#tab-links");
    s.type_in("#link-plate", DEMO_WANTED_PLATE);
    s.click_on("#links-search");
    let links = api_get(
        port,
        token,
        &format!("/links?plate={}&limit=1000", encode(DEMO_WANTED_PLATE)),
    );
    let links = rows(&links, "links").clone();
    let evidence: usize = links
        .iter()
        .map(|l| l["evidence"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(!links.is_empty(), "no links of {DEMO_WANTED_PLATE}");
    s.wait(
        "the links listed",
        &format!(
            "return document.querySelectorAll('#links-list li.link').length === {} \
               && document.querySelectorAll('#links-list .link-evidence li').length === {evidence} \
               && document.getElementById('links-list').textContent.includes('上车') \
               && document.getElementById('links-list').textContent.includes('cam-1 #7')",
            links.len()
        ),
    );
    assert!(
        no_trajectory(&s),
        "the previous trajectory stayed under the links"
    );
    println!(
        "links of {DEMO_WANTED_PLATE}: {} with {evidence} pieces of evidence",
        links.len()
    );
    shots.take(&s, "links");
    s.set_value("#link-plate", "");

    // 11. Face search: a stranger is nobody (every hit "不是同一人", the previous results
    // gone); the clip's first person is a match, shown beside the query photo.
    let photo = |p: &str| {
        let p = testdata_dir().join(p);
        // chromedriver takes canonical paths only.
        p.canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .display()
            .to_string()
    };
    s.click_on("#tab-face");
    s.type_in("#photo", &photo("identities/kit_harington/john1.jpeg"));
    s.click_on("#face-search");
    s.wait(
        "the stranger's hits, none a match",
        "const h = document.querySelectorAll('#persons li.hit'); \
         return h.length > 0 && document.querySelectorAll('#persons li.match').length === 0 \
           && [...h].every(l => l.querySelector('.badge.no').textContent === '不是同一人') \
           && document.getElementById('face-query-img').naturalWidth > 0",
    );
    assert!(
        no_trajectory(&s),
        "the previous trajectory stayed under the face search"
    );
    let sims = s.js(
        "return [...document.querySelectorAll('#persons li.hit .verdict')].map(e => e.textContent)",
    );
    println!("stranger's hits: {sims}");
    shots.take(&s, "face-nonmatch");
    s.type_in("#photo", &photo("identities/obama/obama2.jpg"));
    s.click_on("#face-search");
    s.wait(
        "the clip's first person found: a match beside the query photo, with their best face",
        "const l = document.querySelector('#persons li.hit'); \
         if (!l || !l.classList.contains('match')) return false; \
         const b = l.querySelector('img.face-best'); \
         return l.querySelector('.badge.ok').textContent === '同一人' && l.querySelector('img.face-q') \
           && b && b.complete && b.naturalWidth > 0",
    );
    shots.take(&s, "face-match");
    s.click_on("#persons li.match button.person");
    let person_n = s
        .wait(
            "the person's trajectory",
            "const n = document.querySelectorAll('#sightings li').length; \
             return n > 0 && document.querySelector('#result strong').textContent.startsWith('P-') \
               && document.querySelectorAll('#timeline rect.bar-s').length === n \
               && document.querySelectorAll('#map .traj-marker').length > 0 ? n : 0",
        )
        .as_u64()
        .unwrap();
    assert!(
        s.count("#persons li.hit") > 0,
        "opening a hit's trajectory dropped the face hits"
    );
    shots.take(&s, "face-trajectory");

    // 12. The case report.
    s.wait(
        "the crops of the trajectory loaded",
        "return [...document.querySelectorAll('#sightings .evidence')].every(e => !e.textContent.includes('…'))",
    );
    s.click_on("#report-open");
    s.wait(
        "the case report",
        &format!(
            "const r = document.getElementById('report'); if (r.hidden) return false; \
             const f = (k) => document.querySelector(`[data-fact=\"${{k}}\"]`).textContent; \
             return f('report.case') === {case:?} && f('report.purpose') === {purpose:?} \
               && f('report.who').includes('{TOKEN_NAME}') && f('report.when').includes('北京时间') \
               && document.querySelectorAll('#report-table tbody tr').length === {person_n} \
               && document.querySelectorAll('#report-timeline rect.bar-s').length === {person_n} \
               && document.querySelectorAll('#report-map .traj-marker').length > 0 \
               && document.querySelectorAll('#report-map img.leaflet-tile-loaded').length > 0",
            case = CASE,
            purpose = PURPOSE
        ),
    );
    assert_eq!(
        s.count(
            "#report-body button, #report-body input, #report-body select, #report-body textarea"
        ),
        0,
        "controls in the report"
    );
    let print = s.js(
        "const rules = []; for (const sh of document.styleSheets) for (const r of sh.cssRules) \
           if (r.media && r.media.mediaText.includes('print')) rules.push(r.cssText); \
         const t = rules.join(' '); \
         return t.includes('report-open') && t.includes('button') && t.includes('input')",
    );
    assert_eq!(print, json!(true), "no print style sheet for the report");
    shots.take(&s, "case-report");
    s.click_on("#report-close");
    no_error(&s, "searches");

    // 13. Log-out leaves nothing of the analyst; a viewer has no search, export or
    // acknowledge controls.
    s.click_on("#logout");
    s.wait(
        "the log-in form after log-out",
        "return !document.getElementById('login').hidden && document.getElementById('app').hidden",
    );
    let left = s.js(&format!(
        "const q = (c) => document.querySelectorAll(c).length; \
         const v = (id) => document.getElementById(id).value; \
         return {{ sightings: q('#sightings li'), persons: q('#persons li'), links: q('#links-list li'), \
           alerts: q('#alerts li'), markers: q('#map .traj-marker'), box: q('#map path.area-box'), \
           cameras: q('#map path.cam-dot'), bars: q('#timeline rect.bar-s'), face: q('#face-query img'), \
           report: q('#report-body *'), result: document.getElementById('result').textContent, \
           purpose_now: document.getElementById('purpose-now').textContent, \
           inputs: [v('plate'), v('bbox'), v('person-id'), v('link-plate'), v('purpose-text'), v('case-ref')].join(''), \
           stored: [sessionStorage.getItem('se.purpose'), sessionStorage.getItem('se.case'), sessionStorage.getItem('se.token')], \
           text: document.body.innerText.includes({PURPOSE:?}) || document.body.innerText.includes({CASE:?}) }}"
    ));
    assert_eq!(
        left,
        json!({"sightings": 0, "persons": 0, "links": 0, "alerts": 0, "markers": 0, "box": 0,
               "cameras": 0, "bars": 0, "face": 0, "report": 0, "result": "", "purpose_now": "",
               "inputs": "", "stored": [null, null, null], "text": false}),
        "left on the page after log-out"
    );
    shots.take(&s, "logged-out");
    s.type_in("#token", &ctx.viewer);
    s.click_on("#login-submit");
    s.wait(
        "the viewer's page",
        &format!(
            "return !document.getElementById('app').hidden \
             && document.getElementById('who').textContent.includes('{VIEWER_NAME}') \
             && document.querySelectorAll('#alerts li').length > 0 \
             && document.querySelectorAll('#map path.cam-dot').length > 0"
        ),
    );
    for css in [
        "#plate-search",
        "#face-search",
        "#area-box-search",
        "#links-search",
        "#time-from",
        "#purpose-change",
        "#export-csv",
        "#export-geojson",
        "#report-open",
    ] {
        let e = s.find(css).unwrap();
        assert!(!s.displayed(&e).unwrap(), "a viewer sees {css}");
    }
    assert_eq!(
        s.count("#alerts button.ack"),
        0,
        "a viewer sees acknowledge buttons"
    );
    assert!(s.displayed(&s.find("#role-note").unwrap()).unwrap());
    let text = s.js(&format!(
        "return document.body.innerText.includes({PURPOSE:?}) || document.body.innerText.includes({CASE:?}) \
           || document.querySelectorAll('#sightings li, #persons li, #links-list li, #map .traj-marker').length > 0"
    ));
    assert_eq!(text, json!(false), "the viewer sees the analyst's results");
    shots.take(&s, "viewer");
    no_error(&s, "viewer");
}

#[test]
fn analyst_page_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let shots_dir = workspace_bin_dir()
        .parent()
        .expect("target folder")
        .join("browser-test");
    let _ = std::fs::remove_dir_all(&shots_dir);
    std::fs::create_dir_all(&shots_dir).unwrap();
    // Fail early (before the minute of footage) when the browser is missing.
    let driver = ChromeDriver::start(&shots_dir.join("chromedriver.log")).unwrap();

    // The demo's data, through the demo's path.
    let opts = ScenarioOptions {
        out: dir.path().to_path_buf(),
        broker: BrokerKind::Embedded,
        embedded_port: 0,
        analysis_fps: 5.0,
        capture: None,
        secure: None,
        wanted_plates: vec![(
            DEMO_WANTED_PLATE.to_string(),
            "被盗车辆（浏览器测试）".to_string(),
        )],
        camera_at: Some(DEMO_CAMERA_AT),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(run_face_scenario(&opts)).unwrap();
    drop(rt);
    let alerts = Store::open(&r.db)
        .unwrap()
        .alerts(&AlertFilter::default())
        .unwrap();
    let alert = alerts
        .iter()
        .find(|a| {
            a.kind == "plate_watchlist"
                && a.details.get("plate").map(String::as_str) == Some(DEMO_WANTED_PLATE)
        })
        .unwrap_or_else(|| panic!("no plate-watchlist alert for {DEMO_WANTED_PLATE}: {alerts:#?}"))
        .clone();
    assert!(alert.evidence.iter().any(|e| e == "crop"), "{alert:?}");
    add_high_alert(&r.db, &alert.agent, &alert.site);
    add_link(&r.db, DEMO_WANTED_PLATE, &alert.site, &alert.agent);
    let tiles = dir.path().join("basemap.mbtiles");
    let n_tiles = make_mbtiles(&tiles, DEMO_CAMERA_AT);
    println!("basemap: {n_tiles} tiles in {}", tiles.display());

    // The real aggregator serves the store: API and page on a free port, the basemap.
    let token = token_create(&r.db, TOKEN_NAME, "analyst");
    let viewer = token_create(&r.db, VIEWER_NAME, "viewer");
    let api_port = free_port();
    let mut cfg = aggregator::AggregatorConfig::default();
    cfg.store.path = r.db.clone();
    cfg.cameras = vec![scenario_camera_place(DEMO_CAMERA_AT)];
    // Face search embeds the photo with the agents' models, as enrollment does.
    cfg.watchlist.models = models_config();
    cfg.broker.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.ops.port = free_port();
    let mut toml_cfg = toml::Value::try_from(&cfg).unwrap();
    let table = toml_cfg.as_table_mut().unwrap();
    let api = table
        .entry("api")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap();
    api.insert(
        "listen".into(),
        toml::Value::String(format!("127.0.0.1:{api_port}")),
    );
    api.insert(
        "tiles_file".into(),
        toml::Value::String(tiles.display().to_string()),
    );
    let cfg_path = dir.path().join("aggregator.toml");
    std::fs::write(&cfg_path, toml::to_string(&toml_cfg).unwrap()).unwrap();
    let log = std::fs::File::create(dir.path().join("aggregator.log")).unwrap();
    let _served = Served(
        Command::new(workspace_bin("aggregator"))
            .args(["run", "--config"])
            .arg(&cfg_path)
            .env("RUST_LOG", "info,rumqttd=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + WAIT;
    while !http(api_port, "GET", "/api/v1/web-config", &[], None).is_ok_and(|r| r.status == 200) {
        assert!(
            Instant::now() < deadline,
            "the aggregator's API did not answer on 127.0.0.1:{api_port} within {WAIT:?}: {}",
            std::fs::read_to_string(dir.path().join("aggregator.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let web: Value = serde_json::from_slice(
        &http(api_port, "GET", "/api/v1/web-config", &[], None)
            .unwrap()
            .body,
    )
    .unwrap();
    assert!(
        web["tiles"]["url"].is_string(),
        "no tiles in the web configuration: {web}"
    );
    let openapi: Value = serde_json::from_slice(
        &http(api_port, "GET", "/api/v1/openapi.json", &[], None)
            .unwrap()
            .body,
    )
    .unwrap();
    let ctx = Ctx {
        base: format!("http://127.0.0.1:{api_port}/"),
        db: r.db.clone(),
        agent: alert.agent.clone(),
        port: api_port,
        token,
        viewer,
        plate_alert: format!("{}/{}", alert.agent, alert.alert_id),
        vehicle_route: openapi["paths"].get("/vehicles/{id}/trajectory").is_some(),
    };

    walk(&driver, &ctx, &shots_dir, 1280, 800, true);
    walk(&driver, &ctx, &shots_dir, 1920, 1080, false);
    println!("browser test screenshots in {}", shots_dir.display());
}
