#!/usr/bin/env bash
# Soak test of the release binary: legitimate reviews at half of the webhook's saturation throughput for SECONDS,
# alongside hostile clients, with the server's RSS sampled every 10 s. A benchmark, not a CI test.
#
# usage: benches/soak.sh [SECONDS]        (default 600: the 10-minute soak of docs/reliability.md)
#
# 1. Builds target/release/irsa-webhook and the load generator (benches/soak.rs, `cargo bench --bench soak`).
# 2. Starts `serve --self-signed --service-accounts examples/serviceaccounts.yaml` with the default limits, on
#    loopback. With taskset and >= 2 CPUs the server runs on CPU 0 and the load generator on CPU 1.
# 3. Saturation: SAT_SECONDS (10) of back-to-back requests over CONNECTIONS (64) keep-alive connections (3 in 4
#    HTTP/1.1, 1 in 4 HTTP/2) with examples/admission-review.json; prints the req/s.
# 4. The soak: half of that rate over the same connections, plus the hostile mix (per second): 20 silent TCP
#    connections, 2 unfinished TLS handshakes, 5 silent connections after the handshake (HTTP/1.1 and HTTP/2),
#    5 half-sent requests on the metrics port, 1 body dripped a byte every 500 ms, 1 oversized (4 MiB) body,
#    5 malformed and 2 wrong-content-type bodies, 1 review of 1 MiB (40,000 annotations), 5 requests on new
#    connections. Prints RSS, legitimate counts and p50/p99 every 10 s, then the totals, the server's counters
#    of closed connections and shed requests, and PASS (zero failed legitimate requests, RSS growth after the
#    first minute within RSS_GROWTH_MIB, default 32) or FAIL, which is also the exit status.
#
# Variables: SAT_SECONDS, CONNECTIONS, RSS_GROWTH_MIB, PORT (28543), METRICS_PORT (28599).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_TOTAL=${1:-600}
SAT_SECONDS=${SAT_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-64}
RSS_GROWTH_MIB=${RSS_GROWTH_MIB:-32}
PORT=${PORT:-28543}
METRICS_PORT=${METRICS_PORT:-28599}
WORK=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

server_pin=() driver_pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0) driver_pin=(taskset -c 1)
fi

echo "# building (release)"
cargo build --release --quiet --bin irsa-webhook
cargo bench --quiet --bench soak --no-run 2>/dev/null

"${server_pin[@]}" target/release/irsa-webhook serve --self-signed --ca-bundle-out "$WORK/ca.crt" \
  --service-accounts examples/serviceaccounts.yaml --bind-address 127.0.0.1 \
  --port "$PORT" --metrics-port "$METRICS_PORT" --log-format json 2>"$WORK/webhook.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null || { cat "$WORK/webhook.log"; exit 1; }

drive() { # seconds rate hostile
  SOAK_URL="https://localhost:$PORT/mutate" SOAK_METRICS="http://127.0.0.1:$METRICS_PORT" SOAK_CA="$WORK/ca.crt" \
    SOAK_PID=$pid SOAK_REVIEW=examples/admission-review.json SOAK_CONNECTIONS=$CONNECTIONS \
    SOAK_SECONDS=$1 SOAK_RATE=$2 SOAK_HOSTILE=$3 SOAK_RSS_GROWTH_MIB=$RSS_GROWTH_MIB \
    "${driver_pin[@]}" cargo bench --quiet --bench soak 2>/dev/null
}

echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); pinned: ${server_pin[*]:-no}"
echo "# saturation: ${SAT_SECONDS} s, $CONNECTIONS connections, back to back"
drive "$SAT_SECONDS" 0 0 | tee "$WORK/sat.out" | grep -E '^legitimate|^latency'
saturation=$(sed -nE 's/^legitimate: .* ([0-9]+) req\/s$/\1/p' "$WORK/sat.out")
rate=$((saturation / 2))
echo
echo "# soak: ${SECONDS_TOTAL} s at $rate req/s (half of $saturation), with the hostile mix"
status=0
drive "$SECONDS_TOTAL" "$rate" 1 || status=$?
echo
echo "# server log: $(wc -l <"$WORK/webhook.log") lines; by message:"
sed -nE 's/.*"level":"([A-Z]+)".*"message":"([^"]*)".*/\1 \2/p' "$WORK/webhook.log" | sort | uniq -c | sort -rn | head -8
exit "$status"
