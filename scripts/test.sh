#!/usr/bin/env bash
# README command 2: set up everything, then run every test (unit, property, integration,
# end-to-end with GStreamer RTSP, the embedded broker and Mosquitto), then fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# One build per run: incremental caches would only take disk (~10 GB); set CARGO_INCREMENTAL=1 to
# keep them while iterating.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so.1.31.1}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The execution-provider features (off by default) must keep compiling.
cargo clippy -p edge-agent --features cuda,tensorrt,openvino --locked -- -D warnings
if command -v cargo-nextest >/dev/null; then
  # nextest does not run doc tests; run them first so the run ends on nextest's summary.
  cargo test --workspace --locked --doc -q
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
