#!/usr/bin/env bash
# Provide the AWS SDKs that tests/e2e_sdk.rs runs against the webhook's pods, cached outside the repository.
#
# usage: tests/e2e/sdks.sh provide    install what is missing, then print KEY=PATH lines (stdout) for the test
#        tests/e2e/sdks.sh versions   print the pinned versions
#
# What it installs, each in a directory named after its pinned versions (a version bump installs anew and removes
# the old directory; a directory without its .complete stamp is an interrupted install and is redone):
#   python-…      a venv with boto3, the AWS CLI v1 and moto[server] (the STS stand-in)
#   python-old-…  a venv with a boto3/botocore older than the minimum `irsa-webhook doctor` names (src/doctor.rs
#                 MINIMUM_SDK_VERSIONS): botocore 1.12.199 is the last release without AssumeRoleWithWebIdentity
#   python-min-…  a venv with botocore exactly at that minimum (1.12.200) and the first boto3 that requires it
#   node-…        an npm prefix with @aws-sdk/client-sts and @aws-sdk/credential-providers
#   rust-…        tests/sdk/rust built with cargo (target dir rust-target/); keyed by its Cargo.toml, Cargo.lock and
#                 source, so any change there rebuilds it
#
# Versions are pinned here, in one place; the Rust client's are pinned in tests/sdk/rust/Cargo.toml (exact `=`
# requirements, because cargo reads them there) and its Cargo.lock. Only package registries are used (PyPI, npm,
# crates.io).
#
# Variables (optional):
#   IRSA_E2E_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook); SDKs in <root>/sdks
#   IRSA_E2E_PYTHON  the Python that creates the venvs (default python3; needs the venv module)
set -euo pipefail

# --- the pins ----------------------------------------------------------------------------------------------------
BOTO3=1.44.8
BOTOCORE=1.44.8
AWSCLI=1.46.3 # ships its own copy of botocore (awscli/botocore, 1.43.62): $BOTOCORE is boto3's
MOTO=5.2.5
OLD_BOTO3=1.9.199
OLD_BOTOCORE=1.12.199
MIN_BOTO3=1.9.200 # requires botocore >= 1.12.200
MIN_BOTOCORE=1.12.200
JS_CLIENT_STS=3.1177.0
JS_CREDENTIAL_PROVIDERS=3.1175.0
# -----------------------------------------------------------------------------------------------------------------

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUST_SRC=$ROOT/tests/sdk/rust
SDKS=${IRSA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook}/sdks
PYTHON=${IRSA_E2E_PYTHON:-python3}

PY_DIR=$SDKS/python-boto3-$BOTO3-awscli-$AWSCLI-moto-$MOTO
OLD_DIR=$SDKS/python-old-boto3-$OLD_BOTO3-botocore-$OLD_BOTOCORE
MIN_DIR=$SDKS/python-min-boto3-$MIN_BOTO3-botocore-$MIN_BOTOCORE
NODE_DIR=$SDKS/node-client-sts-$JS_CLIENT_STS-credential-providers-$JS_CREDENTIAL_PROVIDERS

log() { printf '[sdks.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

rust_key() {
  (cd "$RUST_SRC" && cat Cargo.toml Cargo.lock src/*.rs) | sha256sum | cut -c1-16
}

rust_version() { # NAME: its version in the Rust client's Cargo.lock
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$RUST_SRC/Cargo.lock"
}

versions() {
  echo "boto3 $BOTO3, botocore $BOTOCORE, awscli $AWSCLI, moto $MOTO"
  echo "old: boto3 $OLD_BOTO3, botocore $OLD_BOTOCORE"
  echo "minimum: boto3 $MIN_BOTO3, botocore $MIN_BOTOCORE"
  echo "js: @aws-sdk/client-sts $JS_CLIENT_STS, @aws-sdk/credential-providers $JS_CREDENTIAL_PROVIDERS"
  echo "rust: aws-config $(rust_version aws-config), aws-sdk-sts $(rust_version aws-sdk-sts)"
}

# installed DIR: DIR holds a finished install.
installed() { [ -f "$1/.complete" ]; }

# fresh DIR: an empty DIR, and no other install of the same kind (python-boto3, python-old-boto3, python-min-boto3,
# node-client-sts) beside it: those are older versions.
fresh() {
  local dir=$1 kind
  kind=$(basename "$dir" | sed -E 's/-[0-9].*//')
  rm -rf "$dir"
  for old in "$SDKS/$kind"-*; do
    [ -e "$old" ] && [ "$old" != "$dir" ] && log "removing the older $old" && rm -rf "$old"
  done
  mkdir -p "$dir"
}

venv() { # DIR PACKAGE...
  local dir=$1
  shift
  fresh "$dir"
  "$PYTHON" -m venv "$dir" || die "$PYTHON -m venv failed (on Debian: apt-get install python3-venv)"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input "$@" >&2 || die "pip install $* failed"
}

provide_python() {
  installed "$PY_DIR" && return
  local t0=$SECONDS
  log "installing boto3 $BOTO3, awscli $AWSCLI, moto[server] $MOTO into $PY_DIR"
  venv "$PY_DIR" "boto3==$BOTO3" "botocore==$BOTOCORE" "awscli==$AWSCLI" "moto[server]==$MOTO"
  touch "$PY_DIR/.complete"
  log "python SDKs installed in $((SECONDS - t0)) s"
}

provide_python_old() {
  installed "$OLD_DIR" && return
  local t0=$SECONDS
  log "installing boto3 $OLD_BOTO3, botocore $OLD_BOTOCORE into $OLD_DIR"
  venv "$OLD_DIR" "boto3==$OLD_BOTO3" "botocore==$OLD_BOTOCORE"
  touch "$OLD_DIR/.complete"
  log "old python SDK installed in $((SECONDS - t0)) s"
}

provide_python_min() {
  installed "$MIN_DIR" && return
  local t0=$SECONDS
  log "installing boto3 $MIN_BOTO3, botocore $MIN_BOTOCORE into $MIN_DIR"
  venv "$MIN_DIR" "boto3==$MIN_BOTO3" "botocore==$MIN_BOTOCORE"
  touch "$MIN_DIR/.complete"
  log "minimum python SDK installed in $((SECONDS - t0)) s"
}

provide_node() {
  installed "$NODE_DIR" && return
  local t0=$SECONDS
  command -v npm >/dev/null || die "npm (Node.js) is required for the AWS SDK for JavaScript v3"
  log "installing @aws-sdk/client-sts $JS_CLIENT_STS, @aws-sdk/credential-providers $JS_CREDENTIAL_PROVIDERS into $NODE_DIR"
  fresh "$NODE_DIR"
  # --ignore-scripts: nothing of the packages runs at install time; --save-exact keeps the pins in its package.json.
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --ignore-scripts --save-exact --loglevel=error \
    "@aws-sdk/client-sts@$JS_CLIENT_STS" "@aws-sdk/credential-providers@$JS_CREDENTIAL_PROVIDERS" >&2 \
    || die "npm install failed"
  touch "$NODE_DIR/.complete"
  log "JavaScript SDK installed in $((SECONDS - t0)) s"
}

provide_rust() {
  local dir
  dir=$SDKS/rust-$(rust_key)
  RUST_CLIENT=$dir/irsa-sdk-client
  installed "$dir" && return
  local t0=$SECONDS
  log "building tests/sdk/rust (aws-config $(rust_version aws-config), aws-sdk-sts $(rust_version aws-sdk-sts)) into $dir"
  # fresh() would remove rust-target too: keep the target dir (incremental rebuilds after a bump).
  for old in "$SDKS"/rust-*; do
    case $old in "$SDKS/rust-target" | "$dir") ;; *) [ -e "$old" ] && rm -rf "$old" ;; esac
  done
  rm -rf "$dir" && mkdir -p "$dir"
  CARGO_TARGET_DIR=$SDKS/rust-target cargo build --locked --quiet --manifest-path "$RUST_SRC/Cargo.toml" >&2 \
    || die "cargo build of tests/sdk/rust failed"
  cp "$SDKS/rust-target/debug/irsa-sdk-client" "$RUST_CLIENT"
  touch "$dir/.complete"
  log "Rust SDK client built in $((SECONDS - t0)) s"
}

case "${1:-}" in
  versions) versions ;;
  provide)
    mkdir -p "$SDKS"
    # Parallel callers: one installs, the others wait and then find the cache.
    exec 9>"$SDKS/.provide.lock"
    flock 9
    t0=$SECONDS
    provide_python
    provide_python_old
    provide_python_min
    provide_node
    provide_rust
    log "SDKs ready in $((SECONDS - t0)) s: $(versions | paste -sd';' - | sed 's/;/; /g')"
    echo "python=$PY_DIR/bin/python"
    echo "aws=$PY_DIR/bin/aws"
    echo "moto_server=$PY_DIR/bin/moto_server"
    echo "python_old=$OLD_DIR/bin/python"
    echo "python_min=$MIN_DIR/bin/python"
    echo "node=$(command -v node)"
    echo "node_modules=$NODE_DIR/node_modules"
    echo "rust_client=$RUST_CLIENT"
    ;;
  *)
    echo "usage: $0 provide|versions" >&2
    exit 2
    ;;
esac
