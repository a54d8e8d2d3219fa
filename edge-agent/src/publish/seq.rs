//! The agent's message sequence (`Envelope::seq`), unique across restarts whatever the wall
//! clock says.
//!
//! `(agent, seq)` is the aggregator's idempotency key: a `seq` used twice makes the second
//! message a "duplicate" that is dropped. A gateway without a real-time clock may boot at the
//! same (wrong) time every day, so the sequence cannot come from the clock alone. It is kept
//! in the file `seq` of the agent's spool directory, in blocks: the file holds the highest
//! `seq` this agent may have handed out ("the limit"), and is rewritten (a new file, fsynced,
//! renamed over the old one, the directory fsynced) *before* any `seq` above the old limit is
//! used, [`BLOCK`] at a time, so it costs one fsync per [`BLOCK`] messages.
//!
//! At start the sequence continues above the largest of: the limit in the file, `now × 1000`
//! (UTC ms; the scheme of earlier versions, so an agent upgraded from one, or one whose file
//! was lost on a disk with a good clock, stays above every `seq` it used before) and the
//! largest `seq` still in the spool. A restart therefore skips at most one block and never
//! goes back, even when the clock went backwards.
//!
//! The file is one line of ASCII: the limit in decimal. An unreadable or damaged file (which
//! the atomic rename should make impossible) is logged and counted as missing: the clock and
//! the spool still give a floor.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::warn;

/// Seqs reserved per write of the file.
pub const BLOCK: u64 = 10_000;

/// The file's name in the spool directory.
pub const FILE: &str = "seq";

/// The sequence file cannot be written.
#[derive(Debug, Error)]
pub enum SeqError {
    /// A file operation failed (disk full, permissions...).
    #[error("sequence file {path}: {source} (check the spool directory's disk and permissions)")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Every `seq` is used (not reachable in practice: 2^64).
    #[error("the message sequence is exhausted")]
    Exhausted,
}

/// The persisted sequence of one agent.
#[derive(Debug)]
pub struct Sequence {
    dir: PathBuf,
    /// The next `seq` to hand out.
    next: u64,
    /// Every `seq` up to this one is reserved in the file.
    limit: u64,
    /// Whether the file was missing or unreadable at open.
    recovered: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SeqError + '_ {
    move |source| SeqError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Sequence {
    /// Opens the sequence in `dir` (created if missing) at wall-clock time `now_ms`, above
    /// `floor` (the largest `seq` still in the spool, 0 if none); reserves the first block.
    pub fn open(dir: &Path, now_ms: i64, floor: u64) -> Result<Self, SeqError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE);
        let (stored, recovered) = match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(v) => (v, false),
                Err(_) => {
                    warn!(file = %path.display(), "the sequence file is damaged; continuing above the clock and the spool");
                    (0, true)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, false),
            Err(e) => return Err(SeqError::Io { path, source: e }),
        };
        let clock = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
        let next = stored
            .max(clock)
            .max(floor)
            .checked_add(1)
            .ok_or(SeqError::Exhausted)?;
        let mut s = Self {
            dir: dir.to_path_buf(),
            next,
            limit: 0,
            recovered,
        };
        s.reserve()?;
        Ok(s)
    }

    /// The next `seq`; writes the file first when it leaves the reserved block.
    pub fn next_seq(&mut self) -> Result<u64, SeqError> {
        if self.next > self.limit {
            self.reserve()?;
        }
        let seq = self.next;
        self.next = self.next.checked_add(1).ok_or(SeqError::Exhausted)?;
        Ok(seq)
    }

    /// The highest `seq` reserved in the file.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the file was damaged at open.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Reserves `next..next + BLOCK` in the file, durably, before any of it is used.
    fn reserve(&mut self) -> Result<(), SeqError> {
        let limit = self.next.saturating_add(BLOCK - 1);
        let path = self.dir.join(FILE);
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            writeln!(f, "{limit}").map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself must survive a power cut.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        self.limit = limit;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01

    #[test]
    fn a_restart_with_the_clock_set_back_continues_above_every_used_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sequence::open(dir.path(), NOW, 0).unwrap();
        let first: Vec<u64> = (0..2 * BLOCK + 5).map(|_| s.next_seq().unwrap()).collect();
        assert!(first.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(first[0] > NOW as u64 * 1000);
        let last = *first.last().unwrap();
        assert!(s.limit() >= last);
        drop(s);
        // A day earlier, then a clock before 1970 (a gateway without a real-time clock).
        for now in [NOW - 86_400_000, -5_000] {
            let mut s = Sequence::open(dir.path(), now, 0).unwrap();
            let seq = s.next_seq().unwrap();
            assert!(seq > last, "{seq} <= {last}");
            assert!(seq <= last + 2 * BLOCK, "skips at most a block or so");
        }
    }

    #[test]
    fn the_clock_and_the_spool_give_floors() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sequence::open(dir.path(), 0, 0).unwrap();
        assert_eq!(s.next_seq().unwrap(), 1);
        drop(s);
        // A later clock moves it up (as earlier versions' time-based seqs did).
        let mut s = Sequence::open(dir.path(), NOW, 0).unwrap();
        assert_eq!(s.next_seq().unwrap(), NOW as u64 * 1000 + 1);
        drop(s);
        // A lost file: the spool's largest seq still holds.
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        let mut s = Sequence::open(dir.path(), 0, 7_000_000).unwrap();
        assert_eq!(s.next_seq().unwrap(), 7_000_001);
    }

    #[test]
    fn a_damaged_file_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "12x\n").unwrap();
        let mut s = Sequence::open(dir.path(), NOW, 0).unwrap();
        assert!(s.recovered());
        assert!(s.next_seq().unwrap() > NOW as u64 * 1000);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.trim().parse::<u64>().unwrap(), s.limit());
    }
}
