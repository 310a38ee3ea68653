"""Realistic audit events from the scenario log (controller/kubelet traffic plus three attacks), and builders."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.support.paths import SCENARIO


def scenario_events() -> list[dict[str, Any]]:
    """Realistic events as the apiserver writes them: controller/kubelet traffic plus three attacks."""
    return [orjson.loads(line) for line in SCENARIO.read_bytes().splitlines() if line.strip()]


def find_event(predicate: Any) -> dict[str, Any]:
    for event in scenario_events():
        if predicate(event):
            return copy.deepcopy(event)
    raise LookupError("no such event in the scenario")


def exec_event() -> dict[str, Any]:
    return find_event(lambda e: e.get("objectRef", {}).get("subresource") == "exec" and e["stage"] == "ResponseStarted")


def exec_sessions(n: int) -> list[dict[str, Any]]:
    """`n` kubectl exec sessions happening now, each its own request."""
    out = []
    for i in range(n):
        event = copy.deepcopy(exec_event())
        now = datetime.now(UTC) + timedelta(milliseconds=i)
        event["auditID"] = str(uuid.uuid4())
        event["requestReceivedTimestamp"] = (now - timedelta(milliseconds=20)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event["stageTimestamp"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(event)
    return out


def lease_event() -> dict[str, Any]:
    return find_event(lambda e: e.get("objectRef", {}).get("resource") == "leases" and e["stage"] == "ResponseComplete")


def event_list(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})


def batch_of_400() -> list[dict[str, Any]]:
    """400 events like one apiserver POST: the scenario's real mix, padded with lease updates."""
    items = scenario_events()
    base = lease_event()
    i = 0
    while len(items) < 400:
        clone = copy.deepcopy(base)
        clone["auditID"] = f"0e0c6a3c-1b2d-4e5f-8a9b-{i:012d}"
        items.append(clone)
        i += 1
    return items


def another_like(raw: dict[str, Any], n: int) -> dict[str, Any]:
    """A new event of the same kind as `raw` (same user, verb, object), `n` minutes later: its own auditID and
    timestamps, so its alerts get new ids."""
    clone = copy.deepcopy(raw)
    clone["auditID"] = f"{clone['auditID'][:-12]}{n:012d}"
    for key in ("requestReceivedTimestamp", "stageTimestamp"):
        clone[key] = clone[key][:14] + f"{(int(clone[key][14:16]) + n) % 60:02d}" + clone[key][16:]
    return clone
