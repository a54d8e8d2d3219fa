//! Writes the seed corpora `fuzz/seeds/<target>/`, the zstd dictionary `fuzz/dict/payload.zdict`
//! and the AFL++ token dictionaries `fuzz/dict/<target>.dict`, all from the project's real types:
//! envelopes like the agents and the aggregator send (track batches with face embeddings and
//! plate readings, alerts with JPEG evidence, status, last will, watchlists) encoded with the
//! real `Codec`, and the example configs plus the configs the tests write.
//!
//! `scripts/fuzz.sh --seeds` runs it (`cargo afl run --release --bin gen_seeds`); it is
//! deterministic, so rerunning it changes files only when the types or the configs changed.
//! Seed name prefixes are what the regression tests check: `payload-*` decode as they are,
//! `dict-payload-*` decode with the dictionary, `body-*` decode behind a header, `topic-*` parse;
//! `ok-*` configs load, `bad-*` configs are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use aggregator::config::AggregatorConfig;
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use sharpeyes_fuzz::{Codecs, PAYLOAD_DICT_ID};
use sharpeyes_wire::{
    AgentStatus, Alert, AlertKind, Body, CameraStatus, Codec, Dictionary, Envelope, Evidence,
    FaceEntry, FaceRole, ObjectClass, PlateEntry, PlateReading, Priority, QBox, QEmbedding,
    TrackBatch, TrackEvent, TrackUpdate, Watchlists,
};

const T0: i64 = 1_763_900_000_000;
const MAX_SEED: usize = 50 << 10;

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = fuzz
        .parent()
        .expect("fuzz/ is in the repository")
        .to_path_buf();
    let seeds = fuzz.join("seeds");

    let wire = fresh(&seeds.join("wire_decode"));
    let envs = envelopes();
    let codec = Codec::default();
    for (name, env) in &envs {
        write(
            &wire,
            &format!("payload-{name}.bin"),
            &codec.encode(env).unwrap(),
        );
    }
    // The agents encode with `publish.zstd_level` (1..=19).
    let (_, first) = &envs[0];
    for level in [1, 19] {
        let p = Codec::new(level).encode(first).unwrap();
        write(&wire, &format!("payload-tracks-level{level}.bin"), &p);
    }
    for (name, env) in envs.iter().filter(|(n, _)| !n.starts_with("alert")) {
        write(
            &wire,
            &format!("body-{name}.msgpack"),
            &Codec::body_bytes(env).unwrap(),
        );
    }

    // A dictionary trained on many such bodies (sequence numbers and times vary as they do).
    let samples: Vec<Vec<u8>> = (0..400u64)
        .map(|i| {
            let (_, env) = &envs[i as usize % envs.len()];
            let mut env = env.clone();
            env.seq += i;
            env.sent_ms += 500 * i as i64;
            Codec::body_bytes(&env).unwrap()
        })
        .collect();
    let dict = Dictionary::train(PAYLOAD_DICT_ID, &samples, 4096).expect("training");
    fs::write(fuzz.join("dict/payload.zdict"), dict.bytes()).unwrap();
    let with_dict = Codec::default().with_dictionary(dict);
    for (name, env) in envs.iter().filter(|(n, _)| n.starts_with("tracks")) {
        write(
            &wire,
            &format!("dict-payload-{name}.bin"),
            &with_dict.encode(env).unwrap(),
        );
    }

    let topics = sharpeyes_wire::Topics::default();
    for (name, topic) in [
        (
            "tracks",
            topics.tracks("nanshan-xili", "agent-7", "gate-east"),
        ),
        (
            "alerts",
            topics.alerts("nanshan-xili", "agent-7", "gate-east"),
        ),
        ("status", topics.status("nanshan-xili", "agent-7")),
        ("watchlists", topics.watchlists()),
    ] {
        write(&wire, &format!("topic-{name}.txt"), topic.as_bytes());
    }
    token_dict(&fuzz.join("dict/wire_decode.dict"), wire_tokens(&envs));

    let agent = fresh(&seeds.join("agent_config"));
    for (name, text) in agent_configs(&root) {
        write(&agent, &name, text.as_bytes());
    }
    token_dict(
        &fuzz.join("dict/agent_config.dict"),
        toml_tokens(edge_agent::config::DEFAULT_CONFIG_TOML),
    );

    let agg = fresh(&seeds.join("aggregator_config"));
    for (name, text) in aggregator_configs(&root) {
        write(&agg, &name, text.as_bytes());
    }
    token_dict(
        &fuzz.join("dict/aggregator_config.dict"),
        toml_tokens(aggregator::config::DEFAULT_CONFIG_TOML),
    );

    check(&seeds);
}

/// Runs every seed through its target's checks (with the dictionary just written, so this
/// binary's built-in copy is not used) and checks the name conventions.
fn check(seeds: &Path) {
    let dict = Dictionary::new(
        PAYLOAD_DICT_ID,
        fs::read(seeds.join("../dict/payload.zdict")).unwrap(),
    )
    .unwrap();
    let codecs = Codecs {
        plain: Codec::default(),
        with_dict: Codec::default().knowing(dict),
    };
    let mut n = 0;
    for (path, data) in files(&seeds.join("wire_decode")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        sharpeyes_fuzz::wire_decode(&codecs, &data);
        let ok = if name.starts_with("payload-") {
            codecs.plain.decode(&data).is_ok()
        } else if name.starts_with("dict-payload-") {
            codecs.with_dict.decode(&data).is_ok()
        } else if name.starts_with("body-") {
            let p = sharpeyes_fuzz::payload_of_body(&data);
            codecs.plain.decode(&p).is_ok()
        } else {
            let t = std::str::from_utf8(&data).unwrap();
            sharpeyes_wire::Topics::default().parse(t).is_ok()
        };
        assert!(ok, "seed {name} does not decode");
        n += 1;
    }
    for (target, load) in [
        ("agent_config", load_agent as fn(&[u8]) -> bool),
        ("aggregator_config", load_aggregator),
    ] {
        for (path, data) in files(&seeds.join(target)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                load(&data),
                name.starts_with("ok-"),
                "{target} seed {name} (ok-* must load, bad-* must be refused)"
            );
            n += 1;
        }
    }
    println!("{n} seeds written to {} and checked", seeds.display());
}

fn load_agent(data: &[u8]) -> bool {
    sharpeyes_fuzz::agent_config(data).is_some()
}

fn load_aggregator(data: &[u8]) -> bool {
    sharpeyes_fuzz::aggregator_config(data).is_some()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let d = fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    v.sort();
    v
}

fn fresh(dir: &Path) -> PathBuf {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    dir.to_path_buf()
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    assert!(data.len() < MAX_SEED, "seed {name} is {} bytes", data.len());
    fs::write(dir.join(name), data).unwrap();
}

/// A unit vector like SFace's 128-d output, different per `who`.
fn embedding(who: u32) -> QEmbedding {
    let v: Vec<f32> = (0..128)
        .map(|i| (i as f32 * 0.37 + who as f32 * 1.3).sin() + 0.1 * (i as f32 * 0.11).cos())
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    QEmbedding::quantize(&v.iter().map(|x| x / n).collect::<Vec<_>>())
}

/// A small JPEG (the agents send the object crop and a downscaled frame).
fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8 ^ seed,
            (y * 255 / h) as u8,
            ((x + y) as u8).wrapping_mul(seed | 1),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75)
        .encode_image(&img)
        .unwrap();
    out
}

fn update(
    track: u64,
    class: ObjectClass,
    event: TrackEvent,
    ts_ms: i64,
    px: [f32; 4],
) -> TrackUpdate {
    TrackUpdate {
        track,
        class,
        event,
        ts_ms,
        bbox: QBox::from_pixels(px, 1920, 1080),
        score: 0.83,
        embedding: None,
        plate: None,
        link: None,
        thumb: None,
    }
}

fn batch(camera: &str, from_ms: i64, frames: u32, updates: Vec<TrackUpdate>) -> Body {
    Body::Tracks(TrackBatch {
        site: "nanshan-xili".into(),
        camera: camera.into(),
        frame_w: 1920,
        frame_h: 1080,
        from_ms,
        to_ms: from_ms + 480,
        frames,
        updates,
    })
}

fn envelopes() -> Vec<(&'static str, Envelope)> {
    let env = |seq, body| Envelope::new("agent-7", seq, T0 + 500 * seq as i64, body);
    let mut face = update(
        12,
        ObjectClass::Face,
        TrackEvent::Start,
        T0,
        [812.0, 301.0, 851.0, 352.0],
    );
    face.embedding = Some(embedding(1));
    face.link = Some(11);
    let mut person = update(
        11,
        ObjectClass::Person,
        TrackEvent::Update,
        T0,
        [760.0, 280.0, 905.0, 720.0],
    );
    person.link = Some(12);
    let mut car = update(
        31,
        ObjectClass::Car,
        TrackEvent::Update,
        T0 + 40,
        [1200.0, 600.0, 1650.0, 900.0],
    );
    car.plate = Some(PlateReading {
        text: "粤B12345".into(),
        confidence: 0.93,
    });
    car.link = Some(32);
    let mut plate = update(
        32,
        ObjectClass::Plate,
        TrackEvent::Update,
        T0 + 40,
        [1380.0, 820.0, 1470.0, 850.0],
    );
    plate.plate = car.plate.clone();
    plate.link = Some(31);
    let mut ended = update(
        9,
        ObjectClass::Truck,
        TrackEvent::End,
        T0 + 80,
        [0.0, 500.0, 420.0, 1079.0],
    );
    ended.score = 0.71;
    let bike = update(
        40,
        ObjectClass::Bicycle,
        TrackEvent::Start,
        T0 + 80,
        [300.0, 600.0, 420.0, 760.0],
    );
    let moto = update(
        41,
        ObjectClass::Motorcycle,
        TrackEvent::Update,
        T0 + 80,
        [500.0, 620.0, 600.0, 800.0],
    );
    let bus = update(
        42,
        ObjectClass::Bus,
        TrackEvent::Update,
        T0 + 80,
        [20.0, 200.0, 900.0, 900.0],
    );

    let mut counters = BTreeMap::new();
    counters.insert("published".to_string(), 1834);
    counters.insert("publish_failed".to_string(), 2);
    counters.insert("spooled".to_string(), 17);
    let camera = |id: &str, state: &str| CameraStatus {
        id: id.into(),
        state: state.into(),
        frames_decoded: 90_412,
        frames_analysed: 18_080,
        frames_dropped: 3,
        reconnects: 1,
    };
    let mut loiter_details = BTreeMap::new();
    loiter_details.insert("zone".to_string(), "bus-stop".to_string());
    loiter_details.insert("dwell_s".to_string(), "312".to_string());
    let mut face_details = BTreeMap::new();
    face_details.insert("watchlist_id".to_string(), "p-0042".to_string());
    face_details.insert("similarity".to_string(), "0.612".to_string());
    face_details.insert("guardian_seen".to_string(), "false".to_string());

    vec![
        (
            "tracks-people",
            env(
                1,
                batch("gate-east", T0, 12, vec![person.clone(), face.clone()]),
            ),
        ),
        (
            "tracks-vehicles",
            env(
                2,
                batch(
                    "gate-east",
                    T0 + 500,
                    12,
                    vec![car.clone(), plate, ended.clone(), bike, moto, bus],
                ),
            ),
        ),
        (
            "tracks-end-only",
            env(3, batch("lane-2", T0 + 1000, 0, vec![ended])),
        ),
        (
            "tracks-empty",
            env(4, batch("lane-2", T0 + 1500, 12, vec![])),
        ),
        (
            "alert-face",
            env(
                5,
                Body::Alert(Alert {
                    site: "nanshan-xili".into(),
                    camera: "gate-east".into(),
                    alert_id: "agent-7-a-0005".into(),
                    kind: AlertKind::FaceWatchlist,
                    priority: Priority::High,
                    ts_ms: T0 + 2000,
                    track: Some(12),
                    summary: "Watchlisted patient W. seen alone at gate-east".into(),
                    details: face_details,
                    evidence: vec![
                        Evidence {
                            role: "crop".into(),
                            mime: "image/jpeg".into(),
                            data: jpeg(48, 64, 3),
                        },
                        Evidence {
                            role: "frame".into(),
                            mime: "image/jpeg".into(),
                            data: jpeg(160, 90, 9),
                        },
                    ],
                }),
            ),
        ),
        (
            "alert-loitering",
            env(
                6,
                Body::Alert(Alert {
                    site: "nanshan-xili".into(),
                    camera: "lane-2".into(),
                    alert_id: "agent-7-a-0006".into(),
                    kind: AlertKind::Loitering,
                    priority: Priority::Normal,
                    ts_ms: T0 + 2500,
                    track: Some(11),
                    summary: "Person in zone bus-stop for 312 s".into(),
                    details: loiter_details,
                    evidence: vec![],
                }),
            ),
        ),
        (
            "alert-plate",
            env(
                7,
                Body::Alert(Alert {
                    site: "nanshan-xili".into(),
                    camera: "gate-east".into(),
                    alert_id: "agent-7-a-0007".into(),
                    kind: AlertKind::PlateWatchlist,
                    priority: Priority::Low,
                    ts_ms: T0 + 3000,
                    track: None,
                    summary: "Plate 粤B12345 (stolen)".into(),
                    details: BTreeMap::new(),
                    evidence: vec![Evidence {
                        role: "crop".into(),
                        mime: "image/jpeg".into(),
                        data: jpeg(64, 24, 5),
                    }],
                }),
            ),
        ),
        (
            "status-online",
            env(
                8,
                Body::Status(AgentStatus {
                    site: "nanshan-xili".into(),
                    online: true,
                    version: "0.1.0".into(),
                    started_ms: T0 - 3_600_000,
                    cameras: vec![
                        camera("gate-east", "playing"),
                        camera("lane-2", "reconnecting"),
                    ],
                    watchlist_version: Some(3),
                    counters,
                }),
            ),
        ),
        (
            "status-last-will",
            env(
                9,
                Body::Status(AgentStatus {
                    site: "nanshan-xili".into(),
                    online: false,
                    version: "0.1.0".into(),
                    started_ms: 0,
                    cameras: vec![],
                    watchlist_version: None,
                    counters: BTreeMap::new(),
                }),
            ),
        ),
        (
            "watchlists",
            Envelope::new(
                "aggregator-1",
                3,
                T0,
                Body::Watchlists(Watchlists {
                    version: 3,
                    faces: vec![
                        FaceEntry {
                            id: "p-0042".into(),
                            label: "W. (patient)".into(),
                            role: FaceRole::Patient,
                            guardian_of: vec![],
                            embeddings: vec![embedding(1), embedding(2)],
                        },
                        FaceEntry {
                            id: "g-0007".into(),
                            label: "L. (daughter)".into(),
                            role: FaceRole::Guardian,
                            guardian_of: vec!["p-0042".into()],
                            embeddings: vec![embedding(5)],
                        },
                    ],
                    plates: vec![
                        PlateEntry {
                            plate: "粤B12345".into(),
                            reason: "stolen".into(),
                        },
                        PlateEntry {
                            plate: "京A0C9D8".into(),
                            reason: "wanted".into(),
                        },
                    ],
                }),
            ),
        ),
        // Best shots (`TrackUpdate::thumb`): a person and its face share the face's JPEG, a
        // car carries its own.
        (
            "tracks-best-shots",
            env(
                12,
                batch(
                    "gate-east",
                    T0 + 6000,
                    12,
                    [(person, "face", 7), (face, "face", 7), (car, "vehicle", 9)]
                        .into_iter()
                        .map(|(mut u, role, seed)| {
                            u.thumb = Some(Evidence {
                                role: role.into(),
                                mime: "image/jpeg".into(),
                                data: jpeg(48, 64, seed),
                            });
                            u
                        })
                        .collect(),
                ),
            ),
        ),
    ]
}

/// MessagePack keys and enum names of the envelopes (from their JSON form), plus the header.
fn wire_tokens(envs: &[(&str, Envelope)]) -> BTreeSet<Vec<u8>> {
    fn keys(v: &serde_json::Value, out: &mut BTreeSet<Vec<u8>>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.as_bytes().to_vec());
                    keys(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            serde_json::Value::String(s) if s.len() <= 16 && !s.contains(' ') => {
                out.insert(s.as_bytes().to_vec());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for (_, env) in envs {
        keys(&serde_json::to_value(env).unwrap(), &mut out);
    }
    for c in ObjectClass::ALL {
        out.insert(c.as_str().as_bytes().to_vec());
    }
    for s in [
        "low",
        "normal",
        "high",
        "patient",
        "guardian",
        "loitering",
        "plate_watchlist",
    ] {
        out.insert(s.as_bytes().to_vec());
    }
    out.insert(b"SE\x01\x01".to_vec());
    out.insert(b"SE\x01\x01\x00\x00\x00\x00".to_vec());
    out.insert(b"SE\x01\x01\x01\x00\x00\x00".to_vec());
    out.insert(b"\x28\xb5\x2f\xfd".to_vec());
    out.insert(b"sharpeyes/v1/".to_vec());
    out.insert(b"/tracks".to_vec());
    out.insert(b"/alerts".to_vec());
    out.insert(b"/status".to_vec());
    out.insert(b"config/watchlists".to_vec());
    out
}

/// Keys, table headers and enum values of a commented TOML config, plus TOML syntax.
fn toml_tokens(text: &str) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if line.starts_with('[') && line.ends_with(']') && !line.contains(' ') {
            out.insert(line.as_bytes().to_vec());
        } else if let Some((k, _)) = line.split_once(" = ")
            && !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            out.insert(format!("{k} = ").into_bytes());
        }
    }
    for t in [
        "true",
        "false",
        "\"",
        "'",
        "'''",
        "\"\"\"",
        "[[",
        "]]",
        "{",
        "}",
        " = ",
        "\n",
        ",",
        "inf",
        "nan",
        "-",
        "1e9",
        "0x",
        "1979-05-27T07:32:00Z",
        "\\u",
        "auto",
        "stop",
        "restart",
        "rtsp://",
        "file:///",
        "mqtt://",
        "tcp://",
        "[::1]:1883",
    ] {
        out.insert(t.as_bytes().to_vec());
    }
    out
}

fn token_dict(path: &Path, tokens: BTreeSet<Vec<u8>>) {
    let mut s = String::from("# AFL++ tokens; written by gen_seeds (fuzz/src/bin/gen_seeds.rs).\n");
    for (i, t) in tokens.iter().enumerate() {
        let escaped: String = t
            .iter()
            .map(|&b| match b {
                b'"' | b'\\' => format!("\\{}", b as char),
                0x20..=0x7e => (b as char).to_string(),
                _ => format!("\\x{b:02x}"),
            })
            .collect();
        s.push_str(&format!("t{i}=\"{escaped}\"\n"));
    }
    fs::write(path, s).unwrap();
}

fn agent_configs(root: &Path) -> Vec<(String, String)> {
    let mut v = vec![(
        "ok-example-edge-agent.toml".to_string(),
        fs::read_to_string(root.join("configs/edge-agent.toml")).unwrap(),
    )];
    // What the end-to-end tests write (tests/src/lib.rs, tests/tests/*.rs): toml::to_string of
    // a config with an RTSP camera that stops at its end, a spool folder, test ports.
    let mut e2e = AgentConfig {
        cameras: vec![CameraConfig {
            id: "cam-1".into(),
            uri: "rtsp://127.0.0.1:8554/cam-1".into(),
            analysis_fps: 5.0,
            at_end: AtEnd::Stop,
            ..CameraConfig::default()
        }],
        ..AgentConfig::default()
    };
    e2e.broker.port = 41883;
    e2e.broker.reconnect_max_ms = 500;
    e2e.publish.status_interval_s = 5;
    e2e.publish.spool_dir = "/tmp/sharpeyes-e2e/spool".into();
    e2e.ops.port = 49464;
    e2e.models.dir = "/opt/sharpeyes/models/files".into();
    e2e.models.onnxruntime = "/opt/sharpeyes/.deps/onnxruntime/libonnxruntime.so.1.31.1".into();
    v.push(("ok-e2e-written.toml".into(), toml::to_string(&e2e).unwrap()));
    let mut multi = e2e.clone();
    multi.cameras = (1..=4)
        .map(|i| CameraConfig {
            id: format!("cam-{i}"),
            uri: if i == 4 {
                "file:///srv/clips/demo.mp4".into()
            } else {
                format!("rtsps://user:pw@10.0.0.{i}:322/stream1")
            },
            analysis_fps: 2.5,
            realtime: i != 4,
            lossless: i == 4,
            at_end: [AtEnd::Auto, AtEnd::Restart, AtEnd::Stop][i % 3],
            plate_regions: vec![[600.0, 500.0, 1300.0, 1000.0]],
            ..CameraConfig::default()
        })
        .collect();
    multi.ops.enabled = false;
    v.push((
        "ok-four-cameras-written.toml".into(),
        toml::to_string(&multi).unwrap(),
    ));
    // Snippets from the unit and CLI tests.
    for (name, text) in [
        ("ok-empty.toml", ""),
        ("ok-models-dir.toml", "[models]\ndir = '/nonexistent'\n"),
        (
            "ok-only-persons.toml",
            "[object_detector.thresholds]\nperson = 0.4\n",
        ),
        (
            "ok-inline-camera.toml",
            "agent_id = \"a-1\"\nsite = \"s-1\"\n[broker]\nhost = \"mqtt.local\"\nport = 8883\nusername = \"agent\"\npassword = \"secret\"\n[[cameras]]\nid = \"c1\"\nuri = \"https://cam.local/live.m3u8\"\nplate_regions = [[10.0, 10.0, 50.0, 20.0], [0, 0, 1, 1]]\n",
        ),
        (
            "bad-fps.toml",
            "[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\nanalysis_fps = 500\n",
        ),
        ("bad-agent-id.toml", "agent_id = 'a/b'"),
        ("bad-unknown-field.toml", "agnet_id = 'x'"),
        ("bad-port.toml", "[broker]\nport = 0"),
        ("bad-family.toml", "[face_detector]\nfamily = 'retina'"),
        ("bad-uri.toml", "[[cameras]]\nid = 'c'\nuri = 'ftp://x'"),
        (
            "bad-duplicate-camera.toml",
            "[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\n[[cameras]]\nid = 'c'\nuri = 'rtsp://y'",
        ),
        ("bad-type.toml", "[tracker]\nmax_age_ms = 'long'"),
        (
            "bad-plate-region.toml",
            "[[cameras]]\nid = 'c'\nuri = 'rtsp://x'\nplate_regions = [[10.0, 10.0, 5.0, 20.0]]",
        ),
        (
            "bad-threshold-class.toml",
            "[object_detector.thresholds]\nface = 0.5",
        ),
        ("bad-tiles.toml", "[object_detector]\ntiles = [0, 1]"),
        ("bad-resize.toml", "[object_detector]\nresize = 'crop'"),
        ("bad-syntax.toml", "[broker\nhost = 127.0.0.1"),
    ] {
        v.push((name.to_string(), text.to_string()));
    }
    v
}

fn aggregator_configs(root: &Path) -> Vec<(String, String)> {
    let mut v = vec![(
        "ok-example-aggregator.toml".to_string(),
        fs::read_to_string(root.join("configs/aggregator.toml")).unwrap(),
    )];
    // What tests/src/lib.rs mosquitto_aggregator_config writes.
    let mut cfg = AggregatorConfig::default();
    cfg.broker.url = "mqtt://127.0.0.1:41883".into();
    cfg.broker.reconnect_max_ms = 500;
    cfg.broker.shared_group.clear();
    cfg.store.path = "/tmp/sharpeyes-e2e/agg.db".into();
    cfg.ops.enabled = false;
    v.push((
        "ok-mosquitto-written.toml".into(),
        toml::to_string(&cfg).unwrap(),
    ));
    let mut emb = AggregatorConfig::default();
    emb.broker.listen = "[::]:1883".parse().unwrap();
    emb.broker.username = Some("aggregator".into());
    emb.broker.password = Some("secret".into());
    emb.store.max_batch = 1000;
    v.push((
        "ok-embedded-written.toml".into(),
        toml::to_string(&emb).unwrap(),
    ));
    for (name, text) in [
        ("ok-empty.toml", ""),
        ("ok-url-ipv6.toml", "[broker]\nurl = 'tcp://[::1]:1884/'\n"),
        ("bad-url.toml", "[broker]\nurl = 'ftp://x'"),
        ("bad-url-port.toml", "[broker]\nurl = 'mqtt://x:99999'"),
        ("bad-shared-group.toml", "[broker]\nshared_group = 'a/b'"),
        ("bad-max-batch.toml", "[store]\nmax_batch = 0"),
        ("bad-unknown-field.toml", "[store]\npth = 'x'"),
        ("bad-listen.toml", "[broker]\nlisten = 'nowhere'"),
    ] {
        v.push((name.to_string(), text.to_string()));
    }
    v
}
