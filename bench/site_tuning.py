"""The site tuning file a simulated cluster's operator would write on day one, generated from its site model.

What a real operator knows before the detector has seen a single event, read off the simulated organisation
(:class:`simulation.benign.ClusterSimulation`, so another seed gets its own organisation's facts):

- trusted registries: the organisation's own registry, and the vendors of the add-ons it installs as Helm
  releases (cert-manager from ``quay.io/jetstack``, ...) and of its CNI and storage (Calico, Longhorn): the
  prefix of each publisher, never a whole public host and never Docker Hub's ``library``, which anyone's
  ``alpine`` or ``busybox`` comes from;
- deployers: the CI service accounts, Argo CD's application controller, Flux's kustomize- and helm-controller,
  and the operators that write workloads or webhook configurations (the Calico operator, Longhorn, Kyverno's
  and cert-manager's webhook writers, limited to the webhook rule);
- exceptions: the operators whose job is to read Secrets across namespaces (Argo CD, cert-manager,
  external-secrets: cluster-wide lists and watches and reads; Flux's helm-controller: its release Secrets)
  and to write them (cert-manager, external-secrets), scoped to their service accounts; and the node agents
  that the CNI and storage operators run privileged, with host namespaces and paths, scoped to the operator's
  account, its namespace and its vendor's images.

Nothing else: no person, no application's service account, no namespace, no image an attack campaign
could use by construction. A CI account is a deployer because a real site declares it one; a campaign
that uses CI's stolen credential must then be caught by what the deployer rules leave on (what a write
carries, where it comes from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulation import ClusterProfile
from simulation.benign import ClusterSimulation
from simulation.emitter import Actor
from simulation.noisy import Org
from simulation.noisy.catalog import RELEASES

# What the built-in untrusted-image-registry already trusts: no need to say it again.
_BUILTIN_TRUSTED = ("registry.k8s.io", "k8s.gcr.io", "mcr.microsoft.com", "gke.gcr.io")
_SECRET_READ_RULES = ["secrets-listed-cluster-wide", "secret-read-by-non-controller", "secret-read-burst"]
_NODE_AGENT_RULES = ["privileged-container", "host-namespaces", "sensitive-hostpath-mount"]
# The CNI and the storage the organisation runs, through their operators: (namespace of their node agents,
# their images' publisher). Calico's tigera-operator writes the calico-node DaemonSet; Longhorn's manager
# creates an instance-manager pod on every node.
CALICO = ("calico-system", "quay.io/calico")
LONGHORN = ("longhorn-system", "docker.io/longhornio")


def service_account(actor: Actor) -> str:
    """`NAMESPACE:NAME` of a service account's user name (system:serviceaccount:NAMESPACE:NAME)."""
    prefix, _, rest = actor.username.partition("system:serviceaccount:")
    if prefix or not rest:
        raise ValueError(f"{actor.username!r} is not a service account")
    return rest


def publisher(repository: str) -> str:
    """The prefix of whoever publishes ``repository``: its host and first path component
    (``quay.io/jetstack/cert-manager-controller`` -> ``quay.io/jetstack``)."""
    host, _, path = repository.partition("/")
    return f"{host}/{path.split('/', 1)[0]}" if path else host


def add_on_publishers() -> list[str]:
    """The vendors of the Helm releases the organisation installs, as trusted registry prefixes."""
    out: list[str] = []
    for release in RELEASES:
        for workload in release.workloads:
            prefix = publisher(workload.repository)
            host = prefix.split("/", 1)[0]
            if host in _BUILTIN_TRUSTED or prefix == "docker.io/library" or prefix in out:
                continue
            out.append(prefix)
    return out


def site_tuning(profile: ClusterProfile) -> dict[str, Any]:
    """The tuning file's content for the organisation of ``profile`` (a noisy world: its cast is richer)."""
    sim = ClusterSimulation(profile)
    vendors = [*add_on_publishers(), CALICO[1], LONGHORN[1]]
    registries = [profile.site.registry, *(p for p in vendors if p != profile.site.registry)]
    deployers: list[dict[str, Any]] = []
    if sim.cluster.ci:
        deployers.append({"name": "ci", "service_accounts": [service_account(a) for a in sim.cluster.ci]})
    out: dict[str, Any] = {"trusted_registries": registries, "deployers": deployers}
    if sim.org is not None:  # a clean world has the organisation and its CI only
        deployers += _platform_deployers(sim.org)
        out["exceptions"] = _operator_exceptions(sim.org)
    return out


def _platform_deployers(org: Org) -> list[dict[str, Any]]:
    sa = service_account
    return [
        {"name": "argo-cd", "service_accounts": [sa(org.argocd)]},
        {"name": "flux", "service_accounts": [sa(org.kustomize), sa(org.helm_controller)]},
        {"name": "platform-operators", "service_accounts": [sa(org.tigera), sa(org.longhorn)]},
        {
            "name": "webhook-writers",
            "service_accounts": [sa(org.cainjector), sa(org.kyverno)],
            "rules": ["admission-webhook-changed"],
        },
    ]


def _operator_exceptions(org: Org) -> list[dict[str, Any]]:
    sa = service_account
    out: list[dict[str, Any]] = [
        {
            "name": "secret-operators-read",
            "rules": list(_SECRET_READ_RULES),
            "reason": "Argo CD, cert-manager and external-secrets watch and read Secrets in every namespace",
            "service_accounts": [sa(org.argocd), sa(org.cert_manager), sa(org.external_secrets)],
        },
        {
            "name": "helm-release-storage",
            "rules": ["secret-read-by-non-controller"],
            "reason": "Flux's helm-controller reads its releases' Secrets (sh.helm.release.v1.*) on every upgrade",
            "service_accounts": [sa(org.helm_controller)],
        },
        {
            "name": "secret-operators-write",
            "rules": ["secret-modified"],
            "reason": "cert-manager and external-secrets exist to write Secrets",
            "service_accounts": [sa(org.cert_manager), sa(org.external_secrets)],
        },
    ]
    for name, operator, (namespace, vendor) in (("Calico", org.tigera, CALICO), ("Longhorn", org.longhorn, LONGHORN)):
        out.append(
            {
                "name": f"node-agents-{name.lower()}",
                "rules": list(_NODE_AGENT_RULES),
                "reason": f"the node agents of {name} need the host: privileged, host network and paths",
                "service_accounts": [sa(operator)],
                "namespaces": [namespace],
                "images": [f"{vendor}/*"],
            }
        )
    return out


def render(profile: ClusterProfile, content: dict[str, Any]) -> str:
    site = profile.site
    header = (
        f"# Site tuning of the simulated organisation {site.company} (seed {profile.seed}), generated by\n"
        "# bench.site_tuning from its site model: what its operator knows on day one (docs/tuning.md).\n"
        "# Nothing here names a person, an application or anything an attack campaign brings.\n"
    )
    return header + yaml.safe_dump(content, sort_keys=False, default_flow_style=False, width=120)


def write_site_tuning(profile: ClusterProfile, path: Path) -> Path:
    """Write the site tuning file of ``profile``'s organisation to ``path`` (directories made) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(profile, site_tuning(profile)), encoding="utf-8")
    return path
