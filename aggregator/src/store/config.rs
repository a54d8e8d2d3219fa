//! `[store]`: which database (SQLite file or PostgreSQL URL) and how it is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, in_range, invalid};
use sharpeyes_common::secret::{Secret, SecretError};

/// The store's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file (`store.path`): the embedded default, one aggregator.
    Sqlite,
    /// A PostgreSQL database (`store.postgres_url`): several aggregators may share it.
    Postgres,
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` or `postgres`. Default `sqlite`.
    pub backend: StoreBackend,
    /// SQLite database file (created if missing; WAL mode). Default `sharpeyes.db`.
    pub path: PathBuf,
    /// SQLite's `synchronous` setting: `full` syncs the write-ahead log at every commit, so a
    /// transaction the aggregator committed (and acknowledged to its agent, which then deletes
    /// its copy) survives a power cut; `normal` syncs only at checkpoints (a power cut can
    /// roll back the last commits, which are then lost). Measured with the ingest benchmark
    /// (one writer, 16 batches per transaction): `full` stores about 38 % fewer track
    /// updates per second than `normal` (3,429 vs 5,502 on a loaded 2-core machine; docs/store.md,
    /// "Durability"). Ignored by PostgreSQL (its own `synchronous_commit`, on by default, is
    /// durable). Default `full`.
    pub sqlite_synchronous: crate::store::SqliteSynchronous,
    /// PostgreSQL connection (backend `postgres`): a URL
    /// `postgres://user:password@host:port/database` or a `key=value` string
    /// (`host=… user=… password=… dbname=…`). The database must exist; the schema is created.
    /// No TLS: reach the server over loopback or a trusted network. The password is never
    /// logged. Like any secret, it may instead be read at start-up from a file
    /// (`{ file = "/etc/sharpeyes/postgres-url" }`), an environment variable
    /// (`{ env = "NAME" }`) or a systemd credential (`{ credential = "postgres-url" }`, with
    /// `LoadCredential=` in the unit; see [`sharpeyes_common::secret`]); validation reads it.
    /// Default: none (required with backend `postgres`).
    pub postgres_url: Option<Secret>,
    /// Messages committed per transaction at most (1..=10000). Default `256`.
    pub max_batch: usize,
    /// Days sightings, tracks, track points, messages and link evidence are kept
    /// (0..=36500; 0 keeps them forever). Default `30`.
    pub retention_days: u32,
    /// Days alerts and their evidence images are kept (0..=36500; 0 keeps them forever).
    /// Default `365`.
    pub alert_retention_days: u32,
    /// Days an evidence image of kind `sighting` (a track's best shot) is kept, counted from
    /// the newest capture time that referred to it; it goes only once no kept track refers
    /// to it (0..=36500; 0 keeps them forever). Default `30`.
    pub evidence_sighting_retention_days: u32,
    /// Days an evidence image of kind `alert` is kept, likewise; it goes only once no kept
    /// alert refers to it (0..=36500; 0 keeps them forever). Default `365`.
    pub evidence_alert_retention_days: u32,
    /// How often the running aggregator (the fusion owner) applies retention, seconds
    /// (10..=86400). Default `600`.
    pub retention_interval_s: u64,
    /// Rows deleted per kind and transaction at most, so retention never holds the writer up
    /// long (100..=1000000). Default `10000`.
    pub retention_chunk: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            path: "sharpeyes.db".into(),
            sqlite_synchronous: Default::default(),
            postgres_url: None,
            max_batch: 256,
            retention_days: 30,
            alert_retention_days: 365,
            evidence_sighting_retention_days: 30,
            evidence_alert_retention_days: 365,
            retention_interval_s: 600,
            retention_chunk: 10_000,
        }
    }
}

impl StoreConfig {
    /// Where the store is; reads `postgres_url` if validation has not (an error only for a
    /// file, variable or credential that cannot be read).
    pub fn location(&self) -> Result<crate::store::Location, SecretError> {
        Ok(match self.backend {
            StoreBackend::Sqlite => crate::store::Location::Sqlite(self.path.clone()),
            StoreBackend::Postgres => crate::store::Location::Postgres(match &self.postgres_url {
                Some(u) => u.resolve("store.postgres_url")?.to_string(),
                None => String::new(),
            }),
        })
    }

    /// The retention policy.
    pub fn retention(&self) -> crate::store::RetentionPolicy {
        crate::store::RetentionPolicy {
            days: self.retention_days,
            alert_days: self.alert_retention_days,
            evidence_sighting_days: self.evidence_sighting_retention_days,
            evidence_alert_days: self.evidence_alert_retention_days,
            chunk: self.retention_chunk,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self.backend {
            StoreBackend::Sqlite => {
                if self.path.as_os_str().is_empty() {
                    return Err(invalid("store.path", "must not be empty"));
                }
            }
            StoreBackend::Postgres => {
                let url = match &self.postgres_url {
                    Some(u) => Some(u.resolve("store.postgres_url")?),
                    None => None,
                };
                let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
                    return Err(invalid(
                        "store.postgres_url",
                        "backend \"postgres\" needs a connection URL \
                         (postgres://user:password@host:port/database)",
                    ));
                };
                // (The parser's message never quotes the password.)
                let c: postgres::Config = url.parse().map_err(|e| {
                    invalid("store.postgres_url", format!("not a PostgreSQL URL: {e}"))
                })?;
                if c.get_dbname().is_none() {
                    return Err(invalid("store.postgres_url", "name the database"));
                }
                if c.get_ssl_mode() == postgres::config::SslMode::Require {
                    return Err(invalid(
                        "store.postgres_url",
                        "sslmode=require is not supported (no TLS connector is built in)",
                    ));
                }
            }
        }
        if !(1..=10_000).contains(&self.max_batch) {
            return Err(invalid("store.max_batch", "must be within 1..=10000"));
        }
        in_range("store.retention_days", self.retention_days, 0, 36_500)?;
        in_range(
            "store.alert_retention_days",
            self.alert_retention_days,
            0,
            36_500,
        )?;
        in_range(
            "store.evidence_sighting_retention_days",
            self.evidence_sighting_retention_days,
            0,
            36_500,
        )?;
        in_range(
            "store.evidence_alert_retention_days",
            self.evidence_alert_retention_days,
            0,
            36_500,
        )?;
        in_range(
            "store.retention_interval_s",
            self.retention_interval_s,
            10,
            86_400,
        )?;
        in_range(
            "store.retention_chunk",
            self.retention_chunk,
            100,
            1_000_000,
        )?;
        Ok(())
    }
}
