//! # aggregator
//!
//! Receives the edge agents' payloads over MQTT (an embedded rumqttd broker by default, or
//! an external broker), checks and deduplicates them, and stores them in SQLite or PostgreSQL ([`store`]); fuses the
//! tracks of every camera into vehicles, persons and person–vehicle links ([`fuse`], stored
//! with the messages); answers queries (`aggregator tracks`, `trajectory`, `links`,
//! `sightings`, `search-face` through [`facesearch`]); enrolls watchlists and publishes them to the agents ([`watchlist`]); serves the analysts' HTTP API (`/api/v1` on `api.listen`: bearer tokens with roles, purposes, rate limits, a hash-chained audit log, a live alert stream; [`api`]). [`run`] is the whole service; `main.rs` only parses the command line.

pub mod api;
pub mod broker;
pub mod config;
pub mod facesearch;
pub mod hook;
pub mod metrics;
pub mod pki;
pub mod query;
pub mod service;
pub mod sitetime;
pub mod store;
pub mod subscribe;
pub mod watchlist;
pub mod web;
pub mod witness;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::AsyncClient;
use sharpeyes_wire::{Codec, Topics};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use crate::config::AggregatorConfig;
use crate::config::ConfigFile;
use crate::metrics::{Metrics, get};
use crate::store::Store;

/// Why the aggregator could not run.
#[derive(Debug, Error)]
pub enum AggregatorError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The CA file of an external TLS broker cannot be used.
    #[error("broker.ca_file: {0}")]
    Tls(#[from] sharpeyes_common::tls::TlsError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// A secret (broker password, PostgreSQL URL) cannot be read.
    #[error(transparent)]
    Secret(#[from] sharpeyes_common::secret::SecretError),
    /// A thread or task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Runs the aggregator until `shutdown`.
pub async fn run(
    config: AggregatorConfig,
    shutdown: CancellationToken,
) -> Result<(), AggregatorError> {
    run_with_metrics(config, shutdown, Arc::new(Metrics::default())).await
}

/// [`run`], counting into `metrics` (tests and benchmarks read them).
pub async fn run_with_metrics(
    config: AggregatorConfig,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
) -> Result<(), AggregatorError> {
    config.validate()?;
    let at = config.store.location()?;
    // The fuser is made when this writer is, or becomes, the fusion owner: from the store's
    // next ids, with the identities of the last `fusion.restore_hours` rebuilt from the store
    // (so a takeover continues the previous owner's vehicles and persons); the catalog is
    // checked now.
    let catalog = config.camera_catalog()?;
    fusion::Fuser::new(config.fusion.clone(), catalog.clone())?;
    let new_fuser: subscribe::NewFuser = {
        let fusion = config.fusion.clone();
        let metrics = metrics.clone();
        Box::new(move |store: &Store| {
            let (v, p) = store.fusion_next_ids()?;
            let mut f = fusion::Fuser::new(fusion.clone(), catalog.clone())
                .map_err(|e| store::StoreError::Internal(e.to_string()))?
                .with_next_ids(v, p);
            restore_fusion(store, &mut f, &metrics)
                .map_err(|e| store::StoreError::Internal(format!("fusion restore: {e}")))?;
            Ok(f)
        })
    };
    // The store is synchronous (the PostgreSQL client runs a runtime of its own, which may
    // not be started from an async thread): opened, prepared and claimed off the async
    // threads. Become the fusion owner (SQLite: always) and rebuild its identities before the
    // first message; on PostgreSQL another aggregator may own fusion, and this one keeps
    // trying.
    // The live face index loads on a thread of its own (searches answer "loading" until
    // then), started once the store exists (a fresh database is created by `open_at`); the
    // writer hands it what fusion commits.
    let live = config.face_search.live_index.then(|| {
        let f = &config.face_search;
        let every = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        facesearch::live::LiveConfig {
            store: at.clone(),
            snapshot: f.snapshot_file(&at),
            model: config.fusion.persons.embedding_model.clone(),
            dim: config.fusion.persons.embedding_dim,
            threads: f.scan_threads(),
            snapshot_every: every(f.snapshot_interval_s),
            refresh_every: every(f.refresh_s),
        }
    });
    let (store, fusion, faces) = {
        let (at, cameras, metrics) = (at.clone(), config.cameras.clone(), metrics.clone());
        let synchronous = config.store.sqlite_synchronous;
        tokio::task::spawn_blocking(move || -> Result<_, AggregatorError> {
            let mut store = Store::open_at(&at)?;
            store.set_sqlite_synchronous(synchronous)?;
            store.sync_cameras(&cameras)?;
            store.create_partitions_ahead(sharpeyes_wire::now_ms(), 2)?;
            let faces = match live {
                Some(cfg) => Some(facesearch::LiveFaces::start(cfg, metrics.clone())?),
                None => None,
            };
            let mut fusion = subscribe::FusionStage::new(new_fuser).with_faces(faces.clone());
            fusion.claim(&store, &metrics);
            Ok((store, fusion, faces))
        })
        .await
        .map_err(|e| AggregatorError::Internal(format!("opening the store: {e}")))??
    };
    let _ops = sharpeyes_common::ops::start(&config.ops, config::OPS_PORT, metrics.clone()).await;
    let events = api::alert_events();
    let api_stop = shutdown.child_token();
    let _api_guard = api_stop.clone().drop_guard();
    api::start(
        &config,
        metrics.clone(),
        events.clone(),
        faces.clone(),
        api_stop,
    )
    .await;
    let embedded = if config.broker.embedded() {
        Some(broker::start(&config.broker, metrics.clone(), shutdown.clone()).await?)
    } else {
        None
    };
    let (client, eventloop) =
        AsyncClient::new(subscribe::mqtt_options(&config, embedded.as_ref())?, 1024);
    let (tx, rx) = mpsc::channel(config.ingest.queue);
    // Cancelled when the writer thread dies: everything stops, and `run` reports it.
    let writer_died = shutdown.child_token();
    let hook = hook::Hook::start(&config.alerts, metrics.clone());
    // Signed audit checkpoints: periodically, and a last one once everything that audits
    // has stopped (`audit_done`, below).
    let audit_done = CancellationToken::new();
    let checkpoints = {
        let c = witness::Checkpointer {
            cfg: config.audit.clone(),
            at: at.clone(),
            hook: hook.clone(),
            metrics: metrics.clone(),
        };
        let done = audit_done.clone();
        tokio::spawn(async move {
            if let Err(e) = c.run(done).await {
                tracing::error!(error = %e, "audit checkpoints are off: the audit log is not anchored");
            }
        })
    };
    let writer = {
        let writer = subscribe::Writer {
            store,
            client: client.clone(),
            topics: Topics::new(&config.broker.topic_prefix),
            codec: Codec::default().with_max_values(config.ingest.max_values),
            metrics: metrics.clone(),
            max_batch: config.store.max_batch,
            runtime: tokio::runtime::Handle::current(),
            shutdown: shutdown.clone(),
            hook,
            ingest: config.ingest.clone(),
            events: Some(events.clone()),
            fusion,
            retention: config.store.retention(),
            retention_every: Duration::from_secs(config.store.retention_interval_s),
            client_id: config.broker.client_id.clone(),
        };
        let died = writer_died.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx, died))
            .map_err(|e| AggregatorError::Internal(e.to_string()))?
    };
    info!(
        store = %at.describe(),
        embedded_broker = config.broker.embedded(),
        placed_cameras = config.cameras.len(),
        "aggregator started"
    );
    // systemd (Type=notify): ready now; the watchdog is pinged while the writer loop turns.
    let _serving = sharpeyes_common::notify::serving(
        &format!("storing to {}", at.describe()),
        metrics.heartbeat.clone(),
        shutdown.clone(),
    );
    let stats = {
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => log_stats(&metrics),
                }
            }
        })
    };
    let publisher = tokio::spawn(watchlist::publish_loop(
        watchlist::Publisher {
            store_at: at.clone(),
            client: client.clone(),
            topic: Topics::new(&config.broker.topic_prefix).watchlists(),
            agent: config.broker.client_id.clone(),
            poll: Duration::from_millis(config.watchlist.publish_poll_ms),
            max_payload: config.broker.max_payload_bytes,
            metrics: metrics.clone(),
        },
        shutdown.clone(),
    ));
    // The subscribe loop ends on shutdown; it drops the writer's channel, so the writer drains
    // what it has, commits, acknowledges and exits.
    let (txc, stop_sub) = (tx.clone(), writer_died.clone());
    drop(tx);
    let sub = tokio::spawn(subscribe::subscribe_loop(
        config.clone(),
        client,
        eventloop,
        txc,
        metrics.clone(),
        stop_sub,
    ));
    let _ = sub.await;
    let joined = tokio::task::spawn_blocking(move || writer.join()).await;
    // Everything committed is in the face index now: its last snapshot.
    if let Some(f) = faces {
        let _ = tokio::task::spawn_blocking(move || f.stop()).await;
    }
    audit_done.cancel();
    let _ = checkpoints.await;
    stats.abort();
    publisher.abort();
    log_stats(&metrics);
    match joined {
        Ok(Ok(())) if !writer_died.is_cancelled() || shutdown.is_cancelled() => Ok(()),
        Ok(Ok(())) => Err(AggregatorError::Internal(
            "the store writer stopped unexpectedly; restart the aggregator".into(),
        )),
        Ok(Err(panic)) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(AggregatorError::Internal(format!(
                "the store writer thread died ({why}); nothing after its last commit was \
                 acknowledged, so restarting the aggregator loses nothing"
            )))
        }
        Err(e) => Err(AggregatorError::Internal(format!(
            "waiting for the store writer: {e}"
        ))),
    }
}

/// Rebuilds the identities seen within `fusion.restore_hours` from the store into `fuser`
/// (see `fusion::restore`); logs and counts what came back and how long it took.
pub fn restore_fusion(
    store: &Store,
    fuser: &mut fusion::Fuser,
    metrics: &Metrics,
) -> Result<fusion::RestoreStats, AggregatorError> {
    let hours = fuser.config().restore_hours;
    if hours == 0 {
        info!("fusion restore off (fusion.restore_hours = 0)");
        return Ok(fusion::RestoreStats::default());
    }
    let t0 = std::time::Instant::now();
    let since_ms =
        sharpeyes_wire::now_ms().saturating_sub((hours as i64).saturating_mul(3_600_000));
    let snap = store.fusion_snapshot(since_ms, fuser.config().memory.max_sightings)?;
    let st = fuser.restore(snap);
    let us = t0.elapsed().as_micros() as u64;
    metrics
        .fusion_restore_us
        .store(us, std::sync::atomic::Ordering::Relaxed);
    for (k, n) in [
        ("vehicles", st.vehicles),
        ("persons", st.persons),
        ("representatives", st.representatives),
        ("aliases", st.aliases),
        ("links", st.links),
        ("sightings", st.sightings),
    ] {
        metrics.fusion_restored.add(k, n as u64);
    }
    info!(
        restore_hours = hours,
        vehicles = st.vehicles,
        persons = st.persons,
        representatives = st.representatives,
        faces_skipped = st.faces_skipped,
        aliases = st.aliases,
        links = st.links,
        sightings = st.sightings,
        identities_skipped = st.identities_skipped,
        ms = us / 1000,
        "fusion identities restored from the store"
    );
    Ok(st)
}

fn log_stats(m: &Metrics) {
    info!(
        received = get(&m.received),
        stored = get(&m.stored),
        duplicates = get(&m.duplicates),
        rejected = ?m.rejected.snapshot(),
        refused = ?m.refused.snapshot(),
        store_errors = get(&m.store_errors),
        fusion = ?m.fusion.snapshot(),
        "aggregator counters"
    );
}
