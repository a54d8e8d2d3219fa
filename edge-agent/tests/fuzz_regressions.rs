//! The fuzz target `agent_config`'s inputs, replayed by the test suite, and a short property
//! run: every seed of `fuzz/seeds/agent_config/` loads (`ok-*`) or is refused (`bad-*`) as its
//! name says, every input of `fuzz/regressions/agent_config/` (crashes the fuzzer found, kept
//! once fixed) is parsed without panicking, and so is any text. See fuzz/README.md.

use std::fs;
use std::path::Path;

use edge_agent::config::{AgentConfig, ConfigFile, DEFAULT_CONFIG_TOML};
use proptest::prelude::*;

/// The files of `fuzz/<kind>/agent_config/` (none if it does not exist), dotfiles left out.
fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join("agent_config");
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

/// What the fuzz target does: load the bytes as a config file (`ConfigFile::load` reads UTF-8
/// and calls `from_toml`); a valid config must come back the same through TOML.
fn load(data: &[u8]) -> Option<AgentConfig> {
    let text = std::str::from_utf8(data).ok()?;
    let cfg = match AgentConfig::from_toml(text) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return None;
        }
    };
    let written = toml::to_string(&cfg).expect("a valid config serialises");
    let back = AgentConfig::from_toml(&written).expect("a serialised valid config loads");
    assert_eq!(toml::to_string(&back).unwrap(), written);
    Some(cfg)
}

#[test]
fn seeds_load_as_named() {
    let seeds = inputs("seeds");
    assert!(
        seeds.iter().any(|(n, _)| n.starts_with("ok-"))
            && seeds.iter().any(|(n, _)| n.starts_with("bad-")),
        "fuzz/seeds/agent_config/ needs ok-* and bad-* seeds"
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(\\PC|\n|\\[|\\]|=|'|\"){0,200}") {
        load(text.as_bytes());
    }

    #[test]
    fn damaged_example_never_panics(
        at in any::<prop::sample::Index>(),
        len in 0usize..40,
        with in "(\\PC|\n){0,12}",
    ) {
        // The example config with a stretch replaced: mostly valid TOML, odd values.
        let text = DEFAULT_CONFIG_TOML;
        let mut start = at.index(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let damaged = format!("{}{with}{}", &text[..start], &text[end..]);
        load(damaged.as_bytes());
    }
}
