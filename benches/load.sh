#!/usr/bin/env bash
# Load test of /mutate over HTTPS on loopback, against a bare axum+rustls baseline measured in the same run.
#
# usage: benches/load.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 8 s, 3 rounds)
#
# Two reviews: examples/admission-review.json (784 B, a bare pod) and examples/admission-review-deployment.json
# (9.6 KB, a Deployment's pod as the API server sends it, managedFields and all). For each review and round,
# alternately: the baseline (examples/baseline_server.rs answering a fixed body, the webhook's real answer to that
# review) and the webhook (serve --self-signed --service-accounts examples/serviceaccounts.yaml), each first at
# saturation with 64 connections, then rate-limited to half of the webhook's saturation throughput for the p99:
# once with the same 64 connections and once with HALF_CONN (default 8). On one core the first p99 is mostly the wait
# behind the other connections' requests when many arrive together (about 64 × the time of one request); the second
# shows the tail without that queue.
#
# Pinning (PIN=1, the default when the machine has 2 CPUs or more and taskset exists): the servers run on CPU 0 and
# the load tool on CPU 1, so neither steals the other's core; PIN=0 runs everything unpinned (for comparison with
# older figures). SERVER_CPU / LOAD_CPU override the CPUs. The load tool is oha (crates.io; installed with
# `cargo install oha --locked` if missing). Prints one Markdown table: medians over the rounds, the throughput ratio
# webhook / baseline per review, and the machine's load average before and after (the machines are shared).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECS=${1:-8}
ROUNDS=${2:-3}
CONN=64
HALF_CONN=${HALF_CONN:-8}
BASE_PORT=${BASE_PORT:-28443}
HOOK_PORT=${HOOK_PORT:-28444}
METRICS_PORT=${METRICS_PORT:-28999}
REVIEWS=(examples/admission-review.json examples/admission-review-deployment.json)
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

PIN=${PIN:-auto}
if [ "$PIN" = auto ]; then
  PIN=0
  [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null && PIN=1
fi
SERVER=() LOAD=()
if [ "$PIN" = 1 ]; then
  SERVER=(taskset -c "${SERVER_CPU:-0}") LOAD=(taskset -c "${LOAD_CPU:-1}")
fi

command -v oha >/dev/null || cargo install oha --locked
cargo build --release --quiet --bin irsa-webhook --example baseline_server
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

"${SERVER[@]}" target/release/irsa-webhook serve --self-signed --ca-bundle-out "$WORK/ca.crt" \
  --service-accounts examples/serviceaccounts.yaml --port "$HOOK_PORT" --metrics-port "$METRICS_PORT" --shutdown-delay 0s \
  --bind-address 127.0.0.1 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null && break; sleep 0.1; done
# One baseline per review, answering with a body of the same size as the webhook's real answer to it.
for i in "${!REVIEWS[@]}"; do
  curl -sf --cacert "$WORK/ca.crt" -H 'Content-Type: application/json' --data-binary @"${REVIEWS[$i]}" \
    "https://localhost:$HOOK_PORT/mutate" > "$WORK/answer-$i.json"
  grep -q '"patch"' "$WORK/answer-$i.json" || { echo "the webhook did not mutate ${REVIEWS[$i]}" >&2; exit 1; }
  "${SERVER[@]}" target/release/examples/baseline_server "$((BASE_PORT + i * 10))" "$WORK/answer-$i.json" 2>/dev/null &
  pids+=($!)
done
sleep 0.5

# oha prints JSON; pull requests/s, p50, p99 (ms) and the count of non-2xx / errors.
run() { # review url qps(0 = unlimited) [connections]
  local rate=()
  [ "$3" != 0 ] && rate=(-q "$3")
  "${LOAD[@]}" oha --no-tui --output-format json -z "${SECS}s" -c "${4:-$CONN}" "${rate[@]}" --insecure -m POST \
    -H 'Content-Type: application/json' -D "$1" "$2" > "$WORK/out.json"
  python3 - "$WORK/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]; p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
# oha cancels the requests still in flight when -z ends and lists them as "aborted due to deadline": not failures.
errors = {k: v for k, v in d.get("errorDistribution", {}).items() if k != "aborted due to deadline"}
bad = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(errors.values())
print(f'{s["requestsPerSec"]:.0f} {p["p50"]*1000:.3f} {p["p99"]*1000:.3f} {bad}')
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rows=()
for i in "${!REVIEWS[@]}"; do
  review=${REVIEWS[$i]}
  base="https://localhost:$((BASE_PORT + i * 10))/mutate" hook="https://localhost:$HOOK_PORT/mutate"
  : > "$WORK/base_sat"; : > "$WORK/hook_sat"; : > "$WORK/base_half"; : > "$WORK/hook_half"
  : > "$WORK/base_few"; : > "$WORK/hook_few"
  for r in $(seq "$ROUNDS"); do
    read -r brps _ bp99 bbad < <(run "$review" "$base" 0)
    read -r hrps _ hp99 hbad < <(run "$review" "$hook" 0)
    half=$((hrps / 2))
    read -r _ _ bhp99 _ < <(run "$review" "$base" "$half")
    read -r hhrps hhp50 hhp99 hhbad < <(run "$review" "$hook" "$half")
    read -r _ _ bfp99 _ < <(run "$review" "$base" "$half" "$HALF_CONN")
    read -r hfrps hfp50 hfp99 hfbad < <(run "$review" "$hook" "$half" "$HALF_CONN")
    echo "$review round $r: baseline ${brps} req/s (p99 ${bp99} ms, errors ${bbad}); webhook ${hrps} req/s (p99 ${hp99} ms, errors ${hbad}); at ${half} req/s: baseline p99 ${bhp99} ms, webhook p50 ${hhp50} ms p99 ${hhp99} ms (achieved ${hhrps} req/s, errors ${hhbad}); with $HALF_CONN connections: baseline p99 ${bfp99} ms, webhook p50 ${hfp50} ms p99 ${hfp99} ms (achieved ${hfrps} req/s, errors ${hfbad})" >&2
    echo "$brps" >> "$WORK/base_sat"; echo "$hrps" >> "$WORK/hook_sat"
    echo "$bhp99" >> "$WORK/base_half"; echo "$hhp99" >> "$WORK/hook_half"
    echo "$bfp99" >> "$WORK/base_few"; echo "$hfp99" >> "$WORK/hook_few"
    [ "$bbad" = 0 ] && [ "$hbad" = 0 ] && [ "$hhbad" = 0 ] && [ "$hfbad" = 0 ] || echo "$review round $r had failed requests" >&2
  done
  B=$(median < "$WORK/base_sat"); H=$(median < "$WORK/hook_sat")
  BH=$(median < "$WORK/base_half"); HH=$(median < "$WORK/hook_half")
  BF=$(median < "$WORK/base_few"); HF=$(median < "$WORK/hook_few")
  size=$(wc -c < "$review")
  rows+=("| \`$(basename "$review")\` ($size B) | $B | $H | **$(python3 -c "print(f'{$H/$B:.2f}')")** | $BH | $HH | $BF | $HF |")
done
pinning="unpinned"
[ "$PIN" = 1 ] && pinning="servers on CPU ${SERVER_CPU:-0}, oha on CPU ${LOAD_CPU:-1}"
echo
echo "Median of $ROUNDS rounds, ${SECS} s each, $CONN connections, loopback, $pinning; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| review | baseline req/s | /mutate req/s | ratio | baseline p99 at half (ms) | /mutate p99 at half (ms) | baseline p99 at half, $HALF_CONN conn. (ms) | /mutate p99 at half, $HALF_CONN conn. (ms) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
