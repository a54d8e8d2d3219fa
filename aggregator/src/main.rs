//! The `aggregator` binary: parses the command line and runs the subcommand (see [`cli`]).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use sharpeyes_common::LogFormat;

use crate::cli::args::Cmd;

/// Sharp Eyes aggregator: embedded MQTT broker, store, queries.
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
    let filter = if matches!(cli.cmd, Cmd::Run(_)) {
        "info,rumqttd=warn"
    } else {
        "warn,rumqttd=warn"
    };
    sharpeyes_common::init_logging_as(filter, format);
    match cli::dispatch(cli.cmd) {
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
