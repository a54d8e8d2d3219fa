//! Poison never blocks (issue "Field-hard ingestion", item 1), on SQLite and PostgreSQL,
//! through the embedded broker:
//! - the hostile sequence (a NaN score, negative and far-future times, a NUL in the site,
//!   a box outside its frame, an amplification payload), each followed by a good batch: every
//!   good batch is stored, each hostile one is rejected with its typed reason and counted,
//!   and no store transaction fails;
//! - a message the store itself refuses (a trigger an operator added, standing for any
//!   reason of the store's own) goes to the dead letters with its raw bytes; the good
//!   messages around it are stored; `aggregator dead-letters` lists it and, after the fix,
//!   `aggregator replay ID` has the running aggregator store it;
//! - the database going away (PostgreSQL stopped) is a store-wide failure: nothing is
//!   acknowledged or dead-lettered meanwhile, and once it is back every batch is stored.

mod common;

use common::pg::TempPostgres;
use common::{free_port, start, wait};

use std::process::Command;
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::config::StoreBackend;
use aggregator::metrics::get;
use aggregator::store::Store;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use sharpeyes_wire::{
    Body, Codec, Envelope, ObjectClass, QBox, Topics, TrackBatch, TrackEvent, TrackUpdate,
};

fn batch(seq: u64, camera: &str, track: u64, ts: i64) -> Envelope {
    Envelope::new(
        "agent-1",
        seq,
        ts,
        Body::Tracks(TrackBatch {
            site: "西湖".into(),
            camera: camera.into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: ts,
            to_ms: ts,
            frames: 1,
            updates: vec![TrackUpdate {
                track,
                class: ObjectClass::Person,
                event: TrackEvent::Start,
                ts_ms: ts,
                bbox: QBox::from_pixels([100.0, 100.0, 160.0, 300.0], 1920, 1080),
                score: 0.9,
                embedding: None,
                plate: None,
                link: None,
                thumb: None,
            }],
        }),
    )
}

fn tracks_of(b: &mut Envelope) -> &mut TrackBatch {
    match &mut b.body {
        Body::Tracks(t) => t,
        _ => unreachable!(),
    }
}

/// A 1920×1080 store config on the embedded broker at `port`.
fn config(port: u16, backend: &Backend) -> AggregatorConfig {
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.ops.enabled = false;
    cfg.api.enabled = false;
    match backend {
        Backend::Sqlite(path) => cfg.store.path = path.clone(),
        Backend::Postgres(url) => {
            cfg.store.backend = StoreBackend::Postgres;
            cfg.store.postgres_url = Some(url.clone().into());
            // Its default snapshot would go to the working directory (the package's
            // source folder under cargo test); the SQLite runs keep the index on.
            cfg.face_search.live_index = false;
        }
    }
    cfg
}

enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Backend {
    fn db_arg(&self) -> String {
        match self {
            Backend::Sqlite(p) => p.display().to_string(),
            Backend::Postgres(u) => u.clone(),
        }
    }

    /// Opens the store (call it inside [`blocking`]).
    fn open(&self) -> Store {
        match self {
            Backend::Sqlite(p) => Store::open(p).unwrap(),
            Backend::Postgres(u) => Store::open_postgres(u).unwrap(),
        }
    }

    /// The stored messages' sequence numbers.
    fn message_seqs(&self) -> Vec<u64> {
        blocking(|| {
            self.open()
                .message_keys()
                .unwrap()
                .into_iter()
                .map(|k| k.1)
                .collect()
        })
    }

    /// Runs `sql` on the database (an operator's change behind the aggregator's back).
    fn exec(&self, sql: &str) {
        blocking(|| match self {
            Backend::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Backend::Postgres(u) => postgres::Client::connect(u, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        })
    }
}

/// Runs blocking code (the synchronous PostgreSQL client, a child process) from an async
/// test without stalling its runtime (the client may not be used on an async thread).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn mqtt(port: u16) -> AsyncClient {
    let mut o = MqttOptions::new("poison-tester", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 100);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    client
}

/// A payload whose zstd body is a few kB and whose MessagePack holds millions of values.
fn amplification(seq: u64) -> Vec<u8> {
    // [v, agent, seq, sent_ms, {"tracks": [site, camera, w, h, from, to, frames, [ ...updates ]]}]
    let mut body = vec![0x95u8, 0x01, 0xa7];
    body.extend_from_slice(b"agent-1");
    body.push(0xcf);
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(&[0x00, 0x81, 0xa6]);
    body.extend_from_slice(b"tracks");
    body.extend_from_slice(&[0x98, 0xa1, b's', 0xa1, b'c', 0x01, 0x01, 0x00, 0x00, 0x01]);
    let n: u32 = 1_000_000;
    body.push(0xdd);
    body.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        // [track, class, event, ts, box, score]: 1 + 1 + 2 + 2 + 1 + 5 + 1 bytes
        body.extend_from_slice(&[
            0x96, 0x01, 0xa1, b'x', 0xa1, b'y', 0x00, 0x94, 0, 0, 0, 0, 0x00,
        ]);
    }
    let z = zstd::bulk::compress(&body, 19).unwrap();
    let mut p = sharpeyes_wire::MAGIC.to_vec();
    p.extend_from_slice(&[sharpeyes_wire::SCHEMA_VERSION, 1, 0, 0, 0, 0]);
    p.extend_from_slice(&z);
    p
}

async fn hostile_sequence(backend: Backend) {
    let port = free_port();
    let cfg = config(port, &backend);
    let (task, stop, metrics) = start(cfg).await;
    let client = mqtt(port);
    let codec = Codec::default();
    let topic = Topics::default().tracks("西湖", "agent-1", "cam-1");
    let now = sharpeyes_wire::now_ms();
    let seq = std::cell::Cell::new(0u64);
    let mut good = Vec::new();
    let next = |f: &dyn Fn(&mut Envelope)| {
        seq.set(seq.get() + 1);
        let s = seq.get();
        let mut e = batch(s, "cam-1", s, now - 1000 + s as i64);
        f(&mut e);
        codec.encode(&e).unwrap()
    };
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid_number",
            next(&|e| tracks_of(e).updates[0].score = f32::NAN),
        ),
        (
            "invalid_time",
            next(&|e| tracks_of(e).updates[0].ts_ms = -86_400_001),
        ),
        (
            "invalid_time",
            next(&|e| tracks_of(e).updates[0].ts_ms = i64::MAX - 1),
        ),
        (
            "invalid_text",
            next(&|e| tracks_of(e).site = "西\0湖".into()),
        ),
        (
            "invalid_box",
            next(&|e| tracks_of(e).updates[0].bbox = QBox([60_000, 100, 200, 300])),
        ),
        ("too_complex", amplification(1000)),
    ];
    assert!(
        hostile[5].1.len() < 64 * 1024,
        "the amplification payload is small on the wire ({} bytes)",
        hostile[5].1.len()
    );
    let mut sent = 0u64;
    for (_, payload) in &hostile {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
        let g = next(&|_| {});
        good.push(seq.get());
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, g)
            .await
            .unwrap();
        sent += 2;
    }
    assert!(
        wait(Duration::from_secs(30), || get(&metrics.acked) >= sent).await,
        "acked {} of {sent}; stored {}, rejected {:?}, store errors {}",
        get(&metrics.acked),
        get(&metrics.stored),
        metrics.rejected.snapshot(),
        get(&metrics.store_errors)
    );
    let rejected = metrics.rejected.snapshot();
    println!("rejected: {rejected:?}");
    for (reason, _) in &hostile {
        assert!(
            rejected.get(reason).copied().unwrap_or(0) >= 1,
            "no {reason} in {rejected:?}"
        );
    }
    assert_eq!(metrics.rejected.total(), hostile.len() as u64);
    assert_eq!(get(&metrics.stored), good.len() as u64);
    assert_eq!(get(&metrics.store_errors), 0, "no transaction failed");
    assert_eq!(get(&metrics.dead_lettered), 0);
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut keys = backend.message_seqs();
    keys.sort();
    assert_eq!(keys, good, "every good batch stored, nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sequence_never_blocks_good_batches_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    hostile_sequence(Backend::Sqlite(dir.path().join("agg.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sequence_never_blocks_good_batches_postgres() {
    let pg = blocking(TempPostgres::start);
    let url = blocking(|| pg.database("poison"));
    hostile_sequence(Backend::Postgres(url)).await;
    blocking(move || drop(pg));
}

const SQLITE_TRIGGER: &str = "CREATE TRIGGER refuse_cam_x BEFORE INSERT ON tracks
    WHEN NEW.camera = 'cam-x' BEGIN SELECT RAISE(ABORT, 'cam-x is refused by the operator'); END;";
const SQLITE_UNTRIGGER: &str = "DROP TRIGGER refuse_cam_x;";
const PG_TRIGGER: &str = "CREATE FUNCTION refuse_cam_x() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.camera = 'cam-x' THEN
      RAISE EXCEPTION 'cam-x is refused by the operator' USING ERRCODE = 'check_violation';
    END IF; RETURN NEW; END $$;
    CREATE TRIGGER refuse_cam_x BEFORE INSERT ON tracks FOR EACH ROW EXECUTE FUNCTION refuse_cam_x();";
const PG_UNTRIGGER: &str = "DROP TRIGGER refuse_cam_x ON tracks;";

fn cli(args: &[&str]) -> std::process::Output {
    blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .args(args)
            .output()
            .unwrap()
    })
}

async fn dead_letter_and_replay(backend: Backend, trigger: &str, untrigger: &str) {
    let port = free_port();
    let cfg = config(port, &backend);
    let (task, stop, metrics) = start(cfg).await;
    backend.exec(trigger);
    let client = mqtt(port);
    let codec = Codec::default();
    let t = Topics::default();
    let now = sharpeyes_wire::now_ms();
    let sends = [
        (1, "cam-1"),
        (2, "cam-x"), // refused by the store
        (3, "cam-1"),
    ];
    for (seq, cam) in sends {
        let p = codec
            .encode(&batch(seq, cam, seq, now - 5000 + seq as i64))
            .unwrap();
        client
            .publish(t.tracks("西湖", "agent-1", cam), QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
    assert!(
        wait(Duration::from_secs(30), || get(&metrics.acked) >= 3).await,
        "acked {}; stored {}, dead letters {}",
        get(&metrics.acked),
        get(&metrics.stored),
        get(&metrics.dead_lettered)
    );
    assert_eq!(get(&metrics.stored), 2);
    assert_eq!(get(&metrics.dead_lettered), 1);
    let db = backend.db_arg();
    let out = cli(&["dead-letters", "--json", "--db", &db]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["agent"], "agent-1");
    assert_eq!(rows[0]["seq"], 2);
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("cam-x is refused by the operator"),
        "{rows:?}"
    );
    let id = rows[0]["id"].as_u64().unwrap().to_string();
    // The raw payload was kept: it decodes to the message sent.
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("dead.bin");
    let out = cli(&[
        "dead-letters",
        "--id",
        &id,
        "--out",
        raw.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = codec.decode(&std::fs::read(&raw).unwrap()).unwrap();
    assert_eq!(
        (env.seq, tracks_of(&mut env.clone()).camera.clone()),
        (2, "cam-x".to_string())
    );
    // Still refused: a replay reports it and the letter stays.
    let out = cli(&["replay", &id, "--db", &db]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused again"));
    // Fixed: the replay stores it, through the running aggregator.
    backend.exec(untrigger);
    let out = cli(&["replay", &id, "--db", &db]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("replayed: stored"));
    assert_eq!(get(&metrics.replayed), 1);
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(blocking(|| backend.open().dead_letter_count().unwrap()), 0);
    let mut keys = backend.message_seqs();
    keys.sort();
    assert_eq!(keys, vec![1, 2, 3]);
    let out = cli(&["dead-letters", "--db", &db]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no dead letters"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_store_refuses_is_dead_lettered_and_replayed_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    dead_letter_and_replay(
        Backend::Sqlite(dir.path().join("agg.db")),
        SQLITE_TRIGGER,
        SQLITE_UNTRIGGER,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_store_refuses_is_dead_lettered_and_replayed_postgres() {
    let pg = blocking(TempPostgres::start);
    let url = blocking(|| pg.database("deadletters"));
    dead_letter_and_replay(Backend::Postgres(url), PG_TRIGGER, PG_UNTRIGGER).await;
    blocking(move || drop(pg));
}

/// PostgreSQL stops under the running aggregator: the batches sent meanwhile are neither
/// acknowledged nor dead-lettered; once it is back, every one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_retried_and_loses_nothing() {
    let mut pg = blocking(TempPostgres::start);
    let url = blocking(|| pg.database("outage"));
    let port = free_port();
    let mut cfg = config(port, &Backend::Postgres(url.clone()));
    cfg.ingest.retry_max_ms = 2000;
    let (task, stop, metrics) = start(cfg).await;
    let client = mqtt(port);
    let codec = Codec::default();
    let topic = Topics::default().tracks("西湖", "agent-1", "cam-1");
    let now = sharpeyes_wire::now_ms();
    let send = |seq: u64| {
        codec
            .encode(&batch(seq, "cam-1", seq, now + seq as i64))
            .unwrap()
    };
    client
        .publish(topic.clone(), QoS::AtLeastOnce, false, send(1))
        .await
        .unwrap();
    assert!(wait(Duration::from_secs(20), || get(&metrics.stored) >= 1).await);
    blocking(|| pg.stop());
    for seq in 2..=6 {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, send(seq))
            .await
            .unwrap();
    }
    assert!(
        wait(Duration::from_secs(20), || get(&metrics.store_errors) >= 2).await,
        "the writer retries"
    );
    assert_eq!(
        get(&metrics.acked),
        1,
        "nothing acknowledged while the store is down"
    );
    assert_eq!(
        get(&metrics.dead_lettered),
        0,
        "a store-wide failure is no message's fault"
    );
    blocking(|| pg.restart());
    assert!(
        wait(Duration::from_secs(30), || get(&metrics.acked) >= 6).await,
        "stored {}, acknowledged {} after the database came back",
        get(&metrics.stored),
        get(&metrics.acked)
    );
    assert_eq!(
        get(&metrics.stored),
        6,
        "duplicates {}, dead letters {}, store errors {}",
        get(&metrics.duplicates),
        get(&metrics.dead_lettered),
        get(&metrics.store_errors)
    );
    stop.cancel();
    task.await.unwrap().unwrap();
    let keys = blocking(|| Store::open_postgres(&url).unwrap().message_keys().unwrap());
    assert_eq!(keys.len(), 6);
    blocking(move || drop(pg));
}
