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
    # the authorization decision: the annotation, else what the response code proves (events whose exporter
    # dropped annotations), as native rules' `$decision`
    "annotations.authorization.k8s.io/decision": "$decision",
    "annotations['authorization.k8s.io/decision']": "$decision",
    "authorization.k8s.io/decision": "$decision",
}

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
