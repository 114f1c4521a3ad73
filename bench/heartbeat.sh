#!/usr/bin/env bash
# Heartbeat CPU of idle sockets, this tree against a base commit, interleaved in one run.
#
#   bench/heartbeat.sh [runs] [base-rev] [clients]
#
# Builds cmd/gateway from the work tree and from base-rev (default: a149102, the tree before the
# heartbeat fast path) and cmd/loadtest from the work tree. For each of `runs` (default 3), for
# each build: a fresh gateway on 127.0.0.1:7350 (metrics :9100, default --ping-period 15s and
# --pong-wait 25s), `loadtest hold` of `clients` sockets (default 19000, 2 worker processes)
# that stay idle, once answering only the server's WebSocket pings (--ping-interval 0) and once
# also sending a nakama-js style envelope ping every 10 s. From 45 s after the start (the ramp
# done, every socket past its first ping period) it reads the gateway's /metrics twice, 40 s
# apart: CPU = process_cpu_seconds_total growth in % of one core; per ping = CPU growth divided
# by sessiongate_socket_pings_total growth (server pings) or by
# sessiongate_socket_messages_in_total growth (envelope pings). Medians are printed at the end.
set -euo pipefail
runs=${1:-3}
base=${2:-a149102}
clients=${3:-19000}
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/sessiongate-heartbeat.XXXX)
go build -o "$out/gateway-head" ./cmd/gateway
go build -o "$out/loadtest" ./cmd/loadtest
git worktree add -q --detach "$out/base" "$base"
(cd "$out/base" && go build -o "$out/gateway-base" ./cmd/gateway)
git worktree remove --force "$out/base"
echo "builds in $out (head $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'), base $base)"

gw=
stop() { [ -n "$gw" ] && kill "$gw" 2>/dev/null; wait "$gw" 2>/dev/null || true; gw=; }
trap stop EXIT
metric() { curl -s http://127.0.0.1:9100/metrics | awk -v n="$1" '$1 == n { print $2 }'; }

measure() { # build scenario ping-interval counter
  "$out/gateway-$1" --addr 127.0.0.1:7350 --metrics-addr 127.0.0.1:9100 --log-level warn >>"$out/gateway.log" 2>&1 &
  gw=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:7350/readyz >/dev/null 2>&1 && break; sleep 0.1; done
  "$out/loadtest" hold --clients "$clients" --in-flight 64 --rate 2000 --hold 100s --settle 5s \
    --ping-interval "$3" --quiet --json "$out/$1-$2-$r.json" >"$out/$1-$2-$r.txt" 2>&1 &
  local lt=$!
  sleep 45
  local c1 p1 c2 p2
  c1=$(metric process_cpu_seconds_total); p1=$(metric "$4")
  sleep 40
  c2=$(metric process_cpu_seconds_total); p2=$(metric "$4")
  wait "$lt" || true
  stop
  python3 -c "
c=$c2-$c1; p=$p2-$p1
print('$1 $2 %.0f/s %.3f %.2f' % (p/40, c/40*100, c/p*1e6 if p else 0))" | tee -a "$out/results.txt"
}

for r in $(seq "$runs"); do
  for b in base head; do
    measure "$b" pings 0 sessiongate_socket_pings_total
    measure "$b" envelopes 10s sessiongate_socket_messages_in_total
  done
done

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
