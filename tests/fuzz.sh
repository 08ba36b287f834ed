#!/usr/bin/env bash
# Short fuzz runs: provisions cargo-fuzz, builds the three targets of fuzz/ (review, mutate, manifest), seeds them
# from the fixtures and runs each for FUZZ_SECONDS (default 60). Fails if any target finds a crash (a panic, a
# broken invariant, more than the memory limit, or an input slower than the timeout); the input that did it is
# left in fuzz/artifacts/<target>/ and its path printed. The long runs and their figures: docs/reliability.md.
#
# usage: tests/fuzz.sh [TARGET...]       (default: all three)
#
# Variables (optional):
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_ARGS      extra libFuzzer flags, e.g. "-runs=1000000" or "-jobs=1"
#   FUZZ_TARGET_DIR  where the instrumented build goes (default ~/.cache/irsa-webhook/fuzz-target, outside the
#                  repository like the API server's binaries, so a fresh clone does not rebuild the dependencies)
#
# The targets are built without a sanitizer (`-s none`): the crate has no `unsafe`, and AddressSanitizer doubles
# the cold build (every dependency is built again with it) and halves the executions per second; debug
# assertions and overflow checks stay on. Needs the nightly toolchain (installed on the project's machines) and
# PyYAML for the seed script (installed from Debian's packages when missing).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(review mutate manifest)
# Memory: the fuzzing process itself takes about 100 MiB; a reader that expands an input past this is a bug.
# Time: every input here is at most 64 KiB; one that takes seconds is a quadratic (or worse) path.
LIMITS=(-rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 -max_len=65536)

log() { printf '[fuzz.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

rustup toolchain list | grep -q '^nightly' || { log "the nightly toolchain is not installed (rustup toolchain install nightly)"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  log "installing python3-yaml for the seed script"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml; } >&2
fi

TARGET_DIR=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook/fuzz-target}
mkdir -p "$TARGET_DIR"
t0=$SECONDS
log "building ${TARGETS[*]} (-s none)"
for target in "${TARGETS[@]}"; do
  cargo +nightly fuzz build -s none --target-dir "$TARGET_DIR" "$target" || { log "building $target failed"; echo "0 passed, 1 failed"; exit 1; }
done
log "built in $((SECONDS - t0)) s"
python3 fuzz/seed.py >&2 || { log "seeding failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0
for target in "${TARGETS[@]}"; do
  dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="fuzz/dict/$target.dict")
  mkdir -p "fuzz/corpus/$target"
  log "$target: ${SECONDS_PER_TARGET} s"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  if cargo +nightly fuzz run -s none --target-dir "$TARGET_DIR" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
      "${LIMITS[@]}" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 ${FUZZ_ARGS:-}; then
    echo "ok - fuzz $target"
    passed=$((passed + 1))
  else
    echo "not ok - fuzz $target (the input is in fuzz/artifacts/$target/)"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
