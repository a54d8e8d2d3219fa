//! Face search end to end with real faces: photos of the test identities
//! (`testdata/identities`) are embedded with the agents' face models as enrollment
//! does, fused as face tracks of several cameras into persons (the real `Fuser`), stored with
//! their representative faces, and searched with another photo of one identity: that
//! identity's person comes first. The CLI refuses a photo without a face, naming the problem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use aggregator::config::{ModelsConfig, WatchlistConfig};
use aggregator::store::Store;
use aggregator::watchlist::Enroller;
use fusion::{CameraCatalog, CameraKey, FuseConfig, FuseInput, Fuser, Identity, Observation};
use sharpeyes_core::embedding::EmbeddingRef;
use sharpeyes_wire::{ObjectClass, QBox};

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

/// The photos of an identity, sorted.
fn photos(identity: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata().join("identities").join(identity))
        .expect("identity folder")
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

const T0: i64 = 1_767_000_000_000;

#[test]
fn another_photo_of_a_stored_person_finds_that_person_first() {
    let mut enroller = Enroller::new(&WatchlistConfig {
        models: models(),
        ..WatchlistConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("faces.db")).unwrap();
    let mut fuser = Fuser::new(FuseConfig::default(), CameraCatalog::new()).unwrap();
    // Four photos of each identity seen as face tracks, one a minute, on four cameras; the
    // fifth photo of each is the query.
    let identities = [
        "John_Salley",
        "John_Savage",
        "John_Schneider",
        "deepface_p01",
    ];
    let mut queries: Vec<(&str, Vec<f32>)> = Vec::new();
    let mut persons_of: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut track = 0u64;
    for who in identities {
        let list = photos(who);
        assert!(list.len() >= 5, "{who} has {} photos", list.len());
        for (i, p) in list.iter().take(5).enumerate() {
            let e = enroller.embed_photo(p).unwrap();
            if i == 4 {
                queries.push((who, e));
                continue;
            }
            track += 1;
            let cam = CameraKey::new("site", "gw-1", format!("cam-{}", i + 1));
            let t = T0 + track as i64 * 60_000;
            let o = Observation {
                camera: &cam,
                track,
                class: ObjectClass::Face,
                first_ms: t,
                last_ms: t + 3000,
                ended: true,
                bbox: QBox([1000, 1000, 5000, 9000]),
                score: 0.9,
                embedding: Some(EmbeddingRef::F32(&e)),
                plate: None,
                link: None,
            };
            let out = fuser.update(FuseInput::Observe(o), t + 3000);
            store.apply_fusion(&out).unwrap();
            let Some((Identity::Person(pid), _)) = fuser.identity_of(&cam, track) else {
                panic!("{} of {who} got no person", p.display());
            };
            persons_of.entry(who).or_default().insert(pid.0);
        }
    }
    // Re-clustering may merge the persons of one identity: resolve.
    let out = fuser.update(FuseInput::Tick, T0 + 24 * 3_600_000);
    store.apply_fusion(&out).unwrap();
    for (who, q) in &queries {
        let report = aggregator::facesearch::search_faces(
            &store,
            aggregator::facesearch::FaceSource::Store,
            q,
            "sface_2021dec",
            3,
            -1.0,
            0.363,
            None,
        )
        .unwrap();
        assert!(report.faces >= identities.len(), "{report:?}");
        let first = &report.results[0];
        let mine: BTreeSet<u64> = persons_of[who]
            .iter()
            .map(|p| store.resolve_person(*p).unwrap().unwrap())
            .collect();
        assert!(
            mine.contains(&first.hit.person),
            "{who}: P-{} first (similarity {:.3}), expected one of {mine:?}; {:#?}",
            first.hit.person,
            first.hit.similarity,
            report.results
        );
        assert!(
            first.hit.similarity > 0.363,
            "{who}: {}",
            first.hit.similarity
        );
        assert!(first.matched, "{who}: the same identity is a match");
        assert_eq!(report.threshold, 0.363);
        for r in &report.results {
            assert_eq!(r.matched, r.hit.similarity >= 0.363, "{r:?}");
        }
        let s = first.sightings.expect("sightings");
        assert!(s.sightings >= 1 && s.first_ms >= T0 && s.last_ms >= s.first_ms);
        assert!(first.hit.face.key.camera.starts_with("cam-"));
        // Nobody else's person ranks above it, and the others are less similar.
        for r in &report.results[1..] {
            assert!(r.hit.similarity <= first.hit.similarity);
        }
    }
    // The CLI: without a snapshot it reads every face from the store and says so; with the
    // running aggregator's snapshot (`<db>.faces`) it searches that, brought up to date.
    let db = dir.path().join("faces.db");
    let m = models();
    let config = dir.path().join("aggregator.toml");
    let toml = format!(
        "[store]\npath = {db:?}\n\n[watchlist.models]\ndir = {:?}\nonnxruntime = {:?}\n",
        m.dir, m.onnxruntime
    );
    std::fs::write(&config, toml).unwrap();
    let query = &photos("John_Salley")[4];
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .arg("search-face")
            .arg(query)
            .args(["--config", config.to_str().unwrap(), "--top", "3"])
            .args(extra)
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(out.status.success(), "{e}");
        o
    };
    let salley: BTreeSet<u64> = persons_of["John_Salley"]
        .iter()
        .map(|p| store.resolve_person(*p).unwrap().unwrap())
        .collect();
    let v: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(v["index"], "store", "{v:#}");
    assert!(
        salley.contains(&v["results"][0]["person"].as_u64().unwrap()),
        "{v:#}"
    );
    assert!(run(&[]).contains("index: no usable snapshot"));
    let index = aggregator::facesearch::live::rebuild(&store, "sface_2021dec", 128).unwrap();
    let snap = dir.path().join("faces.db.faces");
    aggregator::facesearch::snapshot::write(&snap, &index, "sface_2021dec", T0).unwrap();
    let v: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(v["index"], "snapshot", "{v:#}");
    assert_eq!(v["faces"].as_u64(), Some(index.len() as u64), "{v:#}");
    assert!(
        salley.contains(&v["results"][0]["person"].as_u64().unwrap()),
        "{v:#}"
    );
    assert!(run(&[]).contains("index: snapshot"));
}

#[test]
fn the_cli_refuses_a_photo_without_a_face_and_searches_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let m = models();
    let db = dir.path().join("agg.db");
    Store::open(&db).unwrap();
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n\n[watchlist.models]\ndir = {:?}\nonnxruntime = {:?}\n",
            db, m.dir, m.onnxruntime
        ),
    )
    .unwrap();
    let run = |photo: &Path, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aggregator"))
            .arg("search-face")
            .arg(photo)
            .args(["--config", config.to_str().unwrap(), "--top", "5"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let coffee = testdata().join("negatives/coffee.png");
    let (ok, _, err) = run(&coffee, &[]);
    assert!(!ok);
    assert!(err.contains("no face found in"), "{err}");
    assert!(err.contains("coffee.png"), "{err}");
    let (ok, _, err) = run(&dir.path().join("missing.jpg"), &[]);
    assert!(!ok);
    assert!(err.contains("cannot read photo"), "{err}");
    let (ok, _, err) = run(&coffee, &["--min-similarity", "2"]);
    assert!(!ok);
    assert!(err.contains("--min-similarity"), "{err}");
    // A good photo against a store without faces: an empty answer, not an error.
    let obama = testdata().join("identities/obama/obama.jpg");
    let (ok, out, err) = run(&obama, &["--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"].as_array().map(Vec::len), Some(0), "{out}");
    assert_eq!(v["dim"], 128);
    let (ok, out, err) = run(&obama, &["--from", "1d"]);
    assert!(ok, "{err}");
    assert!(out.contains("0 person(s)"), "{out}");
}
