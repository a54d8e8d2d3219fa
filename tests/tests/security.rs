//! No one in: MQTT over TLS with per-agent passwords and an ACL, on the aggregator's embedded
//! broker (its gate) and on Debian's Mosquitto with the shipped `configs/mosquitto/` files.
//! A real edge-agent analyses a clip and its batches are stored; a wrong password, a plain
//! (non-TLS) client and an agent publishing into another agent's topic are each refused,
//! counted (embedded broker) and nothing of theirs is stored; a payload whose agent id
//! differs from its topic's is rejected by the aggregator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::broker::passwd;
use aggregator::metrics::get;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use sharpeyes_e2e::clip::{Appearance, ClipSpec, default_photos, make_clip};
use sharpeyes_e2e::mosquitto::Mosquitto;
use sharpeyes_e2e::{
    free_port, models_config, start_aggregator, stored_track_batches, testdata_dir, workspace_root,
};
use sharpeyes_wire::{Body, Codec, Envelope, Topics, TrackBatch};
use tokio_util::sync::CancellationToken;

/// The site's secrets: a CA and broker certificate, a password file with the aggregator and
/// two agents, the shipped ACL.
struct Site {
    dir: PathBuf,
    pki: aggregator::pki::Files,
    passwd: PathBuf,
    acl: PathBuf,
}

const AGENT_1_PW: &str = "agent-1-secret";
const AGENT_2_PW: &str = "agent-2-secret";
const AGGREGATOR_PW: &str = "aggregator-secret";

fn site(dir: &Path) -> Site {
    let pki = aggregator::pki::generate(&dir.join("pki"), &[], false).unwrap();
    let passwd = dir.join("passwd");
    for (user, pw) in [
        ("agent-1", AGENT_1_PW),
        ("agent-2", AGENT_2_PW),
        ("aggregator", AGGREGATOR_PW),
    ] {
        passwd::set_password(&passwd, user, pw).unwrap();
    }
    let acl = dir.join("acl");
    std::fs::copy(workspace_root().join("configs/mosquitto/acl"), &acl).unwrap();
    Site {
        dir: dir.to_path_buf(),
        pki,
        passwd,
        acl,
    }
}

/// How a connection attempt ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Connected, published, and the broker acknowledged.
    Acked,
    /// The broker answered CONNACK with this refusal.
    Refused(ConnectReturnCode),
    /// The connection failed or was closed (TLS failure, ACL disconnect...).
    Dropped(String),
}

/// Connects as `user` (TLS when `tls`), publishes `payload` to `topic` with QoS 1 and reports
/// how it went, within 10 s.
async fn publish_once(
    port: u16,
    site: &Site,
    tls: bool,
    user: &str,
    password: &str,
    topic: &str,
    payload: Vec<u8>,
) -> Outcome {
    // A client id of the user's own: the embedded broker's gate refuses others.
    let mut o = MqttOptions::new(format!("{user}-test-{}", free_port()), "127.0.0.1", port);
    o.set_credentials(user, password);
    o.set_keep_alive(Duration::from_secs(5));
    if tls {
        o.set_transport(sharpeyes_common::tls::mqtt_transport(Some(&site.pki.ca_cert)).unwrap());
    }
    let (client, mut eventloop) = AsyncClient::new(o, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) if a.code != ConnectReturnCode::Success => {
                    return Outcome::Refused(a.code);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => return Outcome::Acked,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    return Outcome::Refused(code);
                }
                Err(e) => return Outcome::Dropped(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Outcome::Dropped("timed out".into()));
    let _ = client.disconnect().await;
    outcome
}

/// A real track batch as agent `agent` would send it (`seq` is its idempotency key).
fn batch(agent: &str, seq: u64) -> Vec<u8> {
    let env = Envelope::new(
        agent,
        seq,
        sharpeyes_wire::now_ms(),
        Body::Tracks(TrackBatch {
            site: "site-a".into(),
            camera: "cam-1".into(),
            frame_w: 1280,
            frame_h: 720,
            from_ms: sharpeyes_wire::now_ms() - 500,
            to_ms: sharpeyes_wire::now_ms(),
            frames: 5,
            updates: vec![],
        }),
    );
    Codec::default().encode(&env).unwrap()
}

fn tracks_topic(agent: &str) -> String {
    Topics::default().tracks("site-a", agent, "cam-1")
}

/// Runs a real edge-agent over a short clip, publishing over TLS as `agent-1`; the number of
/// track batches it produced (all acknowledged).
async fn run_real_agent(site: &Site, port: u16) -> u64 {
    let clip = site.dir.join("clip.mp4");
    let photo = default_photos(&testdata_dir()).remove(0);
    let spec = ClipSpec {
        width: 640,
        height: 360,
        fps: 25,
        duration_s: 3.0,
        face_px: 80,
        speed_px_s: 30.0,
        appearances: vec![Appearance {
            photo,
            start_s: 0.3,
            end_s: 2.7,
        }],
        plates: Vec::new(),
        background: None,
    };
    let c = clip.clone();
    tokio::task::spawn_blocking(move || make_clip(&spec, &c, &models_config()))
        .await
        .unwrap()
        .unwrap();
    let cfg = AgentConfig {
        agent_id: "agent-1".into(),
        site: "site-a".into(),
        models: models_config(),
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: format!("file://{}", clip.display()),
            analysis_fps: 5.0,
            at_end: AtEnd::Stop,
            ..CameraConfig::default()
        }],
        broker: edge_agent::config::BrokerConfig {
            port,
            tls: true,
            ca_file: Some(site.pki.ca_cert.clone()),
            username: Some("agent-1".into()),
            password: Some(AGENT_1_PW.into()),
            ..Default::default()
        },
        publish: edge_agent::config::PublishConfig {
            spool_dir: site.dir.join("spool"),
            ..Default::default()
        },
        ..AgentConfig::default()
    };
    let stop = CancellationToken::new();
    let guard = stop.clone();
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        guard.cancel();
    });
    let summary = edge_agent::run(cfg, stop).await.unwrap();
    watchdog.abort();
    println!("agent: {summary:?}");
    assert!(
        summary.track_updates > 0,
        "the clip has a face: {summary:?}"
    );
    assert_eq!(
        summary.spool_pending, 0,
        "everything acknowledged: {summary:?}"
    );
    summary.spooled
}

/// The refusals every broker must make, then one legitimate batch from agent-2 as a marker:
/// once it is stored, anything the refused clients sent would have been too.
async fn check_refusals(site: &Site, port: u16, db: &Path) {
    let wrong_password = publish_once(
        port,
        site,
        true,
        "agent-2",
        "guess",
        &tracks_topic("agent-2"),
        batch("agent-2", 100),
    )
    .await;
    assert!(
        matches!(
            wrong_password,
            Outcome::Refused(ConnectReturnCode::BadUserNamePassword)
                | Outcome::Refused(ConnectReturnCode::NotAuthorized)
        ),
        "wrong password: {wrong_password:?}"
    );
    let plain = publish_once(
        port,
        site,
        false,
        "agent-2",
        AGENT_2_PW,
        &tracks_topic("agent-2"),
        batch("agent-2", 101),
    )
    .await;
    assert!(matches!(plain, Outcome::Dropped(_)), "no TLS: {plain:?}");
    // agent-2 writes into agent-1's topic (with agent-1's id in the payload, so the
    // aggregator's topic/payload check alone would not catch it).
    let intruder = publish_once(
        port,
        site,
        true,
        "agent-2",
        AGENT_2_PW,
        &tracks_topic("agent-1"),
        batch("agent-1", 1_000_000),
    )
    .await;
    println!("intruder: {intruder:?}");
    // Mosquitto acknowledges and drops (MQTT 3.1.1 has no refusal for a publish); the gate
    // disconnects. Either way nothing may be stored, checked below.
    assert_ne!(intruder, Outcome::Refused(ConnectReturnCode::Success));
    // agent-2 in its own topic but claiming to be agent-1: the aggregator rejects it.
    let forged = publish_once(
        port,
        site,
        true,
        "agent-2",
        AGENT_2_PW,
        &tracks_topic("agent-2"),
        batch("agent-1", 2_000_000),
    )
    .await;
    assert_eq!(
        forged,
        Outcome::Acked,
        "the broker lets agent-2 use its topic"
    );
    let marker = publish_once(
        port,
        site,
        true,
        "agent-2",
        AGENT_2_PW,
        &tracks_topic("agent-2"),
        batch("agent-2", 7),
    )
    .await;
    assert_eq!(marker, Outcome::Acked);
    let (held, keys) = stored_track_batches(db, Duration::from_secs(20), |k| {
        k.contains(&("agent-2".to_string(), 7))
    })
    .await;
    assert!(held, "agent-2's legitimate batch not stored: {keys:?}");
    let agent2: Vec<_> = keys.iter().filter(|(a, _)| a == "agent-2").collect();
    assert_eq!(agent2, vec![&("agent-2".to_string(), 7)], "{keys:?}");
    for refused in [1_000_000, 2_000_000] {
        assert!(
            !keys.contains(&("agent-1".to_string(), refused)),
            "a refused batch was stored: {keys:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_gate_refuses_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let port = free_port();
    let db = dir.path().join("sharpeyes.db");
    let mut cfg = aggregator::AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.broker.tls_cert = Some(site.pki.server_cert.clone());
    cfg.broker.tls_key = Some(site.pki.server_key.clone());
    cfg.broker.password_file = Some(site.passwd.clone());
    cfg.broker.acl_file = Some(site.acl.clone());
    cfg.store.path = db.clone();
    cfg.ops.enabled = false;
    let agg = start_aggregator(cfg).await.unwrap();

    let produced = run_real_agent(&site, port).await;
    assert!(produced > 0);
    let (held, keys) = stored_track_batches(&db, Duration::from_secs(20), |k| {
        k.iter().filter(|(a, _)| a == "agent-1").count() as u64 == produced
    })
    .await;
    assert!(held, "the agent's batches were not stored: {keys:?}");

    check_refusals(&site, port, &db).await;
    let refused = agg.metrics.refused.snapshot();
    let rejected = agg.metrics.rejected.snapshot();
    println!("refused {refused:?}, rejected {rejected:?}");
    assert_eq!(refused.get("bad_credentials"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("tls"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("acl_publish"), Some(&1), "{refused:?}");
    assert_eq!(rejected.get("agent_mismatch"), Some(&1), "{rejected:?}");
    assert!(get(&agg.metrics.gate_connections) >= 4);
    agg.shut_down().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_with_the_shipped_configuration_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    // Mosquitto's own tool writes a password Mosquitto and the gate both accept.
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&site.passwd)
        .args(["agent-3", "agent-3-secret"])
        .status()
        .expect("mosquitto_passwd (scripts/setup.sh installs mosquitto)");
    assert!(status.success());
    let users = passwd::PasswordFile::load(&site.passwd).unwrap();
    assert!(users.verify("agent-3", "agent-3-secret") && users.verify("agent-1", AGENT_1_PW));

    // The shipped configuration, its paths pointed at this test's files.
    let port = free_port();
    let conf = std::fs::read_to_string(workspace_root().join("configs/mosquitto/sharpeyes.conf"))
        .unwrap()
        .replace(
            "/etc/sharpeyes/pki/",
            &format!("{}/", site.pki.ca_cert.parent().unwrap().display()),
        )
        .replace("/etc/sharpeyes/", &format!("{}/", site.dir.display()))
        .replace("listener 8883", &format!("listener {port} 127.0.0.1"))
        .replace("persistence true", "persistence false");
    let broker = Mosquitto::start_with(&site.dir, port, &conf).unwrap();

    let db = dir.path().join("sharpeyes.db");
    let mut cfg = sharpeyes_e2e::mosquitto_aggregator_config(port, &db);
    // An address, not a name: a fresh machine may have no /etc/hosts entry for localhost.
    cfg.broker.url = format!("mqtts://127.0.0.1:{port}");
    cfg.broker.ca_file = Some(site.pki.ca_cert.clone());
    cfg.broker.username = Some("aggregator".into());
    cfg.broker.password = Some(AGGREGATOR_PW.into());
    let agg = start_aggregator(cfg).await.unwrap();

    let ok = publish_once(
        port,
        &site,
        true,
        "agent-3",
        "agent-3-secret",
        &tracks_topic("agent-3"),
        batch("agent-3", 1),
    )
    .await;
    assert_eq!(ok, Outcome::Acked);
    check_refusals(&site, port, &db).await;
    let rejected = agg.metrics.rejected.snapshot();
    assert_eq!(rejected.get("agent_mismatch"), Some(&1), "{rejected:?}");
    let (_, keys) = stored_track_batches(&db, Duration::from_secs(5), |k| {
        k.contains(&("agent-3".to_string(), 1))
    })
    .await;
    assert!(keys.contains(&("agent-3".to_string(), 1)), "{keys:?}");
    agg.shut_down().await.unwrap();
    drop(broker);
}
