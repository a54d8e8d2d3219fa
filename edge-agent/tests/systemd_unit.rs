//! The shipped systemd unit (configs/edge-agent.service) against this binary.

/// The shipped systemd unit runs this binary with arguments it accepts, restarts it on failure
/// and stops it with SIGTERM (which it handles gracefully).
#[test]
fn systemd_unit_runs_this_binary_with_valid_arguments() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let name = env!("CARGO_PKG_NAME");
    let unit = std::fs::read_to_string(root.join(format!("configs/{name}.service"))).unwrap();
    for key in [
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == key), "{key} missing");
    }
    let config = root.join(format!("configs/{name}.toml"));
    let mut checked = 0;
    for line in unit.lines() {
        let Some(cmd) = line
            .strip_prefix("ExecStartPre=")
            .or(line.strip_prefix("ExecStart="))
        else {
            continue;
        };
        let mut words = cmd.split_whitespace();
        assert_eq!(
            words.next(),
            Some(format!("/usr/local/bin/{name}").as_str())
        );
        // The unit's config path, replaced by the shipped default config.
        let args: Vec<String> = words
            .map(|w| match w.starts_with("/etc/sharpeyes/") {
                true => config.display().to_string(),
                false => w.to_string(),
            })
            .collect();
        if args[0] == "check-config" {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            // `run --config F`: the arguments parse (a missing file is the error, not them).
            let mut args = args.clone();
            *args.last_mut().unwrap() = "/nonexistent/sharpeyes.toml".into();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
                .args(&args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("/nonexistent/sharpeyes.toml"),
                "{args:?}: {err}"
            );
            assert!(!err.contains("unexpected argument"), "{err}");
        }
        checked += 1;
    }
    assert_eq!(checked, 2);
}
