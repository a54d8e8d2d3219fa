//! The aggregator's command line, one module per family of subcommands; `main` parses and
//! calls [`dispatch`] (`run` starts the aggregator). Queries go through the library's
//! service layer (`aggregator::service`), so the command line and the HTTP API query and
//! audit alike.

pub mod access;
pub mod alerts;
pub mod args;
pub mod maintenance;
pub mod queries;
pub mod watchlist;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use self::args::{Cmd, RunArgs, load_config};

/// Runs one subcommand.
pub fn dispatch(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run(a) => run(a),
        Cmd::PrintDefaultConfig => maintenance::print_default_config(),
        Cmd::Retention(a) => maintenance::retention(a),
        Cmd::CheckConfig(a) => maintenance::check_config(a),
        Cmd::Tracks(a) => queries::tracks(a),
        Cmd::Alerts(a) => alerts::alerts(a),
        Cmd::GenCerts(a) => access::gen_certs(a),
        Cmd::Passwd(a) => access::passwd(a),
        Cmd::Enroll(a) => watchlist::enroll(a),
        Cmd::Watchlist(a) => watchlist::watchlist(a),
        Cmd::Trajectory(a) => queries::trajectory(a),
        Cmd::Links(a) => queries::links(a),
        Cmd::Sightings(a) => queries::sightings(a),
        Cmd::SearchFace(a) => queries::search_face(a),
        Cmd::Evidence(a) => queries::evidence(a),
        Cmd::Token(a) => access::token(a),
        Cmd::Audit(a) => access::audit(a),
        Cmd::DeadLetters(a) => maintenance::dead_letters(a),
        Cmd::Replay(a) => maintenance::replay(a),
        Cmd::Decode(a) => maintenance::decode(a),
    }
}

/// `aggregator run`: the aggregator until Ctrl-C / SIGTERM.
fn run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = load_config(a.config.as_ref())?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        sharpeyes_common::cancel_on_signal(shutdown.clone());
        aggregator::run(cfg, shutdown).await
    })?;
    Ok(())
}
