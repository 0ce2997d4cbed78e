#!/usr/bin/env bash
# Builds OpenSSL's FIPS provider (fips.so) from the source carried by the openssl-src
# crate, runs `openssl fipsinstall` with the system OpenSSL, and writes an openssl.cnf
# that activates the fips and base providers with fips=yes as the default property
# query. The node itself keeps linking the system libssl 3.0.x; only the provider comes
# from here.
#
#   fips/build.sh [DIR]        DIR defaults to $TOPGUN_FIPS_DIR, then /var/tmp/topgun-fips
#
# DIR afterwards holds:
#   ossl-modules/fips.so   the provider      -> OPENSSL_MODULES=DIR/ossl-modules
#   fipsmodule.cnf         fipsinstall output (integrity MAC, self-test status)
#   openssl.cnf            the configuration -> OPENSSL_CONF=DIR/openssl.cnf
#   env                    the two lines above, for `. DIR/env`
#
# A DIR already built from the same source is reused (only fipsinstall and the
# configuration are redone), so CI can keep it outside the clone.
#
#   --module-only   build and install fips.so only; for docker/Dockerfile.fips, where
#                   fipsinstall runs at container start (docker/fips-entrypoint.sh)
set -euo pipefail

# OpenSSL 3.1.2: the FIPS provider version validated under FIPS 140-3 (CMVP #4985).
crate_version='300.1.4+3.1.2'
openssl_version='3.1.2'
# SHA-256 of the .crate file, as published in the crates.io index ("cksum").
crate_sha256='80b6658b21fe1eba923af26cfe9c57a1a075a8190df2cd869a9bcd730093ffa2'
crate_url="https://static.crates.io/crates/openssl-src/openssl-src-${crate_version}.crate"

module_only=false
if [ "${1:-}" = --module-only ]; then
  module_only=true
  shift
fi
dir=${1:-${TOPGUN_FIPS_DIR:-/var/tmp/topgun-fips}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stamp="$dir/.built-from"

if [ "$(cat "$stamp" 2>/dev/null)" != "$crate_sha256" ] || ! [ -f "$dir/ossl-modules/fips.so" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT

  echo "fips/build.sh: fetching openssl-src $crate_version" >&2
  curl -fsSL --retry 3 -o "$work/openssl-src.crate" "$crate_url"
  echo "$crate_sha256  $work/openssl-src.crate" | sha256sum --check --quiet - || {
    echo "fips/build.sh: checksum mismatch for openssl-src $crate_version; refusing to build" >&2
    exit 1
  }
  tar -xzf "$work/openssl-src.crate" -C "$work"
  src="$work/openssl-src-${crate_version}/openssl"
  grep -q "^MAJOR=3\$" "$src/VERSION.dat" && grep -q "^MINOR=1\$" "$src/VERSION.dat" &&
    grep -q "^PATCH=2\$" "$src/VERSION.dat" || {
    echo "fips/build.sh: $src/VERSION.dat is not OpenSSL $openssl_version" >&2
    exit 1
  }

  echo "fips/build.sh: building OpenSSL $openssl_version with enable-fips" >&2
  start=$(date +%s)
  (
    cd "$src"
    ./Configure enable-fips --prefix="$work/install" --libdir=lib \
      --openssldir="$work/install/ssl" >"$work/configure.log"
    make -s -j"$(nproc)" build_sw >"$work/build.log" 2>&1 || {
      tail -n 40 "$work/build.log" >&2
      exit 1
    }
    make -s install_fips >"$work/install.log" 2>&1 || {
      tail -n 40 "$work/install.log" >&2
      exit 1
    }
  )
  echo "fips/build.sh: built in $(($(date +%s) - start)) s" >&2

  mkdir -p "$dir/ossl-modules"
  install -m 0755 "$work/install/lib/ossl-modules/fips.so" "$dir/ossl-modules/fips.so"
  echo "$crate_sha256" >"$stamp"
fi

echo "fips/build.sh: provider in $dir/ossl-modules (OpenSSL $openssl_version)" >&2
if [ "$module_only" = true ]; then
  exit 0
fi

# fipsinstall checks the module's integrity and runs its self-tests, then records the
# MAC in fipsmodule.cnf. OpenSSL's FIPS notes ask for it to run on the machine that
# uses the module, so it is redone on every call (it takes well under a second).
openssl fipsinstall -module "$dir/ossl-modules/fips.so" -out "$dir/fipsmodule.cnf" \
  -provider_name fips 2>"$dir/fipsinstall.log" || {
  cat "$dir/fipsinstall.log" >&2
  exit 1
}

sed "s|@FIPSMODULE_CNF@|$dir/fipsmodule.cnf|" \
  "$(dirname "$0")/openssl.cnf" >"$dir/openssl.cnf"
printf 'export OPENSSL_CONF=%s\nexport OPENSSL_MODULES=%s\n' \
  "$dir/openssl.cnf" "$dir/ossl-modules" >"$dir/env"
echo "fips/build.sh: wrote $dir/openssl.cnf; run the node with: . $dir/env; TOPGUN_FIPS=true topgun-server" >&2
