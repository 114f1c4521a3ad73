#!/usr/bin/env bash
# Socket connect rate, this tree against a base commit, interleaved in one run.
#
#   bench/connect.sh [runs] [base-rev] [clients]
#
# Builds both builds (bench/builds.sh: the gateways differ, or with AB=loadtest the load
# tools). For each of `runs` (default 5), for each build: a fresh gateway on 127.0.0.1:7350
# (metrics :9100), then `loadtest connect` of `clients` sockets (default 10000) with 64 in
# flight: every client authenticates first, then the measured phase dials, upgrades, sends an
# envelope ping and waits for its pong. Printed per run and as medians: connects per second,
# connect p99, the gateway's CPU per connect (process_cpu_seconds_total over the phase) and
# the load tool's CPU in the phase, in µs per connect.
set -euo pipefail
runs=${1:-5}
base=${2:-HEAD}
clients=${3:-10000}
cd "$(dirname "$0")/.."
. bench/builds.sh
build_ab connect "$base"


measure() { # build run
  start_gateway "$1"
  "$out/loadtest-$1" connect --clients "$clients" --in-flight 64 --quiet --json "$out/$1-$2.json" >"$out/$1-$2.txt" 2>&1 || true
  stop_gateway
  python3 - "$1" "$out/$1-$2.json" <<'PY' | tee -a "$out/results.txt"
import json, sys
r = json.load(open(sys.argv[2]))
n = max(r["connected"], 1)
print(sys.argv[1], f'{r["rate_per_second"]:.0f}', f'{r["connect"]["p99_ms"]:.2f}',
      f'{r["server"]["ramp_cpu_seconds_per_connect"] * 1e6:.0f}', f'{r["client_ramp_cpu_seconds"] / n * 1e6:.0f}')
PY
}

each_run "$runs" measure

python3 - "$out/results.txt" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, *v = line.split()
    rows[b].append([float(x) for x in v])
print(f"{'build':5s} {'connects/s (runs)':>44s} {'median':>7s} {'p99 ms':>7s} {'gateway µs':>11s} {'client µs':>10s}")
for b in ("base", "head"):
    v = rows.get(b, [])
    if v:
        med = [statistics.median(x[i] for x in v) for i in range(4)]
        print(f"{b:5s} {' · '.join(f'{x[0]:.0f}' for x in v):>44s} {med[0]:7.0f} {med[1]:7.2f} {med[2]:11.0f} {med[3]:10.0f}")
PY
