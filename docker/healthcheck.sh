#!/bin/sh
# Docker HEALTHCHECK: GET / on the client port, as the node serves it. Over HTTPS when
# TOPGUN_TLS_ENABLED=true; the certificate is not checked against "localhost" (the
# node's certificate names its service, and the check only asks whether it answers).
set -eu
port=${TOPGUN_PORT:-8080}
case "${TOPGUN_TLS_ENABLED:-false}" in
  [Tt][Rr][Uu][Ee]) url="https://127.0.0.1:$port/" ;;
  *) url="http://127.0.0.1:$port/" ;;
esac
exec curl --fail --silent --show-error --max-time 5 --insecure --output /dev/null "$url"
