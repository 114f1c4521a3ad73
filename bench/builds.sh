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
  if curl -fs -o /dev/null http://127.0.0.1:7350/readyz 2>/dev/null; then
    echo "127.0.0.1:7350 answers already: stop that gateway first" >&2
    return 1
  fi
  "$out/gateway-$1" --addr 127.0.0.1:7350 --metrics-addr 127.0.0.1:9100 --log-level warn >>"$out/gateway.log" 2>&1 &
  gw=$!
  for _ in $(seq 100); do
    curl -fs http://127.0.0.1:7350/readyz >/dev/null 2>&1 && return 0
    kill -0 "$gw" 2>/dev/null || break
    sleep 0.1
  done
  echo "gateway-$1 did not become ready (is 127.0.0.1:7350 or :9100 taken?); see $out/gateway.log" >&2
  return 1
}
stop_gateway() {
  if [ -n "$gw" ]; then
    kill "$gw" 2>/dev/null || true
    wait "$gw" 2>/dev/null || true
  fi
  gw=
}
trap stop_gateway EXIT
