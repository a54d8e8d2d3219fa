//! The disk spool: every track batch and alert is written here before it is published, and
//! leaves only when an aggregator acknowledged it end to end (its `seq` arrived on the
//! agent's acknowledgement topic, after the aggregator committed it), or when the byte cap
//! evicts it (counted). The broker's PUBACK does not remove anything: it only says the message
//! is in flight.
//!
//! # Invariants
//! 1. `append` returns only after the record is in the segment file (and fsynced, with
//!    `fsync = "always"`); publishing comes after.
//! 2. A record leaves the spool only through `ack_seqs` (the aggregator's acknowledgement of
//!    its `seq`), `ack` (by spool id: a record without a `seq`, see 6) or eviction by the byte
//!    cap; all are written to the resolution log before they take effect, and every eviction
//!    is counted. Nothing leaves silently.
//! 3. After a restart, `pending()` lists every record appended and not resolved, in append
//!    order (ids are increasing and survive restarts), each with the `seq` it was appended
//!    with.
//! 4. A torn or corrupt tail (a crash during a write) is detected by length, magic and CRC32
//!    and cut off; every record before it survives. Reading never panics on bad bytes.
//! 5. Pending bytes stay under `max_bytes`: beyond it the oldest non-alert records are
//!    evicted first, alerts only when nothing else is left. Disk use is pending bytes plus
//!    resolved records in segments that still hold a pending one (a segment is deleted as
//!    soon as all its records are resolved).
//! 6. Every record appended by this version carries its envelope's `seq` in its header (flag
//!    bit 1), so acknowledgements find it without decoding the payload. Records of an older
//!    spool have none (`Record::seq` is `None`); the publisher reads their `seq` from the
//!    payload at start and tells the spool ([`Spool::set_seq`]), or resolves them by id.
//!
//! # Layout
//! `dir/NNNNNNNNNNNNNNNN.seg`: segments named by their first record id (hex), each a run of
//! records `[magic 0xA5][flags u8][len u32][id u64][crc32 u32]([seq u64])[topic_len u16][topic][payload]`
//! (little endian; flags: bit 0 alert, bit 1 `seq` present; `len` counts seq, topic_len,
//! topic and payload; the CRC covers id, flags and those bytes). `dir/resolved.log`: 12-byte
//! entries `[id u64][crc32 of id u32]`, one per acknowledgement or eviction; emptied when no
//! segment remains. The agent's sequence file (`seq`, see `publish::seq`) lives in the same
//! directory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

const MAGIC: u8 = 0xA5;
const HEADER: usize = 1 + 1 + 4 + 8 + 4 + 2;
const FLAG_ALERT: u8 = 1;
const FLAG_SEQ: u8 = 2;
const RESOLVED: &str = "resolved.log";
/// Largest record accepted (a payload carries at most a few evidence JPEGs).
pub const MAX_RECORD: usize = 64 << 20;

/// Spool failures (disk trouble; bad bytes on disk are cut, not errors).
#[derive(Debug, Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The record is larger than [`MAX_RECORD`] or than the whole cap.
    #[error("record of {0} bytes is larger than the spool accepts")]
    TooLarge(usize),
    /// The id is not pending.
    #[error("record {0} is not in the spool")]
    Unknown(u64),
}

/// When the spool forces data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// After every append and resolution: nothing acknowledged to the caller is lost in a
    /// power cut.
    #[default]
    Always,
    /// Leave it to the operating system: survives a crash of the agent, not a power cut.
    Never,
}

/// Spool limits.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolLimits {
    /// Pending bytes at most (records' full size on disk).
    pub max_bytes: u64,
    /// A segment is closed and a new one started beyond this size.
    pub segment_bytes: u64,
    /// Fsync policy.
    pub fsync: Fsync,
}

/// One spooled payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Spool id (increasing).
    pub id: u64,
    /// MQTT topic.
    pub topic: String,
    /// Encoded payload.
    pub payload: Vec<u8>,
    /// Whether it is an alert (evicted last).
    pub alert: bool,
    /// The envelope's `seq` (None: a record of an older spool, see invariant 6).
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u64,
    offset: u64,
    size: u64,
    alert: bool,
    seq: Option<u64>,
    /// When this run appended it, or opened the spool holding it.
    since: Instant,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    pending: usize,
}

/// The spool of one agent.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    segments: BTreeMap<u64, Segment>,
    active: Option<(u64, File)>,
    resolved: File,
    index: BTreeMap<u64, Entry>,
    /// Pending records by `seq` (those that have one).
    by_seq: BTreeMap<u64, u64>,
    pending_bytes: u64,
    next_id: u64,
    evicted: u64,
    cut_bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn crc(id: u64, flags: u8, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(&[flags]);
    h.update(body);
    h.finalize()
}

/// Encodes one record.
fn encode(id: u64, topic: &str, payload: &[u8], alert: bool, seq: Option<u64>) -> Vec<u8> {
    let flags = if alert { FLAG_ALERT } else { 0 } | if seq.is_some() { FLAG_SEQ } else { 0 };
    let mut body = Vec::with_capacity(10 + topic.len() + payload.len());
    if let Some(seq) = seq {
        body.extend_from_slice(&seq.to_le_bytes());
    }
    body.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(MAGIC);
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&crc(id, flags, &body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes the record at the start of `buf`: (record, its size), or None if it is torn,
/// corrupt or not a record.
fn decode(buf: &[u8]) -> Option<(Record, usize)> {
    if buf.len() < HEADER - 2 || buf[0] != MAGIC {
        return None;
    }
    let flags = buf[1];
    let len = u32::from_le_bytes(buf[2..6].try_into().ok()?) as usize;
    let id = u64::from_le_bytes(buf[6..14].try_into().ok()?);
    let sum = u32::from_le_bytes(buf[14..18].try_into().ok()?);
    if !(2..=MAX_RECORD).contains(&len) || buf.len() < 18 + len {
        return None;
    }
    let body = &buf[18..18 + len];
    if crc(id, flags, body) != sum {
        return None;
    }
    let (seq, body) = if flags & FLAG_SEQ != 0 {
        if body.len() < 10 {
            return None;
        }
        (
            Some(u64::from_le_bytes(body[..8].try_into().ok()?)),
            &body[8..],
        )
    } else {
        (None, body)
    };
    let tlen = u16::from_le_bytes([body[0], body[1]]) as usize;
    if 2 + tlen > body.len() {
        return None;
    }
    let topic = String::from_utf8(body[2..2 + tlen].to_vec()).ok()?;
    let payload = body[2 + tlen..].to_vec();
    Some((
        Record {
            id,
            topic,
            payload,
            alert: flags & FLAG_ALERT != 0,
            seq,
        },
        18 + len,
    ))
}

impl Spool {
    /// Opens (creating) the spool in `dir`: reads what a previous run left, cuts torn tails,
    /// deletes fully resolved segments.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let rpath = dir.join(RESOLVED);
        let mut resolved_ids = std::collections::HashSet::new();
        let mut max_resolved = 0u64;
        if rpath.exists() {
            let bytes = std::fs::read(&rpath).map_err(io(&rpath))?;
            let mut good = 0;
            for e in bytes.chunks_exact(12) {
                let id = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
                if crc32fast::hash(&id.to_le_bytes()).to_le_bytes() != e[8..12] {
                    break;
                }
                resolved_ids.insert(id);
                max_resolved = max_resolved.max(id);
                good += 12;
            }
            if good != bytes.len() {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&rpath)
                    .map_err(io(&rpath))?;
                f.set_len(good as u64).map_err(io(&rpath))?;
            }
        }
        let resolved = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&rpath)
            .map_err(io(&rpath))?;
        let mut spool = Self {
            dir: dir.to_path_buf(),
            limits,
            segments: BTreeMap::new(),
            active: None,
            resolved,
            index: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            pending_bytes: 0,
            next_id: max_resolved + 1,
            evicted: 0,
            cut_bytes: 0,
        };
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let stem = p.file_stem()?.to_str()?.to_string();
                (p.extension()? == "seg")
                    .then(|| u64::from_str_radix(&stem, 16).ok().map(|n| (n, p)))?
            })
            .collect();
        names.sort();
        let opened = Instant::now();
        for (first, path) in names {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let mut off = 0usize;
            let mut seg = Segment {
                path: path.clone(),
                bytes: 0,
                pending: 0,
            };
            while off < bytes.len() {
                let Some((rec, size)) = decode(&bytes[off..]) else {
                    break;
                };
                spool.next_id = spool.next_id.max(rec.id + 1);
                if !resolved_ids.contains(&rec.id) {
                    spool.index.insert(
                        rec.id,
                        Entry {
                            segment: first,
                            offset: off as u64,
                            size: size as u64,
                            alert: rec.alert,
                            seq: rec.seq,
                            since: opened,
                        },
                    );
                    if let Some(seq) = rec.seq {
                        spool.by_seq.insert(seq, rec.id);
                    }
                    spool.pending_bytes += size as u64;
                    seg.pending += 1;
                }
                off += size;
            }
            if off < bytes.len() {
                // Torn or corrupt tail: cut it (invariant 4).
                spool.cut_bytes += (bytes.len() - off) as u64;
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(off as u64).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
            }
            seg.bytes = off as u64;
            spool.segments.insert(first, seg);
        }
        let empty: Vec<u64> = spool
            .segments
            .iter()
            .filter(|(_, s)| s.pending == 0)
            .map(|(k, _)| *k)
            .collect();
        for k in empty {
            spool.remove_segment(k)?;
        }
        spool.compact_resolved_log()?;
        Ok(spool)
    }

    /// Ids of the pending records, oldest first.
    pub fn pending(&self) -> Vec<u64> {
        self.index.keys().copied().collect()
    }

    /// Ids of at most `limit` pending records with id ≥ `from`, oldest first.
    pub fn pending_from(&self, from: u64, limit: usize) -> Vec<u64> {
        self.index
            .range(from..)
            .take(limit)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Number of pending records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes of the pending records.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Records evicted by the byte cap since open.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Bytes of torn or corrupt tails cut at open.
    pub fn cut_bytes(&self) -> u64 {
        self.cut_bytes
    }

    /// Reads a pending record.
    pub fn read(&self, id: u64) -> Result<Record, SpoolError> {
        let e = self.index.get(&id).ok_or(SpoolError::Unknown(id))?;
        let seg = &self.segments[&e.segment];
        let mut f = File::open(&seg.path).map_err(io(&seg.path))?;
        f.seek(SeekFrom::Start(e.offset)).map_err(io(&seg.path))?;
        let mut buf = vec![0u8; e.size as usize];
        f.read_exact(&mut buf).map_err(io(&seg.path))?;
        let seq = e.seq;
        decode(&buf)
            .map(|(r, _)| Record { seq, ..r })
            .ok_or_else(|| SpoolError::Io {
                path: seg.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("record {id} changed on disk"),
                ),
            })
    }

    /// Ids of the pending records that have no `seq` (an older spool's, invariant 6).
    pub fn pending_without_seq(&self) -> Vec<u64> {
        self.index
            .iter()
            .filter(|(_, e)| e.seq.is_none())
            .map(|(k, _)| *k)
            .collect()
    }

    /// The `seq` of pending record `id` (None: it has none).
    pub fn seq_of(&self, id: u64) -> Option<u64> {
        self.index.get(&id).and_then(|e| e.seq)
    }

    /// Tells the spool the `seq` of a pending record that has none on disk (read from its
    /// payload), so acknowledgements find it; kept in memory only.
    pub fn set_seq(&mut self, id: u64, seq: u64) -> Result<(), SpoolError> {
        let e = self.index.get_mut(&id).ok_or(SpoolError::Unknown(id))?;
        if let Some(old) = e.seq.replace(seq) {
            self.by_seq.remove(&old);
        }
        self.by_seq.insert(seq, id);
        Ok(())
    }

    /// How long the oldest pending record has waited (since this run appended it or opened
    /// the spool holding it); None when nothing is pending.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.index
            .values()
            .map(|e| e.since)
            .min()
            .map(|t| t.elapsed())
    }

    /// Appends a record (evicting old ones if the cap requires) with the `seq` of the envelope
    /// its payload holds; returns its id.
    pub fn append(
        &mut self,
        topic: &str,
        payload: &[u8],
        alert: bool,
        seq: Option<u64>,
    ) -> Result<u64, SpoolError> {
        let id = self.next_id;
        let rec = encode(id, topic, payload, alert, seq);
        let size = rec.len() as u64;
        if rec.len() > MAX_RECORD || size > self.limits.max_bytes || topic.len() > u16::MAX as usize
        {
            return Err(SpoolError::TooLarge(rec.len()));
        }
        while self.pending_bytes + size > self.limits.max_bytes {
            let victim = self
                .index
                .iter()
                .find(|(_, e)| !e.alert)
                .or_else(|| self.index.iter().next())
                .map(|(k, _)| *k);
            let Some(victim) = victim else { break };
            self.resolve(victim)?;
            self.evicted += 1;
        }
        let roll = match &self.active {
            None => true,
            Some((first, _)) => self.segments[first].bytes + size > self.limits.segment_bytes,
        };
        if roll {
            let path = self.dir.join(format!("{id:016x}.seg"));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            self.segments.insert(
                id,
                Segment {
                    path,
                    bytes: 0,
                    pending: 0,
                },
            );
            self.active = Some((id, f));
        }
        let (first, file) = self.active.as_mut().expect("an active segment");
        let seg = self
            .segments
            .get_mut(first)
            .expect("active segment is known");
        file.write_all(&rec).map_err(io(&seg.path))?;
        if self.limits.fsync == Fsync::Always {
            file.sync_data().map_err(io(&seg.path))?;
        }
        self.index.insert(
            id,
            Entry {
                segment: *first,
                offset: seg.bytes,
                size,
                alert,
                seq,
                since: Instant::now(),
            },
        );
        if let Some(seq) = seq {
            self.by_seq.insert(seq, id);
        }
        seg.bytes += size;
        seg.pending += 1;
        self.pending_bytes += size;
        self.next_id += 1;
        Ok(id)
    }

    /// Record `id` is done with: it leaves the spool.
    pub fn ack(&mut self, id: u64) -> Result<(), SpoolError> {
        if !self.index.contains_key(&id) {
            return Err(SpoolError::Unknown(id));
        }
        self.resolve(id)
    }

    /// The aggregator acknowledged the `seq`s `first..=last`: every pending record with a
    /// `seq` in that range leaves the spool (looked up, never walked: the range may be
    /// huge). Returns the ids removed, ascending by `seq`.
    pub fn ack_seqs(&mut self, first: u64, last: u64) -> Result<Vec<u64>, SpoolError> {
        if first > last {
            return Ok(Vec::new());
        }
        let ids: Vec<u64> = self.by_seq.range(first..=last).map(|(_, id)| *id).collect();
        for &id in &ids {
            self.resolve(id)?;
        }
        Ok(ids)
    }

    fn resolve(&mut self, id: u64) -> Result<(), SpoolError> {
        if !self.index.contains_key(&id) {
            return Err(SpoolError::Unknown(id));
        }
        self.write_resolution(id)?;
        let e = self.index.remove(&id).ok_or(SpoolError::Unknown(id))?;
        if let Some(seq) = e.seq {
            self.by_seq.remove(&seq);
        }
        self.pending_bytes -= e.size;
        let seg = self
            .segments
            .get_mut(&e.segment)
            .expect("segment of a pending record");
        seg.pending -= 1;
        if seg.pending == 0 {
            if self.active.as_ref().is_some_and(|(f, _)| *f == e.segment) {
                self.active = None;
            }
            self.remove_segment(e.segment)?;
            self.compact_resolved_log()?;
        }
        Ok(())
    }

    fn remove_segment(&mut self, first: u64) -> Result<(), SpoolError> {
        if let Some(seg) = self.segments.remove(&first) {
            std::fs::remove_file(&seg.path).map_err(io(&seg.path))?;
        }
        Ok(())
    }

    /// Empties the resolution log once no segment holds a resolved record it refers to.
    fn compact_resolved_log(&mut self) -> Result<(), SpoolError> {
        if self.segments.is_empty() {
            // Keep one entry, the highest id handed out, so ids keep increasing after a
            // restart with nothing left on disk.
            let rpath = self.dir.join(RESOLVED);
            self.resolved.set_len(0).map_err(io(&rpath))?;
            if self.next_id > 1 {
                self.write_resolution(self.next_id - 1)?;
            }
        }
        Ok(())
    }

    fn write_resolution(&mut self, id: u64) -> Result<(), SpoolError> {
        let rpath = self.dir.join(RESOLVED);
        let mut entry = [0u8; 12];
        entry[..8].copy_from_slice(&id.to_le_bytes());
        entry[8..].copy_from_slice(&crc32fast::hash(&id.to_le_bytes()).to_le_bytes());
        self.resolved.write_all(&entry).map_err(io(&rpath))?;
        if self.limits.fsync == Fsync::Always {
            self.resolved.sync_data().map_err(io(&rpath))?;
        }
        Ok(())
    }

    /// Forces everything written so far to disk (for `fsync = "never"` at shutdown).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some((first, f)) = &self.active {
            f.sync_data().map_err(io(&self.segments[first].path))?;
        }
        let rpath = self.dir.join(RESOLVED);
        self.resolved.sync_data().map_err(io(&rpath))
    }

    /// Bytes of every file of the spool on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// The active segment's path (tests simulate crashes on it).
    pub fn active_segment(&self) -> Option<PathBuf> {
        self.active
            .as_ref()
            .map(|(f, _)| self.segments[f].path.clone())
    }
}

#[cfg(test)]
mod tests;
