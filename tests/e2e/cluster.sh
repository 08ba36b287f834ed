#!/usr/bin/env bash
# irsa-webhook end-to-end harness: a REAL kube-apiserver (v1.20.2) + etcd on loopback, no kubelet, no
# controller-manager, no scheduler. Enough to exercise admission webhooks, RBAC, ServiceAccounts and the
# TokenRequest API exactly as a cluster's API server does.
#
# usage: tests/e2e/cluster.sh provide|start|stop|restart-apiserver|env|status
#
#   provide            print the path of a usable kube-apiserver binary (last line of stdout; logs go to stderr),
#                      building it from Debian's `kubernetes` source package on first use (~4 min on 2 cores)
#   start              (re)start etcd + kube-apiserver on loopback, wait for /readyz, write <run>/kubeconfig
#   stop               stop both (by PID file) and wait until they have exited
#   restart-apiserver  stop only the kube-apiserver and start it again against the same etcd and PKI
#   env                print `export` lines: eval "$(tests/e2e/cluster.sh env)"
#   status             exit 0 iff /readyz answers
#
# Variables (all optional):
#   IRSA_E2E_APISERVER       explicit kube-apiserver binary (skips everything else in `provide`)
#   KUBEBUILDER_ASSETS       directory with kube-apiserver (and optionally etcd), as envtest lays it out
#   IRSA_E2E_ETCD            explicit etcd binary
#   IRSA_E2E_CACHE           cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook); binary in <cache>/bin
#   IRSA_E2E_RUN             run dir: PKI, logs, PID files, kubeconfig (default <cache>/run)
#   IRSA_E2E_API_PORT        kube-apiserver secure port (default 16443)
#   IRSA_E2E_ETCD_PORT       etcd client port (default 23790)
#   IRSA_E2E_ETCD_PEER_PORT  etcd peer port (default 23800)
#   IRSA_E2E_WEBHOOK_SANS    extra subjectAltName entries for webhook.crt, comma separated (e.g. DNS:foo.bar.svc,
#                            needed when a webhook is registered by `service:`)
#   IRSA_E2E_SERVICE_CIDR    --service-cluster-ip-range (default 127.0.100.0/24: loopback, see below)
#   IRSA_E2E_AGGREGATOR_ROUTING  --enable-aggregator-routing (default false, see below)
#   IRSA_E2E_KEEP_SRC=1      keep the Kubernetes source tree after a successful build (~410 MB)
#
# Gotchas are explained where they are handled; see also tests/e2e/README.md.
set -euo pipefail

K8S_VERSION=v1.20.2
# Debian bookworm ships Kubernetes 1.20.2 as "1.20.5+really1.20.2"; prefer the exact version the recipe was tried
# with, but fall back to whatever the archive serves if a later security upload replaced it.
K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1

CACHE=${IRSA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook}
BIN=$CACHE/bin
RUN=${IRSA_E2E_RUN:-$CACHE/run}
PKI=$RUN/pki
API_PORT=${IRSA_E2E_API_PORT:-16443}
ETCD_PORT=${IRSA_E2E_ETCD_PORT:-23790}
ETCD_PEER_PORT=${IRSA_E2E_ETCD_PEER_PORT:-23800}
API_URL=https://127.0.0.1:$API_PORT
# How webhooks registered with a `service:` reference are reached. There is no kube-proxy, so a ClusterIP is only
# reachable if it is a local address. Gotcha (found here, contradicting the recipe's untried note 11):
# --enable-aggregator-routing=true resolves a service through its Endpoints, but Endpoints validation rejects every
# loopback address ("may not be in the loopback range (127.0.0.0/8)"), and loopback is the only address tests may
# use. So by default the service CIDR IS a loopback range and routing goes to the ClusterIP (aggregator routing
# off): a webhook Service gets a ClusterIP such as 127.0.100.57, and the apiserver dials <clusterIP>:<service port>
# (the service port, not targetPort), verifying the serving cert for DNS name <service>.<namespace>.svc.
SERVICE_CIDR=${IRSA_E2E_SERVICE_CIDR:-127.0.100.0/24}
AGGREGATOR_ROUTING=${IRSA_E2E_AGGREGATOR_ROUTING:-false}

# What `start` chose is recorded, so that restart-apiserver, status and stop act on the cluster that is running,
# whatever the caller's variables say now.
load_config() {
  if [ -s "$RUN/config" ]; then
    # shellcheck source=/dev/null
    . "$RUN/config"
    API_URL=https://127.0.0.1:$API_PORT
  fi
}
save_config() {
  printf 'API_PORT=%q\nETCD_PORT=%q\nETCD_PEER_PORT=%q\nSERVICE_CIDR=%q\nAGGREGATOR_ROUTING=%q\n' \
    "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$SERVICE_CIDR" "$AGGREGATOR_ROUTING" >"$RUN/config"
}

log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# ---------------------------------------------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------------------------------------------
APT_UPDATED=
apt_update() { [ -n "$APT_UPDATED" ] || { log "apt-get update"; $SUDO apt-get update -qq >&2; APT_UPDATED=1; }; }

# Install only what is missing; `apt-get update` once, and only if we have to install something.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  apt_update
  # dpkg's progress goes to stdout (dropped: stdout is reserved for results); errors still reach stderr.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# `apt-get source` needs deb-src entries, which Debian's container images do not enable.
ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then return 0; fi
  log "enabling deb-src entries"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      $SUDO tee /etc/apt/sources.list.d/irsa-e2e-deb-src.sources >/dev/null
  elif [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | $SUDO tee /etc/apt/sources.list.d/irsa-e2e-deb-src.list >/dev/null
  else
    die "no apt sources found to derive deb-src entries from"
  fi
  APT_UPDATED=
  apt_update
}

# ---------------------------------------------------------------------------------------------------------------
# provide: find or build kube-apiserver
# ---------------------------------------------------------------------------------------------------------------
is_good_build() { [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "Kubernetes $K8S_VERSION" ]; }

# Print the apiserver path without building (empty if none to be had without a build).
find_apiserver() {
  if [ -n "${IRSA_E2E_APISERVER:-}" ]; then
    [ -x "$IRSA_E2E_APISERVER" ] || die "IRSA_E2E_APISERVER=$IRSA_E2E_APISERVER is not an executable file"
    echo "$IRSA_E2E_APISERVER"
  elif [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable kube-apiserver"
    echo "$KUBEBUILDER_ASSETS/kube-apiserver"
  elif is_good_build "$BIN/kube-apiserver"; then
    echo "$BIN/kube-apiserver"
  fi
}

provide() {
  local t0 path
  t0=$(now_ms)
  path=$(find_apiserver)
  if [ -z "$path" ]; then
    mkdir -p "$CACHE"
    # Two test runners may provide at once: serialise the build and re-check after taking the lock.
    exec 9>"$CACHE/.build.lock"
    flock 9
    if is_good_build "$BIN/kube-apiserver"; then path=$BIN/kube-apiserver; else build_apiserver; path=$BIN/kube-apiserver; fi
    flock -u 9
    log "provision (cold build): $(elapsed "$t0")"
  else
    log "provision (found): $(elapsed "$t0") -> $path ($("$path" --version 2>/dev/null || echo 'version unknown'))"
  fi
  echo "$path"
}

build_apiserver() {
  local t0 src home gopath gocache ldflags v
  t0=$(now_ms)
  log "building kube-apiserver $K8S_VERSION from Debian's kubernetes source package (takes minutes)"
  ensure_deb_src
  ensure_pkgs golang-go rsync dpkg-dev etcd-server openssl curl \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  home=$CACHE/build/home gopath=$CACHE/build/gopath gocache=$CACHE/build/gocache
  mkdir -p "$CACHE/build/src" "$home" "$BIN"

  src=$(find "$CACHE/build/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  if [ -z "$src" ] || [ ! -f "$src/cmd/kube-apiserver/apiserver.go" ]; then
    rm -rf "$CACHE/build/src" && mkdir -p "$CACHE/build/src"
    log "apt-get source kubernetes"
    (cd "$CACHE/build/src" &&
      { apt-get source -qq "kubernetes=$K8S_DEB_VERSION" >&2 ||
        { log "kubernetes=$K8S_DEB_VERSION not available, trying the archive's current version"; apt-get source -qq kubernetes >&2; }; })
    src=$(find "$CACHE/build/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
    [ -n "$src" ] || die "apt-get source kubernetes produced no source tree"
  fi
  log "source tree: $src ($(elapsed "$t0"))"

  # Gotcha 1: Go 1.19 is the only Go in bookworm. The vendored modern-go/reflect2 v1.0.1 (and json-iterator v1.1.10
  # built on it) segfaults under Go >= 1.18 on map iteration -- the first time the apiserver applies a webhook's
  # JSONPatch. Replace both with Debian's -dev package copies (reflect2 1.0.2, json-iterator 1.1.12), which are
  # API-compatible.
  for v in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    [ -d "/usr/share/gocode/src/$v" ] || die "missing /usr/share/gocode/src/$v (Debian -dev package)"
    rm -f "$src/vendor/$v"/*.go "$src/vendor/$v"/*.s
    find "/usr/share/gocode/src/$v" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
      -exec cp {} "$src/vendor/$v/" \;
  done

  # Gotcha 2: build in GOPATH mode (GO111MODULE=off) as upstream 1.20 does; `-mod=vendor` in module mode fails.
  # Offline (GOPROXY=off), static (CGO_ENABLED=0), and with Debian's Go first on PATH in case another Go is
  # installed: this source only builds with the Go it was packaged for.
  (
    export HOME=$home GOPATH=$gopath GOCACHE=$gocache GOPROXY=off GOFLAGS='' CGO_ENABLED=0 GO111MODULE=off
    export PATH=/usr/lib/go/bin:$PATH
    mkdir -p "$GOPATH/src/k8s.io"
    ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
    cd "$GOPATH/src/k8s.io/kubernetes"
    log "go: $(go version)"
    # Gotcha 3: the tarball lacks pkg/generated/openapi/zz_generated.openapi.go; `make gen_openapi` generates it
    # (it needs rsync).
    if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
      log "make gen_openapi"
      make gen_openapi >&2
    fi
    # Gotcha 4: without -X flags the binary reports v0.0.0, and clients/tests that look at the version get confused.
    ldflags="-s -w"
    for v in component-base/version client-go/pkg/version; do
      v=k8s.io/kubernetes/vendor/k8s.io/$v
      ldflags="$ldflags -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean"
    done
    log "go build ./cmd/kube-apiserver"
    go build -tags selinux,notest -trimpath -ldflags "$ldflags" -o "$BIN/kube-apiserver.new" ./cmd/kube-apiserver >&2
  )
  # Only a binary that runs and reports the right version replaces the cached one.
  is_good_build "$BIN/kube-apiserver.new" || die "built binary does not report Kubernetes $K8S_VERSION"
  mv -f "$BIN/kube-apiserver.new" "$BIN/kube-apiserver"
  log "built $BIN/kube-apiserver in $(elapsed "$t0")"

  # The Go build cache (~1.2 GB) and GOPATH's pkg dir are useless once the binary exists; the source tree (~410 MB)
  # too, unless asked to keep it. Go marks module cache files read-only, hence the chmod.
  t0=$(now_ms)
  chmod -R u+w "$gocache" "$gopath" 2>/dev/null || true
  rm -rf "$gocache" "$gopath" "$home"
  if [ "${IRSA_E2E_KEEP_SRC:-}" = 1 ]; then log "keeping source tree $src"; else rm -rf "$CACHE/build"; fi
  log "deleted build leftovers in $(elapsed "$t0")"
}

# etcd: explicit path, else KUBEBUILDER_ASSETS/etcd if present, else Debian's etcd-server (3.4).
find_etcd() {
  if [ -n "${IRSA_E2E_ETCD:-}" ]; then
    [ -x "$IRSA_E2E_ETCD" ] || die "IRSA_E2E_ETCD=$IRSA_E2E_ETCD is not an executable file"
    echo "$IRSA_E2E_ETCD"; return
  fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then echo "$KUBEBUILDER_ASSETS/etcd"; return; fi
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || ensure_pkgs etcd-server
  command -v etcd 2>/dev/null || echo /usr/bin/etcd
}

# ---------------------------------------------------------------------------------------------------------------
# PKI (openssl): CA, apiserver serving cert, webhook serving cert, service-account signing key pair, admin token
# ---------------------------------------------------------------------------------------------------------------
pki_ok() {
  local f
  for f in ca.crt ca.key apiserver.crt apiserver.key webhook.crt webhook.key sa.key sa.pub tokens.csv admin-token; do
    [ -s "$PKI/$f" ] || return 1
  done
  # Regenerate when the requested webhook SANs changed.
  [ "$(cat "$PKI/webhook.sans" 2>/dev/null)" = "${IRSA_E2E_WEBHOOK_SANS:-}" ] || return 1
  # Reuse across starts (restart-apiserver relies on the same keys) while the certs stay valid for another day.
  openssl x509 -checkend 86400 -noout -in "$PKI/apiserver.crt" >/dev/null &&
    openssl x509 -checkend 86400 -noout -in "$PKI/webhook.crt" >/dev/null
}

make_pki() {
  local n sans
  command -v openssl >/dev/null || ensure_pkgs openssl
  rm -rf "$PKI"; mkdir -p "$PKI"
  (
    cd "$PKI"; umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 -subj /CN=irsa-e2e-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    # Gotcha 7: Go ignores the CN, so clients dialing 127.0.0.1 need an IP SAN.
    for n in apiserver webhook; do
      sans=IP:127.0.0.1,DNS:localhost
      [ "$n" = webhook ] && [ -n "${IRSA_E2E_WEBHOOK_SANS:-}" ] && sans="$sans,$IRSA_E2E_WEBHOOK_SANS"
      openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
        "$sans" >$n.ext
      openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile $n.ext -out $n.crt 2>/dev/null
      rm -f $n.csr $n.ext
    done
    # Service-account token signing key pair (RSA 2048, PKCS#1 private key + PKIX public key).
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # Static token auth: one admin in system:masters (RBAC lets it do anything).
    openssl rand -hex 16 >admin-token
    echo "$(cat admin-token),irsa-e2e-admin,irsa-e2e-admin-uid,system:masters" >tokens.csv
    printf '%s' "${IRSA_E2E_WEBHOOK_SANS:-}" >webhook.sans
    chmod 644 ca.crt apiserver.crt webhook.crt sa.pub webhook.sans
  )
  log "PKI generated in $PKI"
}

# ---------------------------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------------------------
# Alive and still the process we started (guards against PID reuse after a reboot or a long pause).
pid_alive() {
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

stop_one() { # name cmdline-pattern
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if pid_alive "$1" "$2"; then
    kill "$pid" 2>/dev/null || true
    # Wait for exit (it is not our child, so `wait` cannot be used): up to 15 s, then SIGKILL.
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$1 (pid $pid) did not exit on SIGTERM, sending SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

# Launch detached: its own session (so a test runner's Ctrl-C or process-group kill doesn't take it down mid-test),
# stdin from /dev/null, output to a log. The process writes its own PID before exec'ing, so the PID file is right
# whether or not setsid had to fork.
launch() { # name log binary args...
  local name=$1 logf=$2; shift 2
  rm -f "$RUN/$name.pid"
  # shellcheck disable=SC2016 # expanded by the inner sh
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" </dev/null >"$logf" 2>&1 &
  for _ in $(seq 50); do [ -s "$RUN/$name.pid" ] && return 0; sleep 0.02; done
  die "$name did not start"
}

readyz() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$PKI/admin-token")" \
    "$API_URL/readyz" >/dev/null 2>&1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_etcd() {
  local etcd
  etcd=$(find_etcd)
  echo "$etcd" >"$RUN/etcd.path"
  # A fresh data dir each start: tests must not see objects from a previous run.
  rm -rf "$RUN/etcd-data"
  # --unsafe-no-fsync: throwaway data, and fsync is what makes etcd slow on a shared, busy disk.
  launch etcd "$RUN/etcd.log" "$etcd" --name irsa-e2e --data-dir "$RUN/etcd-data" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "irsa-e2e=http://127.0.0.1:$ETCD_PEER_PORT"
  for _ in $(seq 100); do
    curl -fs --max-time 1 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && return 0
    pid_alive etcd etcd || { tail -n 30 "$RUN/etcd.log" >&2; die "etcd exited"; }
    sleep 0.1
  done
  tail -n 30 "$RUN/etcd.log" >&2; die "etcd not healthy after 10 s"
}

start_apiserver() {
  local api minor gates=()
  api=$(cat "$RUN/apiserver.path")
  minor=$("$api" --version 2>/dev/null | sed -n 's/^Kubernetes v1\.\([0-9]*\).*/\1/p')
  # Gotcha 5: without a controller-manager no legacy token Secret is ever created, and the ServiceAccount admission
  # plugin then rejects every pod. With BoundServiceAccountTokenVolume pods get a projected kube-api-access-*
  # volume instead (as on 1.21+). The gate is GA and locked from 1.22 and later removed, where passing it is an
  # error, so only pass it to older binaries (e.g. a newer one from KUBEBUILDER_ASSETS).
  if [ -n "$minor" ] && [ "$minor" -lt 22 ]; then gates=(--feature-gates=BoundServiceAccountTokenVolume=true); fi
  # Service CIDR and aggregator routing: see SERVICE_CIDR at the top.
  launch apiserver "$RUN/apiserver.log" "$api" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc --api-audiences=https://kubernetes.default.svc \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" "${gates[@]}" \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --enable-aggregator-routing="$AGGREGATOR_ROUTING"
}

wait_ready() { # t0
  for _ in $(seq 600); do # 60 s
    if readyz; then log "apiserver ready in $(elapsed "$1") ($API_URL)"; return 0; fi
    if ! pid_alive apiserver kube-apiserver; then
      log "kube-apiserver exited; tail of $RUN/apiserver.log:"; tail -n 40 "$RUN/apiserver.log" >&2; return 1
    fi
    sleep 0.1
  done
  log "kube-apiserver not ready after 60 s; tail of $RUN/apiserver.log:"; tail -n 40 "$RUN/apiserver.log" >&2
  return 1
}

write_kubeconfig_and_env() {
  cat >"$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: irsa-e2e
  cluster:
    server: "$API_URL"
    certificate-authority: "$PKI/ca.crt"
users:
- name: irsa-e2e-admin
  user:
    token: "$(cat "$PKI/admin-token")"
contexts:
- name: irsa-e2e
  context: {cluster: irsa-e2e, user: irsa-e2e-admin}
current-context: irsa-e2e
EOF
  chmod 600 "$RUN/kubeconfig"
  # Recorded at start so `env` reports what is actually running, whatever the caller's variables are.
  {
    printf 'export KUBECONFIG=%q\n' "$RUN/kubeconfig"
    printf 'export IRSA_E2E_RUN=%q\n' "$RUN"
    printf 'export IRSA_E2E_PKI=%q\n' "$PKI"
    printf 'export IRSA_E2E_API_URL=%q\n' "$API_URL"
    printf 'export IRSA_E2E_ADMIN_TOKEN=%q\n' "$(cat "$PKI/admin-token")"
    printf 'export IRSA_E2E_APISERVER=%q\n' "$(cat "$RUN/apiserver.path")"
    printf 'export IRSA_E2E_API_PORT=%q\n' "$API_PORT"
    printf 'export IRSA_E2E_ETCD_PORT=%q\n' "$ETCD_PORT"
    printf 'export IRSA_E2E_SERVICE_CIDR=%q\n' "$SERVICE_CIDR"
  } >"$RUN/env.sh"
}

# ---------------------------------------------------------------------------------------------------------------
# verbs
# ---------------------------------------------------------------------------------------------------------------
cmd_provide() { provide; }

cmd_start() {
  local api t0
  mkdir -p "$RUN"
  # Idempotent: a previous start from this run dir is stopped first (on the ports it was started with).
  if pid_alive apiserver kube-apiserver || pid_alive etcd etcd; then log "already running: stopping first"; fi
  cmd_stop
  rm -f "$RUN/config" "$RUN/env.sh"
  api=$(provide | tail -n1)
  for p in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do
    port_busy "$p" && die "127.0.0.1:$p is in use by another process (set IRSA_E2E_*_PORT to move)"
  done
  pki_ok || make_pki
  echo "$api" >"$RUN/apiserver.path"
  save_config
  t0=$(now_ms)
  start_etcd
  log "etcd healthy in $(elapsed "$t0") (127.0.0.1:$ETCD_PORT)"
  start_apiserver
  write_kubeconfig_and_env
  # On failure leave nothing running behind (the logs stay in the run dir).
  wait_ready "$t0" || { cmd_stop; rm -f "$RUN/env.sh"; exit 1; }
  log "start-to-ready: $(elapsed "$t0"); kubeconfig: $RUN/kubeconfig"
}

cmd_restart_apiserver() {
  local t0
  pid_alive etcd etcd || die "etcd is not running (run: $0 start)"
  [ -s "$RUN/apiserver.path" ] || die "no recorded apiserver (run: $0 start)"
  t0=$(now_ms)
  stop_one apiserver kube-apiserver
  start_apiserver
  wait_ready "$t0" || { stop_one apiserver kube-apiserver; exit 1; }
  log "apiserver restart (stop + start to ready): $(elapsed "$t0")"
}

cmd_stop() {
  stop_one apiserver kube-apiserver
  stop_one etcd etcd
  rm -rf "$RUN/etcd-data" # thrown away: every start begins with a fresh one
}

cmd_env() {
  [ -s "$RUN/env.sh" ] || die "no cluster started from $RUN (run: $0 start)"
  cat "$RUN/env.sh"
}

cmd_status() {
  if [ -s "$PKI/admin-token" ] && readyz; then log "ready ($API_URL)"; return 0; fi
  log "not ready ($API_URL)"; return 1
}

case "${1:-}" in
  provide) cmd_provide ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart-apiserver) load_config; cmd_restart_apiserver ;;
  env) cmd_env ;;
  status) load_config; cmd_status ;;
  *) echo "usage: $0 provide|start|stop|restart-apiserver|env|status" >&2; exit 2 ;;
esac
