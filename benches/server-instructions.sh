#!/usr/bin/env bash
# User-space instructions per /mutate request of the whole server (TLS, HTTP, the review, logging, malloc), against
# the bare axum+rustls baseline of benches/load.sh, counted by valgrind's callgrind. Repeatable to about 1
# percent whatever else the machine runs, where req/s on this shared VM scatter by ±15 % between rounds; kernel
# time (sockets, about a quarter of the webhook's CPU under load, the same work for both servers) is not counted.
#
# usage: benches/server-instructions.sh [REQUESTS] [OLD_BINARY]     (default 1000 requests)
#
# For each review, each server is run under callgrind twice, serving 0 and then REQUESTS requests (oha, 4 keep-alive
# connections, so 4 TLS handshakes), and stopped with SIGTERM; the difference of the two counts / REQUESTS is the
# cost of a request. OLD_BINARY, another build of irsa-webhook, adds its column (an A/B of a change).
# Prints one Markdown table. Needs valgrind (Debian: valgrind) and oha (`cargo install oha --locked`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-1000}
OLD=${2:-}
PORT=${PORT:-29444}
METRICS_PORT=$((PORT + 100))
REVIEWS=(examples/admission-review.json examples/admission-review-deployment.json)
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
command -v oha >/dev/null || cargo install oha --locked
cargo build --release --quiet --bin irsa-webhook --example baseline_server
WORK=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

SERVE=(serve --self-signed --ca-bundle-out "$WORK/ca.crt" --service-accounts examples/serviceaccounts.yaml
  --port "$PORT" --metrics-port "$METRICS_PORT" --shutdown-delay 0s --bind-address 127.0.0.1)

# Instructions of one server (the command after the review and the request count) serving `count` requests.
count() { # review count command...
  local review=$1 n=$2
  shift 2
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>"$WORK/valgrind" >/dev/null &
  pid=$!
  for _ in $(seq 600); do
    curl -sk -o /dev/null -H 'Content-Type: application/json' --data-binary @"$review" "https://127.0.0.1:$PORT/mutate" \
      && break
    sleep 0.1
  done
  # The probe above is one more request in both runs: it cancels out.
  [ "$n" = 0 ] || oha --no-tui -n "$n" -c 4 --insecure -m POST -H 'Content-Type: application/json' -D "$review" \
    "https://127.0.0.1:$PORT/mutate" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  sed -n 's/.*refs: *//p' "$WORK/valgrind" | tr -d ,
}

per_request() { # review command...
  local review=$1
  shift
  local idle busy
  idle=$(count "$review" 0 "$@")
  busy=$(count "$review" "$N" "$@")
  echo $(((busy - idle) / N))
}

header="| instructions per request ($N requests) | baseline | irsa-webhook | baseline / webhook |"
rule="| --- | ---: | ---: | ---: |"
[ -n "$OLD" ] && header="$header OLD_BINARY | new / old |" && rule="$rule ---: | ---: |"
echo "$header"
echo "$rule"
for review in "${REVIEWS[@]}"; do
  # The baseline answers with the webhook's real answer to the review (the same response size).
  target/release/irsa-webhook "${SERVE[@]}" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf --cacert "$WORK/ca.crt" -H 'Content-Type: application/json' --data-binary @"$review" \
    "https://localhost:$PORT/mutate" >"$WORK/answer.json"
  kill "$pid"
  wait "$pid" || true
  pid=
  base=$(per_request "$review" target/release/examples/baseline_server "$PORT" "$WORK/answer.json")
  new=$(per_request "$review" target/release/irsa-webhook "${SERVE[@]}")
  row="| \`$(basename "$review")\` | $base | $new | $(python3 -c "print(f'{$base/$new:.2f}')") |"
  if [ -n "$OLD" ]; then
    old=$(per_request "$review" "$OLD" "${SERVE[@]}")
    row="$row $old | $(python3 -c "print(f'{$new/$old:.2f}')") |"
  fi
  echo "$row"
done
