"""Realistic audit.k8s.io/v1 Events, as kube-apiserver writes them, for the Falco rule tests."""

from __future__ import annotations

import hashlib
from typing import Any

GROUPS = {
    "deployments": ("apps", "v1"),
    "clusterroles": ("rbac.authorization.k8s.io", "v1"),
    "roles": ("rbac.authorization.k8s.io", "v1"),
    "clusterrolebindings": ("rbac.authorization.k8s.io", "v1"),
    "rolebindings": ("rbac.authorization.k8s.io", "v1"),
    "ingresses": ("networking.k8s.io", "v1"),
}
HUMAN_UA = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"
STATUS_REASON = {403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}


def event(
    verb: str,
    resource: str,
    *,
    name: str | None = None,
    namespace: str | None = None,
    subresource: str | None = None,
    user: str = "kubernetes-admin",
    groups: tuple[str, ...] = ("system:masters", "system:authenticated"),
    code: int | None = None,
    stage: str = "ResponseComplete",
    request: Any = None,
    response: Any = None,
    query: str = "",
    uri: str | None = None,
    user_agent: str = HUMAN_UA,
    seq: int = 0,
) -> dict[str, Any]:
    group, version = GROUPS.get(resource, ("", "v1"))
    base = f"/apis/{group}/{version}" if group else "/api/v1"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{resource}"
    if name and verb not in ("create", "list", "watch"):
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    if code is None:
        code = 201 if verb == "create" else 200
    if stage == "ResponseStarted":
        code = 101
    seed = f"{verb}{resource}{name}{namespace}{subresource}{user}{code}{stage}{query}{seq}{request}"
    digest = hashlib.sha256(seed.encode()).hexdigest()
    audit_id = f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"
    ref: dict[str, Any] = {"resource": resource, "apiVersion": version}
    if group:
        ref["apiGroup"] = group
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    if subresource:
        ref["subresource"] = subresource
    status: dict[str, Any] = {"metadata": {}, "code": code}
    if code >= 400:
        status.update({"status": "Failure", "reason": STATUS_REASON.get(code, "BadRequest"), "message": "denied"})
    denied = code == 403
    ev: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri or (path + (f"?{query}" if query else "")),
        "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": ["10.20.0.15"],
        "userAgent": user_agent,
        "objectRef": ref,
        "responseStatus": status,
        "requestReceivedTimestamp": "2026-11-20T10:15:42.118204Z",
        "stageTimestamp": "2026-11-20T10:15:42.131877Z",
        "annotations": {
            "authorization.k8s.io/decision": "forbid" if denied else "allow",
            "authorization.k8s.io/reason": "" if denied else 'RBAC: allowed by ClusterRoleBinding "cluster-admin"',
        },
    }
    if request is not None:
        ev["requestObject"] = request
    if response is not None:
        ev["responseObject"] = response
    elif request is not None and code < 300 and isinstance(request, dict):
        meta = dict(request.get("metadata") or {})
        meta.update(
            {
                "uid": "6b1f3c2e-5d7a-4c1b-9e0f-2a3b4c5d6e7f",
                "resourceVersion": "48213",
                "creationTimestamp": "2026-11-20T10:15:42Z",
            }
        )
        ev["responseObject"] = {**request, "metadata": meta}
    return ev


def pod(
    name: str,
    namespace: str,
    *,
    image: str = "docker.io/library/nginx:1.27.2",
    privileged: bool = False,
    init_privileged: bool = False,
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    if privileged:
        container["securityContext"] = {"privileged": True}
    body: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [container], "restartPolicy": "Always", "serviceAccountName": "default", **spec},
    }
    if init_privileged:
        body["spec"]["initContainers"] = [
            {"name": "setup", "image": "docker.io/library/busybox:1.36", "securityContext": {"privileged": True}}
        ]
    if volumes:
        body["spec"]["volumes"] = volumes
    return body


def create_pod(namespace: str = "shop", **kw: Any) -> dict[str, Any]:
    name = kw.pop("name", "web-7d4b9c")
    user = kw.pop("user", "kubernetes-admin")
    return event("create", "pods", namespace=namespace, name=name, request=pod(name, namespace, **kw), user=user)


def role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta, "rules": rules}


def binding(
    kind: str, name: str, role_name: str, subjects: list[dict[str, Any]], namespace: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": meta,
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
    }
