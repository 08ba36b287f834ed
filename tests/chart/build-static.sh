#!/usr/bin/env bash
# Build the static irsa-webhook binary the way the Dockerfile does, without Docker, and check that it is static.
#
# usage: tests/chart/build-static.sh [--check-only | --check-dockerfile]
#
#   --check-only        only check (and install) the toolchain, and the Dockerfile agreement; build nothing
#   --check-dockerfile  only check that the Dockerfile runs the same cargo command; install and build nothing
#
# Installs what is missing (needs root for apt and a reachable rustup dist server for the musl target):
#   - the rust-std component for x86_64-unknown-linux-musl (`rustup target add`)
#   - Debian's musl-tools, whose musl-gcc compiles ring's C and assembly for musl
# Then runs it: `--version`, and one example review served over TLS on 127.0.0.1 (SMOKE_PORT, default 29844, and
# SMOKE_PORT + 100), which must be answered with a patch.
# Prints the binary's path, size and `file` description. CARGO_TARGET_DIR is honoured (default: ./target).
set -euo pipefail

TARGET=x86_64-unknown-linux-musl
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The one cargo command line, kept word for word equal to the Dockerfile's (test.sh compares them).
CARGO_ARGS=(build --release --locked --target "$TARGET" --bin irsa-webhook)
export CARGO_PROFILE_RELEASE_STRIP=symbols

log() { printf '[build-static %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

check_only=0 dockerfile_only=0
case "${1:-}" in
  --check-only) check_only=1 ;;
  --check-dockerfile) dockerfile_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--check-only | --check-dockerfile]" >&2; exit 2 ;;
esac

# The Dockerfile must run the same command: compare the cargo invocations word for word.
# shellcheck disable=SC2016 # the Dockerfile's literal "${TARGET}" is what we replace
docker_cmd=$(grep -oE 'cargo build [^\\&]*' "$ROOT/Dockerfile" | sed 's/"\${TARGET}"/'"$TARGET"'/; s/[[:space:]]*$//')
ours="cargo ${CARGO_ARGS[*]}"
[ "$docker_cmd" = "$ours" ] || die "Dockerfile runs '$docker_cmd' but this script runs '$ours'"
grep -q "^ENV CARGO_PROFILE_RELEASE_STRIP=$CARGO_PROFILE_RELEASE_STRIP\$" "$ROOT/Dockerfile" \
  || die "Dockerfile does not set CARGO_PROFILE_RELEASE_STRIP=$CARGO_PROFILE_RELEASE_STRIP"
grep -q "^ARG TARGET=$TARGET\$" "$ROOT/Dockerfile" || die "Dockerfile does not build for $TARGET"
if [ "$dockerfile_only" -eq 1 ]; then log "Dockerfile runs the same build: $ours"; exit 0; fi

if ! rustup target list --installed | grep -qx "$TARGET"; then
  log "rustup target add $TARGET"
  rustup target add "$TARGET" >&2 || die "cannot install the $TARGET target"
fi
if ! command -v musl-gcc >/dev/null && ! command -v x86_64-linux-musl-gcc >/dev/null; then
  log "installing Debian's musl-tools (musl-gcc, for ring)"
  { apt-get install -y -qq --no-install-recommends musl-tools >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools >/dev/null; }; } \
    || die "cannot install musl-tools"
fi
log "toolchain ok: $(rustc --version), target $TARGET, $(command -v musl-gcc || command -v x86_64-linux-musl-gcc)"
[ "$check_only" -eq 1 ] && exit 0

cd "$ROOT"
t0=$(date +%s)
log "cargo ${CARGO_ARGS[*]} (CARGO_PROFILE_RELEASE_STRIP=$CARGO_PROFILE_RELEASE_STRIP)"
cargo "${CARGO_ARGS[@]}" >&2
bin=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/irsa-webhook
[ -x "$bin" ] || die "no binary at $bin"

# Static: no program interpreter and no shared-library dependencies.
if readelf -lW "$bin" | grep -q 'INTERP'; then die "$bin asks for a dynamic loader"; fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then die "$bin needs shared libraries: $(readelf -dW "$bin" | grep NEEDED)"; fi
# No OpenSSL linked in by any dependency.
if strings "$bin" | grep -qiE 'OpenSSL [0-9]+\.[0-9]+'; then die "$bin contains OpenSSL"; fi
"$bin" --version >&2 || die "$bin does not run"
# It serves: one review over TLS through the image's own allocator and runtime (src/main.rs), answered with a patch.
smoke=$(mktemp -d)
port=${SMOKE_PORT:-29844}
"$bin" serve --self-signed --ca-bundle-out "$smoke/ca.crt" --service-accounts "$ROOT/examples/serviceaccounts.yaml" \
  --port "$port" --metrics-port $((port + 100)) --bind-address 127.0.0.1 --shutdown-delay 0s 2>"$smoke/log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((port + 100))/readyz" >/dev/null && break; sleep 0.1; done
answer=$(curl -s --cacert "$smoke/ca.crt" -H 'Content-Type: application/json' \
  --data-binary @"$ROOT/examples/admission-review.json" "https://localhost:$port/mutate" || true)
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
server_log=$(tail -3 "$smoke/log")
rm -rf "$smoke"
grep -q '"patch"' <<<"$answer" || die "$bin did not answer the example review with a patch: ${answer:0:200} $server_log"
log "the static binary answered the example review with a patch"

size=$(stat -c %s "$bin")
log "built in $(($(date +%s) - t0)) s: $bin, $size bytes ($((size / 1024 / 1024)) MiB)"
command -v file >/dev/null && file "$bin" >&2
echo "$bin"
