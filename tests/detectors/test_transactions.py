"""Pipeline batches: a rolled-back batch leaves no trace, in the seen events or in any stateful rule type.

Property: for random event streams cut into random batches, some rolled back (then redelivered, or given
up), the state and alerts equal those of a pipeline that only ever saw the committed batches.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import detectors.pipeline as pipeline_module
import detectors.rules.stateful as stateful_module
from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules.journal import KeyJournal
from tests.support.anomaly import case_events, make_rule, shifted
from tests.support.events import exec_event
from tests.support.stateful import HEADER, SEQUENCE, at, denied_secret_get, grant, workload

RULES = {
    "threshold": """\
type: threshold
match: {objectRef.resource: secrets}
group_by: [$principal]
window: 5m
threshold: 3
""",
    "distinct_count": """\
type: distinct_count
match: {objectRef.resource: secrets, verb: get}
group_by: [$principal]
window: 6m
distinct: {objectRef.name: 3}
""",
    "new_terms": """\
type: new_terms
match: {objectRef.resource: secrets}
group_by: [$principal]
terms: [userAgent]
history: 10m
learning: 2m
""",
    "sequence": SEQUENCE,
}
PRINCIPALS = ["alice@example.com", "bob@example.com", "carol@example.com"]
AGENTS = ["kubectl/v1.31.2", "k9s/v0.32.5", "curl/8.5.0", "python-requests/2.32"]


def native_pipeline(tmp_path: Path, rule_type: str) -> Pipeline:
    rule_id = f"t-{rule_type.replace('_', '-')}"
    path = tmp_path / f"{rule_id}.yaml"
    path.write_text(HEADER.format(id=rule_id, name=rule_type) + RULES[rule_type])
    return Pipeline(load_rules([str(path)]))


def native_stream(rng: random.Random, count: int) -> list[AuditEvent]:
    """Secret reads, grants and deployments by three principals, mostly in time order, with redeliveries."""
    kinds: list[Callable[[], dict[str, Any]]] = [denied_secret_get, denied_secret_get, grant, workload, exec_event]
    templates = [make() for make in kinds]
    events: list[AuditEvent] = []
    t = 0.0
    for n in range(count):
        if events and rng.random() < 0.08:  # a copy of a recent event (a retried batch, a record sent twice)
            events.append(AuditEvent(copy.deepcopy(rng.choice(events[-30:]).raw)))
            continue
        t += rng.uniform(0, 90)
        when = max(0.0, t - rng.uniform(0, 60)) if rng.random() < 0.2 else t  # some arrive late
        who = rng.choice(PRINCIPALS)
        raw = at(rng.choice(templates), when, n=n, user={"username": who, "groups": ["devs"]},
                 userAgent=rng.choice(AGENTS))  # fmt: skip
        if raw["objectRef"]["resource"] == "secrets":
            raw["objectRef"]["name"] = f"creds-{rng.randrange(5)}"
        events.append(AuditEvent(raw))
    return events


def batches_of(rng: random.Random, events: list[AuditEvent]) -> list[list[AuditEvent]]:
    out, i = [], 0
    while i < len(events):
        size = rng.randint(1, 15)
        out.append(events[i : i + size])
        i += size
    return out


def replay_with_rollbacks(
    rng: random.Random, subject: Pipeline, reference: Pipeline, batches: list[list[AuditEvent]]
) -> tuple[list[Alert], list[Alert]]:
    """Feed `subject` every batch in a transaction, rolling back at random (then redelivering the batch or
    giving it up); feed `reference` the committed batches only, without transactions."""
    got: list[Alert] = []
    expected: list[Alert] = []
    for batch in batches:
        while True:
            subject.begin()
            alerts = subject.process_all(batch, [])
            if rng.random() < 0.35:
                subject.rollback()
                if rng.random() < 0.6:
                    continue  # redelivered
                break  # given up: as if never sent
            subject.commit()
            got.extend(alerts)
            expected.extend(reference.process_all(batch))
            break
    return got, expected


def assert_same(subject: Pipeline, reference: Pipeline, got: list[Alert], expected: list[Alert]) -> None:
    assert got == expected
    assert subject.snapshot() == reference.snapshot()
    assert list(subject._seen_order) == list(reference._seen_order)
    assert subject._seen == reference._seen


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweeps and forgetting of seen events happen inside batches, so their undo is exercised too."""
    monkeypatch.setattr(stateful_module, "SWEEP_EVERY", 7)
    monkeypatch.setattr(pipeline_module, "DEDUPE_WINDOW", 40)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rule_type", sorted(RULES))
@pytest.mark.usefixtures("small_limits")
def test_rolled_back_batches_leave_no_trace(tmp_path: Path, rule_type: str, seed: int) -> None:
    rng = random.Random(f"{rule_type}-{seed}")
    events = native_stream(rng, 250)
    subject, reference = native_pipeline(tmp_path, rule_type), native_pipeline(tmp_path, rule_type)
    got, expected = replay_with_rollbacks(rng, subject, reference, batches_of(rng, events))
    assert expected, "the stream should make the rule alert"
    assert_same(subject, reference, got, expected)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.usefixtures("small_limits")
def test_rolled_back_batches_leave_no_trace_in_the_anomaly_rule(seed: int) -> None:
    rng = random.Random(seed)
    week = case_events("a week of alice")
    burst = week[-6:]  # three episodes, hours apart: a batch given up cannot take them all
    events = week + [shifted(e, hours * 3600) for hours in (7, 14) for e in burst]
    subject, reference = Pipeline([make_rule(warmup_s=3600.0)]), Pipeline([make_rule(warmup_s=3600.0)])
    got, expected = replay_with_rollbacks(rng, subject, reference, batches_of(rng, events))
    assert expected, "the burst at the end should alert"
    assert_same(subject, reference, got, expected)


def test_a_batch_sees_its_own_changes_and_commit_keeps_them(tmp_path: Path) -> None:
    pipeline = native_pipeline(tmp_path, "threshold")
    base = denied_secret_get()
    three = [AuditEvent(at(base, i, n=i)) for i in range(3)]
    with pipeline.batch():
        assert len(pipeline.process_all(three)) == 1
    with pytest.raises(RuntimeError), pipeline.batch():  # a failed write: the context manager rolls back
        assert pipeline.process_all([AuditEvent(at(base, 10 + i, n=10 + i)) for i in range(3)])
        raise RuntimeError("store down")
    assert pipeline.process_all(three) == []  # committed: still seen
    assert len(pipeline.process_all([AuditEvent(at(base, 10 + i, n=10 + i)) for i in range(3)])) == 1  # not seen


def test_batches_do_not_nest_and_restore_needs_none_open(tmp_path: Path) -> None:
    pipeline = native_pipeline(tmp_path, "sequence")
    pipeline.begin()
    with pytest.raises(RuntimeError):
        pipeline.begin()
    with pytest.raises(RuntimeError):
        pipeline.restore({})
    pipeline.rollback()
    pipeline.rollback()  # nothing open: nothing to do
    pipeline.restore({})


class Counter:
    """A stateful detector without a journal of its own: the pipeline snapshots it at `begin()`."""

    id = "counter"
    stages = None
    resources = None

    def __init__(self) -> None:
        self.count = 0

    def detect(self, event: AuditEvent) -> list[Alert]:
        self.count += 1
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"count": self.count}

    def restore(self, state: dict[str, Any]) -> None:
        self.count = state.get("count", 0)


def test_stateful_detectors_without_a_journal_are_restored_from_a_snapshot() -> None:
    counter = Counter()
    pipeline = Pipeline([counter])
    pipeline.process(AuditEvent(exec_event()))
    pipeline.begin()
    pipeline.process(AuditEvent(at(exec_event(), 5, n=5)))
    assert counter.count == 2
    pipeline.rollback()
    assert counter.count == 1


def test_key_journal_restores_values_and_order() -> None:
    table = {"a": [1], "b": [2], "c": [3]}
    journal = KeyJournal(table, list)
    journal.touch("a")
    table["a"].append(9)
    journal.remove("b")
    journal.touch("d")
    table["d"] = [4]
    journal.touch("b")
    table["b"] = [5]  # deleted, then created again: goes to the end
    journal.replace([("c", [3]), ("z", [0])])
    journal.undo()
    assert table == {"a": [1], "b": [2], "c": [3]} and list(table) == ["a", "b", "c"]
