#!/usr/bin/env bash
# sessiongate against Centrifugo, the baseline of ../shared/DESIGN.md's targets, in one run.
#
#   CENTRIFUGO=/path/to/centrifugo bench/versus.sh [runs] [scenarios]
#
# The targets were set against Centrifugo 6.9.1 measured on this kind of machine, and these
# machines differ by host and by hour by more than the targets' margins, so this measures both
# on the same cores, interleaved run by run, and prints medians and their ratio. Centrifugo is
# not built here: take it from the Go module proxy with
#   GOBIN=/tmp/cf go install github.com/centrifugal/centrifugo/v6@v6.9.1
# and pass the binary in CENTRIFUGO. The load tool speaks its client protocol
# (--protocol centrifugo, loadtest/centrifugo.go); its config is written below.
#
# scenarios (default "connect idle"):
#   connect  10,000 sockets, 64 in flight, each a fresh server (sessiongate: the embedded
#            default; Centrifugo: its memory engine): connects per second, connect p99, the
#            server's CPU per connect (process_cpu_seconds_total over the ramp) and the load
#            tool's. A connect is dial + upgrade + the first round trip (sessiongate: an
#            envelope ping, the token checked at the upgrade; Centrifugo: the connect command,
#            which checks the token).
#   idle     19,000 idle sockets that only answer the server's pings, both servers pinging
#            every 15 s (sessiongate's default --ping-period; Centrifugo's ping_interval set to
#            15s, its pong_timeout left at 8s): the server's CPU (utime + stime from
#            /proc/PID/stat) over 40 s from 45 s after the start, in % of one core.
# Runs go to 127.0.0.1:7350 (sessiongate; metrics :9100) and 127.0.0.1:8000 (Centrifugo), which
# must be free.
set -euo pipefail
runs=${1:-3}
scenarios=${2:-connect idle}
cd "$(dirname "$0")/.."
if [ -z "${CENTRIFUGO:-}" ] || [ ! -x "$CENTRIFUGO" ]; then
  echo "CENTRIFUGO must name a centrifugo binary (GOBIN=/tmp/cf go install github.com/centrifugal/centrifugo/v6@v6.9.1)" >&2
  exit 2
fi
. bench/builds.sh
out=$(mktemp -d /tmp/sessiongate-versus.XXXX)
go build -o "$out/gateway-head" ./cmd/gateway
go build -o "$out/loadtest" ./cmd/loadtest
secret=versus-$RANDOM$RANDOM
cat >"$out/centrifugo.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": 8000},
  "client": {"token": {"hmac_secret_key": "$secret"}, "ping_interval": "15s", "pong_timeout": "8s", "allowed_origins": ["*"]},
  "prometheus": {"enabled": true},
  "log": {"level": "error"}
}
EOF
echo "builds in $out (head $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'), $("$CENTRIFUGO" version))"

cf=
start_centrifugo() {
  refuse_taken http://127.0.0.1:8000/health 127.0.0.1:8000 || return 1
  "$CENTRIFUGO" -c "$out/centrifugo.json" >>"$out/centrifugo.log" 2>&1 &
  cf=$!
  await_ready "$cf" http://127.0.0.1:8000/metrics centrifugo "$out/centrifugo.log"
}
stop_centrifugo() { stop_pid "$cf"; cf=; }
trap 'stop_gateway; stop_centrifugo' EXIT

# server SYSTEM starts it and sets pid and the load tool's flags for it.
server() {
  case $1 in
    sessiongate)
      start_gateway head
      pid=$gw
      flags=(--target http://127.0.0.1:7350 --metrics http://127.0.0.1:9100/metrics) ;;
    centrifugo)
      start_centrifugo
      pid=$cf
      flags=(--target http://127.0.0.1:8000 --metrics http://127.0.0.1:8000/metrics --protocol centrifugo --centrifugo-secret "$secret") ;;
  esac
}
stop_server() { stop_gateway; stop_centrifugo; }

connect() { # system run
  server "$1"
  "$out/loadtest" connect "${flags[@]}" --clients 10000 --in-flight 64 --quiet --json "$out/connect-$1-$2.json" >"$out/connect-$1-$2.txt" 2>&1 || true
  stop_server
  python3 - "$1" "$out/connect-$1-$2.json" <<'PY' | tee -a "$out/results.txt"
import json, sys
r = json.load(open(sys.argv[2]))
n = max(r["connected"], 1)
print("connect", sys.argv[1], f'{r["rate_per_second"]:.0f}', f'{r["connect"]["p99_ms"]:.2f}',
      f'{r["server"]["ramp_cpu_seconds_per_connect"] * 1e6:.0f}', f'{r["client_ramp_cpu_seconds"] / n * 1e6:.0f}',
      r["connected"], r["error_count"])
PY
}

idle() { # system run
  server "$1"
  "$out/loadtest" hold "${flags[@]}" --clients 19000 --in-flight 64 --rate 2000 --hold 100s --settle 5s \
    --ping-interval 0 --scrape-interval -1s --quiet --json "$out/idle-$1-$2.json" >"$out/idle-$1-$2.txt" 2>&1 &
  local lt=$!
  sleep 45
  local c1 c2
  c1=$(cpu_seconds "$pid")
  sleep 40
  c2=$(cpu_seconds "$pid")
  wait "$lt" || true
  stop_server
  python3 - "$1" "$c1" "$c2" "$out/idle-$1-$2.json" <<'PY' | tee -a "$out/results.txt"
import json, sys
r = json.load(open(sys.argv[4]))
print("idle", sys.argv[1], f'{(float(sys.argv[3]) - float(sys.argv[2])) / 40 * 100:.3f}', r["connected"], r["dropped"], r["error_count"])
PY
}

for r in $(seq "$runs"); do
  for s in $scenarios; do
    for sys in centrifugo sessiongate; do "$s" "$sys" "$r"; done
  done
done

python3 - "$out/results.txt" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    s, system, *v = line.split()
    rows[(s, system)].append([float(x) for x in v])
med = lambda v, i: statistics.median(x[i] for x in v)
# per scenario: the title, column and format of the runs, and each median column: (title, index, format)
tables = {
    "connect": ("connects/s (runs)", 0, "{:.0f}", [("median", 0, "{:.0f}"), ("p99 ms", 1, "{:.2f}"), ("server µs", 2, "{:.0f}"), ("client µs", 3, "{:.0f}")]),
    "idle": ("server CPU, % of a core (runs)", 0, "{:.2f}", [("median", 0, "{:.2f}")]),
}
for s, (runs_title, ri, rfmt, cols) in tables.items():
    g, c = rows.get((s, "sessiongate")), rows.get((s, "centrifugo"))
    if not g or not c:
        continue
    print(f"{s:12s} {runs_title:>40s} " + " ".join(f"{t:>10s}" for t, _, _ in cols))
    for system, v in (("centrifugo", c), ("sessiongate", g)):
        print(f"{system:12s} {' · '.join(rfmt.format(x[ri]) for x in v):>40s} " + " ".join(f"{fmt.format(med(v, i)):>10s}" for _, i, fmt in cols))
    print("ratio sessiongate / centrifugo: " + ", ".join(f"{t} {med(g, i) / med(c, i):.2f}×" for t, i, _ in cols))
PY
