//! The `aggregator` binary: parses the command line; `run` starts the aggregator, every
//! other subcommand is in [`cli`].

mod cli;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::cli::args::{Cmd, RunArgs, load_config};

/// Sharp Eyes aggregator: embedded MQTT broker, store, queries.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(RunArgs { config }) => {
            sharpeyes_common::init_logging("info,rumqttd=warn");
            let cfg = load_config(config.as_ref())?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                sharpeyes_common::cancel_on_signal(shutdown.clone());
                aggregator::run(cfg, shutdown).await
            })?;
            Ok(())
        }
        cmd => cli::dispatch(cmd),
    }
}
