//! The shipped systemd units (configs/*.service) run the binaries with arguments they accept,
//! restart them on failure and stop them with SIGTERM (which both handle gracefully); they,
//! the sysusers.d and the tmpfiles.d entries pass systemd's own checks.

use std::path::Path;
use std::process::Command;

use sharpeyes_e2e::{workspace_bin, workspace_root};

#[test]
fn systemd_units_run_the_binaries_with_valid_arguments() {
    for name in ["edge-agent", "aggregator"] {
        let root = workspace_root();
        let unit = std::fs::read_to_string(root.join(format!("configs/{name}.service"))).unwrap();
        for key in [
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=60",
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
            assert_eq!(words.next(), Some(format!("/usr/bin/{name}").as_str()));
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

fn systemd_tool(name: &str) -> Command {
    let found = Command::new(name).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "{name} not found: install Debian's systemd package (scripts/setup.sh does)"
    );
    Command::new(name)
}

/// `systemd-analyze verify` of both units prints nothing: no unknown key, no key in the wrong
/// section (StartLimitIntervalSec belongs in [Unit]), executables where the units say. It runs
/// against a root holding this machine's units, the two units and stand-ins at /usr/bin.
#[test]
fn systemd_units_verify_clean() {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for dir in ["/lib/systemd/system", "/usr/lib/systemd/system"] {
        copy_units(Path::new(dir), &units);
    }
    let bin = root.path().join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut args = vec![
        format!("--root={}", root.path().display()),
        "verify".to_string(),
    ];
    for name in ["edge-agent", "aggregator"] {
        std::fs::copy(
            workspace_root().join(format!("configs/{name}.service")),
            units.join(format!("{name}.service")),
        )
        .unwrap();
        let stand_in = bin.join(name);
        std::fs::write(
            &stand_in,
            format!("#!/bin/sh\nexec {} \"$@\"\n", workspace_bin(name).display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
        args.push(format!("/lib/systemd/system/{name}.service"));
    }
    let out = systemd_tool("systemd-analyze")
        .args(&args)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze {args:?}: {said}"
    );
}

fn copy_units(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for e in entries.flatten() {
        let target = to.join(e.file_name());
        if target.exists() || std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let path = e.path();
        if let Ok(link) = std::fs::read_link(&path) {
            std::os::unix::fs::symlink(link, &target).unwrap();
        } else if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_units(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The sysusers.d entry makes the user `sharpeyes` and the tmpfiles.d entry its state and
/// config directories with the modes the units expect, in a scratch root (systemd's own tools,
/// `--root`).
#[test]
fn sysusers_and_tmpfiles_make_the_user_and_directories() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow"] {
        std::fs::write(etc.join(f), "").unwrap();
    }
    let conf = |f: &str| workspace_root().join(format!("configs/{f}"));
    let out = systemd_tool("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(conf("sysusers.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("sharpeyes:"))
        .unwrap_or_else(|| panic!("no sharpeyes user in {passwd:?}"));
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields[5], "/var/lib/sharpeyes", "{user}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {user}");
    let group = std::fs::read_to_string(etc.join("group")).unwrap();
    let gid: u32 = group
        .lines()
        .find_map(|l| l.strip_prefix("sharpeyes:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("no sharpeyes group in {group:?}"));

    let out = systemd_tool("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(conf("tmpfiles.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for (dir, owner) in [("var/lib/sharpeyes", uid), ("etc/sharpeyes", 0)] {
        let m = std::fs::metadata(root.path().join(dir)).unwrap();
        assert!(m.is_dir(), "{dir}");
        assert_eq!(m.permissions().mode() & 0o7777, 0o750, "{dir}");
        assert_eq!((m.uid(), m.gid()), (owner, gid), "{dir}");
    }
}

/// What `Type=notify` and `WatchdogSec=` rely on, from the real binaries with a real
/// notification socket: READY=1 with a STATUS= line once they serve, WATCHDOG=1 at half
/// `$WATCHDOG_USEC` while their main loop turns, STOPPING=1 on SIGTERM, and a clean exit.
#[test]
fn both_binaries_notify_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    use std::process::Stdio;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    // Neither needs a broker to serve: the aggregator's external broker and the agent's
    // broker are absent (it spools), and both keep retrying.
    let absent_broker = sharpeyes_e2e::free_port();
    let aggregator = dir.path().join("aggregator.toml");
    std::fs::write(
        &aggregator,
        format!(
            "[broker]\nurl = 'mqtt://127.0.0.1:{absent_broker}'\n\
             [store]\npath = '{}'\n[ops]\nport = {}\n[api]\nenabled = false\n",
            dir.path().join("se.db").display(),
            sharpeyes_e2e::free_port(),
        ),
    )
    .unwrap();
    let models = sharpeyes_e2e::models_config();
    let agent = dir.path().join("edge-agent.toml");
    std::fs::write(
        &agent,
        format!(
            "agent_id = 'notify-test'\n\
             [broker]\nport = {absent_broker}\n\
             [models]\ndir = '{}'\nonnxruntime = '{}'\n\
             [face_embedder]\nenabled = false\n[object_detector]\nenabled = false\n\
             [plate_reader]\nenabled = false\n\
             [publish]\nspool_dir = '{}'\n[ops]\nport = {}\n\
             [[cameras]]\nid = 'c1'\n\
             source = 'videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=320,height=240,framerate=5/1'\n",
            models.dir.display(),
            models.onnxruntime.display(),
            dir.path().join("spool").display(),
            sharpeyes_e2e::free_port(),
        ),
    )
    .unwrap();

    for (name, config, status) in [
        ("aggregator", &aggregator, "STATUS=storing to "),
        ("edge-agent", &agent, "STATUS=analysing 1 cameras"),
    ] {
        let socket = dir.path().join(format!("{name}.notify"));
        let sock = UnixDatagram::bind(&socket).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let recv = || {
            let mut buf = [0u8; 1024];
            let n = sock.recv(&mut buf).unwrap_or_else(|e| {
                panic!("{name}: no notification ({e})");
            });
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        let child = Command::new(workspace_bin(name))
            .args(["run", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ready = recv();
        let mut lines = ready.lines();
        assert_eq!(lines.next(), Some("READY=1"), "{name}: {ready}");
        let status_line = lines.next().unwrap_or_default();
        assert!(status_line.starts_with(status), "{name}: {ready}");
        // Pings (every half second) while the main loop turns.
        for _ in 0..3 {
            assert_eq!(recv(), "WATCHDOG=1", "{name}");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let mut last = recv();
        while last == "WATCHDOG=1" {
            last = recv();
        }
        assert_eq!(last, "STOPPING=1", "{name}");
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {:?}\n{err}", out.status);
    }
}
