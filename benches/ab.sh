#!/usr/bin/env bash
# A/B of two builds of the webhook on the same machine in the same run: each review, each round, OLD then NEW,
# the server on CPU 0 and oha on CPU 1, 64 connections at saturation. For a change to the request path, where the
# machine's noise between runs is larger than the change (benches/load.sh compares against the bare server).
#
# usage: benches/ab.sh OLD_BINARY NEW_BINARY [SECONDS] [ROUNDS]     (defaults: 8 s, 3 rounds)
# e.g.:  git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release --bin irsa-webhook)
#        benches/ab.sh /tmp/old/target/release/irsa-webhook target/release/irsa-webhook
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OLD=$1 NEW=$2 SECS=${3:-8} ROUNDS=${4:-3}
command -v oha >/dev/null || cargo install oha --locked
WORK=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# Prints the req/s of one binary on one review.
run() {
  local binary=$1 port=$2 review=$3
  taskset -c 0 "$binary" serve --self-signed --ca-bundle-out "$WORK/ca.crt" --service-accounts examples/serviceaccounts.yaml \
    --port "$port" --metrics-port $((port + 100)) --shutdown-delay 0s --bind-address 127.0.0.1 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((port + 100))/readyz" >/dev/null && break; sleep 0.1; done
  taskset -c 1 oha -z "${SECS}s" -c 64 --no-tui --insecure -m POST -H 'Content-Type: application/json' -D "$review" \
    "https://127.0.0.1:$port/mutate" | awk '/Requests\/sec/ {printf "%.0f", $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for review in examples/admission-review.json examples/admission-review-deployment.json; do
  for round in $(seq "$ROUNDS"); do
    old=$(run "$OLD" 29444 "$review")
    new=$(run "$NEW" 29544 "$review")
    echo "$review round $round: old $old req/s, new $new req/s, new/old $(awk -v a="$old" -v b="$new" 'BEGIN {printf "%.2f", b / a}')"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
