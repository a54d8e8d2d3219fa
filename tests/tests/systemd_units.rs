//! The shipped systemd units (configs/*.service) run the binaries with arguments they accept,
//! restart them on failure and stop them with SIGTERM (which both handle gracefully).

use std::process::Command;

use sharpeyes_e2e::{workspace_bin, workspace_root};

#[test]
fn systemd_units_run_the_binaries_with_valid_arguments() {
    for name in ["edge-agent", "aggregator"] {
        let root = workspace_root();
        let unit = std::fs::read_to_string(root.join(format!("configs/{name}.service"))).unwrap();
        for key in [
            "Restart=on-failure",
            "KillSignal=SIGTERM",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == key), "{name}: {key} missing");
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
            let mut args: Vec<String> = words.map(String::from).collect();
            if args[0] == "check-config" {
                // The unit's config path, replaced by the shipped default config: it validates.
                *args.last_mut().unwrap() = config.display().to_string();
                let out = Command::new(workspace_bin(name))
                    .args(&args)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{name} {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            } else {
                // `run --config F`: the arguments parse (the missing file is the error, not them).
                *args.last_mut().unwrap() = "/nonexistent/sharpeyes.toml".into();
                let out = Command::new(workspace_bin(name))
                    .args(&args)
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    !out.status.success() && err.contains("/nonexistent/sharpeyes.toml"),
                    "{name} {args:?}: {err}"
                );
                assert!(!err.contains("unexpected argument"), "{err}");
            }
            checked += 1;
        }
        assert_eq!(checked, 2, "{name}: ExecStartPre and ExecStart");
    }
}
