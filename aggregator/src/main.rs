//! The `aggregator` binary: parses the command line and runs the subcommand (see [`cli`]).

mod cli;

use clap::Parser;

use crate::cli::args::Cmd;

/// Sharp Eyes aggregator: embedded MQTT broker, store, queries.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

fn main() -> anyhow::Result<()> {
    cli::dispatch(Cli::parse().cmd)
}
