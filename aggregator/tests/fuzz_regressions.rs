//! The fuzz target `aggregator_config`'s inputs, replayed by the test suite: every seed of
//! `fuzz/seeds/aggregator_config/` loads (`ok-*`) or is refused (`bad-*`) as its name says, and
//! every input of `fuzz/regressions/aggregator_config/` (crashes the fuzzer found, kept once
//! fixed) is parsed without panicking; so is every truncation of the seeds. See fuzz/README.md.
//! (The property run over arbitrary text is in edge-agent/tests/fuzz_regressions.rs; both
//! configs go through the same `ConfigFile::from_toml`.)

use std::fs;
use std::path::Path;

use aggregator::config::{AggregatorConfig, ConfigFile, DEFAULT_CONFIG_TOML};

/// The files of `fuzz/<kind>/aggregator_config/`.
fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    target_inputs("aggregator_config", kind)
}

/// What the fuzz target does: load the bytes as a config file; a valid config must come back
/// the same through TOML.
fn load(data: &[u8]) -> Option<AggregatorConfig> {
    let text = std::str::from_utf8(data).ok()?;
    let cfg = match AggregatorConfig::from_toml(text) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return None;
        }
    };
    let written = toml::to_string(&cfg).expect("a valid config serialises");
    let back = AggregatorConfig::from_toml(&written).expect("a serialised valid config loads");
    assert_eq!(toml::to_string(&back).unwrap(), written);
    cfg.broker.endpoint().expect("validated");
    Some(cfg)
}

#[test]
fn seeds_load_as_named() {
    let seeds = inputs("seeds");
    assert!(
        seeds.iter().any(|(n, _)| n.starts_with("ok-"))
            && seeds.iter().any(|(n, _)| n.starts_with("bad-")),
        "fuzz/seeds/aggregator_config/ needs ok-* and bad-* seeds"
    );
    for (name, data) in &seeds {
        assert_eq!(
            load(data).is_some(),
            name.starts_with("ok-"),
            "seed {name}: ok-* must load, bad-* must be refused"
        );
    }
}

#[test]
fn regressions_do_not_panic() {
    for (_name, data) in inputs("regressions") {
        load(&data);
    }
}

/// Found by the fuzzer (fuzz/regressions/aggregator_config/empty-host-*.toml): a `broker.url`
/// whose host was only brackets (`tcp://]:4`, `tcp://[:4`) passed validation and `endpoint()`
/// then named an empty host (it checked for an empty host before trimming the brackets).
/// Every config that validates must name a host.
#[test]
fn validated_configs_name_a_broker_host() {
    for (name, data) in inputs("seeds").into_iter().chain(inputs("regressions")) {
        if let Some(cfg) = load(&data) {
            let (host, port) = cfg.broker.endpoint().expect("validated");
            assert!(
                !host.is_empty() && port != 0,
                "{name}: broker.url {:?} was accepted but names no host",
                cfg.broker.url
            );
        }
    }
}

#[test]
fn truncated_seeds_do_not_panic() {
    let live = DEFAULT_CONFIG_TOML.as_bytes().to_vec();
    for data in inputs("seeds").into_iter().map(|(_, d)| d).chain([live]) {
        for cut in 0..data.len() {
            load(&data[..cut]);
        }
    }
}

/// The files of `fuzz/<kind>/<target>/` (none if it does not exist), dotfiles left out,
/// sorted by name.
fn target_inputs(target: &str, kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
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

/// What target `query_parsers` checks (fuzz/src/lib.rs `query_parsers`, at the same fixed
/// now): (time, person, bbox) as parsed, each value accepted checked for what it claims.
fn query_parsers(data: &[u8]) -> (Option<i64>, Option<u64>, Option<[f64; 4]>) {
    use aggregator::query::{parse_bbox, parse_person, parse_time, utc};
    const NOW_MS: i64 = 1_795_428_900_000;
    let Ok(text) = std::str::from_utf8(data) else {
        return (None, None, None);
    };
    let time = parse_time(text, NOW_MS)
        .inspect(|&ms| {
            let printed = utc(ms);
            if ms >= 0 && humantime::parse_rfc3339_weak(text.trim()).is_ok() {
                assert_eq!(parse_time(&printed, 0).unwrap(), ms, "{text:?}");
            }
        })
        .map_err(|e| e.to_string())
        .ok();
    let person = parse_person(text)
        .inspect(|&id| {
            assert!(i64::try_from(id).is_ok());
            assert_eq!(parse_person(&format!("P-{id}")).ok(), Some(id));
        })
        .map_err(|e| e.to_string())
        .ok();
    let bbox = parse_bbox(text)
        .inspect(|b| {
            assert!(b.iter().all(|v| v.is_finite()));
            assert!(b[0].abs() <= 90.0 && b[2].abs() <= 90.0);
            assert!(b[1].abs() <= 180.0 && b[3].abs() <= 180.0);
            let again = format!("{},{},{},{}", b[0], b[1], b[2], b[3]);
            assert_eq!(parse_bbox(&again).ok(), Some(*b));
        })
        .map_err(|e| e.to_string())
        .ok();
    (time, person, bbox)
}

/// Seeds of `query_parsers` are named `ok-<parser>-*` (that parser accepts it) or
/// `bad-<parser>-*` (it refuses it), parser one of `time`, `person`, `bbox`.
#[test]
fn query_parser_seeds_parse_as_named() {
    let seeds = target_inputs("query_parsers", "seeds");
    assert!(seeds.len() >= 6, "fuzz/seeds/query_parsers/ needs seeds");
    for (name, data) in &seeds {
        let (time, person, bbox) = query_parsers(data);
        let (expect, parser) = name
            .split_once('-')
            .and_then(|(e, rest)| Some((e, rest.split('-').next()?)))
            .unwrap_or_else(|| panic!("seed {name}: name it ok-PARSER-* or bad-PARSER-*"));
        let accepted = match parser {
            "time" => time.is_some(),
            "person" => person.is_some(),
            "bbox" => bbox.is_some(),
            other => panic!("seed {name}: unknown parser {other}"),
        };
        assert_eq!(
            accepted,
            expect == "ok",
            "seed {name}: {time:?} {person:?} {bbox:?}"
        );
    }
}

/// What the fuzz target `api_params` does (fuzz/src/lib.rs): every parser of the API on the
/// input as text, and the form reader on it as a multipart body.
fn api_params(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    aggregator::api::params::exercise(&text, 1_767_000_000_000);
    if let Ok(form) = aggregator::api::multipart::parse("multipart/form-data; boundary=b", data) {
        let _ = aggregator::api::multipart::face_request(&form);
    }
}

#[test]
fn query_parser_regressions_and_truncations_do_not_panic() {
    for (_, data) in target_inputs("query_parsers", "regressions") {
        query_parsers(&data);
    }
    for (_, data) in target_inputs("query_parsers", "seeds") {
        for cut in 0..=data.len() {
            query_parsers(&data[..cut]);
        }
    }
}

#[test]
fn api_parser_seeds_regressions_and_truncations_do_not_panic() {
    let seeds = target_inputs("api_params", "seeds");
    assert!(seeds.len() >= 5, "fuzz/seeds/api_params/ holds the seeds");
    for (_, data) in seeds
        .iter()
        .chain(target_inputs("api_params", "regressions").iter())
    {
        for cut in 0..=data.len() {
            api_params(&data[..cut]);
        }
    }
    // The patient form seed is a whole enrollment request.
    let form = &seeds
        .iter()
        .find(|(n, _)| n == "form-patient.txt")
        .unwrap()
        .1;
    let f = aggregator::api::multipart::parse("multipart/form-data; boundary=b", form).unwrap();
    let req = aggregator::api::multipart::face_request(&f).unwrap();
    assert_eq!((req.id.as_str(), req.contacts.len()), ("P-0042", 1));
}
