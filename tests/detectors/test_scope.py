"""Routing by scope (detectors.scope): fewer detectors meet each event, and the alerts stay exactly the same."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import orjson

from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.scope import route_key
from detectors.validation import valid_route_key
from simulation import ClusterProfile, epoch_us, labelled_stream, plan_campaigns

DAY_US = 86_400 * 1_000_000

RULE = """\
id: {id}
name: {id}
severity: low
description: d
mitre: T1078
false_positives: none
match:
{match}
"""


def _pipeline(tmp_path: Path, match: str) -> Pipeline:
    path = tmp_path / "r.yaml"
    path.write_text(RULE.format(id="r", match=textwrap.indent(textwrap.dedent(match), "  ")))
    return Pipeline(load_rules([str(path)]))


def _event(verb: str, resource: str | None = None, code: int = 200, **extra: Any) -> AuditEvent:
    raw: dict[str, Any] = {"auditID": "a", "stage": "ResponseComplete", "verb": verb, "requestURI": "/x",
                           "stageTimestamp": "2026-11-20T08:00:00Z", "responseStatus": {"code": code}, **extra}  # fmt: skip
    if resource is not None:
        raw["objectRef"] = {"resource": resource}
    return AuditEvent(raw)


def test_a_rule_meets_only_the_events_its_key_fields_admit(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "verb: [get, list]\nuser.username: {prefix: alice}")
    assert pipeline.candidates(_event("get", "pods"))
    assert not pipeline.candidates(_event("update", "leases"))
    # the same route with the declared scope only: the rule meets every completed event
    assert Pipeline(pipeline.detectors, routing="declared").candidates(_event("update", "leases"))


def test_any_not_and_fields_outside_the_key_stay_exact(tmp_path: Path) -> None:
    pipeline = _pipeline(
        tmp_path,
        """\
        any:
          - {verb: delete, objectRef.subresource: {exists: false}}
          - {responseStatus.code: 403, user.username: bob}
        not: {objectRef.resource: events}
        """,
    )
    assert pipeline.candidates(_event("delete", "pods"))
    assert pipeline.candidates(_event("get", "pods", code=403))  # user.username unknown from the key: meets it
    assert not pipeline.candidates(_event("get", "pods", code=200))
    assert not pipeline.candidates(_event("delete", "events"))
    assert not pipeline.candidates(_event("delete", objectRef={"resource": "pods", "subresource": "status"}))


def test_an_event_whose_key_fields_are_odd_meets_the_declared_route(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "verb: get")
    odd = _event("update", responseStatus=["not", "an", "object"])
    assert route_key(odd.raw) is None
    assert pipeline.candidates(odd)  # the rule's own condition decides


def _world_events(days: float) -> list[dict[str, Any]]:
    """The detection benchmark's noisy world, small: one node, `days` of it, campaigns in the second half."""
    profile = ClusterProfile(nodes=1, namespaces=("web", "shop"), humans=2, ci_accounts=1, seed=3, realism="noisy")
    start = epoch_us(profile.start)
    end = start + int(days * DAY_US)
    campaigns = plan_campaigns(profile, eval_start_us=start + (end - start) // 2, eval_end_us=end, seed=3)
    return [ev for _, ev, _ in labelled_stream(profile, duration_s=days * 86_400, campaigns=campaigns, seed=3)]


def _run(pipeline: Pipeline, events: list[dict[str, Any]]) -> tuple[list[Alert], int]:
    alerts: list[Alert] = []
    met = 0
    for i, raw in enumerate(events):
        event = AuditEvent(raw, f"world#{i}", {}, valid_route_key(raw))  # with its key, as replay's reader makes it
        met += len(pipeline.candidates(event))
        alerts.extend(pipeline.process(event))
    return alerts, met


def test_the_benchmark_world_gives_identical_alerts_and_state_with_and_without_scoped_routing() -> None:
    events = _world_events(0.12)
    # a short learning period, so that the learned baselines judge alerts within the few hours simulated
    detectors = load_rules(["builtin"], LoadOptions(baseline_learning_s=1800))
    scoped, declared = Pipeline(detectors), Pipeline(detectors, routing="declared")
    assert scoped.routing == "scoped" and scoped.fresh().routing == "scoped"
    optimised, reference = scoped.fresh(), declared.fresh()  # each with state of its own
    found, met = _run(optimised, events)
    expected, met_declared = _run(reference, events)
    fired = {a.rule_id for a in expected}
    # single-event, stateful (distinct count, sequence) and baselined rules all fire in this world
    assert len(expected) > 20 and {"privileged-container", "secret-read-burst", "denied-then-allowed"} <= fired
    assert "untrusted-image-registry" in fired
    assert found == expected  # ids, rules, severities, events, details: every field, in order
    assert met < met_declared * 0.7  # fewer detectors met the events
    assert orjson.dumps(optimised.snapshot(), default=str) == orjson.dumps(reference.snapshot(), default=str)
