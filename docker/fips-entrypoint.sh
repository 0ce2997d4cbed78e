#!/bin/sh
# Entry point of docker/Dockerfile.fips: installs OpenSSL's FIPS provider on this
# machine (`openssl fipsinstall` runs its self-tests and records the module's MAC),
# writes the openssl.cnf that activates it with fips=yes, then runs topgun-server with
# the given arguments. Any failure stops the container; the node itself also refuses to
# start unless the provider is in force.
set -eu
module="$OPENSSL_MODULES/fips.so"
dir=$(dirname "$OPENSSL_CONF")
mkdir -p "$dir"
# Until openssl.cnf exists, the CLI runs on the distribution's configuration.
OPENSSL_CONF=/etc/ssl/openssl.cnf openssl fipsinstall -module "$module" \
  -out "$dir/fipsmodule.cnf" -provider_name fips -quiet
sed "s|@FIPSMODULE_CNF@|$dir/fipsmodule.cnf|" /usr/local/lib/topgun-fips/openssl.cnf.in \
  >"$dir/openssl.cnf"
exec /usr/local/bin/topgun-server "$@"
