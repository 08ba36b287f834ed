#!/usr/bin/env bash
# The whole test suite: formatting and lints, unit and integration tests, then a real kube-apiserver for the
# end-to-end tests and the chart's server-side checks. What README.md and .ci/run call.
#
# usage: tests/run-all.sh [--no-e2e]
#   --no-e2e   skip everything that needs the API server (for a quick local loop; CI never passes it)
#
# Ends with one line `N passed, M failed` summed over every runner, and exits non-zero if anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
E2E=1
[ "${1:-}" = "--no-e2e" ] && E2E=0

LOG=$(mktemp -d)
trap 'rm -rf "$LOG"; [ -n "${STARTED:-}" ] && tests/e2e/cluster.sh stop >/dev/null 2>&1' EXIT
passed=0 failed=0 steps_failed=()

# Runs a step, shows its output, and adds the counts its runner printed.
step() {
  local name=$1; shift
  echo "=== $name: $*"
  local out="$LOG/$(echo "$name" | tr -c 'a-zA-Z0-9' _).log" t0=$SECONDS
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  local p f
  # cargo test / nextest-style lines, and the plain `N passed, M failed` line of the shell tests.
  p=$(grep -E '^test result: ' "$out" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ - | bc 2>/dev/null)
  f=$(grep -E '^test result: ' "$out" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ - | bc 2>/dev/null)
  if [ -z "$p" ]; then
    p=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  fi
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  # A step with no test counts of its own (fmt, clippy, the static build) counts as one check.
  [ -z "$p" ] && [ "$rc" -eq 0 ] && passed=$((passed + 1))
  if [ "$rc" -ne 0 ]; then
    steps_failed+=("$name")
    # A step that failed without counting a failed test (build error, lint) still counts as one failure.
    [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
  fi
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
}

command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null 2>&1 || true; }

step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets --all-features -- -D warnings
step unit-and-integration cargo test --all-targets --no-fail-fast
# cargo-fuzz targets (fuzz/), about a minute each: docs/reliability.md, "Fuzzing".
step fuzz tests/fuzz.sh
# The Dockerfile's exact build, outside Docker (no engine here): static musl binary, size printed.
step static-build tests/chart/build-static.sh
if [ "$E2E" = 1 ]; then
  # The AWS SDKs of tests/e2e_sdk.rs (cached; minutes on a fresh machine). If this fails, e2e_sdk fails and says why.
  t0=$SECONDS
  if tests/e2e/sdks.sh provide >"$LOG/sdks.log" 2>&1; then
    echo "=== AWS SDKs provided in $((SECONDS - t0)) s"
  else
    cat "$LOG/sdks.log" >&2
    echo "=== AWS SDKs could not be provided (after $((SECONDS - t0)) s)" >&2
  fi
  t0=$SECONDS
  if tests/e2e/cluster.sh provide >"$LOG/provide.log" 2>&1 && tests/e2e/cluster.sh start; then
    STARTED=1
    echo "=== API server provided and started in $((SECONDS - t0)) s"
    eval "$(tests/e2e/cluster.sh env)"
    step e2e cargo test --no-fail-fast --features e2e --test 'e2e_*' -- --test-threads=1
    step chart env KUBECONFIG="$KUBECONFIG" tests/chart/test.sh
  else
    cat "$LOG/provide.log" >&2
    echo "the kube-apiserver could not be provided or started; end-to-end tests cannot run" >&2
    steps_failed+=("e2e-provision"); failed=$((failed + 1))
    step chart env -u KUBECONFIG tests/chart/test.sh
  fi
else
  step chart env -u KUBECONFIG tests/chart/test.sh
fi

echo
if [ ${#steps_failed[@]} -gt 0 ]; then
  # Repeated at the end, where a reader of only the tail (CI's excerpt) sees it: each failed test and the first
  # lines of its panic.
  for out in "$LOG"/*.log; do
    grep -E '^test .* \.\.\. FAILED$' "$out" | sed "s|^|$(basename "$out" .log): |"
    grep -E -A3 "^thread '.*' .*panicked at " "$out" | grep -v -E '^(stack backtrace:|--|note: .*)$|^ +([0-9]+: |at )' | head -40
  done
  echo "failed steps: ${steps_failed[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
