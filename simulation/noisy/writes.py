"""Writing objects as API clients do, at the level the simulated audit policy logs each resource.

Policy (see :mod:`simulation.benign`): RBAC writes at ``RequestResponse``; Secrets and ConfigMaps at
``Metadata`` (no bodies); every other write at ``Request``. URLs and objectRefs follow from the object's
kind, as client-go's REST mapper derives them.
"""

from __future__ import annotations

from typing import Any, Final

from simulation.emitter import Actor, object_ref
from simulation.engine import Engine

#: kind -> (resource, API group, version, namespaced)
KINDS: Final[dict[str, tuple[str, str, str, bool]]] = {
    "Namespace": ("namespaces", "", "v1", False),
    "ServiceAccount": ("serviceaccounts", "", "v1", True),
    "ConfigMap": ("configmaps", "", "v1", True),
    "Secret": ("secrets", "", "v1", True),
    "Pod": ("pods", "", "v1", True),
    "Node": ("nodes", "", "v1", False),
    "Deployment": ("deployments", "apps", "v1", True),
    "DaemonSet": ("daemonsets", "apps", "v1", True),
    "Job": ("jobs", "batch", "v1", True),
    "CronJob": ("cronjobs", "batch", "v1", True),
    "NetworkPolicy": ("networkpolicies", "networking.k8s.io", "v1", True),
    "Role": ("roles", "rbac.authorization.k8s.io", "v1", True),
    "RoleBinding": ("rolebindings", "rbac.authorization.k8s.io", "v1", True),
    "ClusterRole": ("clusterroles", "rbac.authorization.k8s.io", "v1", False),
    "ClusterRoleBinding": ("clusterrolebindings", "rbac.authorization.k8s.io", "v1", False),
    "CustomResourceDefinition": ("customresourcedefinitions", "apiextensions.k8s.io", "v1", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", False),
}
_RBAC: Final = frozenset(("roles", "rolebindings", "clusterroles", "clusterrolebindings"))


def collection_path(res: str, group: str, version: str, ns: str = "") -> str:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{ns}/{res}" if ns else f"{prefix}/{res}"


def ref_of(uri: str) -> dict[str, str]:
    """The objectRef the apiserver derives from a resource URL."""
    parts = uri.split("?", 1)[0].strip("/").split("/")
    group, version, rest = ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return object_ref(rest[0], ns, name, group, version, sub)


def level_of(resource: str) -> str:
    if resource in _RBAC:
        return "RequestResponse"
    return "Metadata" if resource in ("secrets", "configmaps") else "Request"


class ObjectWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine, self.em = engine, engine.em

    def _where(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        """(collection URL, resource, name) of ``obj``."""
        res, group, version, namespaced = KINDS[obj["kind"]]
        meta = obj["metadata"]
        ns = meta.get("namespace", "default") if namespaced else ""
        return collection_path(res, group, version, ns), res, meta["name"]

    def _stored(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = {**obj["metadata"], "uid": self.em.uuid(), "resourceVersion": self.em.rv()}
        meta["creationTimestamp"] = self.em.clock.sec(self.engine.now - 30 * 86400 * 1_000_000)
        return {**obj, "metadata": meta}

    def _write(
        self, actor: Actor, verb: str, uri: str, ref: dict[str, str], obj: dict[str, Any] | None, name: str
    ) -> str:
        level = level_of(ref["resource"])
        resp = self._stored(obj) if obj is not None and level == "RequestResponse" else None
        return self.engine.request(
            actor,
            verb,
            uri,
            ref,
            code=201 if verb == "create" else 200,
            level=level,
            req_obj=obj,
            resp_obj=resp,
            obj_meta=(name, None, None) if verb == "create" else None,
            latency=4000 + self.engine.rng.randrange(20_000),
        )

    def create(self, actor: Actor, obj: dict[str, Any], *, manager: str) -> str:
        path, _, name = self._where(obj)
        uri = f"{path}?fieldManager={manager}"
        return self._write(actor, "create", uri, ref_of(path), obj, name)

    def create_named(self, actor: Actor, uri: str, ref: dict[str, str], name: str) -> str:
        """A create logged at Metadata level (Secrets, ConfigMaps): no body, only the name."""
        return self._write(actor, "create", uri, ref, None, name)

    def patch_object(self, actor: Actor, obj: dict[str, Any], manager: str) -> str:
        """A strategic-merge patch carrying the whole object (Helm's three-way patch, simplified)."""
        path, _, name = self._where(obj)
        uri = f"{path}/{name}?fieldManager={manager}"
        return self._write(actor, "patch", uri, ref_of(f"{path}/{name}"), obj, name)

    def apply(self, actor: Actor, obj: dict[str, Any], *, manager: str) -> str:
        """Client-side apply of an existing object (``obj`` carries the last-applied annotation)."""
        return self.patch_object(actor, obj, manager)

    def server_side_apply(self, actor: Actor, obj: dict[str, Any], manager: str, *, dry_run: bool) -> str:
        path, _, name = self._where(obj)
        query = f"?dryRun=All&fieldManager={manager}&force=true" if dry_run else f"?fieldManager={manager}&force=true"
        return self._write(actor, "patch", f"{path}/{name}{query}", ref_of(f"{path}/{name}"), obj, name)

    def patch(self, actor: Actor, uri: str, ref: dict[str, str], body: dict[str, Any] | None) -> str:
        return self._write(actor, "patch", uri, ref, body, ref.get("name", ""))

    def update(self, actor: Actor, obj: dict[str, Any]) -> str:
        """A PUT of the whole object (controllers' read-modify-write)."""
        path, _, name = self._where(obj)
        return self._write(actor, "update", f"{path}/{name}", ref_of(f"{path}/{name}"), obj, name)
