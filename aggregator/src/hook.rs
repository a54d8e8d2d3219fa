//! The alert hook: a configured command run once per new alert (an SMS gateway's client, a
//! webhook through curl), one at a time on its own thread so a slow gateway never holds up
//! the store. The alert goes to the command as JSON on standard input; the command is killed
//! when it overruns its time. Runs, failures and skipped alerts are counted.

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

/// An alert waiting for the hook: agent, alert without its evidence bytes, evidence roles.
type Queued = (String, Alert, Vec<String>);

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
        match self.tx.try_send((agent.to_string(), a, roles)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                inc(&self.metrics.hook_skipped);
                warn!(agent, alert = %alert.alert_id, "alert hook queue full: alert not passed to the hook");
            }
        }
    }
}

fn run(rx: Receiver<Queued>, argv: &[String], timeout: Duration, m: &Metrics) {
    while let Ok((agent, alert, roles)) = rx.recv() {
        inc(&m.hook_runs);
        match run_one(argv, timeout, &agent, &alert, &roles) {
            Ok(()) => info!(agent, alert = %alert.alert_id, "alert hook ran"),
            Err(e) => {
                inc(&m.hook_failures);
                warn!(agent, alert = %alert.alert_id, error = %e, "alert hook failed");
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
    let kind = alert.kind.as_str();
    let priority = alert.priority.as_str();
    let mut cmd = Command::new(&argv[0]);
    // Its own process group, so a timeout kills what it started too (a shell's children).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .args(&argv[1..])
        .env("SHARPEYES_ALERT_AGENT", agent)
        .env("SHARPEYES_ALERT_ID", &alert.alert_id)
        .env("SHARPEYES_ALERT_KIND", kind)
        .env("SHARPEYES_ALERT_PRIORITY", priority)
        .env("SHARPEYES_ALERT_CAMERA", &alert.camera)
        .env("SHARPEYES_ALERT_SUMMARY", &alert.summary)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", argv[0]))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(&json);
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
