//! A quiet healthy run: the demo, as `scripts/demo.sh` runs it (the `demo` binary with its
//! own default log filter, `RUST_LOG` unset), succeeds and logs no WARN or ERROR line. A
//! healthy run that warns teaches operators to ignore warnings; this keeps the demo, which
//! runs every part (RTSP, edge agent, TLS gate, embedded broker, aggregator, SQLite, the
//! web page's store), honest about that.

use std::process::Command;

use sharpeyes_e2e::workspace_root;

/// `s` without ANSI colour sequences (`ESC [ ... m`), which the log lines carry.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The level of a `tracing` fmt line (`2026-01-01T00:00:00.000000Z  WARN target: ...`).
fn level(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let time = words.next()?;
    let level = words.next()?;
    (time.len() > 20 && time.ends_with('Z') && time.as_bytes()[4] == b'-').then_some(level)
}

#[test]
fn the_demo_logs_no_warning_or_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--out")
        .arg(dir.path())
        .args(["--port", "0"])
        .env_remove("RUST_LOG")
        .current_dir(workspace_root())
        .output()
        .expect("running the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    println!("{stderr}");
    assert!(out.status.success(), "the demo failed: {}", out.status);
    let lines = stderr.lines().filter(|l| level(l).is_some()).count();
    assert!(
        lines > 0,
        "no log line at all: is the log format still parsed?"
    );
    let loud: Vec<&str> = stderr
        .lines()
        .filter(|l| matches!(level(l), Some("WARN" | "ERROR")))
        .collect();
    assert!(
        loud.is_empty(),
        "a healthy demo run logged {} WARN/ERROR line(s):\n{}",
        loud.len(),
        loud.join("\n")
    );
}

#[test]
fn log_levels_are_read_from_fmt_lines() {
    let l = strip_ansi(
        "\u{1b}[2m2026-12-07T00:40:10.123456Z\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m \u{1b}[2mrumqttd::router::routing\u{1b}[0m\u{1b}[2m:\u{1b}[0m no-connection id 1 is already gone",
    );
    assert_eq!(level(&l), Some("ERROR"));
    assert_eq!(
        level("2026-12-07T00:40:10.123456Z  WARN aggregator: x"),
        Some("WARN")
    );
    assert_eq!(level("Stored face and plate tracks (x):"), None);
}
