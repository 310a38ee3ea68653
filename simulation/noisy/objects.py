"""Kubernetes objects of the noisy world's benign traffic, as clients send them (pure builders, fresh trees).

RBAC, CRDs, admission webhooks, Jobs and CronJobs, DaemonSets, Nodes, kubectl debug's pods and
ephemeral containers. Unlike :mod:`simulation.manifests`, some of these are what real sites run and
rules flag: privileged node agents, ClusterRoles that write Secrets, node debugging pods.
"""

from __future__ import annotations

from typing import Any

import orjson

RBAC_GROUP = "rbac.authorization.k8s.io"


def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        out["resourceNames"] = names
    return out


def role(kind: str, name: str, ns: str | None, rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    """A Role (``ns`` given) or ClusterRole."""
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    meta["labels"] = dict(labels)
    return {"kind": kind, "apiVersion": f"{RBAC_GROUP}/v1", "metadata": meta, "rules": rules}


def binding(
    kind: str, name: str, ns: str | None, role_kind: str, role_name: str, subjects: list[dict[str, str]]
) -> dict[str, Any]:
    """A RoleBinding (``ns`` given) or ClusterRoleBinding."""
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {
        "kind": kind,
        "apiVersion": f"{RBAC_GROUP}/v1",
        "metadata": meta,
        "subjects": subjects,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name},
    }


def subject(kind: str, name: str, ns: str | None = None) -> dict[str, str]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": ns or "default"}
    return {"kind": kind, "apiGroup": RBAC_GROUP, "name": name}


def crd(plural: str, group: str, kind: str, version: str, labels: dict[str, str]) -> dict[str, Any]:
    """A CustomResourceDefinition with a trimmed schema (real ones carry kilobytes of OpenAPI)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": dict(labels)},
        "spec": {
            "group": group,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def webhook_configuration(
    kind: str, name: str, service: tuple[str, str], hooks: list[str], ca_bundle: str, labels: dict[str, str]
) -> dict[str, Any]:
    """A Validating- or MutatingWebhookConfiguration whose webhooks call ``service`` (namespace, name)."""
    ns, svc = service
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": dict(labels)},
        "webhooks": [
            {
                "name": hook,
                "clientConfig": {
                    "service": {"namespace": ns, "name": svc, "path": "/" + hook.split(".")[0], "port": 443},
                    "caBundle": ca_bundle,
                },
                "rules": [
                    {
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["*/*"],
                        "scope": "*",
                    }
                ],
                "failurePolicy": "Fail" if kind.startswith("Validating") else "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
            for hook in hooks
        ],
    }


def container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        **extra,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def job_template(image: str, command: list[str], sa: str) -> dict[str, Any]:
    """A Job's pod template: one run-to-completion container."""
    return {
        "metadata": {"creationTimestamp": None},
        "spec": {
            "containers": [
                container(
                    "job",
                    image,
                    command=command,
                    resources={"requests": {"cpu": "100m", "memory": "128Mi"}},
                    securityContext={"allowPrivilegeEscalation": False, "runAsNonRoot": True},
                )
            ],
            "restartPolicy": "OnFailure",
            "serviceAccountName": sa,
            "securityContext": {"runAsUser": 10001},
        },
    }


def job_object(name: str, ns: str, cron: str, cron_uid: str, image: str, command: list[str]) -> dict[str, Any]:
    """The Job the cronjob controller creates for one scheduled run."""
    return {
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": None,
            "labels": {"app": cron},
            "annotations": {
                "batch.kubernetes.io/cronjob-scheduled-timestamp": "",
                "cronjob.kubernetes.io/instantiate": "",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cron,
                    "uid": cron_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"backoffLimit": 2, "ttlSecondsAfterFinished": 86400, "template": job_template(image, command, cron)},
        "status": {},
    }


def pod_object(meta: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": {}}


def node_agent_spec(image: str, sa: str, host_paths: list[str], node: str | None = None) -> dict[str, Any]:
    """The pod spec of a node agent (CNI, CSI, storage engine): privileged, host network, host paths."""
    spec: dict[str, Any] = {
        "volumes": [{"name": f"host{i}", "hostPath": {"path": path, "type": ""}} for i, path in enumerate(host_paths)],
        "containers": [
            container(
                sa,
                image,
                volumeMounts=[{"name": f"host{i}", "mountPath": path} for i, path in enumerate(host_paths)],
                securityContext={"privileged": True},
            )
        ],
        "restartPolicy": "Always",
        "serviceAccountName": sa,
        "hostNetwork": True,
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
    }
    if node is not None:
        spec["nodeName"] = node
    return spec


def daemonset_object(ns: str, name: str, spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": name}},
            "template": {"metadata": {"creationTimestamp": None, "labels": {"k8s-app": name}}, "spec": spec},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        },
        "status": {},
    }


def node_object(name: str, ip: str, pod_cidr: str) -> dict[str, Any]:
    """What a kubelet sends when it registers its Node."""
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "creationTimestamp": None,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.xlarge",
            },
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
    }


def node_debug_pod(name: str, node: str, image: str) -> dict[str, Any]:
    """``kubectl debug node/<node> -it --image=...``: host namespaces and the node's / at /host."""
    spec = {
        "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": ""}}],
        "containers": [
            container(
                "debugger",
                image,
                stdin=True,
                tty=True,
                volumeMounts=[{"name": "host-root", "mountPath": "/host"}],
            )
        ],
        "restartPolicy": "Never",
        "nodeName": node,
        "hostNetwork": True,
        "hostPID": True,
        "hostIPC": True,
        "tolerations": [{"operator": "Exists"}],
    }
    meta = {
        "name": name,
        "namespace": "default",
        "creationTimestamp": None,
        "labels": {"app.kubernetes.io/managed-by": "kubectl-debug"},
    }
    return pod_object(meta, spec)


def ephemeral_container_patch(name: str, image: str, target: str) -> dict[str, Any]:
    """``kubectl debug -it <pod> --image=... --target=<container>``: a strategic-merge patch of ephemeralcontainers."""
    return {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": name,
                    "image": image,
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "stdin": True,
                    "tty": True,
                    "targetContainerName": target,
                }
            ]
        }
    }


def token_request(expiration_s: int, bound_pod: tuple[str, str] | None = None) -> dict[str, Any]:
    """A TokenRequest (``kubectl create token``; the kubelet binds its own to a pod)."""
    bound = (
        None if bound_pod is None else {"kind": "Pod", "apiVersion": "v1", "name": bound_pod[0], "uid": bound_pod[1]}
    )
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": None, "expirationSeconds": expiration_s, "boundObjectRef": bound},
        "status": {"token": "", "expirationTimestamp": None},
    }


def last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as client-side apply sends it: with its own JSON in the last-applied annotation."""
    out = {**obj, "metadata": dict(obj["metadata"])}
    annotations = dict(out["metadata"].get("annotations") or {})
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = orjson.dumps(obj).decode() + "\n"
    out["metadata"]["annotations"] = annotations
    return out
