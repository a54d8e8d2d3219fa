//! # The footage benchmark
//!
//! One command that renders a multi-camera world with exact ground truth, runs the whole
//! system over it (aggregator with its embedded broker and store, one edge agent per
//! gateway, real models), and scores it in one report.
//!
//! - [`scenario`]: the scenario file format, parsed and validated;
//! - [`truth`]: ground truth types and the pure geometry / expected alerts;
//! - [`generate`]: renders the footage (H.264 MP4 with GStreamer) and writes the truth;
//! - [`run`]: runs the real binaries over it and records what they did;
//! - [`score`]: predicted boxes at analysed frames and every score;
//! - [`metrics`]: the scoring math (pure);
//! - [`report`]: `report.json`, `report.md` and SVG plots.
//!
//! Commands: `footage-bench generate SCENARIO --out DIR`, `footage-bench run SCENARIO --out
//! DIR` (see `benches/scenarios/README.md`).

pub mod generate;
pub mod metrics;
pub mod report;
pub mod run;
pub mod scenario;
pub mod score;
pub mod truth;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use thiserror::Error;

pub use crate::run::InputMode;
use crate::scenario::{DataDirs, Scenario};
use crate::truth::GroundTruth;

/// Benchmark failures.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The scenario was refused.
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    /// Rendering failed.
    #[error(transparent)]
    Generate(#[from] generate::GenerateError),
    /// Running the system failed.
    #[error(transparent)]
    Run(#[from] run::RunError),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Report(std::io::Error),
}

/// Options of [`generate_footage`] and [`run_benchmark`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Output folder.
    pub out: PathBuf,
    /// Footage input of the run.
    pub input: InputMode,
    /// Keep the run's working files (database, spool, configs, observations).
    pub keep: bool,
    /// No progress bars.
    pub quiet: bool,
    /// Folder of the `edge-agent` and `aggregator` binaries.
    pub bin_dir: PathBuf,
    /// Threads per inference session of the agents.
    pub intra_threads: usize,
    /// The agents' analysis scheduling (workers, detection intervals, motion gate).
    pub analysis: edge_agent::config::AnalysisConfig,
    /// Give up on the agents after this long.
    pub timeout: Duration,
    /// Render again even if footage of this scenario is there.
    pub regenerate: bool,
}

impl Options {
    /// Defaults for `out`: files input, binaries beside the current executable (or its
    /// parent when it is a test in `deps/`).
    pub fn new(out: &Path) -> Self {
        let bin_dir = sharpeyes_e2e::workspace_bin_dir();
        Self {
            out: out.to_path_buf(),
            input: InputMode::Files,
            keep: false,
            quiet: false,
            bin_dir,
            intra_threads: 1,
            analysis: Default::default(),
            timeout: Duration::from_secs(3600),
            regenerate: false,
        }
    }
}

/// The test data folders (`$SHARPEYES_TESTDATA` or the checkout's `testdata/`).
pub fn data_dirs() -> DataDirs {
    DataDirs {
        testdata: sharpeyes_e2e::testdata_dir(),
    }
}

fn bar(quiet: bool, prefix: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_prefix(prefix.to_string());
    b
}

/// Loads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, BenchError> {
    Ok(Scenario::load(path, &data_dirs())?)
}

/// Renders the footage and ground truth of `s` into `opts.out`.
pub fn generate_footage(s: &Scenario, opts: &Options) -> Result<GroundTruth, BenchError> {
    let b = bar(opts.quiet, "generate");
    let t = generate::generate(
        s,
        &data_dirs(),
        &opts.out,
        &sharpeyes_e2e::models_config(),
        &b,
    )?;
    b.finish_and_clear();
    Ok(t)
}

/// Scores a kept run again (`DIR/run/observed.json` of `run --keep`, `DIR/ground_truth.json`)
/// and rewrites the report: a changed scorer without running the system again.
pub fn rescore(s: &Scenario, out: &Path) -> Result<serde_json::Value, BenchError> {
    let read = |p: PathBuf| {
        std::fs::read(&p).map_err(|e| {
            BenchError::Report(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", p.display()),
            ))
        })
    };
    let parse = |e: serde_json::Error| BenchError::Report(std::io::Error::other(e));
    let truth: GroundTruth =
        serde_json::from_slice(&read(out.join(generate::TRUTH_FILE))?).map_err(parse)?;
    let obs: run::Observed =
        serde_json::from_slice(&read(out.join("run/observed.json"))?).map_err(parse)?;
    let report = score::score(s, &truth, &obs);
    report::write(out, &report, &obs).map_err(BenchError::Report)?;
    Ok(report)
}

/// Generates the footage if `opts.out` has none for `s`, runs the system over it, scores it
/// and writes the report; the report.
pub async fn run_benchmark(s: &Scenario, opts: &Options) -> Result<serde_json::Value, BenchError> {
    let truth = match (opts.regenerate, generate::existing(&opts.out, &s.digest())) {
        (false, Some(t)) => t,
        _ => generate_footage(s, opts)?,
    };
    let b = bar(opts.quiet, "run");
    let run_opts = run::RunOptions {
        input: opts.input,
        bin_dir: opts.bin_dir.clone(),
        intra_threads: opts.intra_threads,
        analysis: opts.analysis.clone(),
        timeout: opts.timeout,
    };
    let obs = run::run(s, &truth, &data_dirs(), &opts.out, &run_opts, &b).await?;
    b.set_message("scoring");
    let report = score::score(s, &truth, &obs);
    report::write(&opts.out, &report, &obs).map_err(BenchError::Report)?;
    b.finish_and_clear();
    let run_dir = opts.out.join("run");
    if opts.keep {
        let _ = std::fs::write(
            run_dir.join("observed.json"),
            serde_json::to_vec(&obs).unwrap_or_default(),
        );
    } else {
        // Keep the logs; the database, spool and configs go.
        if let Ok(entries) = std::fs::read_dir(&run_dir) {
            for e in entries.flatten() {
                if e.file_name() != "logs" {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
        }
    }
    Ok(report)
}
