//! `alerts`: list, acknowledge (audited), and save an alert's evidence (audited).

use aggregator::query;
use aggregator::store::AlertFilter;
use anyhow::{Context, bail};

use super::args::*;

/// `aggregator alerts`.
pub fn alerts(a: AlertsArgs) -> anyhow::Result<()> {
    let AlertsArgs { action, list } = a;
    match action {
        None => {
            let store = list.db.open()?;
            let rows = store.alerts(&AlertFilter {
                open_only: list.open,
                since_ms: list
                    .since
                    .map(|d| sharpeyes_wire::now_ms() - d.as_millis() as i64),
                kind: list.kind,
                limit: list.limit,
            })?;
            if list.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", query::alerts_table(&rows));
            }
        }
        Some(AlertsCmd::Ack { id, by, note, db }) => {
            let (agent, alert) = split_alert_id(&id)?;
            if by.trim().is_empty() {
                bail!("--by must name who acknowledges");
            }
            let entry = aggregator::service::cli_entry(
                "alerts.ack",
                &aggregator::service::Why::default(),
                serde_json::json!({"agent": agent, "alert_id": alert, "by": by}),
                1,
            );
            let done = db.open()?.audited(&entry, |s| {
                Ok::<_, aggregator::store::StoreError>(
                    s.ack_alert(agent, alert, &by, &note)?.then_some(()),
                )
            })?;
            if done.is_none() {
                bail!("no open alert {id} (see `aggregator alerts --open`)");
            }
            println!("{id} acknowledged by {by}");
        }
        Some(AlertsCmd::Evidence { id, role, out, db }) => {
            let (agent, alert) = split_alert_id(&id)?;
            let Some((mime, data)) = db.open()?.alert_evidence(agent, alert, &role)? else {
                bail!("alert {id} has no {role:?} evidence (see `aggregator alerts`)");
            };
            db.open()?.audit_append(&aggregator::service::cli_entry(
                "alerts.evidence",
                &aggregator::service::Why::default(),
                serde_json::json!({"agent": agent, "alert_id": alert, "role": role}),
                1,
            ))?;
            std::fs::write(&out, &data).with_context(|| format!("writing {}", out.display()))?;
            println!("{} ({mime}, {} bytes)", out.display(), data.len());
        }
    };
    Ok(())
}
