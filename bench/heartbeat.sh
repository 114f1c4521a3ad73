#!/usr/bin/env bash
# Heartbeat CPU of idle sockets, this tree against a base commit, interleaved in one run.
#
#   bench/heartbeat.sh [runs] [base-rev] [clients] [scenarios]
#
# Builds cmd/gateway from the work tree and from base-rev (default: a149102, the tree before the
# heartbeat fast path) and cmd/loadtest from the work tree. For each of `runs` (default 3), for
# each build: a fresh gateway on 127.0.0.1:7350 (metrics :9100, default --ping-period 15s and
# --pong-wait 25s), `loadtest hold` of `clients` sockets (default 19000, 2 worker processes)
# that stay idle, once answering only the server's WebSocket pings (--ping-interval 0) and once
# also sending a nakama-js style envelope ping every 10 s (scenarios: "pings envelopes", the
# default, or either one). From 45 s after the start (the ramp done, every socket past its first
# ping period) it measures 40 s: CPU = growth of the gateway's utime + stime (/proc/PID/stat) in
# % of one core; per ping = CPU growth divided by the growth of sessiongate_socket_pings_total
# (server pings) or sessiongate_socket_messages_in_total (envelope pings). The script's two
# /metrics reads fall outside the CPU window, and the load tool reads none for its timeline
# (--scrape-interval -1s; a read at 19k sockets costs the node milliseconds: the process
# collector lists its open files), so the figure is the heartbeat's alone. Medians are printed
# at the end. AB=loadtest compares load tools instead of gateways (bench/builds.sh).
set -euo pipefail
runs=${1:-3}
base=${2:-a149102}
clients=${3:-19000}
scenarios=${4:-pings envelopes}
cd "$(dirname "$0")/.."
. bench/builds.sh
build_ab heartbeat "$base"

metric() { curl -s http://127.0.0.1:9100/metrics | awk -v n="$1" '$1 == n { print $2 }'; }

measure() { # build scenario ping-interval counter
  start_gateway "$1"
  "$out/loadtest-$1" hold --clients "$clients" --in-flight 64 --rate 2000 --hold 100s --settle 5s \
    --ping-interval "$3" --scrape-interval -1s --quiet --json "$out/$1-$2-$r.json" >"$out/$1-$2-$r.txt" 2>&1 &
  local lt=$!
  sleep 45
  local c1 p1 c2 p2
  p1=$(metric "$4"); c1=$(cpu_seconds "$gw")
  sleep 40
  c2=$(cpu_seconds "$gw"); p2=$(metric "$4")
  wait "$lt" || true
  stop_gateway
  python3 -c "
c=$c2-$c1; p=$p2-$p1
print('$1 $2 %.0f/s %.3f %.2f' % (p/40, c/40*100, c/p*1e6 if p else 0))" | tee -a "$out/results.txt"
}

both() { # build run
  r=$2
  case " $scenarios " in *" pings "*) measure "$1" pings 0 sessiongate_socket_pings_total ;; esac
  case " $scenarios " in *" envelopes "*) measure "$1" envelopes 10s sessiongate_socket_messages_in_total ;; esac
}
each_run "$runs" both

python3 - "$out/results.txt" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, s, rate, cpu, per = line.split()
    rows[(s, b)].append((float(rate[:-2]), float(cpu), float(per)))
print(f"{'scenario':10s} {'build':5s} {'events/s':>9s} {'CPU % of a core (runs)':>32s} {'median':>7s} {'µs/event':>9s}")
for (s, b), v in sorted(rows.items()):
    cpus = [x[1] for x in v]
    print(f"{s:10s} {b:5s} {statistics.median(x[0] for x in v):9.0f} {' · '.join(f'{c:.2f}' for c in cpus):>32s} "
          f"{statistics.median(cpus):7.2f} {statistics.median(x[2] for x in v):9.1f}")
PY
