"""Poisoned inputs the isolation tests share: a user rule type that raises on a poisoned field, the event that
poisons it, an event with NUL characters, and a batch that mixes real traffic with stateful bursts."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from detectors.loading.yamlload import LocatedDict
from tests.support.events import exec_event, find_event, scenario_events
from tests.support.stateful import HEADER, SEQUENCE, THRESHOLD, at, denied_secret_get, grant, workload


@dataclass(frozen=True)
class AppLabelRule:
    """A user's rule type: pods or deployments created with an `app` label from a list. It looks the label up
    in a set, so a label that is not a string but a list (a poisoned field) makes it raise TypeError."""

    id: str
    apps: frozenset[str]
    stages: frozenset[str] | None = frozenset({"ResponseComplete"})
    resources: frozenset[str] | None = frozenset({"pods", "deployments"})

    def detect(self, event: AuditEvent) -> list[Alert]:
        labels = ((event.raw.get("requestObject") or {}).get("metadata") or {}).get("labels") or {}
        if event.verb != "create" or not {labels.get("app")} & self.apps:
            return []
        return [make_alert(rule_id=self.id, rule_name="Watched app", severity=Severity.LOW, mitre=(),
                           message=f"{event.resource} of app {labels['app']} created", event=event)]  # fmt: skip

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> AppLabelRule:
        return cls(id=node["id"], apps=frozenset(node["apps"]))


def poisoned_deployment() -> dict[str, Any]:
    """mallory's privileged deployment (built-in rules alert on it), again, with its `app` label a list."""
    deployment = find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["verb"] == "create"
        and e["stage"] == "ResponseComplete" and e["user"]["username"] == "mallory@example.com"
    )  # fmt: skip
    deployment = copy.deepcopy(deployment)
    deployment["auditID"] = "0badf00d-0000-4000-8000-000000000001"
    deployment["requestObject"].setdefault("metadata", {})["labels"] = {"app": ["web", "miner"]}
    return deployment


def nul_event() -> dict[str, Any]:
    """An exec event with NUL characters where clients put them: the user agent, a name, a request body."""
    raw = exec_event()
    raw["auditID"] = "nul\x00-audit-id"
    raw["userAgent"] = "kubectl/v1.31.2\x00 (linux/amd64)"
    raw["objectRef"]["name"] = "web-7d9f8b6c5d\x00-x2x9k"
    deep: dict[str, Any] = {"note": "hidden\x00here", "k\x00ey": ["a\x00", {"b": "\x00"}]}
    for level in range(30):
        deep = {f"level{level}": deep}
    raw["requestObject"] = deep
    return raw


def rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    for rule_id, body in (("denied-burst", THRESHOLD), ("grant-then-deploy", SEQUENCE)):
        (rules / f"{rule_id}.yaml").write_text(HEADER.format(id=rule_id, name=rule_id) + body)
    return rules


def mixed_batch() -> list[Any]:
    """The scenario's real traffic, a burst of denied secret reads, a grant then a deployment, an event sent
    twice within the batch, and an item that is not an event."""
    denied = [at(denied_secret_get(), 60 * i, n=10 + i) for i in range(5)]
    sequence = [at(grant(), 0, n=20), at(workload(), 90, n=21)]
    broken = copy.deepcopy(denied[0])
    del broken["auditID"]
    items: list[Any] = [*scenario_events(), *denied, *sequence, denied[2], broken]
    return items
