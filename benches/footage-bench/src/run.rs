//! Runs the system over generated footage: enrolls the scenario's watchlists with
//! `aggregator enroll`, starts the real `aggregator` and one `edge-agent` per scenario agent
//! as child processes with generated configs, serves the footage over RTSP (real time) or
//! lets the agents read the files at full speed, listens to the broker itself (every track
//! batch and alert, with its arrival time), scrapes the processes' `/metrics`, and takes each
//! process's CPU time and peak memory from the kernel when it ends (`wait4`'s rusage).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use aggregator::AggregatorConfig;
use aggregator::config::{CameraPlace, TravelTime};
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use sharpeyes_e2e::{free_port, http_get, models_config};
use sharpeyes_wire::{Body, Codec, Topics};

use crate::scenario::{DataDirs, Scenario};
use crate::truth::GroundTruth;

/// Run failures.
#[derive(Debug, Error)]
pub enum RunError {
    /// A file could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A binary is missing or a child process failed.
    #[error("{0}")]
    Process(String),
    /// A configuration could not be serialised.
    #[error("config: {0}")]
    Config(String),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// How the agents get the footage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Read the MP4 files at full speed, analysing every frame the analysis rate keeps
    /// (`realtime = false`, `lossless = true`): throughput.
    Files,
    /// Serve the files over RTSP in real time, as cameras would: latency under live load
    /// (frames are dropped when analysis falls behind, and counted).
    Rtsp,
}

/// Run options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Footage input.
    pub input: InputMode,
    /// Where the binaries are (`edge-agent`, `aggregator`).
    pub bin_dir: PathBuf,
    /// Threads per inference session of the agents.
    pub intra_threads: usize,
    /// The agents' analysis scheduling.
    pub analysis: edge_agent::config::AnalysisConfig,
    /// Give up waiting for the agents after this long.
    pub timeout: Duration,
}

/// One track batch as the broker delivered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeenBatch {
    /// Agent.
    pub agent: String,
    /// Sequence number.
    pub seq: u64,
    /// Envelope's send time (agent clock, ms).
    pub sent_ms: i64,
    /// When this benchmark's subscriber received it (ms).
    pub arrived_ms: i64,
    /// Payload bytes on the wire.
    pub bytes: usize,
    /// The batch.
    pub batch: sharpeyes_wire::TrackBatch,
}

/// One alert as the broker delivered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeenAlert {
    /// Agent.
    pub agent: String,
    /// When received (ms).
    pub arrived_ms: i64,
    /// Alert id.
    pub alert_id: String,
}

/// A process's resource use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessUse {
    /// Wall time from start to exit, seconds.
    pub wall_s: f64,
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// Peak resident memory, MiB (`VmHWM`, sampled every 250 ms while it runs).
    pub peak_rss_mib: f64,
    /// Exit status (None: killed by a signal).
    pub exit_code: Option<i32>,
}

/// A stored message's times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Agent.
    pub agent: String,
    /// Sequence.
    pub seq: u64,
    /// "tracks", "alert", "status".
    pub kind: String,
    /// Agent's send time.
    pub sent_ms: i64,
    /// Aggregator's time when it wrote it (in the committing transaction).
    pub received_ms: i64,
    /// Payload bytes.
    pub bytes: u64,
}

/// A fused sighting (identity of one per-camera track).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sighting {
    /// Agent.
    pub agent: String,
    /// Camera.
    pub camera: String,
    /// Track.
    pub track: u64,
    /// "person" or "vehicle".
    pub kind: String,
    /// Fused identity (resolved through person aliases).
    pub identity: u64,
    /// Track class.
    pub class: String,
}

/// A stored alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAlert {
    /// Agent.
    pub agent: String,
    /// Id.
    pub alert_id: String,
    /// Camera.
    pub camera: String,
    /// Kind.
    pub kind: String,
    /// Priority.
    pub priority: String,
    /// Capture time of its first sighting (ms).
    pub first_ms: i64,
    /// Capture time of the deciding frame (ms).
    pub last_ms: i64,
    /// When stored (ms).
    pub received_ms: i64,
    /// Details.
    pub details: BTreeMap<String, String>,
}

/// Everything a run observed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observed {
    /// Input mode.
    pub input: Option<InputMode>,
    /// Track batches, in arrival order.
    pub batches: Vec<SeenBatch>,
    /// Alerts seen on the broker.
    pub alerts_seen: Vec<SeenAlert>,
    /// Messages in the store.
    pub stored: Vec<StoredMessage>,
    /// Alerts in the store.
    pub alerts: Vec<StoredAlert>,
    /// Fused sightings.
    pub sightings: Vec<Sighting>,
    /// Person–vehicle links `(person, vehicle, count)` (person ids resolved through aliases).
    pub links: Vec<(u64, u64, u64)>,
    /// Each process's resource use (`aggregator`, `edge-agent:<id>`).
    pub processes: BTreeMap<String, ProcessUse>,
    /// Last `/metrics` scrape of each process (Prometheus text).
    pub metrics: BTreeMap<String, String>,
    /// Wall time from the first agent start to the last agent exit, seconds.
    pub agents_wall_s: f64,
    /// Wall time from the agents' start to everything stored, seconds.
    pub total_wall_s: f64,
    /// The agents' `tracker.max_age_ms`: a track's `end` carries its last sighting's capture
    /// time and can only be decided this long after it (absent in older runs: the default).
    #[serde(default)]
    pub track_max_age_ms: Option<i64>,
}

/// A child process with its name, log and start time.
struct Proc {
    name: String,
    child: Child,
    started: Instant,
    ended: Option<ProcessUse>,
    /// Highest `VmHWM` seen in /proc (KiB).
    hwm_kib: u64,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self, RunError> {
        let out = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("log file"))?;
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| RunError::Process(format!("starting {name}: {e}")))?;
        Ok(Self {
            name: name.into(),
            child,
            started: Instant::now(),
            ended: None,
            hwm_kib: 0,
        })
    }

    /// Samples the process's peak resident memory (`VmHWM` of /proc/PID/status: the high-water
    /// mark of its own address space; rusage's `ru_maxrss` would also count the parent's
    /// memory at the fork, inherited across exec).
    fn sample(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
        else {
            return;
        };
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.hwm_kib = self.hwm_kib.max(kib);
        }
    }

    /// Reaps the process if it has ended (its rusage then becomes `ended`); whether it has.
    fn poll(&mut self, block: bool) -> bool {
        if self.ended.is_some() {
            return true;
        }
        self.sample();
        let pid = self.child.id() as libc::pid_t;
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain old data, zero-initialised; wait4 writes into it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: valid pointers to locals; pid is our own child, reaped only here.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r != pid {
            return false;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        self.ended = Some(ProcessUse {
            wall_s: self.started.elapsed().as_secs_f64(),
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            peak_rss_mib: self.hwm_kib as f64 / 1024.0,
            exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        });
        true
    }

    fn terminate(&mut self) {
        if self.ended.is_none() {
            // SAFETY: signalling our own, not yet reaped child.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.ended.is_none() {
            self.terminate();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.poll(false) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.ended.is_none() {
                let _ = self.child.kill();
                self.poll(true);
            }
        }
    }
}

fn write_toml<T: Serialize>(path: &Path, v: &T) -> Result<(), RunError> {
    let text = toml::to_string(v).map_err(|e| RunError::Config(e.to_string()))?;
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// The aggregator's configuration for a scenario.
pub fn aggregator_config(
    s: &Scenario,
    db: &Path,
    broker_port: u16,
    ops_port: u16,
) -> AggregatorConfig {
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], broker_port).into();
    cfg.store.path = db.to_path_buf();
    cfg.ops.port = ops_port;
    cfg.watchlist.models = models_config();
    cfg.watchlist.publish_poll_ms = 200;
    cfg.cameras = s
        .cameras
        .iter()
        .map(|c| CameraPlace {
            site: s.site.clone(),
            agent: c.agent.clone(),
            camera: c.id.clone(),
            lat: c.lat,
            lon: c.lon,
            heading_deg: c.heading_deg,
            fov_deg: Some(c.fov_deg),
            grid: None,
        })
        .collect();
    cfg.travel = s
        .travel
        .iter()
        .map(|t| TravelTime {
            from: t.from.clone(),
            to: t.to.clone(),
            seconds: t.seconds,
        })
        .collect();
    cfg
}

/// One agent's configuration for a scenario.
pub fn agent_config(
    s: &Scenario,
    agent: &str,
    uris: &BTreeMap<String, String>,
    opts: &RunOptions,
    broker_port: u16,
    ops_port: u16,
    spool: &Path,
) -> AgentConfig {
    let input = opts.input;
    let mut cfg = AgentConfig {
        agent_id: agent.into(),
        site: s.site.clone(),
        models: models_config(),
        ..AgentConfig::default()
    };
    cfg.models.intra_threads = opts.intra_threads;
    cfg.analysis = opts.analysis.clone();
    cfg.broker.port = broker_port;
    cfg.ops.port = ops_port;
    cfg.publish.spool_dir = spool.to_path_buf();
    cfg.publish.status_interval_s = 5;
    cfg.rules.loitering.threshold_s = s.rules.loitering_threshold_s;
    cfg.rules.loitering.reminder_interval_s = 0;
    cfg.rules.face_watchlist.companion_window_s = s.rules.companion_window_s;
    cfg.cameras = s
        .cameras
        .iter()
        .filter(|c| c.agent == agent)
        .map(|c| CameraConfig {
            id: c.id.clone(),
            uri: uris[&c.id].clone(),
            analysis_fps: s.analysis_fps,
            at_end: AtEnd::Stop,
            realtime: input == InputMode::Rtsp,
            lossless: input == InputMode::Files,
            geo: Some([c.lat, c.lon]),
            zones: c
                .zones
                .iter()
                .map(|z| edge_agent::rules::ZoneConfig {
                    id: z.id.clone(),
                    polygon: z.polygon.clone(),
                    geo: None,
                    threshold_s: z.threshold_s,
                })
                .collect(),
            ..CameraConfig::default()
        })
        .collect();
    if let Some(c) = s.cameras.first() {
        cfg.rules.police_units = vec![edge_agent::rules::PoliceUnit {
            name: "benchmark station".into(),
            lat: c.lat,
            lon: c.lon,
        }];
    }
    cfg
}

fn enroll(
    bin: &Path,
    cfg: &Path,
    s: &Scenario,
    data: &DataDirs,
    logs: &Path,
) -> Result<(), RunError> {
    let ids = data.testdata.join("identities");
    let mut cmds: Vec<(String, Vec<String>)> = Vec::new();
    for p in &s.watchlist.patients {
        let mut a = vec![
            "enroll".into(),
            "patient".into(),
            "--id".into(),
            p.id.clone(),
        ];
        a.extend(["--name".into(), format!("{} (benchmark)", p.id)]);
        a.extend(["--consent".into(), format!("bench-consent-{}", p.id)]);
        for ph in &p.photos {
            a.extend([
                "--photo".into(),
                ids.join(ph).to_string_lossy().into_owned(),
            ]);
        }
        cmds.push((format!("patient {}", p.id), a));
    }
    for g in &s.watchlist.guardians {
        let mut a = vec![
            "enroll".into(),
            "guardian".into(),
            "--id".into(),
            g.id.clone(),
        ];
        a.extend(["--name".into(), format!("{} (benchmark)", g.id)]);
        for ph in &g.photos {
            a.extend([
                "--photo".into(),
                ids.join(ph).to_string_lossy().into_owned(),
            ]);
        }
        for o in &g.of {
            a.extend(["--of".into(), o.clone()]);
        }
        cmds.push((format!("guardian {}", g.id), a));
    }
    for w in &s.watchlist.plates {
        let a = vec![
            "enroll".into(),
            "plate".into(),
            "--plate".into(),
            w.plate.clone(),
            "--reason".into(),
            w.reason.clone(),
        ];
        cmds.push((format!("plate {}", w.plate), a));
    }
    let log = logs.join("enroll.log");
    let mut text = String::new();
    for (what, mut args) in cmds {
        args.extend(["--config".into(), cfg.to_string_lossy().into_owned()]);
        let out = Command::new(bin)
            .args(&args)
            .output()
            .map_err(|e| RunError::Process(format!("aggregator enroll {what}: {e}")))?;
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            let _ = std::fs::write(&log, &text);
            return Err(RunError::Process(format!(
                "aggregator enroll {what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    std::fs::write(&log, text).map_err(io("writing enroll.log"))
}

/// Listens to every track batch and alert on the broker, recording arrival times.
async fn listen(
    port: u16,
    seen: Arc<Mutex<(Vec<SeenBatch>, Vec<SeenAlert>)>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(
        format!("footage-bench-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_max_packet_size(64 << 20, 64 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 1024);
    let topics = Topics::default();
    let _ = client
        .subscribe(topics.all_tracks(), QoS::AtLeastOnce)
        .await;
    let _ = client
        .subscribe(
            format!("{}/+/+/+/alerts", topics.prefix()),
            QoS::AtLeastOnce,
        )
        .await;
    let codec = Codec::default();
    let mut ready = Some(ready);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let arrived_ms = sharpeyes_wire::now_ms();
                let Ok(env) = codec.decode(&p.payload) else {
                    continue;
                };
                let mut g = seen.lock().unwrap_or_else(|e| e.into_inner());
                match env.body {
                    Body::Tracks(batch) => g.0.push(SeenBatch {
                        agent: env.agent,
                        seq: env.seq,
                        sent_ms: env.sent_ms,
                        arrived_ms,
                        bytes: p.payload.len(),
                        batch,
                    }),
                    Body::Alert(a) => g.1.push(SeenAlert {
                        agent: env.agent,
                        arrived_ms,
                        alert_id: a.alert_id,
                    }),
                    _ => {}
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// `frames_analysed` of the agent's final summary line ("edge agent stopped summary=…").
fn final_frames_analysed(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("edge agent stopped"))?;
    let rest = line.split("frames_analysed: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Sum of a Prometheus counter family (all label sets) in a scrape.
pub fn prom_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(port: u16) -> Option<String> {
    let r = http_get(port, "/metrics").await.ok()?;
    let body = r.split_once("\r\n\r\n")?.1;
    r.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Runs the system over the footage in `out` (see the module docs); the observations.
pub async fn run(
    s: &Scenario,
    truth: &GroundTruth,
    data: &DataDirs,
    out: &Path,
    opts: &RunOptions,
    bar: &ProgressBar,
) -> Result<Observed, RunError> {
    let dir = out.join("run");
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(format!("creating {}", logs.display())))?;
    let agg_bin = opts.bin_dir.join("aggregator");
    let agent_bin = opts.bin_dir.join("edge-agent");
    for b in [&agg_bin, &agent_bin] {
        if !b.is_file() {
            return Err(RunError::Process(format!(
                "{} not found: build it first (cargo build -p edge-agent -p aggregator)",
                b.display()
            )));
        }
    }
    let db = dir.join("sharpeyes.db");
    let broker_port = free_port();
    let agg_ops = free_port();
    let agg_cfg_path = dir.join("aggregator.toml");
    write_toml(
        &agg_cfg_path,
        &aggregator_config(s, &db, broker_port, agg_ops),
    )?;
    bar.set_message("enrolling watchlists");
    enroll(&agg_bin, &agg_cfg_path, s, data, &logs)?;

    let mut agg = Proc::spawn(
        "aggregator",
        Command::new(&agg_bin)
            .args(["run", "--config"])
            .arg(&agg_cfg_path),
        &logs.join("aggregator.log"),
    )?;
    // Wait for the broker.
    let up = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", broker_port)).is_err() {
        if agg.poll(false) || up.elapsed() > Duration::from_secs(30) {
            return Err(RunError::Process(format!(
                "the aggregator did not open its broker (see {})",
                logs.join("aggregator.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(listen(broker_port, seen.clone(), ready_tx));
    let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
    // Let the aggregator publish the watchlists (retained) before the agents start.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let server = match opts.input {
        InputMode::Rtsp => {
            let files: Vec<(String, PathBuf)> = truth
                .cameras
                .iter()
                .map(|c| (c.id.clone(), out.join(&c.file)))
                .collect();
            let refs: Vec<(&str, &Path)> = files
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_path()))
                .collect();
            Some(sharpeyes_e2e::rtsp::RtspServer::start(&refs).map_err(RunError::Process)?)
        }
        InputMode::Files => None,
    };
    let uris: BTreeMap<String, String> = truth
        .cameras
        .iter()
        .map(|c| {
            let uri = match &server {
                Some(srv) => srv.url(&c.id),
                None => {
                    let abs = std::fs::canonicalize(out.join(&c.file))
                        .unwrap_or_else(|_| out.join(&c.file));
                    format!("file://{}", abs.display())
                }
            };
            (c.id.clone(), uri)
        })
        .collect();
    let expected_frames: u64 = truth
        .cameras
        .iter()
        .map(|c| crate::truth::analysed_frames(c.frames, c.fps, s.analysis_fps).len() as u64)
        .sum();
    bar.set_length(expected_frames);
    bar.set_position(0);
    bar.set_message("analysing");

    let started = Instant::now();
    let mut agents = Vec::new();
    let mut track_max_age_ms = None;
    for (agent, _) in s.agents() {
        let ops = free_port();
        let cfg = agent_config(s, &agent, &uris, opts, broker_port, ops, &dir.join("spool"));
        track_max_age_ms = Some(cfg.tracker.max_age_ms);
        let path = dir.join(format!("{agent}.toml"));
        write_toml(&path, &cfg)?;
        let p = Proc::spawn(
            &format!("edge-agent:{agent}"),
            Command::new(&agent_bin)
                .args(["run", "--config"])
                .arg(&path),
            &logs.join(format!("{agent}.log")),
        )?;
        agents.push((p, ops));
    }
    let mut metrics: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut analysed = 0.0;
        for (p, port) in agents.iter_mut() {
            if p.ended.is_none()
                && let Some(m) = scrape(*port).await
            {
                metrics.insert(p.name.clone(), m);
            }
            if let Some(m) = metrics.get(&p.name) {
                analysed += prom_sum(m, "sharpeyes_agent_frames_analysed_total");
            }
        }
        bar.set_position(analysed as u64);
        agg.sample();
        // Every agent, each time (no short cut): one that ended is reaped at once, while its
        // memory can still be read.
        let mut all_done = true;
        for (p, _) in agents.iter_mut() {
            all_done &= p.poll(false);
        }
        if all_done {
            break;
        }
        if started.elapsed() > opts.timeout {
            for (p, _) in agents.iter_mut() {
                p.terminate();
            }
            return Err(RunError::Process(format!(
                "the agents did not finish within {:?} (logs in {})",
                opts.timeout,
                logs.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let agents_wall_s = started.elapsed().as_secs_f64();
    bar.set_message("storing");
    // Everything the broker delivered must reach the store.
    let published: std::collections::BTreeSet<(String, u64)> = {
        let g = seen.lock().unwrap_or_else(|e| e.into_inner());
        g.0.iter().map(|b| (b.agent.clone(), b.seq)).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = aggregator::store::Store::open_read_only(&db)
            .and_then(|st| st.message_keys_of("tracks"))
            .unwrap_or_default();
        let stored: std::collections::BTreeSet<(String, u64)> = stored.into_iter().collect();
        if published.is_subset(&stored) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let alerts and fusion settle, then take the aggregator's counters.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if let Some(m) = scrape(agg_ops).await {
        metrics.insert("aggregator".into(), m);
    }
    let total_wall_s = started.elapsed().as_secs_f64();
    agg.sample();
    agg.terminate();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agg.poll(false) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.abort();
    drop(server);
    let mut processes = BTreeMap::new();
    for (p, _) in &agents {
        if let Some(u) = &p.ended {
            processes.insert(p.name.clone(), u.clone());
        }
    }
    if let Some(u) = &agg.ended {
        processes.insert("aggregator".into(), u.clone());
    }
    for (name, u) in &processes {
        if u.exit_code != Some(0) {
            tracing::warn!(process = %name, code = ?u.exit_code, "process did not exit cleanly");
        }
    }
    // The agents' own final counts (their last scrape may be a moment old).
    for (p, _) in &agents {
        let log = std::fs::read_to_string(
            logs.join(format!("{}.log", p.name.trim_start_matches("edge-agent:"))),
        )
        .unwrap_or_default();
        if let Some(n) = final_frames_analysed(&log) {
            metrics.insert(
                format!("{}:final", p.name),
                format!("sharpeyes_agent_frames_analysed_final {n}\n"),
            );
        }
    }
    let (batches, alerts_seen) = {
        let g = seen.lock().unwrap_or_else(|e| e.into_inner());
        (g.0.clone(), g.1.clone())
    };
    let (stored, alerts, sightings, links) = read_store(&db)?;
    Ok(Observed {
        input: Some(opts.input),
        batches,
        alerts_seen,
        stored,
        alerts,
        sightings,
        links,
        processes,
        metrics,
        agents_wall_s,
        total_wall_s,
        track_max_age_ms,
    })
}

type StoreRead = (
    Vec<StoredMessage>,
    Vec<StoredAlert>,
    Vec<Sighting>,
    Vec<(u64, u64, u64)>,
);

fn read_store(db: &Path) -> Result<StoreRead, RunError> {
    let err = |e: rusqlite::Error| RunError::Store(e.to_string());
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(err)?;
    let mut q = c
        .prepare("SELECT agent, seq, kind, sent_ms, received_ms, bytes FROM messages")
        .map_err(err)?;
    let stored = q
        .query_map([], |r| {
            Ok(StoredMessage {
                agent: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                kind: r.get(2)?,
                sent_ms: r.get(3)?,
                received_ms: r.get(4)?,
                bytes: r.get::<_, i64>(5)? as u64,
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let store =
        aggregator::store::Store::open_read_only(db).map_err(|e| RunError::Store(e.to_string()))?;
    let alerts = store
        .alerts(&aggregator::store::AlertFilter::default())
        .map_err(|e| RunError::Store(e.to_string()))?
        .into_iter()
        .map(|a| StoredAlert {
            agent: a.agent,
            alert_id: a.alert_id,
            camera: a.camera,
            kind: a.kind,
            priority: a.priority,
            first_ms: a.first_ms,
            last_ms: a.last_ms,
            received_ms: a.received_ms,
            details: a.details.into_iter().collect(),
        })
        .collect();
    // Person ids merged into another are aliases: resolve them to the surviving id.
    let mut q = c
        .prepare(
            "SELECT s.agent, s.camera, s.track, s.kind, COALESCE(a.person, s.identity), s.class
             FROM sightings s
             LEFT JOIN person_aliases a ON s.kind = 'person' AND a.alias = s.identity",
        )
        .map_err(err)?;
    let sightings = q
        .query_map([], |r| {
            Ok(Sighting {
                agent: r.get(0)?,
                camera: r.get(1)?,
                track: r.get::<_, i64>(2)? as u64,
                kind: r.get(3)?,
                identity: r.get::<_, i64>(4)? as u64,
                class: r.get(5)?,
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut q = c
        .prepare(
            "SELECT COALESCE(a.person, l.person), l.vehicle, l.count FROM links l
             LEFT JOIN person_aliases a ON a.alias = l.person",
        )
        .map_err(err)?;
    let links = q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    Ok((stored, alerts, sightings, links))
}
