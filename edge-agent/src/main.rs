use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge_agent::config::{AgentConfig, ConfigFile, DEFAULT_CONFIG_TOML};
use tokio_util::sync::CancellationToken;

/// Sharp Eyes edge agent: decode camera streams, detect and track faces, publish over MQTT.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::PrintDefaultConfig => print!("{DEFAULT_CONFIG_TOML}"),
        Cmd::CheckConfig { config } => {
            let cfg = AgentConfig::load(&config)?;
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
            sharpeyes_common::init_logging("info");
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
