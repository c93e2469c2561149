#!/usr/bin/env bash
# Drive examples/web_service.rs (an API over a slow, rate-limited upstream, cached on Redis)
# with a real HTTP load generator, oha, at a fixed rate, on loopback only, bounded in time,
# once per mode (after one request per key): no cache, `#[cached]` ttl only, ttl +
# stale-while-revalidate, and the same said by the response to `steadycache-tower`'s layer
# (`http`). Prints p50, p99, throughput and the upstream's calls for each, as a Markdown table.
#
#   scripts/load.sh                      # 10 s per mode at 400 requests/s over 50 keys
#   scripts/load.sh --quick              # 2 s per mode at 200 requests/s (what CI runs)
#   scripts/load.sh --out load.json      # also write the figures as JSON (the report reads it)
#
# Options: --duration 10s, --rate 400 (requests/s, the total), --connections 32, --out FILE,
# --quick. Installs oha from crates.io (`cargo install`) when it is not on the PATH; starts its
# own redis-server on a free port and stops it, and the service, on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10s
RATE=400
CONNECTIONS=32
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --quick) DURATION=2s; RATE=200; shift ;;
    *) echo "usage: scripts/load.sh [--duration 10s] [--rate 400] [--connections 32] [--out FILE] [--quick]" >&2; exit 2 ;;
  esac
done

# oha is built once per machine into ~/.cache/steadycache-tools (kept across fresh clones, like
# the S3 server in scripts/test.sh; not the library's default cache directory, which a clear
# must be free to empty); 1.16.0 builds with this toolchain.
OHA_VERSION=1.16.0
OHA=$(command -v oha || true)
if [ -z "$OHA" ]; then
  OHA_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/steadycache-tools/oha-$OHA_VERSION"
  OHA="$OHA_ROOT/bin/oha"
  if [ ! -x "$OHA" ]; then
    echo "load.sh: installing oha $OHA_VERSION into $OHA_ROOT (a few minutes, once per machine)" >&2
    cargo install oha --locked --version "$OHA_VERSION" --root "$OHA_ROOT"
  fi
fi

for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "load.sh: $tool is missing (scripts/test.sh installs it: apt-get install redis-server redis-tools python3)" >&2
    exit 1
  }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d)
REDIS_PID=""
SERVICE_PID=""
# Stop a child process: SIGTERM, then SIGKILL if it is still running after 5 s. Polled in
# this shell, not timed by a background `( sleep 5; kill … ) &`: bash 5.2 runs the EXIT trap
# in such a subshell when it is killed before it has reset its traps, and that trap (cleanup)
# stopped Redis and removed $WORK while the loop went on (a CI run failed so).
running() {
  local stat
  stat=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${stat%% *}" != Z ]
}
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    running "$1" || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
MAIN_SHELL=$BASHPID
cleanup() {
  # Only the script itself cleans up, never a subshell that inherited the trap.
  [ "$BASHPID" = "$MAIN_SHELL" ] || return 0
  if [ -n "$SERVICE_PID" ]; then stop "$SERVICE_PID"; fi
  if [ -n "$REDIS_PID" ]; then stop "$REDIS_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!

# STEADYCACHE_LOAD_BUILD=dev (what `scripts/bench-report.sh --quick` sets): the service as the
# tests build it, for a run that checks the pipeline rather than measures.
if [ "${STEADYCACHE_LOAD_BUILD:-release}" = dev ]; then
  cargo build -q --workspace --all-features --profile dev --example web_service
  SERVICE="${CARGO_TARGET_DIR:-target}/debug/examples/web_service"
else
  cargo build --release -q -p steadycache-bench --example web_service
  SERVICE="${CARGO_TARGET_DIR:-target}/release/examples/web_service"
fi

# Wait until `url` answers (a guard against a hang, not a measurement).
wait_for() {
  python3 - "$1" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).read()
        break
    except Exception:
        if time.time() > deadline:
            sys.exit(f"no answer from {sys.argv[1]}")
        time.sleep(0.1)
PY
}
wait_for_redis() {
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "load.sh: redis-server did not start" >&2
  exit 1
}
wait_for_redis

for mode in none ttl swr http; do
  port=$(free_port)
  "$SERVICE" --mode "$mode" --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT/0" 2>"$WORK/$mode.log" &
  SERVICE_PID=$!
  wait_for "http://127.0.0.1:$port/stats"
  # Steady state is what is measured: each key is asked for once first (together), so the
  # cached modes start warm instead of counting 50 cold misses into their p99.
  python3 - "$port" <<'PY'
import sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
def fetch(i):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/forecast/city{i:02d}", timeout=5).read()
    except Exception:
        pass  # "no cache" refuses some: nothing to warm there
with ThreadPoolExecutor(50) as pool:
    list(pool.map(fetch, range(50)))
PY
  "$OHA" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" -q "$RATE" \
    --latency-correction -w --rand-regex-url "http://127[.]0[.]0[.]1:$port/forecast/city[0-4][0-9]" \
    >"$WORK/$mode.json"
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$port/stats" >"$WORK/$mode.stats.json"
  stop "$SERVICE_PID"
  SERVICE_PID=""
done

python3 - "$WORK" "$DURATION" "$RATE" "$CONNECTIONS" "$OUT" <<'PY'
import json, os, sys
work, duration, rate, connections, out = sys.argv[1:6]
names = {"none": "no cache", "ttl": "`#[cached]` ttl 1 s", "swr": "ttl 1 s + stale-while-revalidate",
         "http": "`HttpCacheLayer`, max-age=1 + stale-while-revalidate"}
rows = []
for mode in ["none", "ttl", "swr", "http"]:
    load = json.load(open(os.path.join(work, f"{mode}.json")))
    stats = json.load(open(os.path.join(work, f"{mode}.stats.json")))
    codes = load.get("statusCodeDistribution") or {}
    errors = load.get("errorDistribution") or {}
    total = sum(codes.values()) + sum(errors.values())
    ok = sum(n for c, n in codes.items() if c.startswith("2"))
    pct = load.get("latencyPercentiles") or {}
    ms = lambda v: None if v is None else v * 1000.0
    seconds = load["summary"]["total"] or 1.0
    rows.append({
        "mode": mode,
        "name": names[mode],
        "requests": total,
        "ok": ok,
        "ok_ratio": ok / total if total else 0.0,
        "p50_ms": ms(pct.get("p50")),
        "p99_ms": ms(pct.get("p99")),
        "throughput_ok_per_s": ok / seconds,
        "upstream_calls": stats["upstream_calls"],
        "upstream_refused": stats["upstream_refused"],
        "cache": stats.get("cache"),
    })
fmt = lambda v: "-" if v is None else f"{v:.2f}"
print(f"\n{duration} per mode at {rate} requests/s ({connections} connections) over 50 keys; "
      "upstream: 100 ms a call, 100 calls/s\n")
print("| mode | p50 (ms) | p99 (ms) | answered 200 | throughput (200/s) | upstream calls (refused) |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['name']} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {100*r['ok_ratio']:.1f} % "
          f"| {r['throughput_ok_per_s']:.0f} | {r['upstream_calls']} ({r['upstream_refused']}) |")
for r in rows:
    if r["requests"] == 0 or r["p50_ms"] is None:
        sys.exit(f"load.sh: mode {r['mode']} answered nothing")
    # Through the cache every key is computed about once a second, within the upstream's
    # limit: nearly every request must succeed (a broken setup must not pass as a table).
    if r["mode"] != "none" and r["ok_ratio"] < 0.9:
        sys.exit(f"load.sh: mode {r['mode']} answered 200 to {100*r['ok_ratio']:.1f} % only")
if out:
    with open(out, "w") as f:
        json.dump({"duration": duration, "rate": float(rate), "connections": int(connections),
                   "keys": 50, "upstream_ms": 100, "upstream_rate": 100, "modes": rows}, f, indent=2)
PY
