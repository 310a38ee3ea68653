"""For the simulator's tests: the profile they share, timestamps, grouping by auditID, the red flags rules look for."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson

from simulation import ClusterProfile

Event = dict[str, Any]
PROFILE = ClusterProfile(nodes=5, seed=3)
DURATION_S = 2 * 3600

SUSPICIOUS_JSON = (
    '"subresource":"exec"',
    '"subresource":"attach"',
    '"subresource":"portforward"',
    '"subresource":"proxy"',
    '"subresource":"ephemeralcontainers"',
    '"privileged":true',
    '"hostPath"',
    '"hostNetwork":true',
    '"hostPID":true',
    '"hostIPC":true',
    "cluster-admin",
    '"NodePort"',
    "webhookconfigurations",
    '"SYS_ADMIN"',
    '"NET_ADMIN"',
    '"resource":"clusterrolebindings"',
    '"resource":"rolebindings"',
    '"resource":"clusterroles"',
    '"resource":"roles"',
    '"verbs":["*"]',
    "impersonatedUser",
)


def parse_ts(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z")


def by_audit_id(events: list[Event]) -> dict[str, list[Event]]:
    groups: dict[str, list[Event]] = defaultdict(list)
    for ev in events:
        groups[ev["auditID"]].append(ev)
    return groups


def suspicious(ev: Event) -> list[str]:
    """The single-event red flags most rule sets look for."""
    raw = orjson.dumps(ev).decode()
    hits = [p for p in SUSPICIOUS_JSON if p in raw]
    ref = ev.get("objectRef", {})
    user = ev["user"].get("username", "")
    if ref.get("resource") == "secrets" and (ev["verb"] in ("list", "watch") or "namespace" not in ref):
        hits.append("secrets read across namespaces")
    if user == "system:anonymous" and ev["requestURI"] not in ("/healthz", "/readyz", "/livez"):
        hits.append("anonymous access")
    if (
        ev["verb"] == "create"
        and ref.get("resource") == "pods"
        and ref.get("namespace") == "kube-system"
        and not user.startswith("system:")
    ):
        hits.append("human pod in kube-system")
    if ev["verb"] in ("delete", "deletecollection") and ref.get("resource") == "events":
        hits.append("events deleted")
    return hits
