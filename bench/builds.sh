# Sourced by the A/B scripts in bench/: build_ab NAME BASE makes a fresh directory $out under
# /tmp and builds into it gateway-head (the work tree), gateway-base (commit BASE, from a
# temporary worktree) and loadtest (the work tree). Run from the repository's root.
build_ab() {
  out=$(mktemp -d "/tmp/sessiongate-$1.XXXX")
  go build -o "$out/gateway-head" ./cmd/gateway
  go build -o "$out/loadtest" ./cmd/loadtest
  git worktree add -q --detach "$out/base" "$2"
  (cd "$out/base" && go build -o "$out/gateway-base" ./cmd/gateway)
  git worktree remove --force "$out/base"
  echo "builds in $out (head $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'), base $2)"
}
