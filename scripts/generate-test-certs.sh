#!/usr/bin/env bash
# Writes a development PKI with the openssl command-line tool: a CA, a server
# certificate for localhost and 127.0.0.1, and node-1..3 certificates valid for both
# serverAuth and clientAuth (cluster mTLS needs both; see case C8).
#
#   scripts/generate-test-certs.sh [--force] [OUT_DIR]     (default: certs)
#
# `topgun-server certs --out DIR` makes the same set without the CLI. Never use these
# certificates in production, and never commit the keys.
set -euo pipefail

force=false
if [ "${1:-}" = "--force" ]; then
  force=true
  shift
fi
out=${1:-certs}
days=${DAYS:-365}
if [ -e "$out/ca.key" ] && [ "$force" = false ]; then
  echo "generate-test-certs.sh: $out/ca.key already exists; pass --force to overwrite it" >&2
  exit 1
fi
mkdir -p "$out"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# issue NAME CN SAN EKU
issue() {
  local name=$1 cn=$2 san=$3 eku=$4
  new_key "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "/O=TopGun Development/CN=$cn" \
    -out "$work/$name.csr"
  cat >"$work/$name.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  openssl x509 -req -in "$work/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile "$work/$name.ext" -out "$out/$name.crt" 2>/dev/null
  chmod 644 "$out/$name.crt"
}

new_key "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 \
  -subj "/O=TopGun Development/CN=TopGun Development CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$out/ca.crt"
chmod 644 "$out/ca.crt"

issue server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
for i in 1 2 3; do
  issue "node-$i" "node-$i" "DNS:node-$i,DNS:localhost,IP:127.0.0.1,IP:::1" "serverAuth,clientAuth"
done

echo "development certificates written to $out/ (never use them in production)"
