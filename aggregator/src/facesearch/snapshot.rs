//! The face index on disk: a versioned, checksummed file written atomically (a temporary
//! file in the same directory, synced, then renamed over the old one), so a restart loads
//! the index in seconds instead of reading and decoding every face from the store.
//!
//! Layout (little-endian): magic `SEFACEIX`, format version (u32), dimension (u32), model
//! (u32 length + UTF-8), written-at ms (i64), the store's latest face capture time the
//! snapshot holds (i64, its *watermark*), counts of strings, faces and aliases (u64 each),
//! the strings (u32 length + UTF-8 each), the faces' bookkeeping (person u64, agent /
//! camera / site string ids u32, track u64, capture ms i64, quality f32: 40 bytes each),
//! their unit f32 embeddings (`dim` × 4 bytes each), the aliases (u64 pairs), and the
//! SHA-256 of everything before it (32 bytes). The i8 matrix is recomputed at load.
//!
//! The store stays the truth: after loading, [`super::live`] reconciles the snapshot with
//! the store (faces added, replaced, removed or moved to another person since it was written).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};
use thiserror::Error;

use super::flat::{FlatIndex, Names, Row};

const MAGIC: &[u8; 8] = b"SEFACEIX";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// Why a snapshot cannot be read or written.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("face index snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a snapshot this build can use (truncated, damaged, another format
    /// version, another model): it is rebuilt from the store.
    #[error("face index snapshot {path} is not usable ({why}); it is rebuilt from the store")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl SnapshotError {
    /// Whether the file is missing (not an error worth a warning: the first start).
    pub fn is_missing(&self) -> bool {
        matches!(self, SnapshotError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a snapshot holds besides the index.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    /// Embedding model of its faces.
    pub model: String,
    /// When it was written, UTC ms.
    pub written_ms: i64,
    /// The latest capture time among its faces (`i64::MIN` when empty).
    pub watermark_ms: i64,
}

struct Hashing<W> {
    inner: W,
    ctx: Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.ctx.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(b)?;
        self.ctx.update(&b[..n]);
        Ok(n)
    }
}

/// Writes `index` (its live faces) to `path` atomically; the bytes written.
pub fn write(
    path: &Path,
    index: &FlatIndex,
    model: &str,
    written_ms: i64,
) -> Result<u64, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    write_body(tmp.as_file(), index, model, written_ms).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    let bytes = tmp.as_file().metadata().map_err(io)?.len();
    tmp.persist(path).map_err(|e| io(e.error))?;
    // The rename is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

/// The snapshot's bytes and checksum into `file`.
fn write_body(
    file: &std::fs::File,
    index: &FlatIndex,
    model: &str,
    written_ms: i64,
) -> std::io::Result<()> {
    let mut w = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        ctx: Context::new(&SHA256),
    };
    let dim = index.dim();
    let live: Vec<usize> = (0..index.rows.len())
        .filter(|&s| index.is_live(s))
        .collect();
    let watermark = live
        .iter()
        .map(|&s| index.rows[s].ts_ms)
        .max()
        .unwrap_or(i64::MIN);
    let mut put = |b: &[u8]| w.write_all(b);
    put(MAGIC)?;
    put(&VERSION.to_le_bytes())?;
    put(&(dim as u32).to_le_bytes())?;
    put(&(model.len() as u32).to_le_bytes())?;
    put(model.as_bytes())?;
    put(&written_ms.to_le_bytes())?;
    put(&watermark.to_le_bytes())?;
    let names = &index.names.list;
    for n in [names.len(), live.len(), index.aliases.len()] {
        put(&(n as u64).to_le_bytes())?;
    }
    for s in names {
        put(&(s.len() as u32).to_le_bytes())?;
        put(s.as_bytes())?;
    }
    let mut buf = Vec::with_capacity(40 * 4096);
    for chunk in live.chunks(4096) {
        buf.clear();
        for &s in chunk {
            let r = &index.rows[s];
            buf.extend_from_slice(&r.person.to_le_bytes());
            buf.extend_from_slice(&r.agent.to_le_bytes());
            buf.extend_from_slice(&r.camera.to_le_bytes());
            buf.extend_from_slice(&r.site.to_le_bytes());
            buf.extend_from_slice(&r.track.to_le_bytes());
            buf.extend_from_slice(&r.ts_ms.to_le_bytes());
            buf.extend_from_slice(&r.quality.to_le_bytes());
        }
        put(&buf)?;
    }
    for chunk in live.chunks(1024) {
        buf.clear();
        for &s in chunk {
            for x in &index.vectors[s * dim..(s + 1) * dim] {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        put(&buf)?;
    }
    for (a, p) in &index.aliases {
        put(&a.to_le_bytes())?;
        put(&p.to_le_bytes())?;
    }
    let Hashing { mut inner, ctx } = w;
    let sum = ctx.finish();
    inner.write_all(sum.as_ref())?;
    inner.flush()?;
    Ok(())
}

struct Reader<R> {
    r: Hashing<R>,
    path: PathBuf,
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, SnapshotError> {
        let mut b = vec![0u8; n];
        self.r.read_exact(&mut b).map_err(|e| self.fail(e))?;
        Ok(b)
    }
    fn fail(&self, e: std::io::Error) -> SnapshotError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.corrupt("truncated".into())
        } else {
            SnapshotError::Io {
                path: self.path.clone(),
                source: e,
            }
        }
    }
    fn corrupt(&self, why: String) -> SnapshotError {
        SnapshotError::Corrupt {
            path: self.path.clone(),
            why,
        }
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn string(&mut self) -> Result<String, SnapshotError> {
        let n = self.u32()? as usize;
        if n > 1 << 20 {
            return Err(self.corrupt(format!("a string of {n} bytes")));
        }
        String::from_utf8(self.bytes(n)?).map_err(|_| self.corrupt("a string is not UTF-8".into()))
    }
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

/// Reads the snapshot at `path`, which must hold `dim`-value embeddings of `model`.
pub fn read(
    path: &Path,
    dim: usize,
    model: &str,
) -> Result<(FlatIndex, SnapshotInfo), SnapshotError> {
    let f = std::fs::File::open(path).map_err(|source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = Reader {
        r: Hashing {
            inner: BufReader::with_capacity(1 << 20, f),
            ctx: Context::new(&SHA256),
        },
        path: path.to_path_buf(),
    };
    if r.bytes(8)? != MAGIC {
        return Err(r.corrupt("not a face index snapshot".into()));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(r.corrupt(format!(
            "format version {version}, this build reads {VERSION}"
        )));
    }
    let d = r.u32()? as usize;
    let m = r.string()?;
    if d != dim || m != model {
        return Err(r.corrupt(format!(
            "it holds {d}-value faces of {m:?}, the configuration asks for {dim}-value faces of {model:?}"
        )));
    }
    let written_ms = r.u64()? as i64;
    let watermark_ms = r.u64()? as i64;
    let (n_names, n_faces, n_aliases) = (r.u64()?, r.u64()?, r.u64()?);
    // Each count is bounded by the file's size before anything is allocated for it.
    let per_face = 40 + 4 * dim as u64;
    if n_names.saturating_mul(4) > size
        || n_faces.saturating_mul(per_face) > size
        || n_aliases.saturating_mul(16) > size
    {
        return Err(r.corrupt("counts larger than the file".into()));
    }
    let mut names = Vec::with_capacity(n_names as usize);
    for _ in 0..n_names {
        names.push(r.string()?);
    }
    let n = n_faces as usize;
    let meta = r.bytes(n * 40)?;
    let mut idx = FlatIndex::new(dim);
    idx.reserve(n);
    idx.names = Names::from_list(names);
    let mut vectors = vec![0f32; dim];
    let mut buf = vec![0u8; 4 * dim * 1024];
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let b = &meta[i * 40..(i + 1) * 40];
        let row = Row {
            person: le_u64(b, 0),
            agent: le_u32(b, 8),
            camera: le_u32(b, 12),
            site: le_u32(b, 16),
            track: le_u64(b, 20),
            ts_ms: le_u64(b, 28) as i64,
            quality: f32::from_bits(le_u32(b, 36)),
        };
        if [row.agent, row.camera, row.site]
            .iter()
            .any(|&s| s as u64 >= n_names)
        {
            return Err(r.corrupt("a face names a string that is not there".into()));
        }
        rows.push(row);
    }
    drop(meta);
    let mut i = 0;
    while i < n {
        let m = (n - i).min(1024);
        let b = &mut buf[..m * dim * 4];
        r.r.read_exact(b).map_err(|e| r.fail(e))?;
        for (j, row) in rows[i..i + m].iter().enumerate() {
            for (k, v) in vectors.iter_mut().enumerate() {
                let at = (j * dim + k) * 4;
                *v = f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            }
            idx.push_row(*row, &vectors);
        }
        i += m;
    }
    // Aliases before the faces would be the store's order; after them, `push_row` above
    // filed each face under its stored id, and the merges are applied here.
    let mut aliases = Vec::with_capacity(n_aliases as usize);
    for _ in 0..n_aliases {
        aliases.push((r.u64()?, r.u64()?));
    }
    let want = r.r.ctx.clone().finish();
    let mut sum = [0u8; 32];
    r.r.inner.read_exact(&mut sum).map_err(|e| r.fail(e))?;
    if sum != want.as_ref() {
        return Err(r.corrupt("checksum mismatch".into()));
    }
    let mut extra = [0u8; 1];
    if r.r.inner.read(&mut extra).map_err(|e| r.fail(e))? != 0 {
        return Err(r.corrupt("bytes after the checksum".into()));
    }
    for (a, p) in aliases {
        idx.merge(a, p);
    }
    Ok((
        idx,
        SnapshotInfo {
            model: m,
            written_ms,
            watermark_ms,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facesearch::{FaceKey, FaceMeta, SearchOptions};

    fn meta(person: u64, track: u64, ts_ms: i64) -> FaceMeta {
        FaceMeta {
            person,
            key: FaceKey {
                agent: "网关-1".into(),
                camera: "cam".into(),
                track,
            },
            site: "东区".into(),
            ts_ms,
            quality: 0.9,
        }
    }

    fn index() -> FlatIndex {
        let mut idx = FlatIndex::new(4);
        idx.insert(&meta(1, 1, 10), &[1.0, 0.0, 0.0, 0.0]).unwrap();
        idx.insert(&meta(2, 2, 20), &[0.0, 1.0, 0.0, 0.0]).unwrap();
        idx.insert(&meta(3, 3, 30), &[0.0, 0.0, 1.0, 0.0]).unwrap();
        idx.remove(&meta(3, 3, 0).key);
        idx.merge(2, 1);
        idx
    }

    #[test]
    fn a_snapshot_round_trips_faces_aliases_and_its_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/faces.idx");
        let idx = index();
        write(&p, &idx, "sface", 5).unwrap();
        let (back, info) = read(&p, 4, "sface").unwrap();
        assert_eq!(
            info,
            SnapshotInfo {
                model: "sface".into(),
                written_ms: 5,
                watermark_ms: 20
            }
        );
        assert_eq!((back.len(), back.persons(), back.dead()), (2, 1, 0));
        let o = SearchOptions::top(5);
        let q = [0.1, 1.0, 0.0, 0.0];
        assert_eq!(
            back.search(&q, &o, 1).unwrap(),
            idx.search(&q, &o, 1).unwrap()
        );
        assert_eq!(back.search(&q, &o, 1).unwrap()[0].face.site, "东区");
    }

    #[test]
    fn damaged_truncated_or_foreign_snapshots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("faces.idx");
        write(&p, &index(), "sface", 5).unwrap();
        let good = std::fs::read(&p).unwrap();
        let corrupt = |b: &[u8]| {
            std::fs::write(&p, b).unwrap();
            match read(&p, 4, "sface") {
                Err(SnapshotError::Corrupt { why, .. }) => why,
                other => panic!("{other:?}"),
            }
        };
        let mut flipped = good.clone();
        let mid = good.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(corrupt(&flipped).contains("checksum"));
        assert!(corrupt(&good[..good.len() - 10]).contains("truncated"));
        assert!(corrupt(b"hello").contains("truncated"));
        assert!(corrupt(b"NOTANIDXxxxxxxxxxxx").contains("not a face index"));
        let mut v2 = good.clone();
        v2[8] = 2;
        assert!(corrupt(&v2).contains("format version 2"));
        std::fs::write(&p, &good).unwrap();
        assert!(matches!(
            read(&p, 4, "other"),
            Err(SnapshotError::Corrupt { .. })
        ));
        assert!(
            read(&dir.path().join("none"), 4, "sface")
                .unwrap_err()
                .is_missing()
        );
    }
}
