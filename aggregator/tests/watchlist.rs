//! Watchlists end to end: patients and guardians enrolled from real photos of
//! `testdata/` with the agents' face models, bad photos and non-plates refused with
//! messages naming the problem; the running aggregator publishes the watchlist retained on
//! `{prefix}/config/watchlists` (one embedding per photo) and again within seconds of a change
//! made by another process; the CLI enrolls, lists and refuses.

mod common;

use common::wait;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use aggregator::config::{ModelsConfig, WatchlistConfig};
use aggregator::metrics::{Metrics, get};
use aggregator::store::{Contact, Store, StoreError};
use aggregator::watchlist::{self, Enroller, FaceRequest, WatchlistError};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sharpeyes_wire::{Body, Codec, Envelope, FaceRole, Topics, Watchlists};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// SFace's operating threshold (docs/models.md): two photos of one person score above it.
const SAME_PERSON: f32 = 0.363;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The test data (`testdata/` of the checkout, or `$SHARPEYES_TESTDATA`: e.g. a held-out set).
fn testdata() -> PathBuf {
    match std::env::var_os("SHARPEYES_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => root().join("testdata"),
    }
}

fn models() -> ModelsConfig {
    ModelsConfig {
        dir: root().join("models/files"),
        onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: 1,
    }
}

fn watchlist_config() -> WatchlistConfig {
    WatchlistConfig {
        models: models(),
        publish_poll_ms: 200,
        ..WatchlistConfig::default()
    }
}

/// Two photos of one person (the patient).
fn patient_photos() -> Vec<PathBuf> {
    let d = testdata().join("identities/deepface_p01");
    vec![d.join("img1.jpg"), d.join("img4.jpg")]
}

/// A photo of another person (the guardian).
fn guardian_photo() -> PathBuf {
    testdata().join("identities/obama/obama.jpg")
}

fn patient(id: &str, photos: Vec<PathBuf>) -> FaceRequest {
    FaceRequest {
        id: id.into(),
        role: FaceRole::Patient,
        name: "Wang Li".into(),
        photos,
        guardian_of: vec![],
        contacts: vec![Contact {
            name: "daughter".into(),
            phone: "+86 138 0000 0000".into(),
        }],
        consent: Some("CONSENT-2026-0042".into()),
    }
}

fn guardian(id: &str, of: &str) -> FaceRequest {
    FaceRequest {
        id: id.into(),
        role: FaceRole::Guardian,
        name: "Wang Mei".into(),
        photos: vec![guardian_photo()],
        guardian_of: vec![of.into()],
        contacts: vec![],
        consent: None,
    }
}

/// Two face photos side by side, scaled to one height: a photo of two people.
fn two_faces(out: &Path) {
    let h = 600;
    let load = |p: &Path| {
        let img = image::open(p).expect("photo").to_rgb8();
        let w = img.width() * h / img.height();
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
    };
    let (a, b) = (load(&patient_photos()[0]), load(&guardian_photo()));
    let mut both = image::RgbImage::new(a.width() + b.width(), h);
    image::imageops::replace(&mut both, &a, 0, 0);
    image::imageops::replace(&mut both, &b, a.width() as i64, 0);
    both.save(out).expect("saving the composed photo");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn bad_photos_plates_and_links_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("w.db")).unwrap();
    let mut enroller = Enroller::new(&watchlist_config());
    let t0 = Instant::now();

    // A guardian of a patient nobody enrolled: refused before any photo is looked at.
    let e = watchlist::enroll_face(&mut store, &mut enroller, &guardian("G1", "P9")).unwrap_err();
    assert!(
        matches!(&e, WatchlistError::Store(StoreError::UnknownPatient(p)) if p == "P9"),
        "{e}"
    );
    assert!(e.to_string().contains("no enrolled patient \"P9\""), "{e}");

    let refused = |enroller: &mut Enroller, store: &mut Store, photo: &Path| {
        watchlist::enroll_face(store, enroller, &patient("P1", vec![photo.to_path_buf()]))
            .unwrap_err()
    };
    // No face: a scene without people, a plate close-up, a blank picture.
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]))
        .save(&blank)
        .unwrap();
    for photo in [
        testdata().join("negatives/coffee.png"),
        testdata().join("plates/ccpd_demo_0.jpg"),
        blank,
    ] {
        let e = refused(&mut enroller, &mut store, &photo);
        assert!(matches!(e, WatchlistError::NoFace { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("no face found in {}", photo.display())
        );
    }
    // Two people.
    let pair = dir.path().join("pair.jpg");
    two_faces(&pair);
    let e = refused(&mut enroller, &mut store, &pair);
    assert!(
        matches!(e, WatchlistError::SeveralFaces { count: 2, .. }),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "2 faces in {}: crop the photo to one person",
            pair.display()
        )
    );
    // Unreadable: not an image, and no file at all.
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"this is not a JPEG").unwrap();
    for photo in [junk, dir.path().join("missing.jpg")] {
        let e = refused(&mut enroller, &mut store, &photo);
        assert!(matches!(e, WatchlistError::Unreadable { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot read photo {}: ", photo.display())),
            "{msg}"
        );
    }
    // Two different people given as one.
    let e = refused_mixed(&mut enroller, &mut store);
    assert!(matches!(e, WatchlistError::NotSamePerson { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("photos of P1 do not look like the same person"),
        "{e}"
    );
    // The same picture twice (a re-encoded copy).
    let copy = dir.path().join("copy.png");
    image::open(&patient_photos()[0])
        .unwrap()
        .save(&copy)
        .unwrap();
    let photos = vec![patient_photos()[0].clone(), copy.clone()];
    let e = watchlist::enroll_face(&mut store, &mut enroller, &patient("P1", photos)).unwrap_err();
    assert!(matches!(e, WatchlistError::DuplicatePhoto { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{} is the same photo as ", copy.display())),
        "{e}"
    );
    // A patient needs a consent reference.
    let mut no_consent = patient("P1", patient_photos());
    no_consent.consent = None;
    let e = watchlist::enroll_face(&mut store, &mut enroller, &no_consent).unwrap_err();
    assert!(e.to_string().contains("consent"), "{e}");
    // Not plates.
    for text in ["HELLO123", "京A1234", "X A12345"] {
        let e = watchlist::enroll_plate(&mut store, text, "stolen").unwrap_err();
        assert!(matches!(e, WatchlistError::NotAPlate { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{text:?} is not a licence plate: ")),
            "{e}"
        );
    }
    assert_eq!(
        store.watchlist_version().unwrap(),
        0,
        "nothing refused was stored"
    );

    // Small faces far behind the person do not count: three background faces under 40 %
    // of the main face's height.
    let crowded = testdata().join("identities/deepface_p04/img54.jpg");
    let e = enroller.embed_photo(&crowded).unwrap();
    assert_eq!(e.len(), 128);
    println!("refusals checked in {:.1?}", t0.elapsed());
}

fn refused_mixed(enroller: &mut Enroller, store: &mut Store) -> WatchlistError {
    let photos = vec![patient_photos()[0].clone(), guardian_photo()];
    watchlist::enroll_face(store, enroller, &patient("P1", photos)).unwrap_err()
}

/// The next watchlist publish (and whether it came retained), within `timeout`.
async fn next_watchlists(
    rx: &mut mpsc::UnboundedReceiver<(bool, Vec<u8>)>,
    timeout: Duration,
) -> (bool, Envelope, Watchlists) {
    let (retain, payload) = tokio::time::timeout(timeout, rx.recv())
        .await
        .expect("no watchlist published in time")
        .expect("subscriber ended");
    let env = Codec::default()
        .decode(&payload)
        .expect("watchlist decodes");
    let Body::Watchlists(w) = env.body.clone() else {
        panic!("not a watchlist: {env:?}");
    };
    (retain, env, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_watchlist_is_published_retained_and_updated_live() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let t0 = Instant::now();
    {
        let mut store = Store::open(&db).unwrap();
        let mut enroller = Enroller::new(&watchlist_config());
        let p = patient("P1", patient_photos());
        assert_eq!(
            watchlist::enroll_face(&mut store, &mut enroller, &p).unwrap(),
            1
        );
        let g = guardian("G1", "P1");
        assert_eq!(
            watchlist::enroll_face(&mut store, &mut enroller, &g).unwrap(),
            2
        );
        let (plate, v) = watchlist::enroll_plate(&mut store, "京a·12345", "stolen").unwrap();
        assert_eq!((plate.as_str(), v), ("京A12345", 3));
    }
    println!(
        "enrolled 2 faces (3 photos) and a plate in {:.1?}",
        t0.elapsed()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = AggregatorConfig::default();
    cfg.broker.listen = ([127, 0, 0, 1], port).into();
    cfg.store.path = db.clone();
    cfg.ops.enabled = false;
    cfg.watchlist = watchlist_config();
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let agg = tokio::spawn(aggregator::run_with_metrics(
        cfg.clone(),
        stop.clone(),
        metrics.clone(),
    ));
    assert!(
        wait(
            Duration::from_secs(20),
            || get(&metrics.watchlist_published) >= 1
        )
        .await,
        "the watchlist was not published at start"
    );
    assert_eq!(get(&metrics.watchlist_version), 3);

    // An agent connecting afterwards gets it retained.
    let (client, mut el) = AsyncClient::new(MqttOptions::new("agent-1", "127.0.0.1", port), 100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send((p.retain, p.payload.to_vec()));
            }
        }
    });
    let topic = Topics::default().watchlists();
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let (retained, env, w) = next_watchlists(&mut rx, Duration::from_secs(10)).await;
    assert!(retained, "the watchlist must come retained");
    assert_eq!(
        (env.agent.as_str(), env.seq, w.version),
        ("aggregator-1", 3, 3)
    );
    let ids: Vec<_> = w.faces.iter().map(|f| (f.id.as_str(), f.role)).collect();
    assert_eq!(
        ids,
        vec![("P1", FaceRole::Patient), ("G1", FaceRole::Guardian)]
    );
    let (p, g) = (&w.faces[0], &w.faces[1]);
    assert_eq!(p.label, "Wang Li");
    assert_eq!(p.embeddings.len(), 2, "one embedding per photo");
    assert_eq!(g.embeddings.len(), 1);
    assert_eq!(g.guardian_of, vec!["P1".to_string()]);
    for e in p.embeddings.iter().chain(&g.embeddings) {
        assert_eq!(e.len(), 128);
    }
    let (p0, p1) = (p.embeddings[0].dequantize(), p.embeddings[1].dequantize());
    let g0 = g.embeddings[0].dequantize();
    let (same, other) = (cosine(&p0, &p1), cosine(&p0, &g0));
    println!("patient's two photos: similarity {same:.3}; patient vs guardian {other:.3}");
    assert!(same > SAME_PERSON, "{same}");
    assert!(other < SAME_PERSON, "{other}");
    assert_eq!(w.plates.len(), 1);
    assert_eq!(
        (w.plates[0].plate.as_str(), w.plates[0].reason.as_str()),
        ("京A12345", "stolen")
    );

    // A change made through the store while it runs (as the CLI does from another process)
    // goes out within a few seconds.
    let t1 = Instant::now();
    let v = Store::open(&db)
        .unwrap()
        .add_plate("粤BD12345", "hit and run")
        .unwrap();
    assert_eq!(v, 4);
    let (retained, env, w) = next_watchlists(&mut rx, Duration::from_secs(5)).await;
    println!("version 4 arrived {:.0?} after the change", t1.elapsed());
    assert!(!retained, "a live update comes as a plain publish");
    assert_eq!((env.seq, w.version, w.plates.len()), (4, 4, 2));
    assert_eq!(w.faces.len(), 2);

    // Removing the patient takes its only guardian with it.
    let r = Store::open(&db)
        .unwrap()
        .remove_face("P1")
        .unwrap()
        .unwrap();
    assert_eq!(r.guardians_removed, vec!["G1".to_string()]);
    let (_, _, w) = next_watchlists(&mut rx, Duration::from_secs(5)).await;
    assert_eq!((w.version, w.faces.len(), w.plates.len()), (5, 0, 2));
    assert!(
        wait(Duration::from_secs(2), || get(&metrics.watchlist_version)
            == 5)
        .await
    );
    assert_eq!(get(&metrics.watchlist_published), 3);

    stop.cancel();
    agg.await.unwrap().unwrap();
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running aggregator")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_enrolls_lists_removes_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let m = models();
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n\n[watchlist.models]\ndir = {:?}\nonnxruntime = {:?}\n",
            dir.path().join("agg.db"),
            m.dir,
            m.onnxruntime
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let photos = patient_photos();
    let (a, b) = (photos[0].to_str().unwrap(), photos[1].to_str().unwrap());
    let g = guardian_photo();
    let g = g.to_str().unwrap();

    let out = ok(&[
        "enroll",
        "patient",
        "--config",
        cfg,
        "--id",
        "P1",
        "--name",
        "Wang Li",
        "--photo",
        a,
        "--photo",
        b,
        "--consent",
        "CONSENT-7",
        "--contact",
        "daughter:+86 138 0000 0000",
    ]);
    assert_eq!(
        out.trim(),
        "enrolled patient P1 (2 photo(s)); watchlist version 1"
    );
    let out = ok(&[
        "enroll", "guardian", "--config", cfg, "--id", "G1", "--name", "Wang Mei", "--photo", g,
        "--of", "P1",
    ]);
    assert!(out.contains("watchlist version 2"), "{out}");
    let out = ok(&[
        "enroll",
        "plate",
        "--config",
        cfg,
        "--plate",
        "京a·12345",
        "--reason",
        "stolen",
    ]);
    assert_eq!(out.trim(), "plate 京A12345 enrolled; watchlist version 3");

    // Refusals: non-zero exit, the reason on stderr, nothing stored.
    let coffee = testdata().join("negatives/coffee.png");
    let err = refused(&[
        "enroll",
        "patient",
        "--config",
        cfg,
        "--id",
        "P2",
        "--name",
        "X",
        "--photo",
        coffee.to_str().unwrap(),
        "--consent",
        "C",
    ]);
    assert!(
        err.contains(&format!("no face found in {}", coffee.display())),
        "{err}"
    );
    let err = refused(&[
        "enroll", "guardian", "--config", cfg, "--id", "G2", "--name", "X", "--photo", g, "--of",
        "P9",
    ]);
    assert!(err.contains("no enrolled patient \"P9\""), "{err}");
    let err = refused(&[
        "enroll", "plate", "--config", cfg, "--plate", "HELLO", "--reason", "x",
    ]);
    assert!(err.contains("\"HELLO\" is not a licence plate"), "{err}");
    let err = refused(&[
        "enroll",
        "patient",
        "--config",
        cfg,
        "--id",
        "P3",
        "--name",
        "X",
        "--photo",
        a,
        "--consent",
        "C",
        "--contact",
        "no-phone",
    ]);
    assert!(err.contains("expected NAME:PHONE"), "{err}");

    let json = ok(&["watchlist", "--config", cfg, "--json"]);
    assert!(
        !json.contains("embedding") && !json.contains("scale"),
        "{json}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["faces"][0]["id"], "P1");
    assert_eq!(v["faces"][0]["photos"], 2);
    assert_eq!(v["faces"][0]["guardians"][0], "G1");
    assert_eq!(v["faces"][0]["consent"], "CONSENT-7");
    assert_eq!(v["faces"][0]["contacts"][0]["phone"], "+86 138 0000 0000");
    assert_eq!(v["faces"][1]["guardian_of"][0], "P1");
    assert_eq!(v["plates"][0]["plate"], "京A12345");
    let table = ok(&["watchlist", "--config", cfg]);
    assert!(table.starts_with("watchlist version 3"), "{table}");
    assert!(
        table.contains("2 face(s)") && table.contains("1 plate(s)"),
        "{table}"
    );

    let out = ok(&["watchlist", "remove", "P1", "--config", cfg]);
    assert!(out.contains("removed patient P1"), "{out}");
    assert!(out.contains("accompanied nobody else: G1"), "{out}");
    assert!(out.contains("watchlist version 4"), "{out}");
    let out = ok(&["watchlist", "remove-plate", "京A 12345", "--config", cfg]);
    assert!(out.contains("watchlist version 5"), "{out}");
    let err = refused(&["watchlist", "remove", "P1", "--config", cfg]);
    assert!(err.contains("no enrolled face \"P1\""), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["watchlist", "--config", cfg, "--json"])).unwrap();
    assert_eq!(v["version"], 5);
    assert_eq!(v["faces"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["plates"].as_array().map(Vec::len), Some(0));
}
