#!/usr/bin/env bash
# README command 1: set up everything, then run the demo end to end: a clip made from real face
# photos, served over RTSP on 127.0.0.1, analysed by edge-agent, published over MQTT to the
# aggregator's embedded broker, stored in SQLite, and the stored face tracks printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so.1.31.1}"
cargo build --workspace --locked --bins
exec target/debug/demo --out demo-out "$@"
