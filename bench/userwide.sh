#!/usr/bin/env bash
# User-wide disconnect of 10,000 sockets over 3 nodes, this tree against a base commit,
# interleaved in one run.
#
#   bench/userwide.sh [runs] [base-rev] [clients]
#
# Builds cmd/gateway from the work tree and from base-rev (default: 8dd3265, the tree before
# idle sockets were closed directly) and cmd/loadtest from the work tree. For each of `runs`
# (default 3), for each build: a fresh redis-server on 127.0.0.1:6391 and three fresh gateways
# on it (127.0.0.1:7361-7363, metrics :9201-9203, shared keys), `clients` sockets (default
# 10000) of one user spread over the three, then `loadtest disconnect --disconnect-by
# user-wide`: one POST /v2/server/users/{id}/disconnect to the third node; the figure is the
# time from the call to the last close frame read by a client (the load tool's "disconnect
# latency" max). Medians are printed at the end. Needs redis-server and redis-cli on PATH.
# AB=loadtest compares load tools instead of gateways (bench/builds.sh).
set -euo pipefail
runs=${1:-3}
base=${2:-8dd3265}
clients=${3:-10000}
cd "$(dirname "$0")/.."
. bench/builds.sh
build_ab userwide "$base"

keys="--encryption-key=userwide-session-key --refresh-encryption-key=userwide-refresh-key --http-key=userwide-http-key"
pids=()
stop() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null || true
  pids=()
  redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true
}
trap stop EXIT

measure() { # build run
  redis-server --port 6391 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --logfile "$out/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -p 6391 ping >/dev/null 2>&1 && break; sleep 0.1; done
  for i in 1 2 3; do
    "$out/gateway-$1" $keys --addr 127.0.0.1:736$i --metrics-addr 127.0.0.1:920$i --log-level warn \
      --node-id "userwide-$i" --redis-url redis://127.0.0.1:6391/0 >>"$out/gateway.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 100); do curl -fs http://127.0.0.1:736$i/readyz >/dev/null 2>&1 && break; sleep 0.1; done
  done
  "$out/loadtest-$1" disconnect --target=http://127.0.0.1:7361 --target=http://127.0.0.1:7362 --target=http://127.0.0.1:7363 \
    --metrics=http://127.0.0.1:9201/metrics --metrics=http://127.0.0.1:9202/metrics --metrics=http://127.0.0.1:9203/metrics \
    --clients="$clients" --rate=2000 --in-flight=64 --ping-interval=0s --users=1 --act-in-flight=1 \
    --api-target=http://127.0.0.1:7363 --disconnect-by=user-wide --http-key=userwide-http-key \
    --json "$out/$1-$2.json" >"$out/$1-$2.txt" 2>&1 || true
  stop
  local last answer
  last=$(awk '/^disconnect latency/ { for (i = 1; i <= NF; i++) if ($i == "max") print $(i+1) }' "$out/$1-$2.txt")
  answer=$(awk '/^disconnect call latency/ { for (i = 1; i <= NF; i++) if ($i == "max") print $(i+1) }' "$out/$1-$2.txt")
  echo "$1 ${last:-failed} ${answer:-failed}" | tee -a "$out/results.txt"
}

each_run "$runs" measure

python3 - "$out/results.txt" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, last, answer = line.split()
    if last != "failed":
        rows[b].append((float(last), float(answer)))
print(f"{'build':5s} {'call → last close, ms (runs)':>34s} {'median':>8s} {'answered, ms':>13s}")
for b in ("base", "head"):
    v = rows.get(b, [])
    if v:
        print(f"{b:5s} {' · '.join(f'{x[0]:.0f}' for x in v):>34s} {statistics.median(x[0] for x in v):8.0f} "
              f"{statistics.median(x[1] for x in v):13.1f}")
PY
