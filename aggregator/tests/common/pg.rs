//! A throw-away PostgreSQL server for tests and the store benchmark: `initdb` into a
//! temporary directory, `pg_ctl start` on 127.0.0.1 with a free port (unix socket in the same
//! directory, `fsync` off), one database per [`TempPostgres::database`]; stopped and deleted
//! on drop.
//!
//! The binaries come from Debian's `postgresql` package (`scripts/setup.sh` installs it):
//! `$PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `initdb` on the `PATH`.
//! Without them this panics with what to install: the PostgreSQL tests never skip silently.
//! PostgreSQL refuses to run as root; as root the server runs as the `postgres` user the
//! Debian package creates (`runuser -u postgres`), in a directory it owns.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    as_user: Option<&'static str>,
}

fn pg_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("PG_BIN") {
        return PathBuf::from(b);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, b)) = versions.pop() {
        return b;
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(d) = p.parent() {
            return d.to_path_buf();
        }
    }
    panic!(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb \
         on PATH, PG_BIN unset): install Debian's `postgresql` package (scripts/setup.sh does)"
    );
}

impl TempPostgres {
    /// Starts a server (panics with the reason if it cannot).
    pub fn start() -> Self {
        let bin = pg_bin();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let as_user = root.then_some("postgres");
        let base = std::env::var_os("PG_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("sharpeyes-pg-")
            .tempdir_in(base)
            .expect("temporary directory");
        if let Some(u) = as_user {
            let ok = Command::new("chown")
                .args([&format!("{u}:{u}"), dir.path().to_str().unwrap()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "running as root: could not hand {} to the `{u}` user (Debian's postgresql \
                 package creates it; install it with scripts/setup.sh)",
                dir.path().display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let pg = Self {
            dir,
            bin,
            port,
            as_user,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        pg.pg_start();
        pg
    }

    fn pg_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=50 \
             -c shared_buffers=256MB -c max_wal_size=4GB",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server (fast: its clients' connections break; what was committed is kept,
    /// though the test server runs without fsync and with asynchronous commits).
    pub fn stop(&mut self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts a stopped server again, on the same port with the same data.
    pub fn restart(&mut self) {
        self.pg_start();
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{tool} failed ({}):\n{}{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The URL of `db` on this server (no password: trust authentication on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database; its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connecting to the test server");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        self.url(name)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd
            .args(["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"])
            .output();
    }
}
