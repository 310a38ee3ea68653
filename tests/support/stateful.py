"""Stateful rules written by tests, and the scenario's events moved in time to feed them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.events import find_event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HEADER = "id: {id}\nname: {name}\nseverity: medium\ndescription: A stateful rule written by a test.\nmitre: T1613\n"

NEW_TERMS = """\
type: new_terms
match:
  objectRef.resource: secrets
group_by: [$principal]
terms: [userAgent]
history: 14d
learning: 7d
"""


THRESHOLD = """\
type: threshold
match:
  objectRef.resource: secrets
  $decision: forbid
group_by: [$principal]
window: 15m
threshold: 5
"""


SEQUENCE = """\
type: sequence
by: [$principal]
within: 5m
steps:
  - name: rbac-grant
    match:
      objectRef.resource: [rolebindings, clusterrolebindings]
      verb: create
  - name: workload-change
    match:
      objectRef.resource: [deployments, daemonsets]
      verb: [create, patch]
"""


def at(event: dict[str, Any], seconds: float, *, n: int = 0, **changes: Any) -> dict[str, Any]:
    """A copy of `event` at T0 + seconds, with its own auditID and some fields changed."""
    out = copy.deepcopy(event)
    when = T0 + timedelta(seconds=seconds)
    out["auditID"] = f"5d0c1c6e-3a1b-4c2d-9e8f-{n:012d}"
    out["requestReceivedTimestamp"] = (when - timedelta(milliseconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out["stageTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for path, value in changes.items():
        node = out
        keys = path.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def denied_secret_get() -> dict[str, Any]:
    event = find_event(
        lambda e: (
            e.get("objectRef", {}).get("resource") == "pods" and e["verb"] == "get" and e["stage"] == "ResponseComplete"
        )
    )
    event.update(
        verb="get",
        requestURI="/api/v1/namespaces/payments/secrets/db-creds",
        objectRef={"resource": "secrets", "namespace": "payments", "name": "db-creds", "apiVersion": "v1"},
        responseStatus={"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
                        "message": 'secrets "db-creds" is forbidden: User "alice@example.com" cannot get resource '
                                   '"secrets" in API group "" in the namespace "payments"'},
        annotations={"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""},
    )  # fmt: skip
    return event


def grant() -> dict[str, Any]:
    return find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "rolebindings" and e["stage"] == "ResponseComplete"
    )


def workload() -> dict[str, Any]:
    return find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["stage"] == "ResponseComplete"
    )
