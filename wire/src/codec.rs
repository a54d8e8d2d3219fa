//! Encoding and decoding payloads (layout in the crate docs).

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

use crate::{Envelope, SCHEMA_VERSION};

/// Payload magic.
pub const MAGIC: [u8; 2] = *b"SE";
/// Header length in bytes.
pub const HEADER_LEN: usize = 8;
/// Largest decompressed body accepted (bodies carry a few evidence JPEGs at most).
pub const MAX_BODY_BYTES: usize = 16 << 20;
const FLAG_ZSTD: u8 = 1;
/// Deepest MessagePack nesting accepted (the schema nests about 6 levels).
pub const MAX_DEPTH: usize = 32;
/// Default budget of MessagePack values in one body ([`Codec::with_max_values`]): a track
/// batch of 500 updates has about 15,000.
pub const DEFAULT_MAX_VALUES: usize = 1 << 20;

/// Why a payload was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed header.
    #[error("payload truncated: {len} bytes, the header alone is {HEADER_LEN}")]
    Truncated {
        /// Payload length.
        len: usize,
    },
    /// Not a Sharp Eyes payload.
    #[error("not a Sharp Eyes payload (magic {found:02x?}, expected \"SE\")")]
    BadMagic {
        /// The first two bytes.
        found: [u8; 2],
    },
    /// A schema version this build does not read.
    #[error("unsupported schema version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// Flags this build does not know.
    #[error("unsupported header flags {0:#04x}")]
    UnsupportedFlags(u8),
    /// The body was compressed with a dictionary this decoder does not have.
    #[error("unknown zstd dictionary id {0}")]
    UnknownDictionary(u32),
    /// The zstd frame is corrupt, truncated, or expands past [`MAX_BODY_BYTES`].
    #[error("corrupt compressed body: {0}")]
    Decompress(String),
    /// The body is not a valid MessagePack envelope of this schema.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The body holds more MessagePack values than the decoder's budget, nests deeper than
    /// [`MAX_DEPTH`], or announces more values than it has bytes: refused before any is
    /// materialised (a few kB of zstd can expand to megabytes of tiny values, each of which
    /// would cost far more memory decoded than encoded).
    #[error("body too complex: {0}")]
    TooComplex(String),
    /// The body's schema version differs from the header's.
    #[error("schema version mismatch: header says {header}, body says {body}")]
    VersionMismatch {
        /// Version in the header.
        header: u8,
        /// Version in the body.
        body: u8,
    },
}

impl DecodeError {
    /// A stable short name, used as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic { .. } => "bad_magic",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::UnsupportedFlags(_) => "unsupported_flags",
            DecodeError::UnknownDictionary(_) => "unknown_dictionary",
            DecodeError::Decompress(_) => "corrupt",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::TooComplex(_) => "too_complex",
            DecodeError::VersionMismatch { .. } => "version_mismatch",
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// MessagePack serialisation failed.
    #[error("serialising the envelope: {0}")]
    Serialize(#[from] rmp_serde::encode::Error),
    /// zstd failed.
    #[error("compressing the body: {0}")]
    Compress(#[from] std::io::Error),
    /// The body is larger than a receiver accepts.
    #[error("body of {0} bytes exceeds the limit of {MAX_BODY_BYTES} bytes")]
    TooLarge(usize),
}

/// A zstd dictionary with its id (ids are assigned by whoever trains it; 0 means none).
#[derive(Debug, Clone)]
pub struct Dictionary {
    id: u32,
    bytes: Arc<Vec<u8>>,
}

impl Dictionary {
    /// Wraps dictionary bytes. `id` must be non-zero.
    pub fn new(id: u32, bytes: Vec<u8>) -> Option<Self> {
        (id != 0).then(|| Self {
            id,
            bytes: Arc::new(bytes),
        })
    }

    /// Trains a dictionary of at most `max_size` bytes on sample payload bodies (MessagePack).
    pub fn train(id: u32, samples: &[Vec<u8>], max_size: usize) -> std::io::Result<Self> {
        let bytes = zstd::dict::from_samples(samples, max_size)?;
        Self::new(id, bytes).ok_or_else(|| std::io::Error::other("dictionary id 0 is reserved"))
    }

    /// The id written in the header.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw dictionary.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Encodes and decodes payloads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Codec {
    level: i32,
    encode_with: Option<Dictionary>,
    known: HashMap<u32, Dictionary>,
    max_values: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            level: 3,
            encode_with: None,
            known: HashMap::new(),
            max_values: DEFAULT_MAX_VALUES,
        }
    }
}

impl Codec {
    /// A codec with zstd `level` and no dictionary.
    pub fn new(level: i32) -> Self {
        Self {
            level,
            ..Self::default()
        }
    }

    /// Encodes with `dict` from now on (decoding also knows it).
    pub fn with_dictionary(mut self, dict: Dictionary) -> Self {
        self.known.insert(dict.id, dict.clone());
        self.encode_with = Some(dict);
        self
    }

    /// Decodes only bodies of at most `n` MessagePack values (scalars and containers, each
    /// counted once); default [`DEFAULT_MAX_VALUES`].
    pub fn with_max_values(mut self, n: usize) -> Self {
        self.max_values = n;
        self
    }

    /// Lets the decoder read payloads made with `dict`, without encoding with it.
    pub fn knowing(mut self, dict: Dictionary) -> Self {
        self.known.insert(dict.id, dict);
        self
    }

    /// The MessagePack body of `env` (named fields), before compression.
    pub fn body_bytes(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
        Ok(rmp_serde::to_vec_named(env)?)
    }

    /// Encodes `env` into a payload.
    pub fn encode(&self, env: &Envelope) -> Result<Vec<u8>, EncodeError> {
        let body = Self::body_bytes(env)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(EncodeError::TooLarge(body.len()));
        }
        let (dict_id, compressed) = match &self.encode_with {
            Some(d) => {
                let mut c = zstd::bulk::Compressor::with_dictionary(self.level, &d.bytes)?;
                (d.id, c.compress(&body)?)
            }
            None => (0, with_compressor(self.level, |c| c.compress(&body))?),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
        out.extend_from_slice(&MAGIC);
        out.push(SCHEMA_VERSION);
        out.push(FLAG_ZSTD);
        out.extend_from_slice(&dict_id.to_le_bytes());
        out.extend_from_slice(&compressed);
        Ok(out)
    }

    /// Decodes a payload; any defect is a typed error, never a panic.
    pub fn decode(&self, payload: &[u8]) -> Result<Envelope, DecodeError> {
        if payload.len() < HEADER_LEN {
            return Err(DecodeError::Truncated { len: payload.len() });
        }
        let magic = [payload[0], payload[1]];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let version = payload[2];
        if version != SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let flags = payload[3];
        if flags != FLAG_ZSTD {
            return Err(DecodeError::UnsupportedFlags(flags));
        }
        let dict_id = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
        let compressed = &payload[HEADER_LEN..];
        let body = match dict_id {
            0 => with_decompressor(|d| d.decompress(compressed, MAX_BODY_BYTES)),
            id => {
                let dict = self
                    .known
                    .get(&id)
                    .ok_or(DecodeError::UnknownDictionary(id))?;
                zstd::bulk::Decompressor::with_dictionary(&dict.bytes)
                    .and_then(|mut d| d.decompress(compressed, MAX_BODY_BYTES))
            }
        }
        .map_err(|e| DecodeError::Decompress(e.to_string()))?;
        scan(&body, self.max_values)?;
        let env: Envelope =
            rmp_serde::from_slice(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if env.v != version {
            return Err(DecodeError::VersionMismatch {
                header: version,
                body: env.v,
            });
        }
        Ok(env)
    }
}

thread_local! {
    /// This thread's zstd contexts for payloads without a dictionary, made once: making one
    /// per payload (hundreds of kB of tables each) cost the aggregator's writer more than
    /// decompressing did.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's decompression context.
fn with_decompressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let d = match cell.as_mut() {
            Some(d) => d,
            None => cell.insert(zstd::bulk::Decompressor::new()?),
        };
        f(d)
    })
}

/// Runs `f` with this thread's compression context at `level`.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, c) = cell.as_mut().expect("made above");
        f(c)
    })
}

/// Walks a MessagePack document without materialising it: counts its values against
/// `max_values` and bounds the nesting by [`MAX_DEPTH`] ([`DecodeError::TooComplex`]), and
/// checks that every container announces no more values than bytes are left (each value
/// takes at least one byte) and every string or binary fits in what is left
/// ([`DecodeError::Malformed`]).
fn scan(buf: &[u8], max_values: usize) -> Result<(), DecodeError> {
    scan_inner(buf, max_values).map_err(|(complex, why)| {
        if complex {
            DecodeError::TooComplex(why)
        } else {
            DecodeError::Malformed(why)
        }
    })
}

/// [`scan`]; the error says whether the document is too complex (true) or malformed.
fn scan_inner(buf: &[u8], max_values: usize) -> Result<(), (bool, String)> {
    let malformed = |why: &str| (false, why.to_string());
    // Values still expected in each open container, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut pos = 0usize;
    let mut values = 0usize;
    let mut expected = 1usize; // the top-level value
    let take = |pos: &mut usize, n: usize| -> Result<u64, (bool, String)> {
        let end = pos.checked_add(n).filter(|&e| e <= buf.len());
        let Some(end) = end else {
            return Err(malformed("truncated MessagePack"));
        };
        let v = buf[*pos..end]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b));
        *pos = end;
        Ok(v)
    };
    while expected > 0 {
        expected -= 1;
        values += 1;
        if values > max_values {
            return Err((true, format!("more than {max_values} MessagePack values")));
        }
        let Some(&m) = buf.get(pos) else {
            return Err(malformed("truncated MessagePack"));
        };
        pos += 1;
        // (children, bytes to skip)
        let (children, skip): (u64, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (2 * u64::from(m & 0x0f), 0),
            0x90..=0x9f => (u64::from(m & 0x0f), 0),
            0xa0..=0xbf => (0, u64::from(m & 0x1f)),
            0xc4 | 0xd9 => (0, take(&mut pos, 1)?),
            0xc5 | 0xda => (0, take(&mut pos, 2)?),
            0xc6 | 0xdb => (0, take(&mut pos, 4)?),
            0xc7 => (0, take(&mut pos, 1)? + 1),
            0xc8 => (0, take(&mut pos, 2)? + 1),
            0xc9 => (0, take(&mut pos, 4)? + 1),
            0xca => (0, 4),
            0xcb => (0, 8),
            0xcc | 0xd0 => (0, 1),
            0xcd | 0xd1 => (0, 2),
            0xce | 0xd2 => (0, 4),
            0xcf | 0xd3 => (0, 8),
            0xd4 => (0, 2),
            0xd5 => (0, 3),
            0xd6 => (0, 5),
            0xd7 => (0, 9),
            0xd8 => (0, 17),
            0xdc => (take(&mut pos, 2)?, 0),
            0xdd => (take(&mut pos, 4)?, 0),
            0xde => (2 * take(&mut pos, 2)?, 0),
            0xdf => (2 * take(&mut pos, 4)?, 0),
            0xc1 => return Err(malformed("invalid MessagePack marker 0xc1")),
        };
        let left = (buf.len() - pos) as u64;
        if skip > left {
            return Err(malformed("truncated MessagePack"));
        }
        pos += skip as usize;
        if children > left {
            return Err((
                false,
                format!("a container announces {children} values with {left} bytes left"),
            ));
        }
        if children > 0 {
            if open.len() >= MAX_DEPTH {
                return Err((true, format!("nested deeper than {MAX_DEPTH}")));
            }
            open.push(expected);
            expected = children as usize;
        }
        while expected == 0 {
            match open.pop() {
                Some(e) => expected = e,
                None => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, TrackBatch};

    fn batch(updates: usize) -> Envelope {
        let u = crate::TrackUpdate {
            track: 1,
            class: crate::ObjectClass::Person,
            event: crate::TrackEvent::Update,
            ts_ms: 1,
            bbox: crate::QBox([1, 2, 3, 4]),
            score: 0.5,
            embedding: None,
            plate: None,
            link: None,
            thumb: None,
        };
        Envelope::new(
            "a",
            1,
            0,
            Body::Tracks(TrackBatch {
                site: "s".into(),
                camera: "c".into(),
                frame_w: 1,
                frame_h: 1,
                from_ms: 0,
                to_ms: 0,
                frames: 1,
                updates: vec![u; updates],
            }),
        )
    }

    #[test]
    fn the_scan_accepts_what_the_encoder_writes() {
        for n in [0, 1, 500] {
            let body = Codec::body_bytes(&batch(n)).unwrap();
            scan(&body, usize::MAX).unwrap();
        }
    }

    #[test]
    fn an_amplifying_body_is_refused_before_decoding() {
        // 5 kB of zstd holding megabytes of tiny positional updates.
        let mut body = vec![0x95u8, 0x01, 0xa1, b'a', 0x01, 0x00, 0x81, 0xa6];
        body.extend_from_slice(b"tracks");
        body.push(0xdd);
        let n: u32 = 2_000_000;
        body.extend_from_slice(&n.to_be_bytes());
        // Empty arrays: one byte, one value each.
        body.extend(std::iter::repeat_n(0x90u8, n as usize));
        let codec = Codec::default().with_max_values(100_000);
        let compressed = zstd::bulk::compress(&body, 19).unwrap();
        assert!(compressed.len() < 10_000, "{}", compressed.len());
        let mut payload = MAGIC.to_vec();
        payload.extend_from_slice(&[crate::SCHEMA_VERSION, FLAG_ZSTD, 0, 0, 0, 0]);
        payload.extend_from_slice(&compressed);
        let e = codec.decode(&payload).unwrap_err();
        assert_eq!(e.kind(), "too_complex", "{e}");
    }

    #[test]
    fn lying_lengths_and_deep_nesting_are_refused() {
        assert!(scan(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX).is_err());
        assert!(scan(&[0xc6, 0x00, 0x10, 0x00, 0x00, 0x01], usize::MAX).is_err());
        let deep = vec![0x91u8; 100];
        assert_eq!(scan(&deep, usize::MAX).unwrap_err().kind(), "too_complex");
        assert_eq!(
            scan(&[0x92, 0x01], usize::MAX).unwrap_err().kind(),
            "malformed"
        );
        assert!(scan(&[0xc1], usize::MAX).is_err());
        assert!(scan(&[], usize::MAX).is_err());
    }
}
