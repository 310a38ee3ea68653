"""Full audit Events of three attacks as kube-apiserver writes them, and the shape an exporter leaves of them.

Exporters, normalisers and SIEMs often drop the `annotations` map (the authorization decision with it):
`without_annotations` gives that shape. The attacks: a privileged pod created by a human (201), an exec that
reads the service-account token with a URL-encoded command (101), and `kubectl cp` of a data directory out of
a pod (`tar cf - PATH`, 101).
"""

from __future__ import annotations

import copy
from typing import Any

KUBECTL = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46"
USER = {"username": "mallory@example.com", "groups": ["contractors", "system:authenticated"]}
ALLOWED = {
    "authorization.k8s.io/decision": "allow",
    "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "contractors-edit" of ClusterRole "edit" '
    'to Group "contractors"',
}
TOKEN_READ = "command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
COPY_OUT = "command=tar&command=cf&command=-&command=%2Fvar%2Flib%2Fpostgresql%2Fdata"


def _event(audit_id: str, stage: str, uri: str, verb: str, ref: dict[str, Any], code: int) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": copy.deepcopy(USER),
        "sourceIPs": ["198.51.100.23"],
        "userAgent": KUBECTL,
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-11-20T10:04:11.512304Z",
        "stageTimestamp": "2026-11-20T10:04:11.539871Z",
        "annotations": dict(ALLOWED),
    }


def privileged_pod() -> dict[str, Any]:
    """`kubectl run` of a privileged pod, logged at RequestResponse, answered 201."""
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "debug-tools", "namespace": "payments", "creationTimestamp": None,
                     "labels": {"run": "debug-tools"}},
        "spec": {
            "containers": [{"name": "debug-tools", "image": "docker.io/library/alpine:3.20",
                            "command": ["sleep", "infinity"], "resources": {},
                            "securityContext": {"privileged": True}, "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        },
        "status": {},
    }  # fmt: skip
    raw = _event(
        "2b7f0c1e-5d3a-4e8b-9c61-0a4f3e2d1c01", "ResponseComplete",
        "/api/v1/namespaces/payments/pods?fieldManager=kubectl-run", "create",
        {"resource": "pods", "namespace": "payments", "name": "debug-tools", "apiVersion": "v1"}, 201,
    )  # fmt: skip
    stored = copy.deepcopy(pod)
    stored["metadata"].update(uid="5c1d8e2a-7b3f-4a9c-8d21-6e0f1a2b3c4d", resourceVersion="48213",
                              creationTimestamp="2026-11-20T10:04:11Z")  # fmt: skip
    stored["spec"].update(serviceAccountName="default", schedulerName="default-scheduler")
    stored["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    raw.update(level="RequestResponse", requestObject=pod, responseObject=stored)
    return raw


def exec_token_read(extra_query: str = "") -> dict[str, Any]:
    """`kubectl exec POD -- cat /var/run/secrets/kubernetes.io/serviceaccount/token`: the session opened (101)."""
    return _event(
        "2b7f0c1e-5d3a-4e8b-9c61-0a4f3e2d1c02", "ResponseStarted",
        f"/api/v1/namespaces/payments/pods/api-7d9f8c6b5d-x2k4q/exec?{TOKEN_READ}{extra_query}"
        "&container=app&stderr=true&stdout=true",
        "create",
        {"resource": "pods", "namespace": "payments", "name": "api-7d9f8c6b5d-x2k4q", "apiVersion": "v1",
         "subresource": "exec"},
        101,
    )  # fmt: skip


def copy_out() -> dict[str, Any]:
    """`kubectl cp payments/ledger-db-0:/var/lib/postgresql/data ./data`: `tar cf - PATH` streamed out (101)."""
    return _event(
        "2b7f0c1e-5d3a-4e8b-9c61-0a4f3e2d1c03", "ResponseStarted",
        f"/api/v1/namespaces/payments/pods/ledger-db-0/exec?{COPY_OUT}&container=postgres&stderr=true&stdout=true",
        "create",
        {"resource": "pods", "namespace": "payments", "name": "ledger-db-0", "apiVersion": "v1",
         "subresource": "exec"},
        101,
    )  # fmt: skip


def without_annotations(raw: dict[str, Any]) -> dict[str, Any]:
    """The event as an exporter that drops annotations forwards it."""
    stripped = copy.deepcopy(raw)
    stripped.pop("annotations", None)
    return stripped
