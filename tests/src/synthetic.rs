//! The edge agent's real publishing path (disk spool, persisted sequence, MQTT QoS 1,
//! end-to-end acknowledgements, re-sends) fed with synthetic track outputs instead of video,
//! for fault tests that need many messages quickly; and the aggregator as a real process
//! (`aggregator run`) that a test can SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aggregator::AggregatorConfig;
use edge_agent::config::{AgentConfig, CameraConfig};
use edge_agent::metrics::{Metrics, get};
use edge_agent::publish::{self, Analysed, Output, PublishError};
use edge_agent::track::TrackOutput;
use sharpeyes_wire::{ObjectClass, TrackEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An agent without cameras: what it is given goes through its publisher.
pub struct SyntheticAgent {
    input: mpsc::Sender<Analysed>,
    publisher: JoinHandle<Result<(), PublishError>>,
    driver: JoinHandle<()>,
    mqtt_stop: CancellationToken,
    /// Its counters (`spooled`: messages produced; `resent`, `acked`...).
    pub metrics: Arc<Metrics>,
    cameras: usize,
    frames: u64,
}

/// An agent configuration for [`SyntheticAgent`]: `cameras` cameras named `cam-1`...,
/// broker on 127.0.0.1:`port`, spool in `spool`, quick reconnects and re-sends.
pub fn synthetic_agent_config(agent: &str, cameras: usize, port: u16, spool: &Path) -> AgentConfig {
    let mut cfg = AgentConfig {
        agent_id: agent.into(),
        cameras: (1..=cameras)
            .map(|i| CameraConfig {
                id: format!("cam-{i}"),
                uri: "file:///nonexistent.mp4".into(),
                ..CameraConfig::default()
            })
            .collect(),
        ..AgentConfig::default()
    };
    cfg.broker.port = port;
    cfg.broker.reconnect_min_ms = 100;
    cfg.broker.reconnect_max_ms = 500;
    cfg.publish.spool_dir = spool.to_path_buf();
    cfg.publish.batch_interval_ms = 50;
    cfg.publish.status_interval_s = 2;
    cfg.publish.ack_timeout_ms = 1000;
    cfg.ops.enabled = false;
    cfg
}

impl SyntheticAgent {
    /// Starts the publisher and its MQTT event loop (in the current runtime) as if the wall
    /// clock read `clock_ms`.
    pub fn start(cfg: &AgentConfig, clock_ms: i64) -> Result<Self, PublishError> {
        let metrics = Arc::new(Metrics::new(cfg.cameras.iter().map(|c| c.id.as_str())));
        let (publisher, eventloop) = publish::connect_at(cfg, metrics.clone(), clock_ms)?;
        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        let (watch_tx, _watch_rx) = tokio::sync::watch::channel(None);
        let mqtt_stop = CancellationToken::new();
        let driver = tokio::spawn(publish::drive(
            eventloop,
            cfg.clone(),
            metrics.clone(),
            publisher.link(),
            conn_tx,
            watch_tx,
            mqtt_stop.clone(),
        ));
        let (input, rx) = mpsc::channel(256);
        let publisher = tokio::spawn(publish::publish_loop(publisher, rx, conn_rx));
        Ok(Self {
            input,
            publisher,
            driver,
            mqtt_stop,
            metrics,
            cameras: cfg.cameras.len(),
            frames: 0,
        })
    }

    /// One analysed frame on every camera, each with `tracks` track updates (a track starts
    /// on its first frame and updates after), captured at `ts_ms`.
    pub async fn frame(&mut self, ts_ms: i64, tracks: usize) {
        self.frames += 1;
        for camera in 0..self.cameras {
            let outputs = (0..tracks)
                .map(|t| {
                    let x = (self.frames % 100) as f32 * 5.0 + t as f32 * 20.0;
                    Output {
                        class: ObjectClass::Person,
                        track: TrackOutput {
                            track: t as u64 + 1,
                            event: if self.frames == 1 {
                                TrackEvent::Start
                            } else {
                                TrackEvent::Update
                            },
                            ts_ms,
                            bbox: [x, 100.0, x + 40.0, 200.0],
                            score: 0.8,
                            detection: Some(t),
                        },
                        embedding: None,
                        plate: None,
                        link: None,
                        thumb: None,
                    }
                })
                .collect();
            let a = Analysed {
                camera,
                frame_w: 1280,
                frame_h: 720,
                capture_ms: Some(ts_ms),
                outputs,
                alerts: Vec::new(),
            };
            if self.input.send(a).await.is_err() {
                return;
            }
        }
    }

    /// Ends the input: the publisher flushes, waits (up to 10 s) for every acknowledgement,
    /// disconnects; returns `(produced, still in the spool)`.
    pub async fn finish(self) -> anyhow::Result<(u64, u64)> {
        drop(self.input);
        self.publisher.await??;
        self.mqtt_stop.cancel();
        let _ = self.driver.await;
        Ok((get(&self.metrics.spooled), get(&self.metrics.spool_pending)))
    }
}

/// The aggregator as a process (`aggregator run --config`), restartable after a SIGKILL.
pub struct AggregatorProcess {
    config: PathBuf,
    child: Option<Child>,
    ops_port: u16,
    /// `duplicates_total` each finished run reported last.
    duplicates: u64,
}

impl AggregatorProcess {
    /// Writes `cfg` (its ops endpoint moved to a free port, its API off) next to `dir` and
    /// starts it.
    pub fn start(mut cfg: AggregatorConfig, dir: &Path) -> anyhow::Result<Self> {
        let ops_port = crate::free_port();
        cfg.ops.enabled = true;
        cfg.ops.port = ops_port;
        cfg.api.enabled = false;
        let config = dir.join("aggregator.toml");
        std::fs::write(&config, toml::to_string(&cfg)?)?;
        let mut p = Self {
            config,
            child: None,
            ops_port,
            duplicates: 0,
        };
        p.restart()?;
        Ok(p)
    }

    /// Starts it again (after [`kill`](Self::kill)).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let child = Command::new(crate::workspace_bin("aggregator"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Its `sharpeyes_aggregator_duplicates_total` now, if its ops endpoint answers.
    pub async fn duplicates_now(&self) -> Option<u64> {
        let text = crate::http_get(self.ops_port, "/metrics").await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("sharpeyes_aggregator_duplicates_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }

    /// SIGKILLs it; `duplicates` is what it reported last (`duplicates_now` just before).
    pub fn kill(&mut self, duplicates: Option<u64>) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
        self.duplicates += duplicates.unwrap_or(0);
    }

    /// Duplicates recognised by every run so far (a lower bound: what a run recognised
    /// after its last report before a kill is not counted).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The port of its ops endpoint (`/metrics`).
    pub fn ops_port(&self) -> u16 {
        self.ops_port
    }
}

impl Drop for AggregatorProcess {
    fn drop(&mut self) {
        self.kill(None);
    }
}

/// Waits until `db` holds `want` track batches (or `timeout` passes); the keys held.
pub async fn wait_for_batches(db: &Path, want: u64, timeout: Duration) -> Vec<(String, u64)> {
    crate::stored_track_batches(db, timeout, |k| k.len() as u64 >= want)
        .await
        .1
}
