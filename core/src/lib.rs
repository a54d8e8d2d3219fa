//! The small core every Sharp Eyes crate may depend on without pulling any I/O crate (no
//! async runtime, no MQTT, no GStreamer, no database): configuration errors and range checks,
//! positions on the map, and the one definition of a face embedding's unit vector and
//! similarity. The I/O-free state machines (`fusion`, the agent's tracker and rules) build on it.

pub mod config;
pub mod embedding;
pub mod geo;
