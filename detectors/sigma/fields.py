"""Sigma field names for `logsource: product: kubernetes, service: audit`, as auditwatch field paths.

Sigma's Kubernetes audit rules name fields by their dotted path in the audit Event (`verb`,
`objectRef.resource`, `responseStatus.code`), which is what `detectors.fieldpath` reads. A few rules use
names that are not Event paths; this table maps them (see docs/sigma.md).
"""

from __future__ import annotations

from typing import Final

# Sigma field name -> auditwatch field path (docs/rules.md, "Field paths")
FIELD_MAPPING: Final[dict[str, str]] = {
    # SigmaHQ's sidecar-injection and RBAC-enumeration rules write the bare name
    "apiGroup": "objectRef.apiGroup",
    # pseudo-fields: "somewhere in the pod spec(s) the request carries"
    "hostPath": "$volumes[*].hostPath.path",
    "capabilities": "$containers[*].securityContext.capabilities.add",
}

# Top-level keys of an audit Event (audit.k8s.io/v1, plus v1beta1's `timestamp` and `metadata`).
EVENT_ROOTS: Final[frozenset[str]] = frozenset(
    {
        "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "impersonatedUser",
        "sourceIPs", "userAgent", "objectRef", "responseStatus", "requestObject", "responseObject",
        "requestReceivedTimestamp", "stageTimestamp", "annotations", "timestamp", "metadata",
    }
)  # fmt: skip

# Fields that the apiserver always writes as JSON integers.
INTEGER_FIELDS: Final[frozenset[str]] = frozenset({"responseStatus.code"})

# Fields with a closed set of values.
ENUM_FIELDS: Final[dict[str, frozenset[str]]] = {
    "stage": frozenset({"requestreceived", "responsestarted", "responsecomplete", "panic"}),
    "level": frozenset({"none", "metadata", "request", "requestresponse"}),
}


def audit_path(field: str) -> str:
    """The auditwatch field path that a Sigma field name reads."""
    return FIELD_MAPPING.get(field, field)


def path_root(path: str) -> str:
    """`objectRef.resource` -> `objectRef`; `annotations['a.b/c']` -> `annotations`; `$volumes[*]...` -> `$volumes`."""
    end = len(path)
    for sep in (".", "["):
        i = path.find(sep)
        if i != -1:
            end = min(end, i)
    return path[:end]
