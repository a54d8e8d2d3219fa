//! The fuzz target `wire_decode`'s inputs, replayed by the test suite: every seed of
//! `fuzz/seeds/wire_decode/` (real payloads, MessagePack bodies and topic names that gen_seeds
//! wrote) and every input of `fuzz/regressions/wire_decode/` (crashes the fuzzer found, kept
//! once fixed) must decode, or fail with a typed error, without panicking. See fuzz/README.md.

use std::fs;
use std::path::{Path, PathBuf};

use sharpeyes_wire::{Codec, Dictionary, HEADER_LEN, MAGIC, SCHEMA_VERSION, Topic, Topics};

/// The id `fuzz/src/lib.rs` gives the fuzz dictionary `fuzz/dict/payload.zdict`.
const PAYLOAD_DICT_ID: u32 = 1;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/wire_decode/` (none if it does not exist), dotfiles left out.
fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join("wire_decode");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).expect("readable input"))
        })
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn codecs() -> (Codec, Codec) {
    let bytes = fs::read(fuzz_dir().join("dict/payload.zdict")).expect("fuzz/dict/payload.zdict");
    let dict = Dictionary::new(PAYLOAD_DICT_ID, bytes).expect("non-zero id");
    (Codec::default(), Codec::default().knowing(dict))
}

/// `body` behind a valid header in a zstd frame of raw blocks, as the fuzz target builds it.
fn payload_of_body(body: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 << 10;
    let mut p = Vec::new();
    p.extend_from_slice(&MAGIC);
    p.push(SCHEMA_VERSION);
    p.push(1);
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    p.push(0b1110_0000);
    p.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let mut chunks = body.chunks(MAX_BLOCK).peekable();
    if chunks.peek().is_none() {
        p.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(chunk) = chunks.next() {
        let header = u32::from(chunks.peek().is_none()) | ((chunk.len() as u32) << 3);
        p.extend_from_slice(&header.to_le_bytes()[..3]);
        p.extend_from_slice(chunk);
    }
    assert!(p.len() >= HEADER_LEN);
    p
}

/// What the fuzz target does with one input; whether each interpretation decoded.
fn replay(plain: &Codec, with_dict: &Codec, data: &[u8]) -> [bool; 4] {
    let decoded = |codec: &Codec, payload: &[u8]| match codec.decode(payload) {
        Ok(env) => {
            // What decodes re-encodes to the same envelope (compared serialised: NaN != NaN).
            let again = Codec::default().encode(&env).expect("re-encodes");
            let back = Codec::default().decode(&again).expect("decodes again");
            assert_eq!(
                Codec::body_bytes(&back).unwrap(),
                Codec::body_bytes(&env).unwrap()
            );
            let _ = serde_json::to_string(&env);
            true
        }
        Err(e) => {
            let _ = (e.kind(), e.to_string());
            false
        }
    };
    let topics = Topics::default();
    let topic = std::str::from_utf8(data)
        .ok()
        .and_then(|s| topics.parse(s).ok());
    if let Some(t) = &topic {
        // What parses builds back to the same name.
        let rebuilt = match t {
            Topic::Tracks {
                site,
                agent,
                camera,
            } => topics.tracks(site, agent, camera),
            Topic::Alerts {
                site,
                agent,
                camera,
            } => topics.alerts(site, agent, camera),
            Topic::Status { site, agent } => topics.status(site, agent),
            Topic::Watchlists => topics.watchlists(),
            Topic::Acks { agent } => topics.acks(agent),
        };
        assert_eq!(rebuilt.as_bytes(), data);
    }
    [
        decoded(plain, data),
        decoded(with_dict, data),
        decoded(plain, &payload_of_body(data)),
        topic.is_some(),
    ]
}

#[test]
fn seeds_decode_as_named() {
    let (plain, with_dict) = codecs();
    let seeds = inputs("seeds");
    assert!(
        seeds.len() >= 10,
        "fuzz/seeds/wire_decode/ has {}",
        seeds.len()
    );
    for (name, data) in &seeds {
        let [as_payload, with_dictionary, as_body, as_topic] = replay(&plain, &with_dict, data);
        let expected = if name.starts_with("payload-") {
            as_payload && with_dictionary
        } else if name.starts_with("dict-payload-") {
            !as_payload && with_dictionary
        } else if name.starts_with("body-") {
            as_body
        } else if name.starts_with("topic-") {
            as_topic
        } else {
            panic!("seed {name}: unknown kind (payload-, dict-payload-, body-, topic-)")
        };
        assert!(
            expected,
            "seed {name}: payload {as_payload}, with dictionary {with_dictionary}, body {as_body}, topic {as_topic}"
        );
    }
}

#[test]
fn regressions_do_not_panic() {
    let (plain, with_dict) = codecs();
    for (_name, data) in inputs("regressions") {
        replay(&plain, &with_dict, &data);
    }
}

#[test]
fn damaged_seeds_do_not_panic() {
    // A cheap deterministic stand-in for a fuzzer run: every truncation and a byte flip at
    // every position of each real payload.
    let (plain, with_dict) = codecs();
    for (_name, data) in inputs("seeds")
        .iter()
        .filter(|(n, _)| n.contains("payload-"))
    {
        for cut in 0..data.len() {
            replay(&plain, &with_dict, &data[..cut]);
        }
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0xa5;
            replay(&plain, &with_dict, &d);
        }
    }
}
