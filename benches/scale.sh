#!/usr/bin/env bash
# The ServiceAccount store at scale against a real API server: 100,000 ServiceAccounts (a third with a role) in the
# kube-apiserver + etcd of tests/e2e/cluster.sh, then the webhook's start-to-ready time against one unpaged LIST,
# its RSS per cached ServiceAccount, /mutate latency with the full cache, and how long annotation changes take to
# reach /mutate. The measuring is benches/scale.rs; this script provisions and runs it.
#
# usage: benches/scale.sh [COUNT] [CHANGES]      (defaults: 100000 10000)
#
# Uses the API server the IRSA_E2E_* variables point at (tests/e2e/cluster.sh's defaults otherwise), starting it if
# it is not running; the ServiceAccounts stay in it, so a second run skips the ~minutes of creating them. The
# webhook is built with the release profile (cargo bench); IRSA_SCALE_BINARY=PATH measures another build instead (the
# image's static one: tests/chart/build-static.sh). Prints Markdown tables for docs/benchmarks.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export IRSA_SCALE_COUNT=${1:-100000} IRSA_SCALE_CHANGES=${2:-10000}

tests/e2e/cluster.sh status >/dev/null 2>&1 || tests/e2e/cluster.sh start
eval "$(tests/e2e/cluster.sh env)"
cargo bench --bench scale
