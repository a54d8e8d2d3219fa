//! Street → district bridging on Mosquitto, with the shipped `configs/mosquitto/street.conf`,
//! `district.conf`, `acl` and `district.acl` (only paths, ports and the bridge's password
//! substituted): two real Mosquitto brokers, each with its own CA, TLS, passwords and ACL. A
//! real edge agent analyses a live RTSP camera (the demo clip, replayed) and publishes to the
//! street broker; the street broker's bridge forwards to the district broker, where the real
//! aggregator stores; the watchlists and the acknowledgements come back down the bridge.
//!
//! Between the two brokers runs a TCP relay that the test cuts for two minutes while the
//! agent keeps publishing: from then on every byte either way is dropped and new connections
//! hang, as on a dead network path, so each broker notices only by its keep-alive. Meanwhile a
//! wanted plate is enrolled at the aggregator. After the link is restored every track batch
//! and alert the agent produced must be stored exactly once (0 lost, 0 duplicated; the
//! copies that crossed the bridge more than once are only recognised), and the watchlist
//! change must reach the agent through the bridge, and its status come back up.
//! `SHARPEYES_BRIDGE_OUTAGE_S` sets the cut's length (default 120).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aggregator::broker::passwd;
use aggregator::metrics::get;
use aggregator::store::{AlertFilter, Store};
use aggregator::watchlist::enroll_plate;
use edge_agent::config::{AgentConfig, CameraConfig, PublishConfig};
use sharpeyes_e2e::mosquitto::Mosquitto;
use sharpeyes_e2e::rtsp::RtspServer;
use sharpeyes_e2e::{
    DEMO_WANTED_PLATE, demo_clip, free_port, models_config, mosquitto_aggregator_config,
    scrape_metric, start_aggregator, workspace_root,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The street's site id: the agent's `site` and the street bridge's user name at the district.
const SITE: &str = "site-1";
const AGENT: &str = "agent-1";
const AGENT_PW: &str = "agent-1-street-secret";
const AGGREGATOR_PW: &str = "aggregator-district-secret";
const BRIDGE_PW: &str = "site-1-district-secret";
/// The plate enrolled while the link is cut (the demo clip's other vehicle).
const PLATE_DURING_CUT: &str = "川A5K2M8";

/// One broker's files: its CA, certificate and key, password file, ACL; its log and
/// persistence go into `dir` too.
struct BrokerFiles {
    dir: PathBuf,
    ca: PathBuf,
}

/// Makes `dir` with a fresh PKI, a password file of `users` and the shipped ACL `acl`.
fn broker_files(dir: &Path, users: &[(&str, &str)], acl: &str) -> BrokerFiles {
    std::fs::create_dir_all(dir).unwrap();
    let pki = aggregator::pki::generate(&dir.join("pki"), &[], false).unwrap();
    for (user, pw) in users {
        passwd::set_password(&dir.join("passwd"), user, pw).unwrap();
    }
    std::fs::copy(
        workspace_root().join("configs/mosquitto").join(acl),
        dir.join(acl),
    )
    .unwrap();
    BrokerFiles {
        dir: dir.to_path_buf(),
        ca: pki.ca_cert,
    }
}

/// A shipped configuration file with each `(from, to)` replaced; every `from` must occur (a
/// changed shipped file fails here instead of testing something else).
fn shipped(name: &str, subs: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(workspace_root().join("configs/mosquitto").join(name))
        .unwrap_or_else(|e| panic!("configs/mosquitto/{name}: {e}"));
    for (from, to) in subs {
        assert!(
            text.contains(from),
            "configs/mosquitto/{name} lacks {from:?}"
        );
        text = text.replace(from, to);
    }
    text
}

/// Starts Mosquitto with the shipped `conf`, its `/etc/sharpeyes/` paths pointed at `files`,
/// listening on 127.0.0.1:`port`, persisting into `files.dir`; `more` substitutions first.
fn start_broker(
    files: &BrokerFiles,
    conf: &str,
    port: u16,
    more: &[(&str, String)],
) -> Result<Mosquitto, String> {
    let mut subs = more.to_vec();
    subs.extend([
        (
            "/etc/sharpeyes/pki/",
            format!("{}/", files.dir.join("pki").display()),
        ),
        ("/etc/sharpeyes/", format!("{}/", files.dir.display())),
        ("listener 8883", format!("listener {port} 127.0.0.1")),
    ]);
    // Debian's main mosquitto.conf says where to persist; here, the test's folder.
    let text = format!(
        "{}\npersistence_location {}/\n",
        shipped(conf, &subs),
        files.dir.display()
    );
    Mosquitto::start_with(&files.dir, port, &text)
}

/// The link between the street broker's bridge and the district broker: a TCP relay on
/// 127.0.0.1 that [`Link::cut`] turns into a black hole (bytes either way dropped, new
/// connections held and never answered) and [`Link::restore`] heals (the connections of
/// before are closed, new ones forwarded).
struct Link {
    port: u16,
    state: watch::Sender<LinkState>,
}

#[derive(Debug, Clone, Copy)]
struct LinkState {
    up: bool,
    /// Bumped by every restore: connections of an older epoch close.
    epoch: u64,
}

impl Link {
    async fn start(to: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (state, rx) = watch::channel(LinkState { up: true, epoch: 0 });
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, to, rx.clone()));
            }
        });
        Ok(Self { port, state })
    }

    fn cut(&self) {
        self.state.send_modify(|s| s.up = false);
    }

    fn restore(&self) {
        self.state.send_modify(|s| {
            s.up = true;
            s.epoch += 1;
        });
    }
}

async fn relay(client: TcpStream, to: u16, state: watch::Receiver<LinkState>) {
    let born = *state.borrow();
    let (from_client, to_client) = client.into_split();
    if !born.up {
        // Held, never answered, until the link is restored.
        let _held = to_client;
        pump(from_client, None, state, born.epoch).await;
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
        return;
    };
    let (from_server, to_server) = server.into_split();
    tokio::join!(
        pump(from_client, Some(to_server), state.clone(), born.epoch),
        pump(from_server, Some(to_client), state, born.epoch),
    );
}

/// Copies `from` to `to` while the link is up, drops what comes while it is down; ends on
/// an end or error while up, and when a restore begins a new epoch.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: Option<OwnedWriteHalf>,
    mut state: watch::Receiver<LinkState>,
    epoch: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut readable = true;
    loop {
        let now = *state.borrow_and_update();
        if now.epoch != epoch {
            return;
        }
        tokio::select! {
            r = from.read(&mut buf), if readable => match r {
                Ok(n) if n > 0 => {
                    if now.up
                        && let Some(w) = to.as_mut()
                        && w.write_all(&buf[..n]).await.is_err()
                    {
                        return;
                    }
                }
                // On a dead path the other side hears nothing of this end.
                _ if !now.up => readable = false,
                _ => return,
            },
            changed = state.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

/// Polls the async `cond` every 200 ms until it holds (true) or `timeout` passes (false).
async fn poll<F: Future<Output = bool>>(timeout: Duration, mut cond: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stored `(agent, seq)` keys of the agent's spooled kinds (track batches and alerts).
fn stored_keys(db: &Path) -> Vec<(String, u64)> {
    let Ok(store) = Store::open(db) else {
        return Vec::new();
    };
    let mut keys = store.message_keys_of("tracks").unwrap_or_default();
    keys.extend(store.message_keys_of("alert").unwrap_or_default());
    keys
}

fn agent_status_version(db: &Path) -> Option<u64> {
    Store::open(db)
        .ok()?
        .agent_status(AGENT)
        .ok()??
        .watchlist_version
}

#[test]
fn street_to_district_bridge_loses_and_duplicates_nothing_across_a_link_cut() {
    let outage = Duration::from_secs(
        std::env::var("SHARPEYES_BRIDGE_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    demo_clip(&clip).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bridged(dir.path(), &clip, outage));
}

async fn bridged(dir: &Path, clip: &Path, outage: Duration) {
    // The district: the aggregator and the street's bridge (user = the site id) log in.
    let district = broker_files(
        &dir.join("district"),
        &[("aggregator", AGGREGATOR_PW), (SITE, BRIDGE_PW)],
        "district.acl",
    );
    let district_port = free_port();
    let district_broker = start_broker(&district, "district.conf", district_port, &[])
        .unwrap_or_else(|e| {
            panic!("district broker: {e}");
        });
    let link = Link::start(district_port).await.unwrap();
    // The street: the agent logs in; the bridge trusts the district's CA.
    let street = broker_files(&dir.join("street"), &[(AGENT, AGENT_PW)], "acl");
    std::fs::copy(&district.ca, street.dir.join("district-ca.pem")).unwrap();
    let street_port = free_port();
    let street_broker = start_broker(
        &street,
        "street.conf",
        street_port,
        &[
            (
                "address district.example.lan:8883",
                format!("address 127.0.0.1:{}", link.port),
            ),
            (
                "REPLACE-WITH-THE-DISTRICT-PASSWORD-OF-site-1",
                BRIDGE_PW.to_string(),
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("street broker: {e}"));
    let logs = || {
        for (name, d) in [("street", &street.dir), ("district", &district.dir)] {
            let log = std::fs::read_to_string(d.join("mosquitto.log")).unwrap_or_default();
            println!("--- {name} broker log (last lines):");
            let lines: Vec<&str> = log.lines().collect();
            for l in &lines[lines.len().saturating_sub(40)..] {
                println!("{l}");
            }
        }
    };

    // The aggregator at the district, with a wanted plate enrolled before it starts.
    let db = dir.join("sharpeyes.db");
    let v1 = {
        let mut store = Store::open(&db).unwrap();
        enroll_plate(&mut store, DEMO_WANTED_PLATE, "stolen")
            .unwrap()
            .1
    };
    let mut agg_cfg = mosquitto_aggregator_config(district_port, &db);
    // An address, not a name: a fresh machine may have no /etc/hosts entry for localhost.
    agg_cfg.broker.url = format!("mqtts://127.0.0.1:{district_port}");
    agg_cfg.broker.ca_file = Some(district.ca.clone());
    agg_cfg.broker.username = Some("aggregator".into());
    agg_cfg.broker.password = Some(AGGREGATOR_PW.into());
    agg_cfg.watchlist.publish_poll_ms = 200;
    let agg = start_aggregator(agg_cfg).await.unwrap();
    let metrics = agg.metrics.clone();

    // The agent at the street, on a live camera (the clip replayed for as long as it runs).
    let server = RtspServer::start(&[("cam-1", clip)]).unwrap();
    let agent_ops = free_port();
    let mut agent_cfg = AgentConfig {
        agent_id: AGENT.into(),
        site: SITE.into(),
        models: models_config(),
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: server.url("cam-1"),
            analysis_fps: 4.0,
            reconnect_min_ms: 200,
            reconnect_max_ms: 1000,
            ..CameraConfig::default()
        }],
        publish: PublishConfig {
            spool_dir: dir.join("spool"),
            status_interval_s: 2,
            ..PublishConfig::default()
        },
        ..AgentConfig::default()
    };
    agent_cfg.broker.port = street_port;
    agent_cfg.broker.tls = true;
    agent_cfg.broker.ca_file = Some(street.ca.clone());
    agent_cfg.broker.username = Some(AGENT.into());
    agent_cfg.broker.password = Some(AGENT_PW.into());
    agent_cfg.broker.reconnect_max_ms = 1000;
    agent_cfg.ops.port = agent_ops;
    let stop = CancellationToken::new();
    let agent = tokio::spawn(edge_agent::run(agent_cfg, stop.clone()));
    let agent_watchlist = || async {
        scrape_metric(agent_ops, "sharpeyes_agent_watchlist_version")
            .await
            .unwrap_or(-1.0)
    };

    // Through the bridge both ways: the watchlist down, status and track batches up.
    let linked = poll(Duration::from_secs(60), || async {
        agent_watchlist().await == v1 as f64
            && agent_status_version(&db) == Some(v1)
            && !stored_keys(&db).is_empty()
    })
    .await;
    if !linked {
        logs();
    }
    assert!(
        linked,
        "within 60 s: agent applies watchlist {} (want {v1}), its status at the aggregator says {:?}, {} batches stored",
        agent_watchlist().await,
        agent_status_version(&db),
        stored_keys(&db).len()
    );

    // The link goes dead while the agent keeps publishing; a plate is enrolled meanwhile.
    let cut_at = Instant::now();
    link.cut();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stored_at_cut = stored_keys(&db).len();
    let v2 = {
        let mut store = Store::open(&db).unwrap();
        enroll_plate(&mut store, PLATE_DURING_CUT, "wanted")
            .unwrap()
            .1
    };
    assert!(
        poll(Duration::from_secs(10), || async {
            get(&metrics.watchlist_version) == v2
        })
        .await,
        "the aggregator did not publish watchlist {v2}"
    );
    tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
    // Nothing crossed: the link was really cut.
    assert_eq!(
        stored_keys(&db).len(),
        stored_at_cut,
        "batches stored while the link was cut"
    );
    assert_eq!(
        agent_watchlist().await,
        v1 as f64,
        "the watchlist crossed a cut link"
    );
    let published_in_cut = scrape_metric(agent_ops, "sharpeyes_agent_spooled_total")
        .await
        .unwrap_or(0.0);
    link.restore();
    let restored_at = Instant::now();

    // The change made during the cut reaches the agent, and its status says so upstream.
    let down = poll(Duration::from_secs(90), || async {
        agent_watchlist().await == v2 as f64 && agent_status_version(&db) == Some(v2)
    })
    .await;
    if !down {
        logs();
    }
    assert!(
        down,
        "within 90 s of the restore: agent applies watchlist {} (want {v2}), its status at the aggregator says {:?}",
        agent_watchlist().await,
        agent_status_version(&db)
    );
    let watchlist_after = restored_at.elapsed();
    // Everything the agent spooled during the cut gets acknowledged through the bridge.
    let drained = poll(Duration::from_secs(90), || async {
        scrape_metric(agent_ops, "sharpeyes_agent_spool_pending").await == Some(0.0)
    })
    .await;
    let drained_after = restored_at.elapsed();
    stop.cancel();
    let summary = agent.await.unwrap().unwrap();
    let produced = summary.spooled;
    let mut keys = Vec::new();
    poll(Duration::from_secs(30), || {
        keys = stored_keys(&db);
        let n = keys.len() as u64;
        async move { n >= produced }
    })
    .await;
    let duplicates = get(&metrics.duplicates);
    agg.shut_down().await.unwrap();
    drop(server);
    drop(street_broker);
    drop(district_broker);

    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    let alerts = Store::open(&db)
        .unwrap()
        .alerts(&AlertFilter::default())
        .unwrap();
    let alert_messages = Store::open(&db)
        .unwrap()
        .message_keys_of("alert")
        .unwrap()
        .len();
    let tracks_stored = keys.len() - alert_messages;
    println!(
        "bridge: published {produced}, stored {}, lost {}, duplicated {}",
        distinct.len(),
        produced.saturating_sub(distinct.len() as u64),
        keys.len() - distinct.len()
    );
    println!(
        "bridge details: {} s cut, {published_in_cut} spooled by its end; {} track batches (mean {} bytes) and {} alert messages ({} alerts) stored; \
         copies recognised by the store {duplicates}, re-sent by the agent {}; watchlist {v2} at the agent {:.1} s and spool empty {:.1} s after the restore",
        outage.as_secs(),
        tracks_stored,
        summary.track_bytes / (tracks_stored.max(1) as u64),
        alert_messages,
        alerts.len(),
        summary.resent,
        watchlist_after.as_secs_f64(),
        drained_after.as_secs_f64(),
    );
    assert!(
        drained,
        "the agent's spool was not emptied within 90 s of the restore"
    );
    assert_eq!(
        summary.spool_pending, 0,
        "the agent left messages unacknowledged: {summary:?}"
    );
    assert!(
        produced > stored_at_cut as u64,
        "the agent published nothing during the cut: {summary:?}"
    );
    assert!(keys.iter().all(|(a, _)| a == AGENT), "{keys:?}");
    assert_eq!(distinct.len(), keys.len(), "a key stored twice");
    assert_eq!(keys.len() as u64, produced, "0 lost, 0 duplicated");
    // The wanted plate's alerts crossed with their evidence intact.
    let wanted: Vec<_> = alerts
        .iter()
        .filter(|a| a.details.get("plate").map(String::as_str) == Some(DEMO_WANTED_PLATE))
        .collect();
    assert!(
        !wanted.is_empty(),
        "no alert for {DEMO_WANTED_PLATE}: {alerts:#?}"
    );
    let (_, jpeg) = Store::open(&db)
        .unwrap()
        .alert_evidence(AGENT, &wanted[0].alert_id, "crop")
        .unwrap()
        .expect("the alert's crop");
    assert!(
        image::load_from_memory(&jpeg).is_ok(),
        "the crop is not an image"
    );
}
