//! The binary as an operator runs it: `--log-format json` gives JSON lines only, credentials
//! never reach stderr, and secrets come from files, environment variables and systemd
//! credentials.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn aggregator(args: &[&str], config: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aggregator"));
    c.args(args).arg(config);
    c.env_remove("SHARPEYES_LOG_FORMAT")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Every line of `stderr` parsed as JSON (panics on one that is not).
fn json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8(stderr.to_vec()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn a_failing_check_config_in_json_says_why_in_json_without_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aggregator.toml");
    // The broker URL is wrong (a user info and no port): the error shows it, masked.
    std::fs::write(
        &cfg,
        "[broker]\nurl = 'mqtt://aggregator:br0ker-s3cret@broker.local:notaport'\n",
    )
    .unwrap();
    let out = aggregator(&["--log-format", "json", "check-config"], &cfg, &[]);
    assert!(!out.status.success());
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "ERROR");
    let msg = lines[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("broker.url") && msg.contains("***@broker.local"),
        "{msg}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("br0ker-s3cret"));

    // The same from the environment; in text, the error is as before.
    let out = aggregator(&["check-config"], &cfg, &[("SHARPEYES_LOG_FORMAT", "json")]);
    assert_eq!(json_lines(&out.stderr).len(), 1);
    let out = aggregator(
        &["--log-format", "text", "check-config"],
        &cfg,
        &[("SHARPEYES_LOG_FORMAT", "json")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: invalid config: broker.url") && !err.contains("br0ker-s3cret"),
        "the flag wins: {err}"
    );
    // A bad format is refused clearly, from either place.
    let out = aggregator(&["check-config"], &cfg, &[("SHARPEYES_LOG_FORMAT", "yaml")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("SHARPEYES_LOG_FORMAT=\"yaml\"") && err.contains("text or json"),
        "{err}"
    );
    let out = aggregator(&["--log-format", "yaml", "check-config"], &cfg, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("use text or json"),
        "{err}"
    );

    // A PostgreSQL URL with a bad port: named, never shown with its password.
    std::fs::write(
        &cfg,
        "[store]\nbackend = 'postgres'\npostgres_url = 'postgres://se:pg-s3cret@db:notaport/se'\n",
    )
    .unwrap();
    let out = aggregator(&["check-config"], &cfg, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("store.postgres_url"),
        "{err}"
    );
    assert!(!err.contains("pg-s3cret"), "{err}");
}

#[test]
fn secrets_come_from_files_environment_and_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aggregator.toml");
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("postgres-url"),
        "postgres://se:pg-s3cret@127.0.0.1:5432/se\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("broker-pw"), "密码-s3cret\n").unwrap();
    let pg = |secret: &str| {
        format!(
            "[broker]\nurl = 'mqtt://127.0.0.1:1883'\nusername = 'aggregator'\n\
             password = {{ file = '{}' }}\n\
             [store]\nbackend = 'postgres'\npostgres_url = {secret}\n",
            dir.path().join("broker-pw").display()
        )
    };

    // A systemd credential.
    std::fs::write(&cfg, pg("{ credential = 'postgres-url' }")).unwrap();
    let creds_env = [("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())];
    let out = aggregator(&["check-config"], &cfg, &creds_env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... outside a unit that provides it.
    let out = aggregator(&["check-config"], &cfg, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "store.postgres_url: credential 'postgres-url' not found: $CREDENTIALS_DIRECTORY is not set \
                 (add LoadCredential=postgres-url:/etc/sharpeyes/postgres-url to the unit"
            ),
        "{err}"
    );

    // An environment variable (set in the child only).
    std::fs::write(&cfg, pg("{ env = 'SE_TEST_PG_URL' }")).unwrap();
    let url = [(
        "SE_TEST_PG_URL",
        "host=127.0.0.1 user=se password=pg-s3cret dbname=se",
    )];
    let out = aggregator(&["check-config"], &cfg, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = aggregator(&["check-config"], &cfg, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("store.postgres_url: environment variable SE_TEST_PG_URL is not set"),
        "{err}"
    );
    // What the variable holds is validated like a URL in the file, and never shown.
    let bad = [("SE_TEST_PG_URL", "postgres://se:pg-s3cret@db:notaport/se")];
    let out = aggregator(&["check-config"], &cfg, &bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("store.postgres_url"),
        "{err}"
    );
    assert!(!err.contains("pg-s3cret"), "{err}");

    // A file that is not there.
    let missing = dir.path().join("no-such-file");
    std::fs::write(&cfg, pg(&format!("{{ file = '{}' }}", missing.display()))).unwrap();
    let out = aggregator(&["check-config"], &cfg, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("store.postgres_url: cannot read secret file")
            && err.contains("no-such-file"),
        "{err}"
    );
    // The broker password's file too.
    std::fs::remove_file(dir.path().join("broker-pw")).unwrap();
    std::fs::write(&cfg, pg("{ credential = 'postgres-url' }")).unwrap();
    let out = aggregator(&["check-config"], &cfg, &creds_env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("broker.password: cannot read secret file")
            && err.contains("broker-pw"),
        "{err}"
    );
}

/// A short run in JSON: every stderr line is a JSON object, and the broker password (from
/// the environment) appears in none of them.
#[test]
fn a_run_logs_json_lines_only_and_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aggregator.toml");
    // An external broker that is not there: the aggregator logs its start and its retries.
    let broker = common::free_port();
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nurl = 'mqtt://127.0.0.1:{broker}'\nusername = 'aggregator'\n\
             password = {{ env = 'SE_TEST_BROKER_PW' }}\n\
             [store]\npath = '{}'\n[ops]\nport = {}\n[api]\nlisten = '127.0.0.1:{}'\n",
            dir.path().join("se.db").display(),
            common::free_port(),
            common::free_port(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&cfg)
        .env("SE_TEST_BROKER_PW", "br0ker-s3cret-密码")
        .env_remove("RUST_LOG")
        .env_remove("SHARPEYES_LOG_FORMAT")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        stderr.read_to_end(&mut all).unwrap();
        all
    });
    // Long enough for the start and a reconnect attempt or two.
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("br0ker-s3cret"), "{text}");
    assert!(!text.contains("\x1b["), "{text}");
    let lines = json_lines(&out);
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"),
        "the start is logged: {text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["message"].is_string() && l["timestamp"].is_string()),
        "{text}"
    );
    assert!(status.success(), "stopped by SIGTERM: {status:?}, {text}");
}
