#!/usr/bin/env bash
# Offline checks of k8s/ (and of docker/compose.yaml), run by .ci/run:
#
# 1. Built-in kinds against the Kubernetes OpenAPI schemas that kubernetes-validate
#    bundles, strictly (unknown fields fail), for the oldest and newest versions
#    checked here.
# 2. cert-manager and Prometheus Operator objects (Issuer, Certificate, ServiceMonitor,
#    PrometheusRule), for which no schema is bundled, with check_manifests.py: that
#    they hold together with the rest (names dialled are in the certificate, both
#    usages present, selectors match, the rules equal prometheus/alerts.yaml) and that
#    every variable set is one the node knows and README.md documents.
#
#   KUBERNETES_VALIDATE=/path/to/kubernetes-validate k8s/validate.sh
set -euo pipefail
cd "$(dirname "$0")"
validate=${KUBERNETES_VALIDATE:-kubernetes-validate}
python=$(dirname "$(command -v "$validate")")/python
[ -x "$python" ] || python=python3

builtin=(namespace.yaml services.yaml statefulset.yaml pdb.yaml networkpolicy.yaml
  private-ca/secret.yaml)
for version in 1.28.0 1.37.0; do
  "$validate" --strict --quiet --kubernetes-version "$version" "${builtin[@]}"
  echo "k8s: ${#builtin[@]} files valid against Kubernetes $version"
done
"$python" check_manifests.py
