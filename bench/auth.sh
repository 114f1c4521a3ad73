#!/usr/bin/env bash
# Authenticate-an-existing-device throughput over loopback HTTP, embedded store and Redis store,
# measured with wrk (2 threads, 64 connections) on the same machine as the gateway.
# Usage: bench/auth.sh [runs] [seconds]   (defaults: 5 runs of 10 s each; prints each run and the median)
# Needs: wrk, redis-server (apt-get install wrk redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-10}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/gateway" ./cmd/gateway

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

measure() { # name port [extra gateway flags...]
  local name=$1 port=$2; shift 2
  "$tmp/gateway" --addr "127.0.0.1:$port" --metrics-addr "" --log-level warn "$@" 2>"$tmp/$name.log" &
  pids+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf -u defaultkey: -d '{"id":"wrk-bench-device-0001"}' \
    "http://127.0.0.1:$port/v2/account/authenticate/device?create=true" >/dev/null
  local results=()
  for i in $(seq "$runs"); do
    out=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/auth_device.lua "http://127.0.0.1:$port")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "$name run $i: ${rps} req/s, p99 ${p99}${non2xx:+, NON-2XX $non2xx}"
    results+=("$rps")
  done
  echo "$name median: $(printf '%s\n' "${results[@]}" | median) req/s"
}

measure embedded 17450

redis_port=17451
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
measure redis 17452 --redis-url "redis://127.0.0.1:$redis_port/0"
