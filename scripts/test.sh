#!/usr/bin/env bash
# Everything CI runs, on a fresh Debian machine or a developer's: installs what is missing,
# the servers the tests need (each test suite starts its own on free loopback ports), checks
# formatting and lints, runs every test with every feature, and stops the servers.
#
#   scripts/test.sh           everything (what CI runs)
#   scripts/test.sh --quick   fmt, clippy, and the tests of the packages a change touches (files
#                             changed since $STEADYCACHE_QUICK_BASE, default HEAD, and untracked
#                             ones): a few minutes on a warm target dir. Dependents of a touched
#                             package are not run: the full run is the gate.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
case "${1:-}" in
  "") ;;
  --quick) QUICK=1 ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac

# Each step is timed: the table at the end (also on failure) says where a run spends its time.
STEP="setup" STEP_AT=$SECONDS TIMES=()
log() {
  TIMES+=("$(printf '%5ss  %s' "$((SECONDS - STEP_AT))" "$STEP")")
  STEP="$*" STEP_AT=$SECONDS
  printf '\n== %s\n' "$*"
}
times_table() {
  TIMES+=("$(printf '%5ss  %s' "$((SECONDS - STEP_AT))" "$STEP")")
  printf '\n== time per step (%ss in all)\n' "$SECONDS"
  printf '%s\n' "${TIMES[@]}"
}

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# Redis tests start their own redis-server processes (standalone and a 3-master cluster) on free
# loopback ports; the package brings redis-cli too. The Debian service it may start is not used.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
# The TLS Redis tests make their certificates with openssl.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The MongoDB test server (nx-27017) is a Python program.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi
# MongoDB tests run against nx-27017 (a MongoDB wire-protocol server on SQLite, from PyPI), in
# a virtualenv of the project's own (.tools/ is git-ignored; the harness finds it there).
if [ ! -x .tools/nx-venv/bin/nx-27017 ]; then
  log "installing nx-27017 into .tools/nx-venv"
  if ! python3 -m venv .tools/nx-venv; then
    # Debian's python3 keeps venv in a package of its own.
    rm -rf .tools/nx-venv
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv .tools/nx-venv
  fi
  .tools/nx-venv/bin/pip install -q nx-27017
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi
# S3 tests run against steadycache-s3-server (tools/s3-server): s3s-fs, an S3 server on a local
# directory from crates.io (0.14.1 is the newest release that builds with this toolchain), with
# each object's requests made atomic as on AWS S3. It is built once per version of its source
# into ~/.cache/steadycache-tools (kept across fresh clones; not the library's default cache
# directory, ~/.cache/steadycache, so that clearing that cache never reaches it) and copied into
# .tools/s3s, where the test harness finds it.
S3_HASH=$(cat tools/s3-server/Cargo.toml tools/s3-server/Cargo.lock tools/s3-server/src/*.rs | sha256sum | cut -c1-16)
S3_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/steadycache-tools/s3-server-$S3_HASH"
if [ ! -x "$S3_CACHE/bin/steadycache-s3-server" ]; then
  log "linting and building steadycache-s3-server into $S3_CACHE"
  # Linted when built: a cached build is of a source whose lints passed (the hash above), so a
  # run on an unchanged server skips both.
  cargo fmt --manifest-path tools/s3-server/Cargo.toml -- --check
  cargo clippy --manifest-path tools/s3-server/Cargo.toml --locked --target-dir target/tools -- -D warnings
  cargo install --path tools/s3-server --locked --root "$S3_CACHE" --target-dir target/tools
fi
mkdir -p .tools/s3s/bin
# Copied beside, then renamed over: a server still running from an earlier run keeps its file.
cp "$S3_CACHE/bin/steadycache-s3-server" .tools/s3s/bin/steadycache-s3-server.new
mv -f .tools/s3s/bin/steadycache-s3-server.new .tools/s3s/bin/steadycache-s3-server
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# Servers started by this script are stopped on exit, whatever happens.
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  times_table
}
trap cleanup EXIT

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

if [ "$QUICK" = 1 ]; then
  # The package of each changed file: the nearest Cargo.toml above it with a [package].
  pkgs=()
  while IFS= read -r f; do
    d=$(dirname "$f")
    while :; do
      if [ -f "$d/Cargo.toml" ] && grep -q '^\[package\]' "$d/Cargo.toml"; then
        case "$d" in tools/*) ;; *) pkgs+=("$(sed -n 's/^name = "\(.*\)"/\1/p' "$d/Cargo.toml" | head -1)") ;; esac
        break
      fi
      [ "$d" = "." ] && break
      d=$(dirname "$d")
    done
  done < <({ git diff --name-only "${STEADYCACHE_QUICK_BASE:-HEAD}"; git ls-files --others --exclude-standard; } | sort -u)
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]:-}" | sed '/^$/d' | sort -u)
  if [ ${#pkgs[@]} -eq 0 ]; then
    log "--quick: no package changed since ${STEADYCACHE_QUICK_BASE:-HEAD}"
    exit 0
  fi
  log "--quick: the tests of ${pkgs[*]}"
  if cargo nextest --version >/dev/null 2>&1; then
    # The whole workspace's build (one feature resolution, warm), only these packages' tests.
    filter=$(printf 'package(%s) | ' "${pkgs[@]}")
    cargo nextest run --workspace --all-features --test-threads 4 -E "${filter% | }"
  else
    cargo test --all-features "${pkgs[@]/#/--package=}"
  fi
  log "quick checks green"
  exit 0
fi

log "docs (rustdoc, -D warnings) and the packages a registry would get"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps
# Every published crate, in dependency order (cargo orders them, with the workspace's own
# crates as a local overlay of the registry). `--no-verify`: none of them is on crates.io yet,
# and verifying would build each again in isolation; the builds above and below are the check.
# `--allow-dirty`: a developer's uncommitted change is packaged as it is.
cargo package --workspace --no-verify --allow-dirty --exclude steadycache-bench \
  --exclude steadycache-integration --exclude steadycache-cli

log "tests (workspace, all features), then the doc tests"
# cargo-nextest (on this project's machines; `cargo install cargo-nextest --locked` elsewhere)
# runs the tests of every binary side by side, each in a process of its own: most of them wait
# on servers, leases and timeouts, not on the CPU, so 4 at a time on 2 cores halves the run.
# Without it, cargo test runs them binary after binary. Same build either way (same flags).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast --test-threads 4
  cargo test --workspace --all-features --doc
else
  cargo test --workspace --all-features
fi

log "decoders and URL parsers fuzzed under a 4 GiB address-space limit (20,000 inputs each)"
# The same flags as the workspace run above (so nothing is rebuilt with other features),
# built first without the limit (the compiler may reserve more); only the tests run under it.
cargo test --workspace --all-features --test fuzz_decoders --no-run
(ulimit -v 4194304 && STEADYCACHE_FUZZ_CASES=20000 cargo test --workspace --all-features --test fuzz_decoders)

log "model check of the in-process single-flight (loom, every interleaving of 3 callers)"
# A cfg of our own (tokio's `loom` cfg would switch tokio itself to loom); its own target dir,
# so the workspace build above is not invalidated.
RUSTFLAGS="--cfg steadycache_loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
  cargo test -p steadycache-api --lib flight::model

log "compile-fail tests of #[cached] (feature file alone: see tests/compile_fail.rs)"
cargo test -p steadycache --features file --test compile_fail

log "steadycache-redis without its tls feature: rediss:// is a clear configuration error"
cargo test -p steadycache-redis --features testing --test redis_backend rediss_without

log "soak run, one minute (scripts/soak.sh: a fault every 12 s, every answer checked)"
scripts/soak.sh --minutes 1

log "benches, benchmark report and web service under load, smallest configuration (target/bench-report)"
# Short measurements and 2 s of load per mode: checks that the benches compile and that they,
# scripts/load.sh (oha against examples/web_service.rs) and bench-report run end to end. Built
# like the tests above (dev profile, every feature), so no release build; the figures of
# docs/benchmarks.md come from a full `scripts/bench-report.sh` (release).
scripts/bench-report.sh --quick

log "all green"
