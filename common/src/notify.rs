//! systemd's readiness and watchdog protocol (`sd_notify`, `Type=notify`, `WatchdogSec=`):
//! one datagram of `KEY=value` lines to the Unix socket named by `$NOTIFY_SOCKET` (a path, or
//! `@name` for an abstract socket).
//!
//! Every call is a no-op when `$NOTIFY_SOCKET` is unset (not started by systemd, or a unit
//! without `Type=notify`); a failure to send is logged once, at debug level, and never stops
//! the service: systemd then sees no readiness and reports that itself.
//!
//! [`serving`] is what a binary calls once it serves: READY=1 with a STATUS= line, WATCHDOG=1
//! at half `$WATCHDOG_USEC` while its main loop's [`Heartbeat`] advances (a hung loop stops
//! the pings, and systemd restarts the service), and STOPPING=1 when shutdown begins.

use std::ffi::{OsStr, OsString};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("NOTIFY_SOCKET={0:?} is not a socket path or @abstract name: only those are supported")]
    Address(String),
    /// Sending the datagram failed.
    #[error("cannot notify systemd at {at:?}: {source}")]
    Send {
        /// The socket.
        at: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Tells systemd the service is ready (`READY=1`).
pub fn ready() {
    notify("READY=1");
}

/// Tells systemd the service is stopping (`STOPPING=1`).
pub fn stopping() {
    notify("STOPPING=1");
}

/// A one-line status shown by `systemctl status` (`STATUS=...`; line breaks become spaces).
pub fn status(text: &str) {
    notify(&format!("STATUS={}", one_line(text)));
}

/// Tells systemd's watchdog the service is alive (`WATCHDOG=1`).
pub fn watchdog() {
    notify("WATCHDOG=1");
}

/// How often systemd expects [`watchdog`]: `$WATCHDOG_USEC`, when set for this process (when
/// `$WATCHDOG_PID` is set, only if it is our pid). None: no watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] from the values of `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
pub fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    our_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.to_str().and_then(|p| p.trim().parse::<u32>().ok()) != Some(our_pid)
    {
        return None;
    }
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Sends `state` to `$NOTIFY_SOCKET`, if set.
fn notify(state: &str) {
    notify_at(notify_socket().as_deref(), state);
}

/// `$NOTIFY_SOCKET`, when set and not empty.
fn notify_socket() -> Option<OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())
}

/// Sends `state` to `socket`, if any; logs the first failure at debug level.
fn notify_at(socket: Option<&OsStr>, state: &str) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    let Some(socket) = socket else {
        return;
    };
    if let Err(e) = notify_to(socket, state)
        && !LOGGED.swap(true, Ordering::Relaxed)
    {
        tracing::debug!(error = %e, "systemd notification failed (logged once)");
    }
}

/// Sends `state` as one datagram to `socket` (a path, or `@name` for an abstract socket).
pub fn notify_to(socket: &OsStr, state: &str) -> Result<(), NotifyError> {
    let name = socket.to_string_lossy();
    let addr = address(socket).ok_or_else(|| NotifyError::Address(name.to_string()))?;
    let send_error = |source| NotifyError::Send {
        at: name.to_string(),
        source,
    };
    let sock = UnixDatagram::unbound().map_err(send_error)?;
    sock.send_to_addr(state.as_bytes(), &addr)
        .map_err(send_error)?;
    Ok(())
}

/// The socket address `$NOTIFY_SOCKET` names.
fn address(socket: &OsStr) -> Option<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first()? {
        b'/' => SocketAddr::from_pathname(socket).ok(),
        #[cfg(target_os = "linux")]
        b'@' => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..]).ok()
        }
        _ => None,
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A counter that a service's main loop advances on every turn (also when idle); the
/// watchdog pings only while it moves.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    /// One more turn of the loop.
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Stops the watchdog pings when dropped (the end of `run`).
#[derive(Debug)]
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The service serves: sends `READY=1` and `STATUS=status`; then, when systemd runs a watchdog
/// ([`watchdog_interval`]), sends `WATCHDOG=1` every half interval in which `heartbeat`
/// advanced; sends `STOPPING=1` when `shutdown` is cancelled (and pings no more). Call inside
/// a Tokio runtime; keep the result until the service stops.
pub fn serving(status_line: &str, heartbeat: Heartbeat, shutdown: CancellationToken) -> Serving {
    serving_at(
        notify_socket(),
        watchdog_interval(),
        status_line,
        heartbeat,
        shutdown,
    )
}

/// [`serving`] with the socket and watchdog interval given.
fn serving_at(
    socket: Option<OsString>,
    interval: Option<Duration>,
    status_line: &str,
    heartbeat: Heartbeat,
    shutdown: CancellationToken,
) -> Serving {
    let send = move |state: &str| notify_at(socket.as_deref(), state);
    send(&format!("READY=1\nSTATUS={}", one_line(status_line)));
    let period = interval.map(|d| d / 2);
    Serving(tokio::spawn(async move {
        let Some(period) = period else {
            shutdown.cancelled().await;
            send("STOPPING=1");
            return;
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = heartbeat.count();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let now = heartbeat.count();
                    if now != last {
                        send("WATCHDOG=1");
                    } else {
                        tracing::debug!("the main loop did not turn for {period:?}: no watchdog ping");
                    }
                    last = now;
                }
            }
        }
        send("STOPPING=1");
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn notifications_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(recv(&sock), "READY=1\nSTATUS=serving");
        notify_to(path.as_os_str(), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn notifications_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("sharpeyes-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn bad_addresses_and_absent_sockets_are_errors() {
        let e = notify_to(OsStr::new("vsock:2:1234"), "READY=1").unwrap_err();
        assert!(matches!(e, NotifyError::Address(_)), "{e}");
        assert!(e.to_string().contains("only those are supported"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nobody-listens");
        let e = notify_to(gone.as_os_str(), "READY=1").unwrap_err();
        assert!(matches!(e, NotifyError::Send { .. }), "{e}");
    }

    #[test]
    fn the_watchdog_interval_is_for_our_pid_only() {
        let s = |v: &'static str| Some(OsStr::new(v));
        assert_eq!(
            watchdog_interval_from(s("2000000"), None, 42),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval_from(s("60000000"), s("42"), 42),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            watchdog_interval_from(s("2000000"), s("43"), 42),
            None,
            "another process's watchdog"
        );
        assert_eq!(watchdog_interval_from(s("2000000"), s("x"), 42), None);
        assert_eq!(watchdog_interval_from(None, s("42"), 42), None);
        assert_eq!(watchdog_interval_from(s("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(s("soon"), None, 42), None);
    }

    /// Pings while the heartbeat moves, none once it stops; STOPPING=1 at shutdown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watchdog_is_pinged_only_while_the_loop_turns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        let recv = move || {
            let mut buf = [0u8; 512];
            sock.recv(&mut buf)
                .map(|n| String::from_utf8(buf[..n].to_vec()).unwrap())
        };
        let (heartbeat, shutdown) = (Heartbeat::default(), CancellationToken::new());
        let beating = CancellationToken::new();
        {
            let (heartbeat, beating) = (heartbeat.clone(), beating.clone());
            tokio::spawn(async move {
                while !beating.is_cancelled() {
                    heartbeat.beat();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        let _serving = serving_at(
            Some(path.into_os_string()),
            Some(Duration::from_millis(200)),
            "2 cameras\nlive",
            heartbeat,
            shutdown.clone(),
        );
        let recv = move || tokio::task::block_in_place(&recv);
        assert_eq!(recv().unwrap(), "READY=1\nSTATUS=2 cameras live");
        for _ in 0..3 {
            assert_eq!(recv().unwrap(), "WATCHDOG=1");
        }
        beating.cancel();
        // At most one more (a beat in the period when it stopped), then none.
        let mut after = 0;
        while let Ok(m) = recv() {
            assert_eq!(m, "WATCHDOG=1");
            after += 1;
            assert!(after <= 1, "pinged while the loop was stopped");
        }
        shutdown.cancel();
        assert_eq!(recv().unwrap(), "STOPPING=1");
    }

    #[test]
    fn status_lines_are_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
