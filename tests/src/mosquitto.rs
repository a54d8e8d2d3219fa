//! A Mosquitto broker (Debian's `mosquitto`) on a free port of 127.0.0.1, for tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Mosquitto; killed when dropped.
pub struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    /// Starts Mosquitto with its config and log in `dir`, on a free port, without persistence.
    pub fn start(dir: &Path) -> Result<Self, String> {
        Self::start_on(dir, crate::free_port(), false)
    }

    /// Starts Mosquitto on `port`; with `persistent`, sessions and queued messages are saved in
    /// `dir` when it stops and restored when it starts again (as a production broker does).
    pub fn start_on(dir: &Path, port: u16, persistent: bool) -> Result<Self, String> {
        let persistence = if persistent {
            format!(
                "persistence true\npersistence_location {}/\n",
                dir.display()
            )
        } else {
            "persistence false\n".to_string()
        };
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}\
             max_inflight_messages 100\nmax_queued_messages 100000\n"
        );
        Self::start_with(dir, port, &conf)
    }

    /// Starts Mosquitto with the configuration `conf` (which must listen on `port`), logging
    /// into `dir`.
    pub fn start_with(dir: &Path, port: u16, conf: &str) -> Result<Self, String> {
        // Started as root, Mosquitto would switch to the `mosquitto` user, which cannot write
        // its log and persistence file into the test's private directory: stay who we are.
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or("cannot tell the current user name (`id -un`)")?;
        let path = dir.join("mosquitto.conf");
        std::fs::write(
            &path,
            format!(
                "user {user}\nlog_dest file {}\n{conf}",
                dir.join("mosquitto.log").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {bin}: {e} (scripts/setup.sh installs mosquitto)"))?;
        let mut m = Self { child, port };
        let log = || std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Listening on `port`, and done opening listeners (it logs `running` after them).
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && log().contains(" running")
            {
                // Only there: an option that configures Mosquitto's default listener (one above
                // every `listener` line) would also open plain MQTT on port 1883 of every
                // interface.
                let log = log();
                let elsewhere: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("listen socket") && !l.ends_with(&format!(" {port}.")))
                    .collect();
                if !elsewhere.is_empty() {
                    return Err(format!("mosquitto listens elsewhere too: {elsewhere:?}"));
                }
                return Ok(m);
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                return Err(format!("mosquitto exited: {status}; its log: {}", log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = m.child.kill();
        Err(format!(
            "mosquitto did not listen within 10 s; its log: {}",
            log()
        ))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it gracefully (SIGTERM: it saves its persistence file) and waits.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
