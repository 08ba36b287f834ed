#!/usr/bin/env bash
# Load test of /mutate over HTTPS on loopback, against a bare axum+rustls baseline measured in the same run.
#
# usage: benches/load.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 10 s, 3 rounds)
#
# For each round, alternately: the baseline (examples/baseline_server.rs, a fixed body of the same size as the
# webhook's answer) and the webhook (serve --self-signed --service-accounts examples/serviceaccounts.yaml), each
# first at saturation with 64 connections, then rate-limited to half of the webhook's saturation throughput with
# 64 connections for the p99. The load tool is oha (crates.io; installed with `cargo install oha --locked` if
# missing). Prints a Markdown table: medians over the rounds, and the throughput ratio webhook / baseline.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECS=${1:-10}
ROUNDS=${2:-3}
CONN=64
BASE_PORT=${BASE_PORT:-28443}
HOOK_PORT=${HOOK_PORT:-28444}
METRICS_PORT=${METRICS_PORT:-28999}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v oha >/dev/null || cargo install oha --locked
cargo build --release --quiet --bin irsa-webhook --example baseline_server

review=examples/admission-review.json
# The baseline answers with a body of the same size as the webhook's real answer.
target/release/irsa-webhook serve --self-signed --ca-bundle-out "$WORK/ca.crt" --service-accounts examples/serviceaccounts.yaml \
  --port "$HOOK_PORT" --metrics-port "$METRICS_PORT" --bind-address 127.0.0.1 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -s --cacert "$WORK/ca.crt" -H 'Content-Type: application/json' --data-binary @$review "https://localhost:$HOOK_PORT/mutate" > "$WORK/answer.json"
target/release/examples/baseline_server "$BASE_PORT" "$WORK/answer.json" 2>/dev/null &
pids+=($!)
sleep 0.5

# oha prints JSON; pull requests/s, p50, p99 (seconds) and the count of non-2xx / errors.
run() { # url qps(0 = unlimited)
  local rate=()
  [ "$2" != 0 ] && rate=(-q "$2")
  oha --no-tui --output-format json -z "${SECS}s" -c $CONN "${rate[@]}" --insecure -m POST \
    -H 'Content-Type: application/json' -D "$review" "$1" > "$WORK/out.json"
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
: > "$WORK/base_sat"; : > "$WORK/hook_sat"; : > "$WORK/base_half"; : > "$WORK/hook_half"
for r in $(seq "$ROUNDS"); do
  read -r brps _ bp99 bbad < <(run "https://localhost:$BASE_PORT/mutate" 0)
  read -r hrps _ hp99 hbad < <(run "https://localhost:$HOOK_PORT/mutate" 0)
  half=$((hrps / 2))
  read -r _ _ bhp99 _ < <(run "https://localhost:$BASE_PORT/mutate" "$half")
  read -r hhrps hhp50 hhp99 hhbad < <(run "https://localhost:$HOOK_PORT/mutate" "$half")
  echo "round $r: baseline ${brps} req/s (p99 ${bp99} ms, errors ${bbad}); webhook ${hrps} req/s (p99 ${hp99} ms, errors ${hbad}); at ${half} req/s: baseline p99 ${bhp99} ms, webhook p50 ${hhp50} ms p99 ${hhp99} ms (achieved ${hhrps} req/s, errors ${hhbad})" >&2
  echo "$brps" >> "$WORK/base_sat"; echo "$hrps" >> "$WORK/hook_sat"
  echo "$bhp99" >> "$WORK/base_half"; echo "$hhp99" >> "$WORK/hook_half"
  [ "$bbad" = 0 ] && [ "$hbad" = 0 ] && [ "$hhbad" = 0 ] || echo "round $r had failed requests" >&2
done
B=$(median < "$WORK/base_sat"); H=$(median < "$WORK/hook_sat")
BH=$(median < "$WORK/base_half"); HH=$(median < "$WORK/hook_half")
echo
echo "| measure (median of $ROUNDS rounds, ${SECS} s each, $CONN connections, loopback) | baseline | /mutate | ratio |"
echo "| --- | ---: | ---: | ---: |"
echo "| saturation throughput (req/s) | $B | $H | $(python3 -c "print(f'{$H/$B:.2f}')") |"
echo "| p99 at half of /mutate saturation (ms) | $BH | $HH | |"
