#!/usr/bin/env bash
# Run the benches (memory, disk, Redis, MongoDB, S3: each side by side with its peers) and the
# web service under load, then write the report: Markdown with the same-run ratios, every
# measurement, the load table, the machine, and SVG plots (hit latency by backend, latency
# under load).
#
#   scripts/bench-report.sh            # criterion's defaults, 10 s of load per mode -> docs/benchmarks.md
#   scripts/bench-report.sh --quick    # the smallest run (what CI does) -> target/bench-report/benchmarks.md
#   scripts/bench-report.sh --out F    # write the report (and its plots) next to F
#   scripts/bench-report.sh --soak-only [--out F]
#                                      # only put the last soak run (scripts/soak.sh) into the report
#
# The soak's table and plot (from <target dir>/soak, or $STEADYCACHE_SOAK_DIR) go into the
# report's "Soak" section whenever a soak has run: scripts/soak.sh takes 20 minutes, so it is
# run on its own, then `--soak-only` (or a full report) takes its results.
#
# The benches start their own stores (redis-server, nx-27017 from .tools/nx-venv, s3s-fs);
# `scripts/test.sh` installs them on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
OUT=""
# Absolute: criterion runs each bench in its package's directory.
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --soak-only) SOAK_ONLY=1; shift ;;
    *) echo "usage: scripts/bench-report.sh [--quick] [--out FILE] [--soak-only]" >&2; exit 2 ;;
  esac
done
SOAK_DIR=${STEADYCACHE_SOAK_DIR:-$TARGET/soak}

# Replace (or add) the report's soak section with the last soak run's table and plot.
soak_section() {
  local out=$1
  [ -f "$SOAK_DIR/soak.md" ] || { echo "bench-report: no soak run in $SOAK_DIR (scripts/soak.sh)" >&2; return 0; }
  cp "$SOAK_DIR/soak.svg" "$(dirname "$out")/soak.svg"
  python3 - "$out" "$SOAK_DIR/soak.md" <<'PY'
import re, sys
out, soak = sys.argv[1], sys.argv[2]
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
section = ("<!-- soak -->\n## Soak: the web service for minutes, with faults\n\n"
           "Written by `scripts/soak.sh` (see `crates/bench/examples/soak/main.rs`).\n\n"
           + open(soak).read().rstrip() + "\n\n![RSS and p99 per minute](soak.svg)\n<!-- /soak -->\n")
if "<!-- soak -->" in text:
    text = re.sub(r"<!-- soak -->.*?<!-- /soak -->\n", lambda _: section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section
open(out, "w").write(text)
PY
}
if [ "${SOAK_ONLY:-0}" = 1 ]; then
  soak_section "${OUT:-docs/benchmarks.md}"
  exit 0
fi

if [ "$QUICK" = 1 ]; then
  OUT=${OUT:-target/bench-report/benchmarks.md}
  export CRITERION_HOME="$TARGET/bench-report/criterion"
  BENCH_ARGS=(--warm-up-time 0.1 --measurement-time 0.3 --sample-size 10 --noplot)
  LOAD_ARGS=(--quick)
  # The smallest run checks that everything runs end to end; its figures mean nothing. So it
  # is built as `scripts/test.sh`'s tests are (the dev profile, the workspace with every
  # feature: one feature resolution), and costs no release build of the whole dependency tree.
  BUILD=(--workspace --all-features --profile dev)
  BENCHES=(--bench '*')
  PROFILE_DIR=debug
  export STEADYCACHE_LOAD_BUILD=dev
else
  OUT=${OUT:-docs/benchmarks.md}
  export CRITERION_HOME="$TARGET/criterion"
  BENCH_ARGS=(--noplot)
  LOAD_ARGS=()
  BUILD=(-p steadycache-bench --release)
  BENCHES=()
  PROFILE_DIR=release
fi
rm -rf "$CRITERION_HOME"
mkdir -p "$(dirname "$OUT")"

echo "bench-report: benches (criterion results in $CRITERION_HOME)" >&2
if [ "$QUICK" = 1 ]; then
  cargo bench --workspace --all-features --profile dev "${BENCHES[@]}" -- "${BENCH_ARGS[@]}"
else
  cargo bench -p steadycache-bench -- "${BENCH_ARGS[@]}"
fi

# The service and the report in one build: one feature resolution (the example brings the
# dev-dependencies), so load.sh's own build of the service is then a no-op.
cargo build -q "${BUILD[@]}" --example web_service --bin bench-report

echo "bench-report: the web service under load" >&2
LOAD_JSON="$(dirname "$OUT")/load.json"
scripts/load.sh "${LOAD_ARGS[@]}" --out "$LOAD_JSON"

"$TARGET/$PROFILE_DIR/bench-report" --criterion "$CRITERION_HOME" --load "$LOAD_JSON" --out "$OUT"
soak_section "$OUT"
