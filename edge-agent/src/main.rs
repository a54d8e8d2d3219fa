use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge_agent::config::{AgentConfig, ConfigFile, DEFAULT_CONFIG_TOML};
use sharpeyes_common::LogFormat;
use tokio_util::sync::CancellationToken;

/// Sharp Eyes edge agent: decode camera streams, detect and track faces, publish over MQTT.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines on stderr: `text` (coloured only on a terminal; NO_COLOR turns colour off)
    /// or `json` (one object per line). Default: $SHARPEYES_LOG_FORMAT, else text.
    #[arg(long, global = true, value_name = "text|json")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent until Ctrl-C / SIGTERM (or until every file camera has ended).
    Run {
        /// Configuration file (TOML); see `print-default-config`.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the commented default configuration.
    PrintDefaultConfig,
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        config: PathBuf,
    },
    /// Print the detections of one image (JPEG or PNG) as JSON.
    Probe {
        /// The image.
        image: PathBuf,
        /// Configuration file for model paths and thresholds (default: built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Add each face's embedding (L2-normalised floats).
        #[arg(long)]
        embeddings: bool,
        /// Pretty-print the JSON.
        #[arg(long)]
        pretty: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match sharpeyes_common::choose_log_format(
        cli.log_format,
        std::env::var_os(sharpeyes_common::LOG_FORMAT_ENV).as_deref(),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // `run` logs what it does; the other commands only their warnings.
    let filter = if matches!(cli.cmd, Cmd::Run { .. }) {
        "info"
    } else {
        "warn"
    };
    sharpeyes_common::init_logging_as(filter, format);
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                LogFormat::Text => eprintln!("Error: {e:?}"),
                LogFormat::Json => tracing::error!("{e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::PrintDefaultConfig => print!("{DEFAULT_CONFIG_TOML}"),
        Cmd::CheckConfig { config } => {
            let cfg = AgentConfig::load(&config)?;
            // Each camera's decoder is installed and its `source` fragment parses.
            edge_agent::ingest::check_cameras(&cfg.cameras)?;
            println!("{}: ok ({} cameras)", config.display(), cfg.cameras.len());
        }
        Cmd::Probe {
            image,
            config,
            embeddings,
            pretty,
        } => {
            let cfg = match config {
                Some(p) => AgentConfig::load(&p)?,
                None => AgentConfig::default(),
            };
            let report = edge_agent::probe::probe(&cfg, &image, embeddings)?;
            let out = if pretty {
                serde_json::to_string_pretty(&report)?
            } else {
                serde_json::to_string(&report)?
            };
            println!("{out}");
        }
        Cmd::Run { config } => {
            let cfg = AgentConfig::load(&config)?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                sharpeyes_common::cancel_on_signal(shutdown.clone());
                edge_agent::run(cfg, shutdown).await
            })?;
        }
    }
    Ok(())
}
