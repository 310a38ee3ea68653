"""Alerts to store: realistic exec alerts spread over rules, namespaces, severities and time."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from tests.support.events import exec_event


def alerts(n: int) -> list[Alert]:
    out = []
    base = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    for i in range(n):
        raw = copy.deepcopy(exec_event())
        raw["auditID"] = f"9b1deb4d-3b7d-4bad-9bdd-2b0d7b3d{i:04d}"
        raw["stageTimestamp"] = (base + timedelta(seconds=i // 2)).isoformat().replace("+00:00", "Z")
        raw["objectRef"]["namespace"] = "shop" if i % 2 else "payments"
        out.append(
            make_alert(rule_id="pod-exec-attach" if i % 3 else "other-rule", rule_name="Exec", mitre=("T1609",),
                       severity=Severity.MEDIUM if i % 4 else Severity.HIGH, message="m", event=AuditEvent(raw=raw))
        )  # fmt: skip
    return out


def live_alerts(
    n: int, *, principals: int = 1, suppress_s: float = 3600, tag: str = "a", who: str = "intruder"
) -> list[Alert]:
    """`n` exec alerts happening now (their groups still open), spread over `principals` users named `who-N`:
    one alert group per principal. `tag` keeps the auditIDs of separate calls apart."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        raw = copy.deepcopy(exec_event())
        raw["auditID"] = f"{tag}-{i:04d}-{now.timestamp():.6f}"
        raw["stageTimestamp"] = (now + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
        raw["user"]["username"] = f"{who}-{i % principals}@example.com"
        out.append(
            make_alert(rule_id="pod-exec-attach", rule_name="Exec or attach into a pod", mitre=("T1609",),
                       severity=Severity.HIGH, message=f"exec #{i}", event=AuditEvent(raw=raw), suppress_s=suppress_s)
        )  # fmt: skip
    return out
