# Sourced by the A/B scripts in bench/: build_ab NAME BASE makes a fresh directory $out under
# /tmp and builds into it, for each of the two builds "base" and "head", a gateway-BUILD and a
# loadtest-BUILD. By default the gateway differs (gateway-head from the work tree, gateway-base
# from commit BASE, through a temporary worktree) and both load tools are the work tree's; with
# AB=loadtest in the environment the load tool differs instead (loadtest-base from BASE) and
# both gateways are the work tree's. Run from the repository's root.
build_ab() {
  out=$(mktemp -d "/tmp/sessiongate-$1.XXXX")
  local what=${AB:-gateway} other=loadtest
  case $what in
    gateway) ;;
    loadtest) other=gateway ;;
    *) echo "AB must be gateway or loadtest, not $what" >&2; return 2 ;;
  esac
  go build -o "$out/$what-head" "./cmd/$what"
  go build -o "$out/$other-head" "./cmd/$other"
  ln -s "$other-head" "$out/$other-base"
  git worktree add -q --detach "$out/base" "$2"
  (cd "$out/base" && go build -o "$out/$what-base" "./cmd/$what")
  git worktree remove --force "$out/base"
  echo "builds in $out ($what differs: head $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'), base $2)"
}

# each_run RUNS FN calls FN BUILD RUN for each of RUNS runs, for base then head: the builds
# interleaved, so that a change in the machine's state reaches both.
each_run() {
  local r b
  for r in $(seq "$1"); do
    for b in base head; do "$2" "$b" "$r"; done
  done
}

# One gateway at a time on 127.0.0.1:7350 (metrics :9100): start_gateway BUILD starts it and
# waits until it is ready, stop_gateway stops it (also on exit).
gw=
start_gateway() {
  refuse_taken http://127.0.0.1:7350/readyz 127.0.0.1:7350 || return 1
  "$out/gateway-$1" --addr 127.0.0.1:7350 --metrics-addr 127.0.0.1:9100 --log-level warn >>"$out/gateway.log" 2>&1 &
  gw=$!
  await_ready "$gw" http://127.0.0.1:7350/readyz "gateway-$1 (is 127.0.0.1:7350 or :9100 taken?)" "$out/gateway.log"
}
stop_gateway() { stop_pid "$gw"; gw=; }
trap stop_gateway EXIT

# refuse_taken URL WHERE fails when URL answers already: another server holds WHERE.
refuse_taken() {
  if curl -fs -o /dev/null "$1" 2>/dev/null; then
    echo "$2 answers already: stop that server first" >&2
    return 1
  fi
}

# await_ready PID URL WHAT LOG waits until URL answers, for as long as process PID lives.
await_ready() {
  for _ in $(seq 100); do
    curl -fs -o /dev/null "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  echo "$3 did not become ready; see $4" >&2
  return 1
}

# cpu_seconds PID prints process PID's user + system CPU in seconds (fields 14 and 15 of
# /proc/PID/stat).
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }

# stop_pid PID stops process PID, if any, and waits for it.
stop_pid() {
  if [ -n "$1" ]; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
