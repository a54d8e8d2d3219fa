//! `retention`, `dead-letters`, `replay`, `decode`, `check-config`,
//! `print-default-config`: keeping the store and the configuration in order.

use aggregator::query;
use std::io::Read;

use aggregator::config::{AggregatorConfig, ConfigFile, DEFAULT_CONFIG_TOML};
use anyhow::Context;
use sharpeyes_wire::Codec;

use super::args::*;

/// `aggregator retention`.
pub fn retention(a: RetentionArgs) -> anyhow::Result<()> {
    let RetentionArgs {
        dry_run,
        days,
        alert_days,
        evidence_sighting_days,
        evidence_alert_days,
        json,
        db,
    } = a;
    let mut policy = load_config(db.config.as_ref())?.store.retention();
    if let Some(d) = days {
        policy.days = d;
    }
    if let Some(d) = alert_days {
        policy.alert_days = d;
    }
    if let Some(d) = evidence_sighting_days {
        policy.evidence_sighting_days = d;
    }
    if let Some(d) = evidence_alert_days {
        policy.evidence_alert_days = d;
    }
    let store = db.open()?;
    let now = sharpeyes_wire::now_ms();
    let report = if dry_run {
        store.retention_preview(&policy, now)?
    } else {
        let mut total = aggregator::store::RetentionReport::default();
        loop {
            let r = store.retention_step(&policy, now)?;
            for (k, n) in r.deleted {
                *total.deleted.entry(k).or_default() += n;
            }
            total.partitions_dropped.extend(r.partitions_dropped);
            if r.done {
                total.done = true;
                break total;
            }
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if dry_run { "would delete" } else { "deleted" };
        println!(
            "retention (days {}, alert days {}, evidence days sighting {} / alert {}; 0 = forever): {verb}",
            policy.days,
            policy.alert_days,
            policy.evidence_sighting_days,
            policy.evidence_alert_days
        );
        for (k, n) in &report.deleted {
            println!("  {k:<14} {n} rows");
        }
        if report.deleted.is_empty() {
            println!("  nothing");
        }
        for p in &report.partitions_dropped {
            println!("  partition {p} (whole)");
        }
    }

    Ok(())
}

/// `aggregator dead-letters`.
pub fn dead_letters(a: DeadLettersArgs) -> anyhow::Result<()> {
    let DeadLettersArgs {
        json,
        limit,
        out,
        id,
        db,
    } = a;
    let store = db.open()?;
    let rows = match id {
        None => store.dead_letters(limit)?,
        Some(id) => store.dead_letter(id)?.into_iter().collect(),
    };
    if let Some(id) = id {
        anyhow::ensure!(
            !rows.is_empty(),
            "no dead letter {id} (list them with `aggregator dead-letters`)"
        );
    }
    if let (Some(path), Some(id)) = (out, id)
        && let Some(r) = store.dead_letter_payload(id)?
    {
        std::fs::write(&path, &r.payload).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("payload of dead letter {id} written to {}", path.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no dead letters");
    } else {
        println!(
            "{:>6}  {:<16} {:>20}  {:<7} {:>8}  {:<24}  error",
            "id", "agent", "seq", "kind", "attempts", "refused (UTC)"
        );
        for r in &rows {
            println!(
                "{:>6}  {:<16} {:>20}  {:<7} {:>8}  {:<24}  {}{}",
                r.id,
                r.agent,
                r.seq,
                r.kind,
                r.attempts,
                query::utc(r.received_ms),
                r.error,
                if r.replay_ms.is_some() {
                    " (replay pending)"
                } else {
                    ""
                }
            );
        }
    }

    Ok(())
}

/// `aggregator replay`.
pub fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    let ReplayArgs { id, wait_s, db } = a;
    let store = db.open()?;
    let before = store.dead_letter(id)?.with_context(|| {
        format!("no dead letter {id} (list them with `aggregator dead-letters`)")
    })?;
    store.request_replay(id, sharpeyes_wire::now_ms())?;
    println!(
        "dead letter {id} ({} seq {}) queued for replay",
        before.agent, before.seq
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_s);
    while wait_s > 0 && std::time::Instant::now() < deadline + std::time::Duration::from_secs(1) {
        std::thread::sleep(std::time::Duration::from_millis(250));
        match store.dead_letter(id)? {
            None => {
                println!("replayed: stored");
                break;
            }
            Some(r) if r.replay_ms.is_none() => {
                println!("refused again: {}", r.error);
                std::process::exit(1);
            }
            Some(_) if std::time::Instant::now() >= deadline => {
                println!(
                    "still pending after {wait_s} s: is `aggregator run` running on this store?"
                );
                std::process::exit(2);
            }
            Some(_) => {}
        }
    }

    Ok(())
}

/// `aggregator decode`.
pub fn decode(a: DecodeArgs) -> anyhow::Result<()> {
    let DecodeArgs { input, compact } = a;
    let bytes = if input == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading stdin")?;
        b
    } else {
        std::fs::read(&input).with_context(|| format!("reading {input}"))?
    };
    let env = Codec::default()
        .decode(&bytes)
        .with_context(|| format!("decoding {input} ({} bytes)", bytes.len()))?;
    let out = if compact {
        serde_json::to_string(&env)?
    } else {
        serde_json::to_string_pretty(&env)?
    };
    println!("{out}");

    Ok(())
}

/// `aggregator check-config`.
pub fn check_config(a: CheckConfigArgs) -> anyhow::Result<()> {
    let CheckConfigArgs { config } = a;
    AggregatorConfig::load(&config)?;
    println!("{}: ok", config.display());

    Ok(())
}

/// `aggregator print-default-config`.
pub fn print_default_config() -> anyhow::Result<()> {
    print!("{DEFAULT_CONFIG_TOML}");
    Ok(())
}
