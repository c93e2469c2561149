#!/usr/bin/env bash
# A soak run (issue 24): examples/web_service.rs under a fixed rate of requests for minutes,
# its Redis behind the test fault proxy, a fault every few minutes (latency burst, black hole,
# Redis restart, every connection reset), every answer checked against the deterministic
# upstream; per minute: throughput, p50/p99/max, upstream calls, errors, wrong answers, and the
# service's RSS, open fds and tokio tasks. See crates/bench/examples/soak/main.rs.
#
#   scripts/soak.sh                 # 20 minutes at 200 requests/s (release build)
#   scripts/soak.sh --minutes 1     # what CI runs (a fault every 12 s; the dev build)
#   scripts/soak.sh --minutes 20 --rate 400 --out target/soak
#
# Writes soak.json, soak.md and soak.svg into --out (default: <target dir>/soak);
# scripts/bench-report.sh puts the table and the plot into docs/benchmarks.md. Exits 1 when
# the verdict fails (a wrong answer, a fault not recovered from in time, growth of RSS, fds or
# tasks over the last half of a run of 6 minutes or more).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=20
PASS=()
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; PASS+=(--minutes "$2"); shift 2 ;;
    --rate|--cities|--fault-every) PASS+=("$1" "$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: scripts/soak.sh [--minutes 20] [--rate 200] [--cities 50] [--fault-every S] [--out DIR]" >&2; exit 2 ;;
  esac
done
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="${OUT:-$TARGET/soak}"
mkdir -p "$OUT"

# A short run checks the pipeline: built as scripts/test.sh's tests are (the dev profile, the
# workspace with every feature: no other feature resolution, no release build). A long one
# measures: release. STEADYCACHE_SOAK_BUILD=dev|release overrides.
BUILD="${STEADYCACHE_SOAK_BUILD:-$([ "$MINUTES" -le 1 ] && echo dev || echo release)}"
if [ "$BUILD" = dev ]; then
  cargo build -q --workspace --all-features --profile dev --example web_service --example soak
  BIN="$TARGET/debug/examples"
else
  cargo build --release -q -p steadycache-bench --example web_service --example soak
  BIN="$TARGET/release/examples"
fi
# The driver leads a process group of its own (its service and Redis are in it): however this
# script ends (the verdict, Ctrl-C, a closed pipe), nothing it started is left running.
setsid "$BIN/soak" --service "$BIN/web_service" --out "$OUT" "${PASS[@]}" &
DRIVER=$!
trap 'kill -TERM -- "-$DRIVER" 2>/dev/null || true' EXIT
wait "$DRIVER"
