//! End-to-end scenarios across the Sharp Eyes processes, the footage they run on, and the
//! demo. Everything is real: GStreamer encodes the clip and serves it over RTSP, the agent
//! decodes it and runs YuNet through ONNX Runtime, MQTT goes through rumqttd (embedded) or
//! Mosquitto, and the aggregator stores into SQLite.

pub mod clip;
pub mod mosquitto;
pub mod plate;
pub mod rtsp;
pub mod synthetic;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use aggregator::metrics::{Metrics as AggMetrics, get};
use aggregator::store::{Store, TrackFilter, TrackRow};
use edge_agent::RunSummary;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use tokio_util::sync::CancellationToken;

pub use crate::clip::{ClipSpec, FaceTruth, PlateAppearance};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The test data (`testdata/` of the checkout, or `$SHARPEYES_TESTDATA`: e.g. a held-out set).
pub fn testdata_dir() -> PathBuf {
    match std::env::var_os("SHARPEYES_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("testdata"),
    }
}

/// Model and runtime locations as `scripts/setup.sh` installs them.
pub fn models_config() -> edge_agent::config::ModelsConfig {
    let root = workspace_root();
    edge_agent::config::ModelsConfig {
        dir: root.join("models/files"),
        onnxruntime: root.join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: 1,
    }
}

/// A workspace binary (`edge-agent`, `aggregator`) from the target folder this test (or
/// binary) runs from (building the workspace's tests builds them: their own tests need them).
pub fn workspace_bin(name: &str) -> PathBuf {
    let bin = workspace_bin_dir().join(name);
    assert!(
        bin.exists(),
        "{} not built: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// The folder of the workspace's binaries for the running executable: its own folder, or
/// the parent of `deps/` for a test (`target/<profile>/deps/<test>` → `target/<profile>`).
pub fn workspace_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable");
    let dir = exe.parent().expect("target folder");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target folder").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Makes the demo clip (real face photos, rendered plates; 1280×720, 25 fps, 17 s) at `path`;
/// its faces' ground truth.
pub fn demo_clip(path: &Path) -> Result<Vec<FaceTruth>, clip::ClipError> {
    clip::make_clip(
        &clip::demo_spec(&clip::default_photos(&testdata_dir())),
        path,
        &models_config(),
    )
}

/// Makes a static camera's clip at `path`: `duration_s` of a street photo
/// (`street/bus.jpg` of the test data; a synthetic street texture without it) where nothing
/// moves, 1280×720, 25 fps. Without `sensor_noise` every frame is the same picture; with it,
/// the photo gets fresh noise of ±2 levels on every frame, as a live camera's sensor gives.
pub fn static_clip(
    path: &Path,
    duration_s: f64,
    sensor_noise: bool,
) -> Result<(), clip::ClipError> {
    let photo = testdata_dir().join("street/bus.jpg");
    let spec = ClipSpec {
        duration_s,
        appearances: Vec::new(),
        plates: Vec::new(),
        background: photo.exists().then_some(photo),
        ..clip::demo_spec(&[])
    };
    let models = models_config();
    match sensor_noise {
        true => clip::make_clip(&spec, path, &models),
        false => clip::make_still_clip(&spec, path, &models),
    }
    .map(drop)
}

/// An aggregator in this process (its task, its stop token, its counters).
pub struct RunningAggregator {
    /// The aggregator's task.
    pub task: tokio::task::JoinHandle<Result<(), aggregator::AggregatorError>>,
    /// Cancel to stop it.
    pub stop: CancellationToken,
    /// Its counters.
    pub metrics: Arc<AggMetrics>,
}

impl RunningAggregator {
    /// Stops it and waits for it; its result.
    pub async fn shut_down(self) -> anyhow::Result<()> {
        self.stop.cancel();
        Ok(self.task.await??)
    }
}

/// Starts the aggregator (in the current Tokio runtime) and waits up to 20 s for its three
/// subscriptions; an error if it stopped before.
pub async fn start_aggregator(cfg: AggregatorConfig) -> anyhow::Result<RunningAggregator> {
    let metrics = Arc::new(AggMetrics::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(aggregator::run_with_metrics(
        cfg,
        stop.clone(),
        metrics.clone(),
    ));
    wait_until(Duration::from_secs(20), || {
        get(&metrics.subscribed) >= 3 || task.is_finished()
    })
    .await;
    if task.is_finished() {
        anyhow::bail!("aggregator stopped early: {:?}", task.await?);
    }
    anyhow::ensure!(
        get(&metrics.subscribed) >= 3,
        "aggregator not subscribed within 20 s"
    );
    Ok(RunningAggregator {
        task,
        stop,
        metrics,
    })
}

/// An aggregator configuration for the external Mosquitto on `port`, storing into `db`: one
/// plain subscription (Mosquitto 2.0.11 does not restore shared ones from persistence, see
/// `BrokerConfig::shared_group`), quick reconnects, no ops endpoint.
pub fn mosquitto_aggregator_config(port: u16, db: &Path) -> AggregatorConfig {
    let mut cfg = AggregatorConfig::default();
    cfg.broker.url = format!("mqtt://127.0.0.1:{port}");
    cfg.broker.reconnect_max_ms = 500;
    cfg.broker.shared_group.clear();
    cfg.store.path = db.to_path_buf();
    cfg.ops.enabled = false;
    cfg
}

/// The `(agent, seq)` of the track batches stored in `db`, polled until `done` holds of them
/// or `timeout` passes; whether it held.
pub async fn stored_track_batches(
    db: &Path,
    timeout: Duration,
    done: impl Fn(&[(String, u64)]) -> bool,
) -> (bool, Vec<(String, u64)>) {
    let read = || {
        Store::open(db)
            .and_then(|s| s.message_keys_of("tracks"))
            .unwrap_or_default()
    };
    let held = wait_until(timeout, || done(&read())).await;
    (held, read())
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Which broker a scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The aggregator's embedded rumqttd.
    Embedded,
    /// Debian's Mosquitto, started for the scenario.
    Mosquitto,
}

/// What a face scenario produced.
#[derive(Debug)]
pub struct FaceScenario {
    /// Ground truth of the clip's faces.
    pub truth: Vec<FaceTruth>,
    /// The clip's plates (their ground truth).
    pub plates: Vec<PlateAppearance>,
    /// Tracks in the store afterwards.
    pub tracks: Vec<TrackRow>,
    /// The agent's own summary.
    pub agent: RunSummary,
    /// The aggregator's counters.
    pub aggregator: Arc<AggMetrics>,
    /// `(agent, seq)` pairs stored.
    pub stored_keys: Vec<(String, u64)>,
    /// Wall time from the agent's start to everything stored.
    pub wall: Duration,
    /// The database file.
    pub db: PathBuf,
    /// HTTP responses scraped while the clip played: the agent's `/metrics` and `/health`,
    /// then the aggregator's (empty if the agent's endpoint never came up).
    pub ops: Vec<String>,
}

/// Options of [`run_face_scenario`].
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    /// Where the clip, the database and logs go.
    pub out: PathBuf,
    /// Broker.
    pub broker: BrokerKind,
    /// Port of the embedded broker (0: a free one).
    pub embedded_port: u16,
    /// Analysis rate.
    pub analysis_fps: f32,
    /// Capture the first track payload with `mosquitto_sub` into this file, as an operator
    /// would, to decode it with `aggregator decode` or the Python lines of the wire docs.
    pub capture: Option<PathBuf>,
    /// With the embedded broker: MQTT over TLS with this site PKI (`ca.pem`, `server.pem`,
    /// `server.key`; [`demo_pki`] is the one `scripts/setup.sh` makes), per-agent passwords
    /// and the shipped ACL.
    pub secure: Option<PathBuf>,
    /// Plates enrolled as wanted `(plate, reason)` before the run (as `aggregator enroll
    /// plate` does), so the agent raises plate-watchlist alerts with evidence. Default none.
    pub wanted_plates: Vec<(String, String)>,
    /// Where the camera stands (`[lat, lon]`): a camera place of the aggregator (sightings
    /// and trajectories get positions, the web page's map a camera) and the agent camera's
    /// `geo`. Default none.
    pub camera_at: Option<[f64; 2]>,
}

/// The demo's camera: a street corner in Chengdu (the rendered 川A plate's city).
pub const DEMO_CAMERA_AT: [f64; 2] = [30.6571, 104.0661];

/// The demo's wanted plate (the green new-energy plate of the clip).
pub const DEMO_WANTED_PLATE: &str = "粤BD12345";

/// The aggregator's place for the scenario's only camera, `cam-1` of the default agent.
pub fn scenario_camera_place(at: [f64; 2]) -> aggregator::config::CameraPlace {
    let agent = AgentConfig::default();
    aggregator::config::CameraPlace {
        site: agent.site.clone(),
        agent: agent.agent_id.clone(),
        camera: "cam-1".into(),
        lat: at[0],
        lon: at[1],
        heading_deg: Some(90.0),
        fov_deg: Some(70.0),
        grid: Some("grid-1".into()),
    }
}

/// The demo's site PKI, made by `scripts/setup.sh` with openssl (a CA and the broker's
/// certificate for localhost / 127.0.0.1).
pub fn demo_pki() -> PathBuf {
    workspace_root().join(".deps/pki")
}

/// Log-ins of a secured scenario.
struct Secure {
    ca: PathBuf,
    agent_password: String,
    aggregator_password: String,
}

/// Makes the face clip (if `out/clip.mp4` is missing), serves it over RTSP, runs the
/// aggregator and one agent on it until the clip ends, and returns what was stored.
pub async fn run_face_scenario(opts: &ScenarioOptions) -> anyhow::Result<FaceScenario> {
    std::fs::create_dir_all(&opts.out)?;
    let models = models_config();
    let spec = clip::demo_spec(&clip::default_photos(&testdata_dir()));
    let clip_path = opts.out.join("clip.mp4");
    let (m, s, p) = (models.clone(), spec.clone(), clip_path.clone());
    let plates = spec.plates.clone();
    let truth = tokio::task::spawn_blocking(move || clip::make_clip(&s, &p, &m)).await??;
    let server = rtsp::RtspServer::start(&[("cam-1", &clip_path)]).map_err(anyhow::Error::msg)?;

    let _mosquitto;
    let mut agg_cfg = AggregatorConfig::default();
    let db = opts.out.join("sharpeyes.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    // A fresh store gets a fresh spool (a previous run's leftovers would be replayed into it).
    let spool_dir = opts.out.join("spool");
    let _ = std::fs::remove_dir_all(&spool_dir);
    agg_cfg.store.path = db.clone();
    if let Some(at) = opts.camera_at {
        agg_cfg.cameras = vec![scenario_camera_place(at)];
    }
    if !opts.wanted_plates.is_empty() {
        let mut store = Store::open(&db)?;
        for (plate, reason) in &opts.wanted_plates {
            aggregator::watchlist::enroll_plate(&mut store, plate, reason)?;
        }
        agg_cfg.watchlist.publish_poll_ms = 200;
    }
    let watchlist_version = Store::open(&db)?.watchlist_version()?;
    let secure = match (&opts.secure, opts.broker) {
        (Some(pki), BrokerKind::Embedded) => {
            let ca = pki.join("ca.pem");
            anyhow::ensure!(
                ca.exists(),
                "{} missing: run scripts/setup.sh (it makes the demo's CA)",
                ca.display()
            );
            use aggregator::broker::passwd;
            let file = opts.out.join("passwd");
            let _ = std::fs::remove_file(&file);
            let agent_password = passwd::random_password(24)?;
            let aggregator_password = passwd::random_password(24)?;
            passwd::set_password(&file, "agent-1", &agent_password)?;
            passwd::set_password(&file, "aggregator", &aggregator_password)?;
            agg_cfg.broker.tls_cert = Some(pki.join("server.pem"));
            agg_cfg.broker.tls_key = Some(pki.join("server.key"));
            agg_cfg.broker.password_file = Some(file);
            agg_cfg.broker.acl_file = Some(workspace_root().join("configs/mosquitto/acl"));
            Some(Secure {
                ca,
                agent_password,
                aggregator_password,
            })
        }
        (Some(_), BrokerKind::Mosquitto) => {
            anyhow::bail!("a secured scenario runs on the embedded broker")
        }
        (None, _) => None,
    };
    let broker_port = match opts.broker {
        BrokerKind::Embedded => {
            let port = if opts.embedded_port == 0 {
                free_port()
            } else {
                opts.embedded_port
            };
            agg_cfg.broker.listen = ([127, 0, 0, 1], port).into();
            port
        }
        BrokerKind::Mosquitto => {
            let m = mosquitto::Mosquitto::start(&opts.out).map_err(anyhow::Error::msg)?;
            let port = m.port();
            agg_cfg.broker.url = format!("mqtt://127.0.0.1:{port}");
            _mosquitto = m;
            port
        }
    };
    let agg_ops = free_port();
    agg_cfg.ops.port = agg_ops;
    let agg = start_aggregator(agg_cfg).await?;
    let agg_metrics = agg.metrics.clone();
    if !opts.wanted_plates.is_empty() {
        // The agent must start with the watchlist: the aggregator publishes it retained once
        // connected.
        anyhow::ensure!(
            wait_until(Duration::from_secs(10), || {
                get(&agg_metrics.watchlist_version) == watchlist_version
            })
            .await,
            "the aggregator did not publish the watchlist within 10 s"
        );
    }

    let mut agent_cfg = AgentConfig {
        models,
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: server.url("cam-1"),
            analysis_fps: opts.analysis_fps,
            at_end: AtEnd::Stop,
            geo: opts.camera_at,
            ..CameraConfig::default()
        }],
        ..AgentConfig::default()
    };
    agent_cfg.broker.port = broker_port;
    if let Some(sec) = &secure {
        agent_cfg.broker.tls = true;
        agent_cfg.broker.ca_file = Some(sec.ca.clone());
        agent_cfg.broker.username = Some(agent_cfg.agent_id.clone());
        agent_cfg.broker.password = Some(sec.agent_password.clone().into());
    }
    agent_cfg.publish.status_interval_s = 5;
    agent_cfg.publish.spool_dir = spool_dir.clone();
    // Scrape the agent's and the aggregator's ops endpoints while the clip plays, as
    // Prometheus and a field engineer's curl would.
    let agent_ops = free_port();
    agent_cfg.ops.port = agent_ops;
    let scrape = tokio::spawn(async move {
        let agent_up = wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", agent_ops)).is_ok()
        })
        .await;
        // Let a few frames through first.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut out = Vec::new();
        if agent_up {
            for (port, path) in [
                (agent_ops, "/metrics"),
                (agent_ops, "/health"),
                (agg_ops, "/metrics"),
                (agg_ops, "/health"),
            ] {
                out.push(
                    http_get(port, path)
                        .await
                        .unwrap_or_else(|e| format!("error: {e}")),
                );
            }
        }
        out
    });
    let mut capture = match &opts.capture {
        Some(path) => Some(capture_one(broker_port, path, secure.as_ref()).await?),
        None => None,
    };
    let started = Instant::now();
    let agent = edge_agent::run(agent_cfg, CancellationToken::new()).await?;
    if let Some(c) = capture.as_mut() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.try_wait()?.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    // Everything the broker acknowledged must reach the store.
    let done = wait_until(Duration::from_secs(30), || {
        get(&agg_metrics.stored) + get(&agg_metrics.duplicates) >= agent.published
    })
    .await;
    let wall = started.elapsed();
    let ops = scrape.await?;
    agg.shut_down().await?;
    if !done {
        anyhow::bail!(
            "aggregator stored {} of {} acknowledged payloads",
            get(&agg_metrics.stored) + get(&agg_metrics.duplicates),
            agent.published
        );
    }
    drop(server);
    let store = Store::open(&db)?;
    let tracks = store.tracks(&TrackFilter::default())?;
    let stored_keys = store.message_keys()?;
    Ok(FaceScenario {
        truth,
        plates,
        tracks,
        agent,
        aggregator: agg_metrics,
        stored_keys,
        wall,
        db,
        ops,
    })
}

/// Starts `mosquitto_sub` for one track payload of any camera, written raw to `path`.
async fn capture_one(
    port: u16,
    path: &Path,
    secure: Option<&Secure>,
) -> anyhow::Result<std::process::Child> {
    let file = std::fs::File::create(path)?;
    let mut cmd = std::process::Command::new("mosquitto_sub");
    if let Some(sec) = secure {
        // As an operator would: the site CA, the aggregator's log-in (it may read all) and a
        // client id of that user (the gate binds ids to users).
        cmd.arg("--cafile")
            .arg(&sec.ca)
            .args(["-u", "aggregator", "-P", &sec.aggregator_password])
            .args(["-i", "aggregator-capture"]);
    }
    let child = cmd
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-C",
            "1",
            "-N",
        ])
        .args(["-t", &sharpeyes_wire::Topics::default().all_tracks()])
        .stdout(file)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "starting mosquitto_sub: {e} (scripts/setup.sh installs mosquitto-clients)"
            )
        })?;
    // mosquitto_sub says nothing when subscribed: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(child)
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.1, connection closed after): the whole response.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(out)
}

/// One unlabelled metric (`name value`) of the `/metrics` page served on 127.0.0.1:`port`
/// (the agent's or the aggregator's ops endpoint); `None` when it does not answer or lacks it.
pub async fn scrape_metric(port: u16, name: &str) -> Option<f64> {
    let text = http_get(port, "/metrics").await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Checks stored plate tracks against the clip's vehicles; returns the problems found. Each
/// plate must be stored as a plate track with exactly its text, lasting no longer than the
/// vehicle was visible; no plate track may carry a text that is not in the clip.
pub fn check_plate_tracks(truth: &[PlateAppearance], tracks: &[TrackRow]) -> Vec<String> {
    let mut problems = Vec::new();
    let plates: Vec<&TrackRow> = tracks.iter().filter(|t| t.class == "plate").collect();
    for p in truth {
        let mine: Vec<&&TrackRow> = plates
            .iter()
            .filter(|t| t.plate.as_deref() == Some(p.text.as_str()))
            .collect();
        if mine.is_empty() {
            problems.push(format!(
                "no plate track reads {}; plate tracks: {:?}",
                p.text,
                plates.iter().map(|t| &t.plate).collect::<Vec<_>>()
            ));
        }
        for t in mine {
            let dur = (t.last_ms - t.first_ms) as f64 / 1000.0;
            if dur > p.end_s - p.start_s + 1.5 || !t.ended {
                problems.push(format!(
                    "plate track {} ({}) lasted {dur:.1} s (ended: {}), visible {:.1} s",
                    t.track,
                    p.text,
                    t.ended,
                    p.end_s - p.start_s
                ));
            }
        }
    }
    for t in &plates {
        if !truth
            .iter()
            .any(|p| t.plate.as_deref() == Some(p.text.as_str()))
        {
            problems.push(format!(
                "plate track {} reads {:?}: no such plate",
                t.track, t.plate
            ));
        }
    }
    problems
}

/// The clip's people are head-and-shoulders photos, which the person detector finds: each
/// face track should be linked with a person track that links back (measured: 3 of 3; at
/// least all but one are required, NanoDet-m's person scores on these cutouts are 0.5–0.8).
pub fn check_person_links(tracks: &[TrackRow]) -> Vec<String> {
    let faces: Vec<&TrackRow> = tracks.iter().filter(|t| t.class == "face").collect();
    let linked = faces
        .iter()
        .filter(|f| {
            tracks.iter().any(|p| {
                p.class == "person"
                    && p.camera == f.camera
                    && p.link == Some(f.track)
                    && f.link == Some(p.track)
            })
        })
        .count();
    if linked + 1 < faces.len() {
        vec![format!(
            "only {linked} of {} face tracks are linked with a person track (links: {:?})",
            faces.len(),
            tracks
                .iter()
                .map(|t| (t.class.as_str(), t.track, t.link))
                .collect::<Vec<_>>()
        )]
    } else {
        Vec::new()
    }
}

/// Checks stored face tracks against the clip's ground truth; returns the problems found.
/// One track per appearance, in order; each lasting about as long as the appearance; the
/// gaps between them about as long as the clip's; each box where the face was.
pub fn check_tracks(truth: &[FaceTruth], tracks: &[TrackRow]) -> Vec<String> {
    let mut problems = Vec::new();
    let faces: Vec<&TrackRow> = tracks.iter().filter(|t| t.class == "face").collect();
    if faces.len() != truth.len() {
        problems.push(format!(
            "{} face tracks stored, {} people in the clip",
            faces.len(),
            truth.len()
        ));
        return problems;
    }
    for (i, (t, g)) in faces.iter().zip(truth).enumerate() {
        let dur = (t.last_ms - t.first_ms) as f64 / 1000.0;
        let want = g.end_s - g.start_s;
        if (dur - want).abs() > 1.5 {
            problems.push(format!(
                "track {i} ({}) lasted {dur:.1} s, the person was visible {want:.1} s",
                g.photo
            ));
        }
        if !t.ended {
            problems.push(format!("track {i} has no end"));
        }
        // The last box: where the face was at the end of its appearance (± one analysis step).
        let expect = g.box_at(g.end_s - 0.2);
        let (cy, ey) = (
            (t.bbox[1] + t.bbox[3]) / 2.0,
            (expect[1] + expect[3]) as f64 / 2.0,
        );
        let (h, eh) = (t.bbox[3] - t.bbox[1], (expect[3] - expect[1]) as f64);
        let (cx, ex) = (
            (t.bbox[0] + t.bbox[2]) / 2.0,
            (expect[0] + expect[2]) as f64 / 2.0,
        );
        if (cy - ey).abs() > eh * 0.3 || (cx - ex).abs() > eh || (h / eh - 1.0).abs() > 0.4 {
            problems.push(format!(
                "track {i} last box {:?}, face was near {expect:?}",
                t.bbox
            ));
        }
    }
    for (i, w) in faces.windows(2).enumerate() {
        let gap = (w[1].first_ms - w[0].last_ms) as f64 / 1000.0;
        let want = truth[i + 1].start_s - truth[i].end_s;
        if (gap - want).abs() > 1.5 {
            problems.push(format!(
                "gap between tracks {i} and {} is {gap:.1} s, in the clip {want:.1} s",
                i + 1
            ));
        }
    }
    problems
}
