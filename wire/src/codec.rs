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
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            level: 3,
            encode_with: None,
            known: HashMap::new(),
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
            None => (0, zstd::bulk::compress(&body, self.level)?),
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
            0 => zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress(compressed, MAX_BODY_BYTES)),
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
