//! What the fuzz targets run on each input, shared by the targets (`src/bin/*.rs`) and the seed
//! generator (which checks every seed it writes with it). Each function may panic only on a bug:
//! every input, however malformed, must come back as `Ok` or a typed error.
//!
//! The same checks, minus the AFL++ harness, run in the main workspace's test suite over
//! `fuzz/seeds/` and `fuzz/regressions/` (`wire/tests/fuzz_regressions.rs`,
//! `edge-agent/tests/fuzz_regressions.rs`, `aggregator/tests/fuzz_regressions.rs`).

use aggregator::config::AggregatorConfig;
use edge_agent::config::{AgentConfig, ConfigFile};
use sharpeyes_wire::{
    Body, Codec, Dictionary, Envelope, HEADER_LEN, MAGIC, ObjectClass, SCHEMA_VERSION, Topic,
    Topics,
};

/// Id under which the fuzz dictionary ([`PAYLOAD_DICT`]) is known to the decoder.
///
/// The project itself encodes without a dictionary (`Codec::new(publish.zstd_level)` in the
/// agent, `Codec::default()` in the aggregator); the decoder supports them, so the targets also
/// decode with one, trained by `gen_seeds` on the seed envelopes.
pub const PAYLOAD_DICT_ID: u32 = 1;

/// The zstd dictionary `gen_seeds` trained on the seed envelopes' bodies.
pub const PAYLOAD_DICT: &[u8] = include_bytes!("../dict/payload.zdict");

/// The decoders the project runs, plus one that knows the fuzz dictionary.
pub struct Codecs {
    /// What the aggregator and the agents use: no dictionary.
    pub plain: Codec,
    /// Knows [`PAYLOAD_DICT`] as id [`PAYLOAD_DICT_ID`].
    pub with_dict: Codec,
}

impl Default for Codecs {
    fn default() -> Self {
        let dict = Dictionary::new(PAYLOAD_DICT_ID, PAYLOAD_DICT.to_vec()).expect("non-zero id");
        Self {
            plain: Codec::default(),
            with_dict: Codec::default().knowing(dict),
        }
    }
}

/// `body` (a MessagePack envelope) as a payload the decoder accepts as far as the zstd layer:
/// a valid header (no dictionary) and one zstd frame of raw (stored) blocks. The fuzzer can then
/// mutate the MessagePack directly instead of mutating compressed bytes.
pub fn payload_of_body(body: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 << 10;
    let mut p = Vec::with_capacity(HEADER_LEN + 14 + body.len() + 3 * (body.len() / MAX_BLOCK));
    p.extend_from_slice(&MAGIC);
    p.push(SCHEMA_VERSION);
    p.push(1); // body is zstd
    p.extend_from_slice(&0u32.to_le_bytes()); // no dictionary
    p.extend_from_slice(&0xFD2F_B528u32.to_le_bytes()); // zstd frame magic
    // Frame header descriptor: 8-byte content size, single segment, no checksum, no dict id.
    p.push(0b1110_0000);
    p.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let mut chunks = body.chunks(MAX_BLOCK).peekable();
    if chunks.peek().is_none() {
        p.extend_from_slice(&[1, 0, 0]); // one empty, last, raw block
    }
    while let Some(chunk) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        // Block header: bit 0 last block, bits 1-2 type (0 = raw), bits 3.. size.
        let header = last | ((chunk.len() as u32) << 3);
        p.extend_from_slice(&header.to_le_bytes()[..3]);
        p.extend_from_slice(chunk);
    }
    p
}

/// Target `wire_decode`: `data` as a payload (with and without the dictionary), as a MessagePack
/// body behind a valid header, and as a topic name.
pub fn wire_decode(codecs: &Codecs, data: &[u8]) {
    decode_checked(&codecs.plain, data);
    decode_checked(&codecs.with_dict, data);
    decode_checked(&codecs.plain, &payload_of_body(data));
    if let Ok(topic) = std::str::from_utf8(data) {
        topic_checked(topic);
    }
}

/// Decodes `payload`; what decodes must re-encode to a payload that decodes to the same
/// envelope, print as JSON (`aggregator decode`), and fit the topics built from its ids.
pub fn decode_checked(codec: &Codec, payload: &[u8]) -> Option<Envelope> {
    let env = codec.decode(payload).ok()?;
    let body = Codec::body_bytes(&env).expect("a decoded envelope serialises");
    // Compare serialised bodies, not values: NaN scores are not equal to themselves.
    let again = Codec::default()
        .encode(&env)
        .expect("a decoded envelope re-encodes");
    let back = Codec::default()
        .decode(&again)
        .expect("a re-encoded envelope decodes");
    assert_eq!(
        Codec::body_bytes(&back).expect("serialises"),
        body,
        "re-encoding changed the envelope"
    );
    let _ = serde_json::to_string(&env);
    let _ = env.body.kind();
    if let Body::Tracks(b) = &env.body {
        for u in &b.updates {
            let _ = u.bbox.to_pixels(b.frame_w, b.frame_h);
            if let Some(e) = &u.embedding {
                assert_eq!(e.dequantize().len(), e.len());
            }
        }
    }
    let site = match &env.body {
        Body::Tracks(b) => Some((&b.site, Some(&b.camera))),
        Body::Alert(a) => Some((&a.site, Some(&a.camera))),
        Body::Status(s) => Some((&s.site, None)),
        Body::Watchlists(_) | Body::Acks(_) => None,
    };
    if let Some((site, camera)) = site
        && Topics::check_id("site", site).is_ok()
        && Topics::check_id("agent", &env.agent).is_ok()
        && camera.is_none_or(|c| Topics::check_id("camera", c).is_ok())
    {
        let topics = Topics::default();
        let (site, agent) = (site.clone(), env.agent.clone());
        let (name, expected) = match (&env.body, camera) {
            (Body::Tracks(_), Some(c)) => (
                topics.tracks(&site, &agent, c),
                Topic::Tracks {
                    site,
                    agent,
                    camera: c.clone(),
                },
            ),
            (Body::Alert(_), Some(c)) => (
                topics.alerts(&site, &agent, c),
                Topic::Alerts {
                    site,
                    agent,
                    camera: c.clone(),
                },
            ),
            _ => (topics.status(&site, &agent), Topic::Status { site, agent }),
        };
        assert_eq!(topics.parse(&name), Ok(expected), "topic {name:?}");
    }
    Some(env)
}

/// Parses `topic` under the default prefix and under itself as the prefix; what parses must
/// build back to the same name.
pub fn topic_checked(topic: &str) {
    let topics = Topics::default();
    if let Ok(t) = topics.parse(topic) {
        let rebuilt = match &t {
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
        assert_eq!(rebuilt, topic, "parsed as {t:?}");
    }
    let own = Topics::new(topic);
    assert_eq!(own.parse(&own.watchlists()), Ok(Topic::Watchlists));
    assert_eq!(
        own.parse(&own.status("s", "a")),
        Ok(Topic::Status {
            site: "s".into(),
            agent: "a".into()
        })
    );
    let _ = Topics::check_id("camera", topic);
}

/// Target `agent_config`: `data` as an edge-agent config file, through the function
/// `edge-agent run` / `check-config` use ([`ConfigFile::load`] reads the file as UTF-8 and calls
/// [`ConfigFile::from_toml`], which parses and validates). A valid config must serialise back
/// to TOML that loads to the same config (the tests write configs that way), and its topics
/// must parse back to its ids.
pub fn agent_config(data: &[u8]) -> Option<AgentConfig> {
    let text = std::str::from_utf8(data).ok()?;
    let cfg = AgentConfig::from_toml(text).ok()?;
    let written = toml::to_string(&cfg).expect("a valid agent config serialises");
    let back = AgentConfig::from_toml(&written)
        .unwrap_or_else(|e| panic!("a serialised valid config does not load: {e}\n{written}"));
    assert_eq!(
        toml::to_string(&back).expect("serialises"),
        written,
        "the config changed through TOML"
    );
    let _ = cfg.client_id();
    let _ = cfg.models.onnxruntime_path();
    let _ = cfg.models.model_path(&cfg.face_detector.model);
    for class in ObjectClass::ALL {
        let _ = cfg.object_detector.threshold(class);
    }
    let topics = Topics::new(&cfg.broker.topic_prefix);
    for cam in &cfg.cameras {
        let _ = (cam.is_file(), cam.stops_at_end());
        let name = topics.tracks(&cfg.site, &cfg.agent_id, &cam.id);
        assert_eq!(
            topics.parse(&name),
            Ok(Topic::Tracks {
                site: cfg.site.clone(),
                agent: cfg.agent_id.clone(),
                camera: cam.id.clone(),
            }),
            "topic {name:?}"
        );
    }
    let status = topics.status(&cfg.site, &cfg.agent_id);
    assert_eq!(
        topics.parse(&status),
        Ok(Topic::Status {
            site: cfg.site.clone(),
            agent: cfg.agent_id.clone(),
        }),
        "topic {status:?}"
    );
    Some(cfg)
}

/// Target `aggregator_config`: `data` as an aggregator config file (parse and validate, as
/// `aggregator run` / `check-config` do); a valid one must survive a TOML round trip.
pub fn aggregator_config(data: &[u8]) -> Option<AggregatorConfig> {
    let text = std::str::from_utf8(data).ok()?;
    let cfg = AggregatorConfig::from_toml(text).ok()?;
    let written = toml::to_string(&cfg).expect("a valid aggregator config serialises");
    let back = AggregatorConfig::from_toml(&written)
        .unwrap_or_else(|e| panic!("a serialised valid config does not load: {e}\n{written}"));
    assert_eq!(
        toml::to_string(&back).expect("serialises"),
        written,
        "the config changed through TOML"
    );
    // Validation refuses a URL without a host (`mqtt://:1883`): so must it one whose host is
    // only brackets (`tcp://[:4`), which `endpoint()` trims to nothing. Found by this target;
    // the inputs are in fuzz/regressions/aggregator_config/.
    let (host, port) = cfg.broker.endpoint().expect("validated");
    assert!(
        !host.is_empty() && port != 0,
        "validation accepted broker.url {:?}, which names no host",
        cfg.broker.url
    );
    let _ = cfg.broker.embedded();
    let _ = Topics::new(&cfg.broker.topic_prefix).all_tracks();
    Some(cfg)
}

/// The current time target `query_parsers` parses relative times against (fixed, so a run
/// is reproducible): 2026-11-23T10:15:00Z.
pub const QUERY_NOW_MS: i64 = 1_795_428_900_000;

/// What target `query_parsers` found in one input: the value each parser of
/// `aggregator::query` (shared by the CLI and the HTTP API) gave, or `None` where it refused.
#[derive(Debug, Default, PartialEq)]
pub struct QueryParsed {
    /// `parse_time` at [`QUERY_NOW_MS`].
    pub time: Option<i64>,
    /// `parse_person`.
    pub person: Option<u64>,
    /// `parse_bbox`.
    pub bbox: Option<[f64; 4]>,
}

/// Target `query_parsers`: `data` (as UTF-8; anything else is refused by the HTTP layer
/// before a parser sees it) through every query parser. A value accepted must be what it
/// claims: a person id fits the store's integers and comes back through `P-{id}`; a box has
/// finite coordinates in range and comes back through its own text; a time prints as RFC
/// 3339 (`query::utc`, as the exports do) and, when it was RFC 3339, parses back to itself
/// at millisecond precision. Errors must print.
pub fn query_parsers(data: &[u8]) -> QueryParsed {
    use aggregator::query::{parse_bbox, parse_person, parse_time, utc};
    let Ok(text) = std::str::from_utf8(data) else {
        return QueryParsed::default();
    };
    let time = match parse_time(text, QUERY_NOW_MS) {
        Ok(ms) => {
            let printed = utc(ms);
            if ms >= 0 && humantime::parse_rfc3339_weak(text.trim()).is_ok() {
                assert_eq!(
                    parse_time(&printed, 0).expect("printed time parses"),
                    ms,
                    "{text:?} → {ms} → {printed}"
                );
            }
            Some(ms)
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    };
    let person = match parse_person(text) {
        Ok(id) => {
            assert!(i64::try_from(id).is_ok(), "{text:?} gave person {id}");
            assert_eq!(parse_person(&format!("P-{id}")).ok(), Some(id));
            Some(id)
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    };
    let bbox = match parse_bbox(text) {
        Ok(b) => {
            assert!(b.iter().all(|v| v.is_finite()), "{text:?} gave {b:?}");
            assert!(b[0].abs() <= 90.0 && b[2].abs() <= 90.0, "{b:?}");
            assert!(b[1].abs() <= 180.0 && b[3].abs() <= 180.0, "{b:?}");
            let again = format!("{},{},{},{}", b[0], b[1], b[2], b[3]);
            assert_eq!(parse_bbox(&again).ok(), Some(b), "{again}");
            Some(b)
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    };
    QueryParsed { time, person, bbox }
}

/// The HTTP API's parameter parsers (`aggregator::api::params`: query strings, times,
/// boxes, person ids, plates, path segments, purpose headers, cursors) and its
/// `multipart/form-data` reader (`aggregator::api::multipart`), on one input: the bytes as
/// text go through every parser; the bytes as a form body (boundary `b`) through the form
/// reader and the enrollment request builder. Nothing may panic.
pub fn api_params(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    aggregator::api::params::exercise(&text, 1_767_000_000_000);
    if let Ok(form) = aggregator::api::multipart::parse("multipart/form-data; boundary=b", data) {
        let _ = aggregator::api::multipart::face_request(&form);
    }
}
