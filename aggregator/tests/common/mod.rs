//! What the aggregator's integration tests share.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; whether it held.
pub async fn wait(timeout: Duration, cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Runs the aggregator in this process and waits (up to 20 s) for its three subscriptions:
/// its task, the token that stops it, its counters.
pub async fn start(
    cfg: aggregator::AggregatorConfig,
) -> (
    tokio::task::JoinHandle<Result<(), aggregator::AggregatorError>>,
    tokio_util::sync::CancellationToken,
    std::sync::Arc<aggregator::metrics::Metrics>,
) {
    use aggregator::metrics::{Metrics, get};
    let metrics = std::sync::Arc::new(Metrics::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(aggregator::run_with_metrics(
        cfg,
        stop.clone(),
        metrics.clone(),
    ));
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.subscribed) >= 3).await,
        "aggregator did not subscribe within 20 s"
    );
    (task, stop, metrics)
}

/// An MQTT client of the broker on 127.0.0.1:`port`, its event loop driven in the background.
pub fn client(port: u16) -> rumqttc::AsyncClient {
    let (client, mut el) =
        rumqttc::AsyncClient::new(rumqttc::MqttOptions::new("tester", "127.0.0.1", port), 100);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    client
}
pub mod http;
pub mod pg;
