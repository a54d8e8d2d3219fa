//! `edge-agent check-config` as an operator runs it: the broker password from a file, an
//! environment variable or a systemd credential; JSON errors with `--log-format json`;
//! camera and broker credentials never on stderr.

use std::path::Path;
use std::process::{Command, Output};

fn check_config(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edge-agent"));
    c.args(extra).arg("check-config").arg(config);
    c.env_remove("SHARPEYES_LOG_FORMAT")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn broker(password: &str) -> String {
    format!("[broker]\nusername = 'agent-1'\npassword = {password}\n")
}

#[test]
fn the_broker_password_comes_from_a_file_the_environment_or_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    let pw = dir.path().join("broker-password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let ok = |text: String, env: &[(&str, &str)]| {
        std::fs::write(&cfg, &text).unwrap();
        let out = check_config(&cfg, &[], env);
        assert!(
            out.status.success(),
            "{text}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let fails = |text: String, env: &[(&str, &str)]| {
        std::fs::write(&cfg, &text).unwrap();
        let out = check_config(&cfg, &[], env);
        assert!(!out.status.success(), "{text}");
        String::from_utf8(out.stderr).unwrap()
    };
    // As before: in the file.
    ok(broker("'s3cret'"), &[]);
    ok(broker(&format!("{{ file = '{}' }}", pw.display())), &[]);
    ok(
        broker("{ env = 'SE_TEST_AGENT_PW' }"),
        &[("SE_TEST_AGENT_PW", "s3cret")],
    );
    let creds = [("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())];
    ok(broker("{ credential = 'broker-password' }"), &creds);

    let err = fails(broker("{ file = '/nonexistent/broker-password' }"), &[]);
    assert!(
        err.contains("broker.password: cannot read secret file /nonexistent/broker-password"),
        "{err}"
    );
    let err = fails(broker("{ env = 'SE_TEST_AGENT_PW' }"), &[]);
    assert!(
        err.contains("broker.password: environment variable SE_TEST_AGENT_PW is not set"),
        "{err}"
    );
    let err = fails(broker("{ credential = 'broker-password' }"), &[]);
    assert!(
        err.contains(
            "broker.password: credential 'broker-password' not found: $CREDENTIALS_DIRECTORY is not set \
             (add LoadCredential=broker-password:/etc/sharpeyes/broker-password to the unit, or use { file = ... })"
        ),
        "{err}"
    );
    let err = fails(broker("{ credential = 'other' }"), &creds);
    assert!(err.contains("credential 'other' cannot be read"), "{err}");
    std::fs::write(&pw, "\n").unwrap();
    let err = fails(broker(&format!("{{ file = '{}' }}", pw.display())), &[]);
    assert!(err.contains("is empty"), "{err}");
    let err = fails(broker("{ path = '/x' }"), &[]);
    assert!(err.contains("unknown secret source \"path\""), "{err}");
}

#[test]
fn credentials_never_reach_stderr_and_json_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    // A camera URI with a wrong scheme and a password, a broker password in the file: the
    // error names the URI, masked.
    std::fs::write(
        &cfg,
        format!(
            "{}[[cameras]]\nid = '东门'\nuri = 'ftp://admin:cam-s3cret@10.0.0.5/stream?token=tok-s3cret'\n",
            broker("'br0ker-s3cret'")
        ),
    )
    .unwrap();
    for format in ["text", "json"] {
        let out = check_config(&cfg, &["--log-format", format], &[]);
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        for secret in ["cam-s3cret", "tok-s3cret", "br0ker-s3cret"] {
            assert!(!err.contains(secret), "{format}: {err}");
        }
        assert!(!err.contains("\x1b["), "not a terminal: {err:?}");
        if format == "text" {
            assert!(
                err.contains("cameras[0].uri") && err.contains("ftp://***@10.0.0.5"),
                "{err}"
            );
        } else {
            let lines: Vec<serde_json::Value> = err
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            assert_eq!(lines.len(), 1, "{err}");
            assert_eq!(lines[0]["level"], "ERROR");
            let msg = lines[0]["message"].as_str().unwrap();
            assert!(
                msg.contains("cameras[0].uri") && msg.contains("token=***"),
                "{msg}"
            );
        }
    }
}
