//! The alert hook: a configured command run once per new alert (an SMS gateway's client, a
//! webhook through curl), one at a time on its own thread so a slow gateway never holds up
//! the store. The alert goes to the command as JSON on standard input; the command is killed
//! when it overruns its time. Runs, failures and skipped alerts are counted.
//!
//! With `audit.checkpoint_hook = true` the same command also gets every signed audit
//! checkpoint (`aggregator::witness`): the checkpoint as JSON on standard input and
//! `SHARPEYES_EVENT=audit_checkpoint` (alerts come with `SHARPEYES_EVENT=alert`), so a
//! webhook can carry the checkpoints to an outside witness.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use serde::Serialize;
use sharpeyes_wire::Alert;
use tracing::{info, warn};

use crate::config::AlertsConfig;
use crate::metrics::{Metrics, inc};

/// What the hook command reads on standard input.
#[derive(Debug, Serialize)]
pub struct HookAlert<'a> {
    /// The agent that raised it.
    pub agent: &'a str,
    /// The alert, its evidence left out (`evidence_roles` lists it).
    #[serde(flatten)]
    pub alert: &'a Alert,
    /// Roles of the evidence images stored with it.
    pub evidence_roles: Vec<&'a str>,
}

/// What waits for the hook.
#[derive(Debug)]
enum Queued {
    /// A new alert: agent, alert without its evidence bytes, evidence roles.
    Alert(String, Alert, Vec<String>),
    /// A signed audit checkpoint.
    Checkpoint(crate::store::audit::Checkpoint),
}

/// Hands new alerts to the hook thread; dropping it lets the thread finish its queue and end.
#[derive(Debug, Clone)]
pub struct Hook {
    tx: SyncSender<Queued>,
    metrics: Arc<Metrics>,
}

impl Hook {
    /// Starts the hook thread, or returns None when no hook is configured.
    pub fn start(cfg: &AlertsConfig, metrics: Arc<Metrics>) -> Option<Self> {
        if cfg.hook.is_empty() {
            return None;
        }
        let (tx, rx) = sync_channel(cfg.hook_queue);
        let (argv, timeout, m) = (
            cfg.hook.clone(),
            Duration::from_millis(cfg.hook_timeout_ms),
            metrics.clone(),
        );
        std::thread::Builder::new()
            .name("alert-hook".into())
            .spawn(move || run(rx, &argv, timeout, &m))
            .map_err(|e| warn!(error = %e, "alert hook thread did not start"))
            .ok()?;
        Some(Self { tx, metrics })
    }

    /// Queues a new alert for the hook (its evidence bytes are dropped here); counted and
    /// skipped when the queue is full.
    pub fn send(&self, agent: &str, alert: &Alert) {
        let roles = alert.evidence.iter().map(|e| e.role.clone()).collect();
        let a = Alert {
            evidence: Vec::new(),
            ..alert.clone()
        };
        match self.tx.try_send(Queued::Alert(agent.to_string(), a, roles)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                inc(&self.metrics.hook_skipped);
                warn!(agent, alert = %alert.alert_id, "alert hook queue full: alert not passed to the hook");
            }
        }
    }

    /// Queues a signed audit checkpoint for the hook (`audit.checkpoint_hook`); counted and
    /// skipped when the queue is full (it is stored and logged all the same).
    pub fn send_checkpoint(&self, c: &crate::store::audit::Checkpoint) {
        if self.tx.try_send(Queued::Checkpoint(c.clone())).is_err() {
            inc(&self.metrics.hook_skipped);
            warn!(
                entries = c.entries,
                "alert hook queue full: audit checkpoint not passed to the hook"
            );
        }
    }
}

fn run(rx: Receiver<Queued>, argv: &[String], timeout: Duration, m: &Metrics) {
    while let Ok(q) = rx.recv() {
        inc(&m.hook_runs);
        match q {
            Queued::Alert(agent, alert, roles) => {
                match run_one(argv, timeout, &agent, &alert, &roles) {
                    Ok(()) => info!(agent, alert = %alert.alert_id, "alert hook ran"),
                    Err(e) => {
                        inc(&m.hook_failures);
                        warn!(agent, alert = %alert.alert_id, error = %e, "alert hook failed");
                    }
                }
            }
            Queued::Checkpoint(c) => {
                let json = serde_json::to_vec(&c).unwrap_or_default();
                match spawn_wait(
                    argv,
                    timeout,
                    &[("SHARPEYES_EVENT", "audit_checkpoint")],
                    &json,
                ) {
                    Ok(()) => info!(entries = c.entries, "alert hook took the audit checkpoint"),
                    Err(e) => {
                        inc(&m.hook_failures);
                        warn!(entries = c.entries, error = %e, "alert hook failed on the audit checkpoint");
                    }
                }
            }
        }
    }
}

fn run_one(
    argv: &[String],
    timeout: Duration,
    agent: &str,
    alert: &Alert,
    roles: &[String],
) -> Result<(), String> {
    let json = serde_json::to_vec(&HookAlert {
        agent,
        alert,
        evidence_roles: roles.iter().map(String::as_str).collect(),
    })
    .map_err(|e| e.to_string())?;
    spawn_wait(
        argv,
        timeout,
        &[
            ("SHARPEYES_EVENT", "alert"),
            ("SHARPEYES_ALERT_AGENT", agent),
            ("SHARPEYES_ALERT_ID", &alert.alert_id),
            ("SHARPEYES_ALERT_KIND", alert.kind.as_str()),
            ("SHARPEYES_ALERT_PRIORITY", alert.priority.as_str()),
            ("SHARPEYES_ALERT_CAMERA", &alert.camera),
            ("SHARPEYES_ALERT_SUMMARY", &alert.summary),
        ],
        &json,
    )
}

/// Runs the hook with `env`, `json` on its standard input; killed after `timeout`.
fn spawn_wait(
    argv: &[String],
    timeout: Duration,
    env: &[(&str, &str)],
    json: &[u8],
) -> Result<(), String> {
    let mut cmd = Command::new(&argv[0]);
    // Its own process group, so a timeout kills what it started too (a shell's children).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .args(&argv[1..])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", argv[0]))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(json);
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{:?} exited with {status}", argv[0])),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&child);
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{:?} killed after {timeout:?}", argv[0]));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Kills the process group the hook leads (it was started as its own group leader).
#[cfg(unix)]
fn kill_group(child: &std::process::Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if pid > 1 {
        // SAFETY: kill(2) with a negative pid signals the process group `pid`, which is the
        // hook's own (process_group(0) at spawn); it touches no memory of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_child: &std::process::Child) {}
