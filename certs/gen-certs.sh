#!/usr/bin/env bash
# Make a private CA and a serving certificate for the irsa-webhook Service, with openssl.
#
# usage: certs/gen-certs.sh --service NAME --namespace NS --out DIR [--days N] [--ip ADDR]... [--force|--reuse-ca]
#
#   --service NAME    the webhook's Service name (the chart's full name, e.g. irsa-webhook)
#   --namespace NS    the namespace it runs in
#   --out DIR         where to write ca.crt, ca.key, tls.crt, tls.key (created if missing)
#   --days N          lifetime of the serving certificate in days (default 365); the CA lives 10 times as long
#   --ip ADDR         also put this IP address in the SANs (repeatable), e.g. 127.0.0.1 for a webhook
#                     reached by url: in tests
#   --force           overwrite files already in DIR (otherwise the script refuses)
#   --reuse-ca        keep DIR/ca.crt and DIR/ca.key and only make a new serving certificate (renewal: the
#                     caBundle stays the same)
#
# The serving certificate carries the DNS names NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.cluster.local (the
# API server uses NAME.NS.svc), extendedKeyUsage serverAuth, and is signed by the CA. The last line printed on
# stdout is the base64 of ca.crt: the webhook configuration's caBundle. Progress goes to stderr.
#
# Keys are ECDSA P-256. Needs openssl >= 1.1.1.
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit "${1:-2}"; }
die() { echo "gen-certs.sh: $*" >&2; exit 2; }

service="" namespace="" out="" days=365 force=0 reuse_ca=0
ips=()
while [ $# -gt 0 ]; do
  case "$1" in
    --service) service=${2:-}; shift 2 ;;
    --service=*) service=${1#*=}; shift ;;
    --namespace) namespace=${2:-}; shift 2 ;;
    --namespace=*) namespace=${1#*=}; shift ;;
    --out) out=${2:-}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --days) days=${2:-}; shift 2 ;;
    --days=*) days=${1#*=}; shift ;;
    --ip) ips+=("${2:-}"); shift 2 ;;
    --ip=*) ips+=("${1#*=}"); shift ;;
    --force) force=1; shift ;;
    --reuse-ca) reuse_ca=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "gen-certs.sh: unknown argument: $1" >&2; usage ;;
  esac
done

# DNS-1035 label for the Service, DNS-1123 label for the namespace: anything else could not be a SAN of theirs.
[[ $service =~ ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "--service must be a Service name (DNS-1035 label), got '$service'"
[[ $namespace =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "--namespace must be a namespace name, got '$namespace'"
[ -n "$out" ] || die "--out DIR is required"
[[ $days =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive integer, got '$days'"
for ip in ${ips[@]+"${ips[@]}"}; do
  [[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $ip =~ ^[0-9a-fA-F:]+$ ]] || die "--ip must be an IPv4 or IPv6 address, got '$ip'"
done
command -v openssl >/dev/null || die "openssl is required"

mkdir -p "$out"
if [ "$reuse_ca" -eq 1 ]; then
  if [ ! -s "$out/ca.crt" ] || [ ! -s "$out/ca.key" ]; then die "--reuse-ca needs $out/ca.crt and $out/ca.key"; fi
elif [ "$force" -eq 0 ]; then
  for f in ca.crt ca.key tls.crt tls.key; do
    [ -e "$out/$f" ] && die "$out/$f exists; pass --force to overwrite or --reuse-ca to renew the serving certificate"
  done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

sans="DNS:$service,DNS:$service.$namespace,DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local"
for ip in ${ips[@]+"${ips[@]}"}; do sans="$sans,IP:$ip"; done

cat >"$work/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = $service.$namespace irsa-webhook CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

cat >"$work/tls.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $service.$namespace.svc
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF

if [ "$reuse_ca" -eq 1 ]; then
  echo "gen-certs.sh: reusing the CA in $out" >&2
  cp "$out/ca.crt" "$out/ca.key" "$work/"
  openssl x509 -in "$work/ca.crt" -noout -checkend 0 >/dev/null || die "the CA in $out has expired"
else
  echo "gen-certs.sh: CA (valid $((days * 10)) days)" >&2
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key.ec" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$work/ca.key.ec" -out "$work/ca.key"
  openssl req -x509 -new -sha256 -key "$work/ca.key" -days $((days * 10)) -config "$work/ca.cnf" -out "$work/ca.crt"
fi

echo "gen-certs.sh: serving certificate for $service.$namespace.svc (valid $days days; SANs $sans)" >&2
openssl ecparam -name prime256v1 -genkey -noout -out "$work/tls.key.ec" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/tls.key.ec" -out "$work/tls.key"
openssl req -new -sha256 -key "$work/tls.key" -config "$work/tls.cnf" -out "$work/tls.csr"
openssl x509 -req -sha256 -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -days "$days" -extfile "$work/tls.cnf" -extensions v3_server -out "$work/tls.crt" 2>/dev/null

openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null || die "the new certificate does not verify against the new CA"

# Certificates are public; keys stay readable by the owner only.
install -m 0644 "$work/ca.crt" "$out/ca.crt"
install -m 0600 "$work/ca.key" "$out/ca.key"
install -m 0644 "$work/tls.crt" "$out/tls.crt"
install -m 0600 "$work/tls.key" "$out/tls.key"
echo "gen-certs.sh: wrote $out/{ca.crt,ca.key,tls.crt,tls.key}; caBundle (base64 of ca.crt) follows" >&2

base64 -w0 <"$out/ca.crt"
echo
