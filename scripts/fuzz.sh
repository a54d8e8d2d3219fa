#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (cargo-afl) on stable Rust; see fuzz/README.md.
#
#   scripts/fuzz.sh [TARGET|all] [EXECS]   fuzz each target for about EXECS executions
#                                          (default: all targets, 1000000 each), then stop
#   scripts/fuzz.sh seeds                  regenerate fuzz/seeds/ and fuzz/dict/ (gen_seeds)
#
# Targets: wire_decode, agent_config, aggregator_config, api_params. Installs cargo-afl (pinned; its install
# builds AFL++ from the source it ships) if missing, builds the targets into fuzz/target, runs
# afl-fuzz headless from fuzz/seeds/TARGET into fuzz/out/TARGET (started afresh each run), and
# prints per target the executions, speed, corpus, crashes and hangs. Exits 1 if any target
# found a crash (the inputs are listed; fuzz/README.md says how one becomes a regression test).
# FUZZ_SECONDS=N also stops each target after N seconds of fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[fuzz] %s\n' "$*"; }
die() { printf '[fuzz] ERROR: %s\n' "$*" >&2; exit 2; }

CARGO_AFL_VERSION=0.18.2 # keep equal to the afl dependency in fuzz/Cargo.toml
ALL_TARGETS=(wire_decode agent_config aggregator_config api_params)

mode="${1:-all}"
execs="${2:-1000000}"
[[ "$execs" =~ ^[0-9]+$ ]] || die "EXECS must be a number, not '$execs'"
case "$mode" in
  all) targets=("${ALL_TARGETS[@]}") ;;
  seeds) targets=() ;;
  wire_decode | agent_config | aggregator_config | api_params) targets=("$mode") ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown target '$mode' (one of: ${ALL_TARGETS[*]}, all, seeds)" ;;
esac

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup, stable)"
# The targets depend on edge-agent, which links GStreamer: scripts/setup.sh installs its packages.
pkg-config --exists gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 2>/dev/null \
  || die "GStreamer development packages missing: run scripts/setup.sh first"

installed="$(cargo afl --version 2>/dev/null || true)"
if [[ "$installed" != "cargo-afl $CARGO_AFL_VERSION "* ]]; then
  command -v make >/dev/null && command -v cc >/dev/null \
    || die "building AFL++ needs make and a C compiler (apt-get install build-essential)"
  say "installing cargo-afl $CARGO_AFL_VERSION (builds AFL++; a few minutes)"
  cargo install cargo-afl --locked --version "$CARGO_AFL_VERSION"
fi
# AFL++ is built per Rust toolchain: after a toolchain update, build it again.
if cargo afl fuzz -h 2>&1 | grep -q 'was not built'; then
  say "building AFL++ for $(rustc --version)"
  cargo afl config --build --force
fi
say "$(cargo afl --version)"

if [ "$mode" = seeds ]; then
  (cd fuzz && cargo afl build --release --bin gen_seeds)
  fuzz/target/release/gen_seeds
  exit 0
fi

say "building ${targets[*]} (release, AFL++ instrumentation) into fuzz/target"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
(cd fuzz && cargo afl build --release "${bins[@]}")

# Unattended and headless: no CPU frequency or core-dump checks (containers cannot change
# them), no pinning to a core (the machine may be shared), plain status lines.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_FAST_CAL=1
extra=()
[ -n "${FUZZ_SECONDS:-}" ] && extra+=(-V "$FUZZ_SECONDS")

stat() { sed -n "s/^$1 *: *//p" "$2"; }

mkdir -p fuzz/out
summary=()
failed=0
for t in "${targets[@]}"; do
  out="fuzz/out/$t"
  rm -rf "$out"
  log="fuzz/out/$t.log"
  say "$t: fuzzing for about $execs executions (log: $log)"
  start=$(date +%s)
  set +e
  cargo afl fuzz -i "fuzz/seeds/$t" -o "$out" -x "fuzz/dict/$t.dict" -t 2000 -E "$execs" \
    "${extra[@]}" -- "fuzz/target/release/$t" >"$log" 2>&1
  rc=$?
  set -e
  wall=$(($(date +%s) - start))
  stats="$out/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then
    tail -n 30 "$log" >&2
    die "$t: afl-fuzz exited with $rc and wrote no statistics (see $log)"
  fi
  crashes=$(find "$out/default/crashes" -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/default/hangs" -name 'id:*' 2>/dev/null | wc -l)
  line=$(printf '%-18s execs %10s  exec/s %8s  wall %5ss  corpus %5s  edges %-14s  crashes %s  hangs %s' \
    "$t" "$(stat execs_done "$stats")" "$(stat execs_per_sec "$stats")" "$wall" \
    "$(stat corpus_count "$stats")" "$(stat edges_found "$stats")/$(stat total_edges "$stats")" \
    "$crashes" "$hangs")
  say "$line"
  summary+=("$line")
  if [ "$crashes" -gt 0 ]; then
    failed=1
    find "$out/default/crashes" -name 'id:*' | sort | sed 's/^/[fuzz]   crash: /'
  fi
  [ "$hangs" -gt 0 ] && find "$out/default/hangs" -name 'id:*' | sort | sed 's/^/[fuzz]   hang (over 2 s): /'
  [ "$rc" -eq 0 ] || { failed=1; say "$t: afl-fuzz exited with $rc (see $log)"; }
done

say "summary:"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  say "FAILED: reproduce a crash with fuzz/target/release/TARGET < INPUT; fuzz/README.md says how it becomes a regression test"
  exit 1
fi
say "no crashes"
