//! Anchors for the audit log (see `store::audit`): the Ed25519 key that signs checkpoints,
//! kept in a file outside the database (`[audit] key_file`), and the witnesses each
//! checkpoint goes to so that cutting the log *and* its stored checkpoints is still caught:
//!
//! - a JSON-lines file, one [`Checkpoint`] a line (`audit.witness_file`; `aggregator audit
//!   checkpoint --out FILE` appends to one by hand); `aggregator audit verify --checkpoints
//!   FILE` checks the log against it;
//! - the log: an INFO line with target `sharpeyes::audit` carrying the whole signed
//!   checkpoint (ship the log to a syslog/journal host and it is witnessed there);
//! - the alert hook (`alerts.hook`) when `audit.checkpoint_hook = true`: the checkpoint as
//!   JSON on standard input with `SHARPEYES_EVENT=audit_checkpoint`.
//!
//! The key file holds the key pair as PKCS#8 (v2, as `ring` makes it), created with mode
//! 0600 on first use or by `aggregator audit keygen`; `aggregator audit public-key` prints
//! the public key to give to whoever verifies.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ring::signature::{Ed25519KeyPair, KeyPair as _};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::AuditConfig;
use crate::hook::Hook;
use crate::metrics::{Metrics, inc};
use crate::store::audit::{Checkpoint, hex};
use crate::store::{Location, Store, StoreError};

/// Why the audit key or a witness file could not be used.
#[derive(Debug, Error)]
pub enum WitnessError {
    /// The key file cannot be read or written.
    #[error("audit key {path}: {source} (check audit.key_file and its directory's permissions)")]
    KeyIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not an Ed25519 PKCS#8 key.
    #[error(
        "audit key {0}: not an Ed25519 key pair in PKCS#8 (make one with `aggregator audit keygen`)"
    )]
    BadKey(PathBuf),
    /// `keygen` would replace a key.
    #[error(
        "audit key {0} exists; checkpoints signed with it could no longer be checked if it were replaced (pick another file)"
    )]
    Exists(PathBuf),
    /// No randomness.
    #[error("no randomness available to make an audit key")]
    Random,
    /// A witness file cannot be read or written.
    #[error("witness file {path}: {source}")]
    FileIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a witness file is not a checkpoint.
    #[error("witness file {path} line {line}: not a checkpoint ({reason})")]
    FileLine {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key pair that signs checkpoints.
pub struct AuditKey {
    pair: Ed25519KeyPair,
    path: PathBuf,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("path", &self.path)
            .field("public_key", &self.public_hex())
            .finish()
    }
}

impl AuditKey {
    /// Makes a new key pair and writes it to `path` (mode 0600, parent directories created);
    /// refuses to replace an existing file.
    pub fn generate(path: &Path) -> Result<Self, WitnessError> {
        let io = |source| WitnessError::KeyIo {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            return Err(WitnessError::Exists(path.to_path_buf()));
        }
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(io)?;
        }
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| WitnessError::Random)?;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                WitnessError::Exists(path.to_path_buf())
            } else {
                io(e)
            }
        })?;
        f.write_all(doc.as_ref()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Self::load(path)
    }

    /// Reads the key pair at `path`.
    pub fn load(path: &Path) -> Result<Self, WitnessError> {
        let bytes = std::fs::read(path).map_err(|source| WitnessError::KeyIo {
            path: path.to_path_buf(),
            source,
        })?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes)
            .map_err(|_| WitnessError::BadKey(path.to_path_buf()))?;
        Ok(Self {
            pair,
            path: path.to_path_buf(),
        })
    }

    /// The key at `path`, made there first if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, WitnessError> {
        match Self::load(path) {
            Err(WitnessError::KeyIo { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let k = Self::generate(path)?;
                info!(path = %path.display(), public_key = %k.public_hex(), "made the audit signing key");
                Ok(k)
            }
            other => other,
        }
    }

    /// The public key, hex (what `audit verify --public-key` takes).
    pub fn public_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A checkpoint of `entries` entries ending in `head` at `ts_ms`, signed.
    pub fn sign(&self, entries: u64, head: &str, ts_ms: i64) -> Checkpoint {
        let sig = self.pair.sign(&Checkpoint::message(entries, head, ts_ms));
        Checkpoint {
            entries,
            head: head.to_string(),
            ts_ms,
            public_key: self.public_hex(),
            signature: hex(sig.as_ref()),
        }
    }
}

/// Where the audit key is: `audit.key_file`, else beside the SQLite file
/// (`<store.path>.audit-key`), else (PostgreSQL) `sharpeyes-audit.key` in the working
/// directory.
pub fn key_path(cfg: &AuditConfig, store: &Location) -> PathBuf {
    if let Some(p) = &cfg.key_file {
        return p.clone();
    }
    match store {
        Location::Sqlite(p) => {
            let mut s = p.as_os_str().to_owned();
            s.push(".audit-key");
            PathBuf::from(s)
        }
        Location::Postgres(_) => PathBuf::from("sharpeyes-audit.key"),
    }
}

/// Appends `c` as one JSON line to `path` (created if missing), flushed to the disk.
pub fn append(path: &Path, c: &Checkpoint) -> Result<(), WitnessError> {
    let io = |source| WitnessError::FileIo {
        path: path.to_path_buf(),
        source,
    };
    let mut line = serde_json::to_string(c).unwrap_or_default();
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)
}

/// The checkpoints of a JSON-lines witness file (blank lines skipped).
pub fn read(path: &Path) -> Result<Vec<Checkpoint>, WitnessError> {
    let text = std::fs::read_to_string(path).map_err(|source| WitnessError::FileIo {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| WitnessError::FileLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Hands a new checkpoint to the witnesses: the log line (always), the witness file and the
/// hook when configured. A witness that fails is logged and counted; the checkpoint stays
/// stored.
pub fn export(c: &Checkpoint, cfg: &AuditConfig, hook: Option<&Hook>, metrics: &Metrics) {
    let json = serde_json::to_string(c).unwrap_or_default();
    info!(target: "sharpeyes::audit", checkpoint = %json, entries = c.entries, "audit checkpoint");
    if let Some(p) = &cfg.witness_file
        && let Err(e) = append(p, c)
    {
        inc(&metrics.audit_witness_failures);
        warn!(error = %e, "the audit checkpoint was not written to audit.witness_file");
    }
    if cfg.checkpoint_hook
        && let Some(h) = hook
    {
        h.send_checkpoint(c);
    }
}

/// What [`checkpoint_loop`] needs.
pub struct Checkpointer {
    /// The audit section.
    pub cfg: AuditConfig,
    /// The store.
    pub at: Location,
    /// The alert hook, if any.
    pub hook: Option<Hook>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl Checkpointer {
    /// Opens the key (made on first use) and the store; then, every
    /// `audit.checkpoint_interval_s` and once more at `shutdown` (after `done` is
    /// cancelled: when everything that audits has stopped), stores a checkpoint when the log
    /// grew since the last and exports it.
    pub async fn run(self, done: CancellationToken) -> Result<(), WitnessError> {
        let key_file = key_path(&self.cfg, &self.at);
        let at = self.at.clone();
        let (key, store) = tokio::task::spawn_blocking(move || {
            let key = AuditKey::load_or_create(&key_file)?;
            let store = Store::open_at(&at)?;
            Ok::<_, WitnessError>((key, store))
        })
        .await
        .map_err(|e| WitnessError::Store(StoreError::Internal(e.to_string())))??;
        info!(key = %key.path().display(), public_key = %key.public_hex(), every_s = self.cfg.checkpoint_interval_s, "audit checkpoints on");
        let me = Arc::new((self, key, std::sync::Mutex::new((store, None::<u64>))));
        let mut tick = tokio::time::interval(Duration::from_secs(me.0.cfg.checkpoint_interval_s));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                _ = done.cancelled() => true,
                _ = tick.tick() => false,
            };
            let m = me.clone();
            let r = tokio::task::spawn_blocking(move || {
                let (cp, key, state) = (&m.0, &m.1, &m.2);
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                let n = st.0.audit_len()?;
                if st.1 == Some(n) {
                    return Ok::<_, StoreError>(());
                }
                let c = st.0.audit_checkpoint(key, sharpeyes_wire::now_ms())?;
                st.1 = Some(c.entries);
                inc(&cp.metrics.audit_checkpoints);
                export(&c, &cp.cfg, cp.hook.as_ref(), &cp.metrics);
                Ok(())
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    inc(&me.0.metrics.audit_witness_failures);
                    warn!(error = %e, "no audit checkpoint this time (the store failed; retried next interval)");
                }
                Err(e) => warn!(error = %e, "the audit checkpoint task failed"),
            }
            if last {
                // The store is closed off the async threads (the PostgreSQL client blocks on
                // a runtime of its own when it closes).
                let _ = tokio::task::spawn_blocking(move || drop(me)).await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/audit.key");
        let k = AuditKey::load_or_create(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            AuditKey::generate(&p),
            Err(WitnessError::Exists(_))
        ));
        let again = AuditKey::load(&p).unwrap();
        assert_eq!(k.public_hex(), again.public_hex());
        assert_eq!(k.public_hex().len(), 64);
        let c = k.sign(3, "ab", 1000);
        assert!(c.signature_holds());
        let mut forged = c.clone();
        forged.entries = 2;
        assert!(!forged.signature_holds());
        let w = dir.path().join("w.jsonl");
        append(&w, &c).unwrap();
        append(&w, &k.sign(4, "cd", 2000)).unwrap();
        let back = read(&w).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], c);
        std::fs::write(&w, "{\"entries\": 1}\n").unwrap();
        assert!(read(&w).unwrap_err().to_string().contains("line 1"));
        std::fs::write(&p, b"not a key").unwrap();
        assert!(matches!(AuditKey::load(&p), Err(WitnessError::BadKey(_))));
        assert_eq!(
            key_path(&AuditConfig::default(), &Location::Sqlite("/x/s.db".into())),
            PathBuf::from("/x/s.db.audit-key")
        );
    }
}
