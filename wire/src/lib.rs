//! # The Sharp Eyes wire contract
//!
//! Everything an edge agent and an aggregator say to each other over MQTT is one
//! [`Envelope`]: a schema version, the sending agent's id, a per-agent monotonic sequence
//! number (the idempotency key), the send time, and one [`Body`] (a batch of track updates,
//! an alert, an agent status, the watchlists, or an aggregator's acknowledgements).
//!
//! ## Delivery: end-to-end acknowledgement
//!
//! Track batches and alerts are published at QoS 1 and kept in the agent's disk spool until
//! an aggregator has *committed* them: after each store transaction the aggregator publishes
//! [`Acks`] (QoS 1, not retained) on `{prefix}/acks/{agent}` with the `seq`s of that agent's
//! messages it stored or found stored already. The broker's PUBACK only means "in flight".
//! An agent re-sends what stays unacknowledged (after `publish.ack_timeout_ms`, with
//! back-off, and after every reconnect); the store keeps each `(agent, seq)` once, so a
//! replay costs bandwidth, never a duplicate. `seq` is unique per agent across restarts
//! whatever its clock says (the agent persists its sequence in its spool directory). Status
//! messages are not acknowledged (only the newest matters; it is retained).
//!
//! ## Payload layout
//!
//! ```text
//! offset  size  field
//! 0       2     magic "SE" (0x53 0x45)
//! 2       1     schema version (currently 1; see SCHEMA_VERSION)
//! 3       1     flags: bit 0 = body is zstd-compressed (always set by this crate's encoder)
//! 4       4     zstd dictionary id, little endian; 0 = no dictionary
//! 8       ..    body: one zstd frame (with its content size) holding the Envelope as MessagePack
//! ```
//!
//! The MessagePack body is a map with the field names documented on each type (encoded with
//! named fields, so any MessagePack library reads it without this crate). Enums are encoded
//! as their `snake_case` name (unit variants) or as a one-entry map `{variant: content}`.
//!
//! Decoding rejects, with a typed [`DecodeError`] and never a panic: payloads shorter than the
//! header, a wrong magic, a schema version this build does not know, an unknown dictionary id,
//! corrupt or truncated zstd data, bodies that would expand past [`MAX_BODY_BYTES`], and
//! MessagePack that does not match the schema.
//!
//! ## Reading a payload from Python
//!
//! ```python
//! import msgpack, zstandard                    # pip install msgpack zstandard
//! p = open("payload.bin", "rb").read()         # e.g. captured with mosquitto_sub -C 1 -N
//! assert p[:2] == b"SE" and p[2] == 1          # magic, schema version
//! assert int.from_bytes(p[4:8], "little") == 0 # no dictionary (else load it: ZstdCompressionDict)
//! msg = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(p[8:]))
//! print(msg["agent"], msg["seq"], list(msg["body"]))
//! ```
//!
//! The same payload is printed as JSON by `aggregator decode FILE` (or `-` for stdin).

mod codec;
mod messages;
pub mod plate;
mod quant;
mod topics;
pub mod validate;

pub use codec::{
    Codec, DEFAULT_MAX_VALUES, DecodeError, Dictionary, EncodeError, HEADER_LEN, MAGIC,
    MAX_BODY_BYTES, MAX_DEPTH,
};
pub use messages::*;
pub use quant::{QBox, QEmbedding};
pub use topics::{DEFAULT_PREFIX, Topic, TopicError, Topics};

/// The schema version this build writes and the only one it reads.
///
/// Bump it for any change an older reader would misread; adding an optional field (one with
/// `#[serde(default)]` that older readers ignore) does not need a bump.
pub const SCHEMA_VERSION: u8 = 1;

/// Milliseconds since the Unix epoch (UTC) of `t`.
pub fn unix_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Milliseconds since the Unix epoch (UTC), now.
pub fn now_ms() -> i64 {
    unix_ms(std::time::SystemTime::now())
}
