#!/usr/bin/env bash
# Socket figures of issue 3 with cmd/loadtest, each run against a fresh gateway process.
#
#   loadtest/scripts/sockets.sh [runs] [outdir]
#
# For each of `runs` (default 3): memory per idle socket at 10k (hold 60s, read 30s after the
# ramp), memory per idle socket and heartbeat CPU at 19k (hold 90s: memory read at 30s, CPU
# from 30s to 90s), heartbeat CPU of 19k idle sockets without client envelope pings (the
# server's WebSocket pings only, every --ping-period = 15s), connect rate and latency for 10k
# sockets with 64 in flight. JSON reports
# go to outdir (default /tmp/sessiongate-loadtest); the medians are printed at the end.
set -euo pipefail
runs=${1:-3}
out=${2:-/tmp/sessiongate-loadtest}
cd "$(dirname "$0")/../.."
mkdir -p "$out"
go build -o "$out/gateway" ./cmd/gateway
go build -o "$out/loadtest" ./cmd/loadtest
{ date -u; git rev-parse HEAD; git status --short; git diff HEAD | sha256sum; } >"$out/tree.txt"

gw_pid=
start_gw() {
  "$out/gateway" --addr 127.0.0.1:7350 --metrics-addr 127.0.0.1:9100 --log-level warn "$@" >>"$out/gateway.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 100); do
    curl -fs http://127.0.0.1:7350/readyz >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "gateway did not start" >&2; return 1
}
stop_gw() { kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; sleep 2; }
trap stop_gw EXIT

lt() { "$out/loadtest" "$@" --quiet; }

for i in $(seq "$runs"); do
  start_gw; lt hold --clients 10000 --in-flight 64 --rate 2000 --hold 60s --settle 30s --ping-interval 10s --json "$out/hold10k-$i.json"; stop_gw
  start_gw; lt hold --clients 19000 --in-flight 64 --rate 2000 --hold 90s --settle 30s --ping-interval 10s --json "$out/hold19k-$i.json"; stop_gw
  start_gw; lt hold --clients 19000 --in-flight 64 --rate 2000 --hold 90s --settle 30s --ping-interval 0 --json "$out/idle19k-$i.json"; stop_gw
  start_gw; lt connect --clients 10000 --in-flight 64 --json "$out/connect10k-$i.json"; stop_gw
done

python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(kind): return [json.load(open(f"{out}/{kind}-{i}.json")) for i in range(1, runs + 1)]
def line(name, vals, fmt):
    print(f"{name:50s} " + " · ".join(fmt.format(v) for v in vals) + "  → median " + fmt.format(statistics.median(vals)))
for kind in ("hold10k", "hold19k"):
    rs = load(kind)
    line(f"{kind} RSS KiB/socket (30 s after ramp)", [r["server"]["rss_bytes_per_socket"] / 1024 for r in rs], "{:.2f}")
    line(f"{kind} heap+stack KiB/socket", [r["server"]["heap_plus_stack_bytes_per_socket"] / 1024 for r in rs], "{:.2f}")
    line(f"{kind} goroutines/socket", [r["server"]["goroutines_per_socket"] for r in rs], "{:.3f}")
    line(f"{kind} connect p99 ms (ramp at 2000/s)", [r["connect"]["p99_ms"] for r in rs], "{:.2f}")
    line(f"{kind} errors", [r["error_count"] for r in rs], "{}")
rs = load("hold19k")
line("hold19k idle CPU % of a core (envelope ping 10 s)", [r["server"]["idle_cpu_percent_of_core"] for r in rs], "{:.3f}")
rs = load("idle19k")
line("idle19k idle CPU % of a core (server pings only)", [r["server"]["idle_cpu_percent_of_core"] for r in rs], "{:.3f}")
line("idle19k RSS KiB/socket", [r["server"]["rss_bytes_per_socket"] / 1024 for r in rs], "{:.2f}")
line("idle19k errors", [r["error_count"] for r in rs], "{}")
rs = load("connect10k")
line("connect10k connects/s", [r["rate_per_second"] for r in rs], "{:.0f}")
line("connect10k p50 ms", [r["connect"]["p50_ms"] for r in rs], "{:.2f}")
line("connect10k p99 ms", [r["connect"]["p99_ms"] for r in rs], "{:.2f}")
line("connect10k p99.9 ms", [r["connect"]["p99_9_ms"] for r in rs], "{:.2f}")
line("connect10k errors", [r["error_count"] for r in rs], "{}")
PY
