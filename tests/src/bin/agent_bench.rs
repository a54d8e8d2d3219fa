//! Agent-level benchmark: the whole edge agent on a recorded clip, as fast as it can go, what
//! it costs in CPU per camera-second of footage, and where its time goes (decode, convert,
//! each model, tracking, publishing).
//!
//! Build it in release: `cargo run --release -p sharpeyes-e2e --bin agent-bench`. It makes the
//! demo clip (1280×720, 25 fps, real face photos and rendered plates) unless `--clip` names
//! one, times a decode-only and a decode+convert pass over it, then runs the agent on it
//! (`--cameras` file cameras on the same clip, not real time, lossless: every frame at `--fps`
//! is analysed) publishing to an aggregator, and prints frames/s, the share of each stage and
//! the line `cameras per core at F fps: X`: camera-seconds of footage analysed per second of
//! the agent's CPU time (user + system, every thread of the agent, decode included).
//!
//! The aggregator (embedded broker and store) runs in a child process, this binary started
//! again with `--serve-aggregator`, so that the CPU time of this process is the agent's alone;
//! it is read right before and right after `edge_agent::run`, so the decode-only passes are
//! not counted. The child ends when its standard input closes (also when this process dies)
//! or on SIGTERM.
//!
//! `--static` also runs the agent on a 70 s clip of a camera where nothing moves (made once,
//! kept in `--out`) and prints its figure beside the busy clip's.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use anyhow::Context;
use clap::{Parser, ValueEnum};
use edge_agent::RunSummary;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig, ModelsConfig};
use sharpeyes_e2e::clip::clip_duration;
use sharpeyes_e2e::{demo_clip, free_port, models_config, start_aggregator, static_clip};
use tokio_util::sync::CancellationToken;

/// The line the aggregator child prints once it serves.
const READY: &str = "aggregator ready";

/// Length of the static camera's clip, seconds.
const STATIC_S: f64 = 70.0;

/// Benchmark the edge agent on a clip.
#[derive(Parser)]
struct Args {
    /// Output directory (clips, databases, spool).
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// A clip to use instead of the generated demo clip.
    #[arg(long)]
    clip: Option<PathBuf>,
    /// Frames per second offered to analysis (decimated by timestamp; up to the clip's rate).
    #[arg(long, default_value_t = 25.0)]
    fps: f32,
    /// Threads per inference session.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// An agent configuration (TOML, as `edge-agent check-config` takes) whose settings the
    /// bench's agent uses (analysis, detectors, tracker, rules); its cameras, broker, spool,
    /// ops endpoint and model paths are the bench's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Cameras served at once, all on the clip (ids bench-1 … bench-N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    cameras: u16,
    /// Also measure a static camera: a 70 s clip of a street photo where nothing moves
    /// (`still`: the same picture on every frame; `noisy`: fresh sensor noise on every frame).
    #[arg(long = "static", value_enum, num_args = 0..=1, default_missing_value = "still")]
    static_scene: Option<StaticScene>,
    /// Also run the straightforward Python pipeline (`--baseline-script`, the team's reference:
    /// OpenCV decode + onnxruntime, every model on every analysed frame, one thread) on the
    /// same clip with this Python (a venv with onnxruntime, opencv-python-headless, numpy),
    /// and print its cameras per core and the agent's ratio to it.
    #[arg(long, value_name = "PYTHON", requires = "baseline_script")]
    baseline_python: Option<PathBuf>,
    /// The Python pipeline's script (`pipeline.py` of the team's baseline tools, which live
    /// outside this product), with `--baseline-python`.
    #[arg(long, value_name = "SCRIPT", requires = "baseline_python")]
    baseline_script: Option<PathBuf>,
    /// Internal: serve the aggregator for a parent agent-bench (see the module documentation).
    #[arg(long, hide = true)]
    serve_aggregator: bool,
    /// Internal: the aggregator's broker port (with --serve-aggregator).
    #[arg(long, hide = true, requires = "serve_aggregator")]
    port: Option<u16>,
    /// Internal: the aggregator's database (with --serve-aggregator).
    #[arg(long, hide = true, requires = "serve_aggregator")]
    db: Option<PathBuf>,
}

/// The static camera's clip.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StaticScene {
    /// The same picture on every frame.
    Still,
    /// Fresh noise of ±2 levels on every frame, as a live camera's sensor gives.
    Noisy,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sharpeyes_common::init_logging("warn");
    if args.serve_aggregator {
        let (Some(port), Some(db)) = (args.port, args.db) else {
            anyhow::bail!("--serve-aggregator needs --port and --db");
        };
        return serve_aggregator(port, db);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output folder {}", args.out.display()))?;
    let mut models = models_config();
    models.intra_threads = args.threads;
    let clip_path = match &args.clip {
        Some(p) => p.clone(),
        None => {
            let p = args.out.join("clip.mp4");
            if !p.exists() {
                demo_clip(&p).context("making the demo clip")?;
            }
            p
        }
    };
    anyhow::ensure!(
        clip_path.is_file(),
        "the clip {} is not a file: pass --clip an existing video file, or leave it out for the demo clip",
        clip_path.display()
    );
    let decode = edge_agent::ingest::time_decode(&clip_path, false)?;
    let convert = edge_agent::ingest::time_decode(&clip_path, true)?;
    let baseline = match &args.baseline_python {
        Some(python) => Some(run_baseline(python, &args, &models, &clip_path)?),
        None => None,
    };
    let busy = measure(&args, &models, &clip_path, "bench")?;
    let s = &busy.summary;

    let n = s.frames_analysed.max(1) as f64;
    let per_frame =
        |total: Duration, frames: u64| total.as_secs_f64() * 1000.0 / frames.max(1) as f64;
    let decode_ms = per_frame(decode.wall, decode.frames);
    // Converted per converted frame; the agent converts only the frames it analyses.
    let convert_ms = (per_frame(convert.wall, convert.frames) - decode_ms).max(0.0);
    // Every frame of the clip is decoded, for each camera: decode per analysed frame.
    let decoded_per_analysed = decode.frames as f64 * f64::from(args.cameras) / n;
    let decode_row = format!("decode (H.264, {decoded_per_analysed:.1} frames)");
    // Plates run on some frames only: spread their time over every analysed frame.
    let plate_ms = s.plate_ms_mean * s.plate_frames as f64 / n;
    let stages = [
        (decode_row.as_str(), decode_ms * decoded_per_analysed),
        ("convert to BGR", convert_ms),
        ("face detection (YuNet)", s.detect_ms_mean),
        ("person/vehicle detection (NanoDet)", s.object_ms_mean),
        ("face quality + embeddings (SFace)", s.embed_ms_mean),
        ("plates (clp_det + PP-OCRv4)", plate_ms),
        ("tracking + linking", s.track_ms_mean),
        ("publishing (batch, encode, spool)", s.publish_ms / n),
    ];
    let total: f64 = stages.iter().map(|s| s.1).sum();
    println!("clip {}", clip_path.display());
    println!(
        "agent: {} frames analysed in {:.1} s = {:.1} frames/s ({} offered frames dropped while busy), {} camera(s), {} threads per model",
        s.frames_analysed,
        busy.wall.as_secs_f64(),
        s.analysed_fps,
        s.frames_dropped,
        args.cameras,
        args.threads
    );
    println!(
        "decode alone: {} frames in {:.2} s = {:.0} frames/s; with conversion to BGR {:.0} frames/s",
        decode.frames,
        decode.wall.as_secs_f64(),
        decode.frames as f64 / decode.wall.as_secs_f64().max(1e-9),
        convert.frames as f64 / convert.wall.as_secs_f64().max(1e-9)
    );
    println!(
        "{} face embeddings, plates read on {} frames, {} track updates in {} bytes",
        s.embeddings, s.plate_frames, s.track_updates, s.track_bytes
    );
    println!(
        "\n{:<38} {:>10} {:>8}",
        "stage, per analysed frame", "ms", "share"
    );
    for (name, ms) in stages {
        println!(
            "{name:<38} {ms:>10.2} {:>7.1}%",
            100.0 * ms / total.max(1e-9)
        );
    }
    println!("{:<38} {:>10.2}", "sum (one core, sequential)", total);
    println!(
        "{:<38} {:>10.2}",
        "agent CPU (measured; start included)",
        busy.cpu_s() * 1000.0 / n
    );
    println!();
    busy.print_cost(args.fps, "");
    if let Some(b) = &baseline {
        let python = b.footage_s / b.cpu_s.max(1e-9);
        println!(
            "python pipeline: CPU {:.2} s in {:.2} s wall for {:.1} s of footage: {python:.2} cameras per core at {} fps by CPU time ({:.2} by its own wall-time cameras_per_core)",
            b.cpu_s, b.wall_s, b.footage_s, args.fps, b.cameras_per_core
        );
        println!(
            "agent / python pipeline: {:.2}x",
            1.0 / busy.cpu_per_camera_second().max(1e-12) / python.max(1e-12)
        );
    }

    if let Some(scene) = args.static_scene {
        let (name, noisy) = match scene {
            StaticScene::Still => ("static-still", false),
            StaticScene::Noisy => ("static-noisy", true),
        };
        let path = args.out.join(format!("{name}-{STATIC_S:.0}s.mp4"));
        if !path.exists() {
            static_clip(&path, STATIC_S, noisy).context("making the static camera's clip")?;
        }
        let still = measure(&args, &models, &path, "static")?;
        println!("\nstatic camera: {}", path.display());
        still.print_cost(args.fps, "static camera: ");
        println!(
            "static camera: CPU per camera-second {:.1} % of the busy clip's",
            100.0 * still.cpu_per_camera_second() / busy.cpu_per_camera_second().max(1e-12)
        );
    }
    Ok(())
}

/// One run of the Python pipeline.
struct Baseline {
    /// User + system CPU seconds of the Python process.
    cpu_s: f64,
    wall_s: f64,
    /// The clip's length, seconds.
    footage_s: f64,
    /// The pipeline's own figure: footage seconds per wall second.
    cameras_per_core: f64,
}

/// Runs the Python pipeline on `clip` at `args.fps` and reads its CPU time (wait4's rusage
/// of the child) and its JSON line.
fn run_baseline(
    python: &Path,
    args: &Args,
    models: &ModelsConfig,
    clip: &Path,
) -> anyhow::Result<Baseline> {
    let script = args
        .baseline_script
        .as_ref()
        .map(|s| std::env::current_dir().unwrap_or_default().join(s))
        .context("--baseline-python needs --baseline-script (the pipeline.py to run)")?;
    anyhow::ensure!(
        script.is_file(),
        "the Python pipeline {} is not there: pass --baseline-script",
        script.display()
    );
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(&script)
        .arg(clip)
        .arg("--models")
        .arg(&models.dir)
        .arg("--analysis-fps")
        .arg(args.fps.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let mut out = String::new();
    std::io::Read::read_to_string(
        &mut child.stdout.take().context("the pipeline's output")?,
        &mut out,
    )?;
    let pid = libc::pid_t::try_from(child.id()).context("the pipeline's process id")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, zero-initialised; wait4 writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; pid is our own child, reaped only here.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    anyhow::ensure!(
        r == pid,
        "waiting for the Python pipeline: {}",
        std::io::Error::last_os_error()
    );
    let wall_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the Python pipeline failed (status {status}; its errors are above)"
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let report: serde_json::Value = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("the Python pipeline printed no JSON line")?;
    Ok(Baseline {
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
        wall_s,
        footage_s: clip_duration(clip)?.as_secs_f64(),
        cameras_per_core: report["cameras_per_core"].as_f64().unwrap_or(f64::NAN),
    })
}

/// One run of the agent on a clip and what it cost.
struct Measured {
    summary: RunSummary,
    /// Wall time of `edge_agent::run`.
    wall: Duration,
    /// CPU time of this process (the agent) during `edge_agent::run`: user and system.
    cpu: (Duration, Duration),
    /// Camera-seconds of footage analysed: cameras × the clip's length.
    footage_s: f64,
}

impl Measured {
    fn cpu_s(&self) -> f64 {
        (self.cpu.0 + self.cpu.1).as_secs_f64()
    }

    /// Agent CPU seconds per camera-second of footage.
    fn cpu_per_camera_second(&self) -> f64 {
        self.cpu_s() / self.footage_s.max(1e-12)
    }

    fn print_cost(&self, fps: f32, prefix: &str) {
        let wall = self.wall.as_secs_f64();
        println!(
            "{prefix}agent CPU {:.2} s (user {:.2} + system {:.2}) in {:.2} s wall ({:.2} cores busy) for {:.1} camera-seconds of footage ({} frames analysed, {} dropped)",
            self.cpu_s(),
            self.cpu.0.as_secs_f64(),
            self.cpu.1.as_secs_f64(),
            wall,
            self.cpu_s() / wall.max(1e-9),
            self.footage_s,
            self.summary.frames_analysed,
            self.summary.frames_dropped,
        );
        println!(
            "{prefix}cameras per core at {fps} fps: {:.2}",
            1.0 / self.cpu_per_camera_second().max(1e-12)
        );
    }
}

/// Runs the agent on `clip` with `args.cameras` cameras, publishing to an aggregator in a child
/// process (a fresh database `<out>/<name>.db`), and measures it.
fn measure(
    args: &Args,
    models: &ModelsConfig,
    clip: &Path,
    name: &str,
) -> anyhow::Result<Measured> {
    let length = clip_duration(clip).context("reading the clip's length")?;
    let uri = format!(
        "file://{}",
        std::fs::canonicalize(clip)
            .with_context(|| format!("finding the clip {}", clip.display()))?
            .display()
    );
    let db = args.out.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let spool = args.out.join(format!("{name}-spool"));
    let _ = std::fs::remove_dir_all(&spool);
    let port = free_port();
    let agg = AggregatorProcess::start(port, &db)?;
    let base = match &args.config {
        Some(path) => <AgentConfig as edge_agent::config::ConfigFile>::load(path)
            .with_context(|| format!("reading the agent configuration {}", path.display()))?,
        None => AgentConfig::default(),
    };
    let mut cfg = AgentConfig {
        models: models.clone(),
        cameras: (1..=args.cameras)
            .map(|i| CameraConfig {
                id: format!("bench-{i}"),
                uri: uri.clone(),
                analysis_fps: args.fps,
                realtime: false,
                lossless: true,
                at_end: AtEnd::Stop,
                ..CameraConfig::default()
            })
            .collect(),
        ..base
    };
    cfg.broker.port = port;
    cfg.publish.spool_dir = spool;
    // Its metrics endpoint's fixed port may be taken on a shared machine.
    cfg.ops.enabled = false;
    let rt = tokio::runtime::Runtime::new()?;
    let cpu0 = cpu_time()?;
    let t0 = Instant::now();
    let summary = rt.block_on(edge_agent::run(cfg, CancellationToken::new()));
    let wall = t0.elapsed();
    let cpu1 = cpu_time()?;
    drop(rt);
    agg.stop()?;
    Ok(Measured {
        summary: summary?,
        wall,
        cpu: (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1),
        footage_s: f64::from(args.cameras) * length.as_secs_f64(),
    })
}

/// User and system CPU time of this process so far, all its threads (ended ones included).
fn cpu_time() -> anyhow::Result<(Duration, Duration)> {
    // SAFETY: rusage is plain old data, zero-initialised; getrusage writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok((tv(ru.ru_utime), tv(ru.ru_stime)))
}

/// The aggregator in a child process (this binary with `--serve-aggregator`). Dropping it
/// without [`AggregatorProcess::stop`] still ends the child.
struct AggregatorProcess {
    child: Option<Child>,
    /// Closing it tells the child to shut down.
    stdin: Option<ChildStdin>,
}

impl AggregatorProcess {
    /// Starts it and waits for its ready line.
    fn start(port: u16, db: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .arg("--serve-aggregator")
            .arg("--port")
            .arg(port.to_string())
            .arg("--db")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the aggregator child process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // From here on, dropping `me` ends the child.
        let me = Self {
            child: Some(child),
            stdin,
        };
        let mut lines = BufReader::new(stdout.context("the child's standard output")?).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line == READY => break,
                Some(Ok(line)) => eprintln!("aggregator: {line}"),
                Some(Err(e)) => return Err(e).context("reading the aggregator's output"),
                None => anyhow::bail!(
                    "the aggregator child process ended before it was ready (its errors are above)"
                ),
            }
        }
        // Anything it prints later goes to our standard error.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("aggregator: {line}");
            }
        });
        Ok(me)
    }

    /// Closes its standard input and waits (up to 30 s) for it to store what it received and
    /// end; an error if it failed or had to be killed.
    fn stop(mut self) -> anyhow::Result<()> {
        match self.end(Duration::from_secs(30)) {
            Some(status) if status.success() => Ok(()),
            Some(status) => anyhow::bail!("the aggregator child process failed: {status}"),
            None => anyhow::bail!("the aggregator child process did not end in 30 s: killed"),
        }
    }

    /// Closes stdin, waits up to `grace`, then kills; the exit status if it ended by itself.
    fn end(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        drop(self.stdin.take());
        let mut child = self.child.take()?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for AggregatorProcess {
    fn drop(&mut self) {
        self.end(Duration::from_secs(10));
    }
}

/// The child side: serves the aggregator (embedded broker on `port`, store in `db`), prints
/// [`READY`], and shuts it down when standard input closes or on SIGINT / SIGTERM.
fn serve_aggregator(port: u16, db: PathBuf) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut cfg = AggregatorConfig::default();
        cfg.broker.listen = ([127, 0, 0, 1], port).into();
        cfg.store.path = db;
        // Nothing searches faces or asks the API here; their fixed ports may be taken, and
        // the live face index would race the store's creation.
        cfg.face_search.live_index = false;
        cfg.api.enabled = false;
        cfg.ops.enabled = false;
        let agg = start_aggregator(cfg).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{READY}")?;
            out.flush()?;
        }
        let stop = CancellationToken::new();
        sharpeyes_common::cancel_on_signal(stop.clone());
        let closed = tokio::task::spawn_blocking(|| {
            // Reads until end of file: the parent closed it, or it ended.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        });
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = closed => {}
        }
        agg.shut_down().await
    })?;
    // The blocking stdin reader may still be running after a signal: do not wait for it.
    rt.shutdown_background();
    Ok(())
}
