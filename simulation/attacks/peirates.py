"""peirates-style techniques (secret harvest, pod pivot) as campaign builders."""

from __future__ import annotations

from simulation.attacks.cursor import CampaignRun, rules_review
from simulation.attacks.pods import exec_in_pod
from simulation.emitter import Actor, object_ref, rbac_reason


def secret_harvest(r: CampaignRun) -> None:
    """can-i, list namespaces, then list and read secrets namespace by namespace."""
    rules_review(r, 0, "default")
    r.request(3, "list", "/api/v1/namespaces", object_ref("namespaces"))
    for ns in [*r.namespaces(), "kube-system"]:
        r.request(1, "list", f"/api/v1/namespaces/{ns}/secrets", object_ref("secrets", ns))
        for i in range(2):
            name = f"{ns}-secret-{r.em.token(4)}-{i}"
            r.request(0.5, "get", f"/api/v1/namespaces/{ns}/secrets/{name}", object_ref("secrets", ns, name))


def pod_pivot(r: CampaignRun) -> None:
    """Exec into a pod to steal its service-account token, then use the token from the attacker's machine."""
    ns, pod, dep = r.live_pod()
    exec_in_pod(r, 0, ns, pod, ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])
    stolen = Actor(
        f"system:serviceaccount:{ns}:{dep}",
        ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
        r.actor.ip,
        "peirates/v1.1.24 (linux/amd64)",
        "",
        uid=r.em.uuid(),
        extra=(
            ("authentication.kubernetes.io/credential-id", f"JTI={r.em.uuid()}"),
            ("authentication.kubernetes.io/pod-name", pod),
        ),
    )
    pivot = CampaignRun(r.cluster, r.em, r.t, stolen, first_at_start=False)
    rules_review(pivot, 20, ns)
    pivot.request(
        3,
        "list",
        f"/api/v1/namespaces/{ns}/pods",
        object_ref("pods", ns),
        reason=rbac_reason("RoleBinding", f"{dep}-view/{ns}", "ClusterRole", "view", "ServiceAccount", f"{dep}/{ns}"),
    )
    for target in [ns, "kube-system", "default"]:
        pivot.forbidden(2, "list", f"/api/v1/namespaces/{target}/secrets", object_ref("secrets", target), "secrets")
    r.t = pivot.t
