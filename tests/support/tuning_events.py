"""Full audit Events of a site's routine (a GitOps controller deploying from the organisation's registry) and of
what must still alert, for the site tuning tests."""

from __future__ import annotations

import uuid
from typing import Any

ARGO = "system:serviceaccount:argocd:argocd-application-controller"
ARGO_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"]
OWN_REGISTRY = "registry.acme.internal"
_API = {
    "deployments": ("/apis/apps/v1", "apps", "Deployment"),
    "daemonsets": ("/apis/apps/v1", "apps", "DaemonSet"),
    "rolebindings": ("/apis/rbac.authorization.k8s.io/v1", "rbac.authorization.k8s.io", "RoleBinding"),
    "pods": ("/api/v1", "", "Pod"),
}


def event(
    n: int, user: str, groups: list[str], verb: str, resource: str, namespace: str, name: str,
    body: dict[str, Any] | None, *, subresource: str = "", code: int = 201, uri: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """An audit.k8s.io/v1 Event as the kube-apiserver writes it at Request level (ResponseComplete)."""
    prefix, group, _kind = _API[resource]
    ref: dict[str, Any] = {"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"}
    if group:
        ref["apiGroup"] = group
    if subresource:
        ref["subresource"] = subresource
    path = f"{prefix}/namespaces/{namespace}/{resource}" + ("" if verb == "create" else f"/{name}")
    raw: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": str(uuid.UUID(int=n + 0x5EED_0000)), "stage": "ResponseComplete",
        "requestURI": uri or path + ("/" + subresource if subresource else ""), "verb": verb,
        "user": {"username": user, "groups": groups}, "sourceIPs": ["10.20.0.14"],
        "userAgent": "argocd-application-controller/v2.12.3", "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": f"2026-11-23T10:{n:02d}:00.100000Z",
        "stageTimestamp": f"2026-11-23T10:{n:02d}:00.130000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed"},
    }  # fmt: skip
    if body is not None:
        raw["requestObject"] = body
    return raw


def workload(kind: str, name: str, namespace: str, *images: str) -> dict[str, Any]:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return {
        "kind": kind, "apiVersion": "apps/v1", "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}},
    }  # fmt: skip


def role_binding(name: str, namespace: str, account: str) -> dict[str, Any]:
    return {
        "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }  # fmt: skip


def site_day() -> list[dict[str, Any]]:
    """A GitOps controller's routine (the first three), and what must alert whatever the tuning says."""
    runner = "system:serviceaccount:ci:runner"
    return [
        # the organisation's image, deployed by the known deployer
        event(1, ARGO, ARGO_GROUPS, "create", "deployments", "shop", "web",
              workload("Deployment", "web", "shop", f"{OWN_REGISTRY}/shop/web:2.3.1")),
        event(2, ARGO, ARGO_GROUPS, "create", "daemonsets", "monitoring", "node-exporter",
              workload("DaemonSet", "node-exporter", "monitoring", f"{OWN_REGISTRY}:5000/mirror/node-exporter:1.8")),
        event(3, ARGO, ARGO_GROUPS, "create", "rolebindings", "shop", "web",
              role_binding("web", "shop", "web")),
        # the same deployer with an image from Docker Hub, and from a look-alike host
        event(4, ARGO, ARGO_GROUPS, "create", "deployments", "shop", "debug",
              workload("Deployment", "debug", "shop", f"{OWN_REGISTRY}/shop/web:2.3.1", "alpine:3.20")),
        event(5, ARGO, ARGO_GROUPS, "patch", "deployments", "shop", "web",
              workload("Deployment", "web", "shop", f"{OWN_REGISTRY}.evil.io/shop/web:2.3.2"), code=200),
        # another service account binding roles, and the organisation's image deployed by it
        event(6, runner, ["system:serviceaccounts", "system:authenticated"], "create", "rolebindings", "shop",
              "runner", role_binding("runner", "shop", "runner")),
        event(7, runner, ["system:serviceaccounts", "system:authenticated"], "create", "daemonsets", "shop",
              "agent", workload("DaemonSet", "agent", "shop", f"{OWN_REGISTRY}/shop/agent:1.0")),
    ]  # fmt: skip


# The alerts a tuning file that trusts OWN_REGISTRY and knows ARGO as a deployer must silence: (rule, event #)
SILENCED = {
    ("untrusted-image-registry", 1),
    ("untrusted-image-registry", 2),
    ("daemonset-created", 2),
    ("rbac-binding-to-serviceaccount", 3),
    ("rbac-modified-by-serviceaccount", 3),
    ("rbac-change-then-workload-change", 4),  # its RoleBinding, then its Deployment: the deployer's routine
    ("untrusted-image-registry", 7),
}

SITE_TUNING = f"""\
trusted_registries:
  - {OWN_REGISTRY}
deployers:
  - name: argo-cd
    service_accounts: [argocd:argocd-application-controller]
"""
