//! `[face_search]`: the running aggregator's live face index.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, in_range};

use crate::store::Location;

/// The live face index: every representative face in memory, searched by the API's
/// `POST /api/v1/faces/search` and `aggregator search-face` (see `docs/fusion.md`,
/// "Face search").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceSearchConfig {
    /// Keep the index in memory while running (about 0.7 KB per face at 128 values: 0.7 GB
    /// for 1 M faces). Off, each search reads every face from the store first (seconds at
    /// 1 M faces). Default `true`.
    pub live_index: bool,
    /// The index's snapshot file, loaded at start (then brought up to date from the store)
    /// instead of reading every face from the store; written every `snapshot_interval_s`
    /// and at shutdown, atomically. `aggregator search-face` reads it too. Default: the
    /// SQLite store's path with `.faces` appended (`sharpeyes.db.faces`); with PostgreSQL,
    /// `sharpeyes-faces.idx` in the working directory.
    pub snapshot_path: Option<PathBuf>,
    /// How often the snapshot is written while faces change, seconds (0 = only at shutdown,
    /// else 10..=86400). Default `600`.
    pub snapshot_interval_s: u64,
    /// How often the index is compared with the store and brought up to date, seconds
    /// (0 = never, else 10..=86400): it follows this aggregator's fusion as it commits, but
    /// faces written by another aggregator (PostgreSQL, another fusion owner) or deleted by
    /// retention are only seen this way. Default `300`.
    pub refresh_s: u64,
    /// Threads one search scans with (0 = one per core, else 1..=64). Default `0`.
    pub threads: usize,
}

impl Default for FaceSearchConfig {
    fn default() -> Self {
        Self {
            live_index: true,
            snapshot_path: None,
            snapshot_interval_s: 600,
            refresh_s: 300,
            threads: 0,
        }
    }
}

fn zero_or(name: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Ok(());
    }
    in_range(name, v, lo, hi)
}

impl FaceSearchConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        zero_or(
            "face_search.snapshot_interval_s",
            self.snapshot_interval_s,
            10,
            86_400,
        )?;
        zero_or("face_search.refresh_s", self.refresh_s, 10, 86_400)?;
        in_range("face_search.threads", self.threads, 0, 64)?;
        if let Some(p) = &self.snapshot_path
            && (p.as_os_str().is_empty() || p.is_dir())
        {
            return Err(sharpeyes_common::config::invalid(
                "face_search.snapshot_path",
                format!("{} is not a file name", p.display()),
            ));
        }
        Ok(())
    }

    /// The snapshot file for the store at `at`.
    pub fn snapshot_file(&self, at: &Location) -> PathBuf {
        match (&self.snapshot_path, at) {
            (Some(p), _) => p.clone(),
            (None, Location::Sqlite(p)) => {
                let mut s = p.clone().into_os_string();
                s.push(".faces");
                PathBuf::from(s)
            }
            (None, Location::Postgres(_)) => Path::new("sharpeyes-faces.idx").to_path_buf(),
        }
    }

    /// Scan threads: the configured number, or one per core.
    pub fn scan_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}
