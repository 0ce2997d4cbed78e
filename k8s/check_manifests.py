"""Consistency checks of k8s/ and docker/compose.yaml that no schema can make.

Run by validate.sh from k8s/. Exits 1 with one line per problem.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
problems = []


def load(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if not found:
        problems.append(f"no {kind} {name or ''} found")
    return found[0] if found else {}


def matches(pattern, host):
    """A certificate DNS name against a host, with a wildcard for one left label."""
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


manifests = {p.name: load(p) for p in sorted(Path(".").glob("*.yaml")) if p.name != "kustomization.yaml"}
everything = [d for docs in manifests.values() for d in docs]
for doc in everything:
    for field in ("apiVersion", "kind", "metadata"):
        if field not in doc:
            problems.append(f"a {doc.get('kind', 'document')} has no {field}")
    if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != "topgun":
        problems.append(f"{doc['kind']} {doc['metadata']['name']}: namespace is not topgun")

# Variables: each one set must be known to the node and documented in README.md.
env_rs = (ROOT / "src/config/env.rs").read_text(encoding="utf-8")
known_block = env_rs.split("pub const KNOWN_VARS", 1)[1].split("];", 1)[0]
known = set(re.findall(r'"([A-Z0-9_]+)"', known_block))
readme = (ROOT / "README.md").read_text(encoding="utf-8")
# Set by the container runtime or for OpenSSL, not read by the node's configuration.
outside = {"POD_NAME", "OPENSSL_CONF", "OPENSSL_MODULES"}

statefulset = find(everything, "StatefulSet", "topgun")
pod = statefulset["spec"]["template"]["spec"]
container = pod["containers"][0]
env = {e["name"]: e for e in container["env"]}
compose = yaml.safe_load((ROOT / "docker/compose.yaml").read_text(encoding="utf-8"))
compose_vars = set()
for service in compose["services"].values():
    compose_vars |= set((service.get("environment") or {}).keys())
for origin, names in (("k8s/statefulset.yaml", env.keys()), ("docker/compose.yaml", compose_vars)):
    for name in names:
        if name in outside:
            continue
        if name not in known:
            problems.append(f"{origin}: {name} is not a variable the node reads (KNOWN_VARS)")
        elif f"`{name}`" not in readme:
            problems.append(f"{origin}: {name} is not documented in README.md")

# The certificate names every host a peer or a client dials.
certificate = find(everything, "Certificate", "topgun-tls")
dns_names = certificate["spec"]["dnsNames"]
usages = certificate["spec"]["usages"]
for usage in ("server auth", "client auth"):
    if usage not in usages:
        problems.append(f"Certificate topgun-tls: usages lack {usage!r} (cluster mTLS needs both)")
replicas = statefulset["spec"]["replicas"]
dialled = [peer.rsplit(":", 1)[0] for peer in env["TOPGUN_PEERS"]["value"].split(",")]
advertised = [
    env["TOPGUN_CLUSTER_ADVERTISE_HOST"]["value"].replace("$(POD_NAME)", f"topgun-{n}") for n in range(replicas)
]
if sorted(dialled) != sorted(advertised):
    problems.append("TOPGUN_PEERS does not list exactly the advertised name of each replica")
clients = find(everything, "Service", "topgun")
namespace = clients["metadata"]["namespace"]
for host in dialled + advertised + [f"topgun.{namespace}.svc.cluster.local"]:
    if not any(matches(pattern, host) for pattern in dns_names):
        problems.append(f"Certificate topgun-tls names no DNS SAN for {host}")
issuers = {d["metadata"]["name"] for d in everything if d["kind"] == "Issuer"}
for cert in (d for d in everything if d["kind"] == "Certificate"):
    if cert["spec"]["issuerRef"]["name"] not in issuers:
        problems.append(f"Certificate {cert['metadata']['name']}: no Issuer {cert['spec']['issuerRef']['name']}")
secrets = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
if certificate["spec"]["secretName"] not in secrets:
    problems.append("the StatefulSet does not mount the Secret that cert-manager writes")
headless = find(everything, "Service", "topgun-cluster")
if statefulset["spec"]["serviceName"] != headless["metadata"]["name"] or headless["spec"].get("clusterIP") != "None":
    problems.append("the StatefulSet's serviceName is not the headless Service")
if not all(h.endswith(f".{headless['metadata']['name']}.{namespace}.svc.cluster.local") for h in dialled):
    problems.append("TOPGUN_PEERS names hosts outside the headless Service")

# Port names used by Services, the NetworkPolicy and probes exist on the container.
ports = {p["name"] for p in container["ports"]}
for service in (d for d in everything if d["kind"] == "Service"):
    for port in service["spec"]["ports"]:
        if port["targetPort"] not in ports:
            problems.append(f"Service {service['metadata']['name']}: no container port {port['targetPort']}")
policy = find(everything, "NetworkPolicy", "topgun")
for rule in policy["spec"]["ingress"]:
    for port in rule["ports"]:
        if port["port"] not in ports:
            problems.append(f"NetworkPolicy: no container port {port['port']}")

# The ServiceMonitor selects the metrics Service, and the rules are those tested.
monitor = find(everything, "ServiceMonitor", "topgun")
metrics = find(everything, "Service", "topgun-metrics")
wanted = monitor["spec"]["selector"]["matchLabels"]
if any(metrics["metadata"]["labels"].get(k) != v for k, v in wanted.items()):
    problems.append("ServiceMonitor topgun does not select the Service topgun-metrics")
if monitor["spec"]["endpoints"][0]["port"] not in {p["name"] for p in metrics["spec"]["ports"]}:
    problems.append("ServiceMonitor topgun scrapes a port topgun-metrics does not have")
rule = find(everything, "PrometheusRule", "topgun")
alerts = yaml.safe_load((ROOT / "prometheus/alerts.yaml").read_text(encoding="utf-8"))
if rule["spec"] != alerts:
    problems.append("PrometheusRule topgun differs from prometheus/alerts.yaml; copy the groups again")

for problem in problems:
    print(f"k8s: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"k8s: {len(everything)} objects consistent (certificate names, selectors, ports, variables, alert rules)")
