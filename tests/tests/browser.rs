//! The analyst web page in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` (package `chromium-driver`, W3C WebDriver) on the demo's data.
//!
//! The data comes through the demo's real path (the demo clip over RTSP → edge agent → MQTT →
//! aggregator → SQLite, with the demo's wanted plate enrolled so a plate-watchlist alert with
//! evidence fires, and the camera placed on the map). Then the real `aggregator` binary
//! serves that store with its HTTP API and embedded page on free 127.0.0.1 ports, a token is
//! made with `aggregator token create`, and the browser: logs in, gives a purpose and a case,
//! searches the plate, sees its trajectory on the map (numbered markers) and the timeline
//! (bars; clicking one selects the sighting in the list and on the map), opens an evidence
//! crop (an image with natural width > 0), acknowledges the alert, which the API then
//! reports acknowledged by the token's name, and searches by a face photo (another photo of
//! the clip's first person), picks the first person found and sees their trajectory.
//!
//! Screenshots of each step go to `target/browser-test/NN-step.png` (paths printed). Without
//! chromium / chromedriver the test fails with what to install (`scripts/setup.sh` installs
//! both, and CI runs it): a missing browser is never a silent pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aggregator::store::{AlertFilter, Store};
use serde_json::Value;
use sharpeyes_e2e::webdriver::{ChromeDriver, Session, http};
use sharpeyes_e2e::{
    BrokerKind, DEMO_CAMERA_AT, DEMO_WANTED_PLATE, ScenarioOptions, free_port, models_config,
    run_face_scenario, scenario_camera_place, testdata_dir, workspace_bin, workspace_bin_dir,
};

const TOKEN_NAME: &str = "browser-analyst";
const PURPOSE: &str = "Stolen vehicle enquiry (browser test)";
const CASE: &str = "CASE-2026/0042";
const WAIT: Duration = Duration::from_secs(30);

/// The aggregator process (killed on drop).
struct Served(Child);
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Screenshots, numbered in order.
struct Shots {
    dir: PathBuf,
    n: usize,
}
impl Shots {
    fn take(&mut self, s: &Session, step: &str) -> PathBuf {
        self.n += 1;
        let p = self.dir.join(format!("{:02}-{step}.png", self.n));
        s.screenshot(&p).expect("screenshot");
        println!("screenshot {}", p.display());
        p
    }
}

fn token_create(db: &Path) -> String {
    let out = Command::new(workspace_bin("aggregator"))
        .args([
            "token", "create", "--name", TOKEN_NAME, "--role", "analyst", "--db",
        ])
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

/// GET under /api/v1 with the token and the purpose headers; the JSON.
fn api_get(port: u16, token: &str, path: &str) -> Value {
    let auth = format!("Bearer {token}");
    let r = http(
        port,
        "GET",
        &format!("/api/v1{path}"),
        &[
            ("Authorization", &auth),
            ("X-Purpose", PURPOSE),
            ("X-Case", CASE),
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

/// `encodeURIComponent` for the query string.
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
            "stolen (browser test)".to_string(),
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

    // The real aggregator serves the store: API and page on a free port.
    let token = token_create(&r.db);
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
        .or_insert_with(|| toml::Value::Table(Default::default()));
    api.as_table_mut().unwrap().insert(
        "listen".into(),
        toml::Value::String(format!("127.0.0.1:{api_port}")),
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
    let base = format!("http://127.0.0.1:{api_port}/");

    let s = driver.session(1280, 800).unwrap();
    let mut shots = Shots {
        dir: shots_dir.clone(),
        n: 0,
    };

    // 1. Log in.
    s.goto(&base).unwrap();
    s.wait_for(
        "the log-in form",
        WAIT,
        "return !document.getElementById('login').hidden",
    )
    .unwrap();
    shots.take(&s, "login");
    s.type_into(&s.find("#token").unwrap(), &token).unwrap();
    s.click(&s.find("#login-submit").unwrap()).unwrap();
    s.wait_for(
        "the page after log-in: user shown, camera on the map, live alert feed",
        WAIT,
        &format!(
            "return !document.getElementById('app').hidden \
             && document.getElementById('who').textContent.includes('{TOKEN_NAME}') \
             && document.querySelectorAll('#map path.leaflet-interactive').length > 0 \
             && document.getElementById('stream-state').textContent === 'live' \
             && document.querySelectorAll('#alerts li').length > 0"
        ),
    )
    .unwrap();
    shots.take(&s, "map-and-alerts");

    // 2. A search asks for the purpose and the case first.
    s.type_into(&s.find("#plate").unwrap(), DEMO_WANTED_PLATE)
        .unwrap();
    s.click(&s.find("#plate-search").unwrap()).unwrap();
    s.wait_for(
        "the purpose prompt",
        WAIT,
        "return !document.getElementById('purpose').hidden",
    )
    .unwrap();
    assert!(
        s.find_all("#sightings li").unwrap().is_empty(),
        "searched before the purpose was given"
    );
    s.type_into(&s.find("#purpose-text").unwrap(), PURPOSE)
        .unwrap();
    s.type_into(&s.find("#case-ref").unwrap(), CASE).unwrap();
    shots.take(&s, "purpose");
    s.click(&s.find("#purpose-submit").unwrap()).unwrap();

    // 3. The trajectory: list, map markers, timeline bars, one per sighting, in time order.
    let n = s
        .wait_for(
            "the trajectory on the list, the map and the timeline",
            WAIT,
            "const n = document.querySelectorAll('#sightings li').length; \
             return n > 0 && document.querySelectorAll('#map .traj-marker').length === n \
               && document.querySelectorAll('#timeline rect.bar-s').length === n ? n : 0",
        )
        .unwrap()
        .as_u64()
        .unwrap() as usize;
    let traj = api_get(
        api_port,
        &token,
        &format!(
            "/vehicles/trajectory?plate={}&fuzzy=false&limit=1000",
            encode(DEMO_WANTED_PLATE)
        ),
    );
    let sightings = rows(&traj, "sightings");
    assert_eq!(n, sightings.len(), "sightings shown vs the API's");
    let numbers = s
        .script(
            "return [...document.querySelectorAll('#map .traj-marker span')].map(e => e.textContent)",
            vec![],
        )
        .unwrap();
    let expected: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    assert_eq!(numbers, serde_json::json!(expected), "numbered markers");
    let firsts = s
        .script(
            "return [...document.querySelectorAll('#timeline rect.bar-s')].map(r => +r.getAttribute('x'))",
            vec![],
        )
        .unwrap();
    let xs: Vec<f64> = firsts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        xs.windows(2).all(|w| w[0] <= w[1]),
        "timeline not in time order: {xs:?}"
    );
    // The timeline drives the list and the map.
    s.click(&s.find(&format!("#bar-{}", n - 1)).unwrap())
        .unwrap();
    s.wait_for(
        "the clicked sighting selected in the list and on the map",
        WAIT,
        &format!(
            "return document.getElementById('sighting-{last}').classList.contains('sel') \
             && document.querySelectorAll('#map .traj-marker.sel').length === 1",
            last = n - 1
        ),
    )
    .unwrap();
    shots.take(&s, "trajectory");

    // 4. An evidence crop: the alert's, fetched with the token, opened large.
    let key = format!("{}/{}", alert.agent, alert.alert_id);
    let li = format!("#alerts li[data-key=\"{key}\"]");
    s.wait_for(
        "the alert's evidence crop loaded",
        WAIT,
        &format!(
            "const i = document.querySelector('{li} img.alert-crop'); return i && i.complete && i.naturalWidth > 0"
        ),
    )
    .unwrap();
    s.click(&s.find(&format!("{li} img.alert-crop")).unwrap())
        .unwrap();
    let width = s
        .wait_for(
            "the evidence crop opened",
            WAIT,
            "const i = document.getElementById('lightbox-img'); \
             return !document.getElementById('lightbox').hidden && i.complete && i.naturalWidth",
        )
        .unwrap();
    println!("evidence crop: natural width {width} px");
    shots.take(&s, "evidence");
    s.click(&s.find("#lightbox-close").unwrap()).unwrap();

    // 5. Acknowledge the alert; the API reports who did.
    let note = "vehicle stopped by unit 7";
    s.type_into(&s.find(&format!("{li} .ack-note")).unwrap(), note)
        .unwrap();
    s.click(&s.find(&format!("{li} button.ack")).unwrap())
        .unwrap();
    s.wait_for(
        "the alert shown acknowledged",
        WAIT,
        &format!(
            "const l = document.querySelector('{li}'); return l && l.classList.contains('acked')"
        ),
    )
    .unwrap();
    shots.take(&s, "acknowledged");
    let listed = api_get(api_port, &token, "/alerts?limit=1000");
    let row = rows(&listed, "alerts")
        .iter()
        .find(|a| a["agent"] == alert.agent.as_str() && a["alert_id"] == alert.alert_id.as_str())
        .unwrap_or_else(|| panic!("alert {key} not listed: {listed}"));
    assert_eq!(row["acked_by"], TOKEN_NAME, "{row}");
    assert_eq!(row["ack_note"], note, "{row}");
    assert!(row["acked_ms"].as_i64().is_some(), "{row}");

    // 6. Face-photo search: another photo of the clip's first person finds them; picking
    // the person draws their trajectory.
    let photo = testdata_dir().join("identities/obama/obama2.jpg");
    // chromedriver takes canonical paths only.
    let photo = photo
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", photo.display()));
    s.click(&s.find("#tab-face").unwrap()).unwrap();
    s.type_into(&s.find("#photo").unwrap(), &photo.display().to_string())
        .unwrap();
    s.click(&s.find("#face-search").unwrap()).unwrap();
    s.wait_for(
        "persons found by the face photo",
        WAIT,
        "return document.querySelectorAll('#persons button.person').length",
    )
    .unwrap();
    s.click(&s.find("#persons button.person").unwrap()).unwrap();
    s.wait_for(
        "the person's trajectory",
        WAIT,
        "const n = document.querySelectorAll('#sightings li').length; \
         return n > 0 && document.querySelector('#result strong').textContent.startsWith('P-') \
           && document.querySelectorAll('#map .traj-marker').length === n \
           && document.querySelectorAll('#timeline rect.bar-s').length === n",
    )
    .unwrap();
    shots.take(&s, "face-search");

    // The page showed no error on the way.
    let error = s.find("#error").unwrap();
    assert!(
        !s.displayed(&error).unwrap(),
        "the page shows an error: {}",
        s.text(&error).unwrap()
    );
    println!("browser test screenshots in {}", shots_dir.display());
}
