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
        let conf = dir.join("mosquitto.conf");
        let persistence = if persistent {
            format!(
                "persistence true\npersistence_location {}/\n",
                dir.display()
            )
        } else {
            "persistence false\n".to_string()
        };
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
        std::fs::write(
            &conf,
            format!(
                "user {user}\nlistener {port} 127.0.0.1\nallow_anonymous true\n{persistence}\
                 max_inflight_messages 100\nmax_queued_messages 100000\nlog_dest file {}\n",
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
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {bin}: {e} (scripts/setup.sh installs mosquitto)"))?;
        let mut m = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(m);
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                return Err(format!("mosquitto exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = m.child.kill();
        Err("mosquitto did not listen within 10 s".into())
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
