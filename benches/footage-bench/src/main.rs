//! `footage-bench`: render a scenario's footage with ground truth, run the system over it,
//! score it. See `benches/scenarios/README.md`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use footage_bench::{InputMode, Options};

#[derive(Parser)]
#[command(
    version,
    about = "The Sharp Eyes footage benchmark: footage with exact ground truth, the whole system run over it, one scored report"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// The scenario file (TOML; see benches/scenarios/README.md).
    scenario: PathBuf,
    /// Output folder (footage/, ground_truth.json, report.json, report.md, plots).
    #[arg(long)]
    out: PathBuf,
    /// No progress bars and no summary (they are off anyway when stderr is not a terminal).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Render the footage (H.264 MP4 per camera) and its ground truth.
    Generate {
        #[command(flatten)]
        common: Common,
    },
    /// Score a run kept with `run --keep` again (DIR/run/observed.json) and rewrite the
    /// report.
    Score {
        #[command(flatten)]
        common: Common,
    },
    /// Generate the footage if DIR has none for this scenario, run the aggregator and the
    /// edge agents over it, score, and write the report.
    Run {
        #[command(flatten)]
        common: Common,
        /// How the agents get the footage: the files at full speed (throughput) or RTSP in
        /// real time (live latency).
        #[arg(long, value_enum, default_value = "files")]
        input: InputMode,
        /// Shorthand for --input rtsp.
        #[arg(long, conflicts_with = "input")]
        rtsp: bool,
        /// Shorthand for --input files.
        #[arg(long, conflicts_with_all = ["input", "rtsp"])]
        files: bool,
        /// Keep the run's database, spool, configs and observations (run/); the logs are
        /// always kept.
        #[arg(long)]
        keep: bool,
        /// Render the footage again even if it is there.
        #[arg(long)]
        regenerate: bool,
        /// Folder of the edge-agent and aggregator binaries (default: beside this one).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Threads per inference session of the agents.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// An agent configuration (TOML) whose `[analysis]` table the agents use (workers,
        /// detection intervals, motion gate); default: the agent's defaults.
        #[arg(long, value_name = "FILE")]
        analysis: Option<PathBuf>,
        /// Give up on the agents after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
}

fn main() -> anyhow::Result<()> {
    sharpeyes_common::init_logging("warn");
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Generate { common } => {
            let s = footage_bench::load(&common.scenario)?;
            let mut opts = Options::new(&common.out);
            opts.quiet = common.quiet;
            let t = footage_bench::generate_footage(&s, &opts)?;
            if !common.quiet {
                println!(
                    "{}: {} cameras, {} frames, {} boxes, {} expected alerts → {}",
                    t.scenario,
                    t.cameras.len(),
                    t.cameras.iter().map(|c| c.frames).sum::<u64>(),
                    t.boxes.len(),
                    t.alerts.iter().filter(|a| !a.optional).count(),
                    common.out.display()
                );
            }
        }
        Cmd::Score { common } => {
            let s = footage_bench::load(&common.scenario)?;
            let report = footage_bench::rescore(&s, &common.out)?;
            if !common.quiet {
                print!("{}", footage_bench::report::summary(&report));
            }
        }
        Cmd::Run {
            common,
            input,
            rtsp,
            files,
            keep,
            regenerate,
            bin_dir,
            threads,
            analysis,
            timeout_s,
        } => {
            let s = footage_bench::load(&common.scenario)?;
            let mut opts = Options::new(&common.out);
            opts.quiet = common.quiet;
            opts.input = if rtsp {
                InputMode::Rtsp
            } else if files {
                InputMode::Files
            } else {
                input
            };
            opts.keep = keep;
            opts.regenerate = regenerate;
            if let Some(b) = bin_dir {
                opts.bin_dir = b;
            }
            opts.intra_threads = threads;
            if let Some(path) = analysis {
                let cfg =
                    <edge_agent::config::AgentConfig as edge_agent::config::ConfigFile>::load(
                        &path,
                    )
                    .with_context(|| {
                        format!("reading the agent configuration {}", path.display())
                    })?;
                opts.analysis = cfg.analysis;
            }
            opts.timeout = Duration::from_secs(timeout_s);
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let report = rt.block_on(footage_bench::run_benchmark(&s, &opts))?;
            if !common.quiet {
                print!("{}", footage_bench::report::summary(&report));
                println!("report: {}", common.out.join("report.md").display());
            }
        }
    }
    Ok(())
}
