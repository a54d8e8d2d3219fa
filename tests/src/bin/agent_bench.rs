//! Agent-level benchmark: the whole edge agent on a recorded clip, as fast as it can go, and
//! where its time goes (decode, convert, each model, tracking, publishing).
//!
//! Build it in release: `cargo run --release -p sharpeyes-e2e --bin agent-bench`. It makes the
//! demo clip (1280×720, 25 fps, real face photos and rendered plates) unless `--clip` names
//! one, times a decode-only and a decode+convert pass over it, then runs the agent on it
//! (file camera, not real time, lossless: every frame at `--fps` is analysed) publishing to the aggregator's embedded
//! broker, and prints frames/s and the share of each stage.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use anyhow::Context;
use clap::Parser;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use sharpeyes_e2e::{demo_clip, free_port, models_config, start_aggregator};
use tokio_util::sync::CancellationToken;

/// Benchmark the edge agent on a clip.
#[derive(Parser)]
struct Args {
    /// Output directory (clip, database, spool).
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sharpeyes_common::init_logging("warn");
    std::fs::create_dir_all(&args.out)?;
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
    let decode = edge_agent::ingest::time_decode(&clip_path, false)?;
    let convert = edge_agent::ingest::time_decode(&clip_path, true)?;

    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(async {
        let port = free_port();
        let mut agg_cfg = AggregatorConfig::default();
        agg_cfg.broker.listen = ([127, 0, 0, 1], port).into();
        let db = args.out.join("bench.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        agg_cfg.store.path = db;
        let agg = start_aggregator(agg_cfg).await?;
        let spool = args.out.join("spool");
        let _ = std::fs::remove_dir_all(&spool);
        let mut cfg = AgentConfig {
            models,
            cameras: vec![CameraConfig {
                id: "bench".into(),
                uri: format!("file://{}", std::fs::canonicalize(&clip_path)?.display()),
                analysis_fps: args.fps,
                realtime: false,
                lossless: true,
                at_end: AtEnd::Stop,
                ..CameraConfig::default()
            }],
            ..AgentConfig::default()
        };
        cfg.broker.port = port;
        cfg.publish.spool_dir = spool;
        let t0 = Instant::now();
        let s = edge_agent::run(cfg, CancellationToken::new()).await?;
        let wall = t0.elapsed();
        agg.shut_down().await?;
        anyhow::Ok((s, wall))
    })?;
    let (s, wall) = summary;

    let n = s.frames_analysed.max(1) as f64;
    let per_frame =
        |total: Duration, frames: u64| total.as_secs_f64() * 1000.0 / frames.max(1) as f64;
    let decode_ms = per_frame(decode.wall, decode.frames);
    let convert_ms = (per_frame(convert.wall, convert.frames) - decode_ms).max(0.0);
    // Plates run on some frames only: spread their time over every analysed frame.
    let plate_ms = s.plate_ms_mean * s.plate_frames as f64 / n;
    let stages = [
        ("decode (H.264, per frame)", decode_ms),
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
        "agent: {} frames analysed in {:.1} s = {:.1} frames/s ({} offered frames dropped while busy), {} threads per model",
        s.frames_analysed,
        wall.as_secs_f64(),
        s.analysed_fps,
        s.frames_dropped,
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
    println!("\n{:<38} {:>10} {:>8}", "stage", "ms/frame", "share");
    for (name, ms) in stages {
        println!(
            "{name:<38} {ms:>10.2} {:>7.1}%",
            100.0 * ms / total.max(1e-9)
        );
    }
    println!("{:<38} {:>10.2}", "sum (one core, sequential)", total);
    Ok(())
}
