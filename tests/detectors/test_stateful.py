"""Stateful rule types on realistic events: windows, first-seen, sequences, and state that survives."""

from __future__ import annotations

import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors.alerts import Alert
from detectors.base import SelfTested
from detectors.errors import RuleErrors
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.events import exec_event, find_event
from tests.support.stateful import HEADER, NEW_TERMS, SEQUENCE, THRESHOLD, at, denied_secret_get, grant, workload


def rule(tmp_path: Path, rule_id: str, body: str) -> Pipeline:
    path = tmp_path / f"{rule_id}.yaml"
    path.write_text(HEADER.format(id=rule_id, name=rule_id.replace("-", " ").title()) + textwrap.dedent(body))
    return Pipeline(load_rules([str(path)]))


def run(pipeline: Pipeline, events: list[dict[str, Any]]) -> list[Alert]:
    alerts: list[Alert] = []
    for raw in events:
        alerts.extend(pipeline.process(AuditEvent(raw=raw)))
    return alerts


def test_threshold_fires_once_per_burst_inside_the_window(tmp_path: Path) -> None:
    pipeline = rule(tmp_path, "denied-burst", THRESHOLD)
    base = denied_secret_get()
    burst = [at(base, 60 * i, n=i) for i in range(5)]  # 5 in 4 minutes
    alerts = run(pipeline, burst)
    assert len(alerts) == 1 and alerts[0].audit_id == burst[-1]["auditID"]
    assert alerts[0].details["count"] == 5 and alerts[0].details["key"] == {"$principal": "alice@example.com"}
    assert run(pipeline, [at(base, 300, n=9)]) == []  # the count restarted after the alert


def test_threshold_window_slides_and_keys_are_separate(tmp_path: Path) -> None:
    pipeline = rule(tmp_path, "denied-burst", THRESHOLD)
    base = denied_secret_get()
    spread = [at(base, 300 * i, n=i) for i in range(6)]  # 6 events, but never 5 within 15 minutes
    assert run(pipeline, spread) == []
    bob = [at(base, 5000 + i, n=100 + i, user={"username": "bob@example.com", "groups": ["devs"]}) for i in range(4)]
    alice = [at(base, 5000 + i, n=200 + i) for i in range(4)]
    assert run(pipeline, bob + alice) == []  # 4 + 4, not 5 of one principal


DISTINCT = """\
type: distinct_count
match:
  objectRef.resource: secrets
  verb: get
group_by: [$principal, "sourceIPs[-1]"]
window: 6m
distinct: {objectRef.name: 3}
"""


def test_distinct_count_needs_distinct_values(tmp_path: Path) -> None:
    pipeline = rule(tmp_path, "secret-spree", DISTINCT)
    base = denied_secret_get()
    same = [at(base, i, n=i) for i in range(10)]
    assert run(pipeline, same) == []  # ten reads of one secret
    names = [at(base, 1000 + i, n=20 + i, objectRef__name=f"creds-{i}") for i in range(3)]  # db-creds has expired
    (alert,) = run(pipeline, names)
    assert alert.details["distinct"]["objectRef.name"] == ["creds-0", "creds-1", "creds-2"]
    late = [at(base, 3000 + 400 * i, n=40 + i, objectRef__name=f"other-{i}") for i in range(3)]
    assert run(pipeline, late) == []  # three names, but not within 6 minutes


def test_new_terms_learns_first_then_alerts_on_novelty_only(tmp_path: Path) -> None:
    pipeline = rule(tmp_path, "new-ua", NEW_TERMS)
    base = denied_secret_get()
    day = 86400
    learning = [at(base, 0, n=1), at(base, day, n=2, userAgent="k9s/v0.32.5")]
    assert run(pipeline, learning) == []  # everything is new while learning
    assert run(pipeline, [at(base, 8 * day, n=3)]) == []  # seen on day 0, within 14 days
    (alert,) = run(pipeline, [at(base, 8 * day, n=4, userAgent="curl/8.5.0")])
    assert alert.details["new_terms"] == {"userAgent": "curl/8.5.0"}
    assert run(pipeline, [at(base, 8 * day + 60, n=5, userAgent="curl/8.5.0")]) == []  # once
    assert len(run(pipeline, [at(base, 30 * day, n=6, userAgent="k9s/v0.32.5")])) == 1  # forgotten after 14 days


def test_sequence_in_order_within_the_span(tmp_path: Path) -> None:
    pipeline = rule(tmp_path, "grant-then-deploy", SEQUENCE)
    steps = [at(grant(), 0, n=1), at(workload(), 120, n=2)]
    (alert,) = run(pipeline, steps)
    assert alert.details["audit_ids"] == [steps[0]["auditID"], steps[1]["auditID"]]
    assert "rbac-grant -> workload-change" in alert.message
    assert run(pipeline, [at(workload(), 200, n=3)]) == []  # the sequence was consumed


@pytest.mark.parametrize(
    "events",
    [
        [("workload", 0), ("grant", 60)],  # wrong order
        [("grant", 0), ("workload", 400)],  # too late
    ],
)
def test_sequence_out_of_order_or_too_late(tmp_path: Path, events: list[tuple[str, int]]) -> None:
    pipeline = rule(tmp_path, "grant-then-deploy", SEQUENCE)
    make = {"grant": grant, "workload": workload}
    assert run(pipeline, [at(make[kind](), t, n=i) for i, (kind, t) in enumerate(events)]) == []


def test_sequence_keys_by_principal(tmp_path: Path) -> None:
    pipeline = rule(tmp_path, "grant-then-deploy", SEQUENCE)
    other = at(workload(), 60, n=2, user={"username": "ci@example.com", "groups": ["ci"]})
    assert run(pipeline, [at(grant(), 0, n=1), other]) == []


def test_per_step_keys_follow_one_pod(tmp_path: Path) -> None:
    body = """\
    type: sequence
    by: [objectRef.namespace, objectRef.name]
    within: 30m
    steps:
      - name: pod-created
        match: {objectRef.resource: pods, verb: create}
      - name: exec
        match: {objectRef.resource: pods, objectRef.subresource: exec}
        stages: [ResponseStarted]
    """
    pipeline = rule(tmp_path, "pod-then-exec", body)
    created = find_event(
        lambda e: (
            e.get("objectRef", {}).get("resource") == "pods"
            and e["verb"] == "create"
            and e["stage"] == "ResponseComplete"
        )
    )
    created["objectRef"]["name"] = "web-7d9f8b6c5d-x2x9k"
    other_pod = at(exec_event(), 60, n=2, objectRef__name="web-other")
    assert run(pipeline, [at(created, 0, n=1), other_pod]) == []
    assert len(run(pipeline, [at(exec_event(), 90, n=3)])) == 1


def test_snapshot_restore_continues_exactly(tmp_path: Path) -> None:
    """Stopping after any event and resuming from a JSON snapshot gives the alerts of an uninterrupted run."""
    bodies = {"denied-burst": THRESHOLD, "secret-spree": DISTINCT, "new-ua": NEW_TERMS, "grant-then-deploy": SEQUENCE}
    for rule_id, body in bodies.items():
        (tmp_path / f"{rule_id}.yaml").write_text(HEADER.format(id=rule_id, name=rule_id) + body)
    base = denied_secret_get()
    day = 86400
    stream = (
        [at(base, 60 * i, n=i) for i in range(5)]
        + [at(base, 400 + i, n=10 + i, objectRef__name=f"c-{i}") for i in range(3)]
        + [at(grant(), 600, n=20), at(workload(), 700, n=21)]
        + [
            at(base, 8 * day, n=30, userAgent="curl/8.5.0"),
            at(base, 8 * day + 5, n=31, userAgent="python-requests/2.31"),
        ]
    )
    whole = [a.id for a in run(Pipeline(load_rules([str(tmp_path)])), stream)]
    assert len(whole) == 5
    for cut in range(1, len(stream)):
        first = Pipeline(load_rules([str(tmp_path)]))
        ids = [a.id for a in run(first, stream[:cut])]
        saved = orjson.loads(orjson.dumps(first.snapshot()))  # through JSON, as the store keeps it
        second = Pipeline(load_rules([str(tmp_path)]))
        second.restore(saved)
        ids += [a.id for a in run(second, stream[cut:])]
        assert ids == whole, f"cut after event {cut}"


def test_fresh_pipelines_do_not_share_state(tmp_path: Path) -> None:
    template = rule(tmp_path, "denied-burst", THRESHOLD)
    a, b = template.fresh(), template.fresh()
    base = denied_secret_get()
    run(a, [at(base, i, n=i) for i in range(4)])
    assert run(b, [at(base, 10, n=10)]) == []  # b has seen one event, not five
    assert len(run(a, [at(base, 10, n=11)])) == 1


def test_state_is_bounded_by_the_window(tmp_path: Path) -> None:
    """Keys expire with time; memory per live key stays small (measured, reported in the README)."""
    pipeline = rule(tmp_path, "new-ua", NEW_TERMS)
    detector: Any = pipeline.stateful[0]
    base = denied_secret_get()

    def users(start: int, count: int, seconds: float) -> Iterator[dict[str, Any]]:
        for i in range(count):
            yield at(base, seconds, n=start + i, user={"username": f"sa-{start + i}", "groups": []})

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    run(pipeline, list(users(0, 5000, 0)))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_key = sum(s.size_diff for s in after.compare_to(before, "filename")) / 5000
    assert len(detector._last_seen) == 5000
    assert per_key < 600, per_key
    run(pipeline, list(users(10_000, 5000, 20 * 86400)))  # 20 days later: the first 5000 are past history
    assert len(detector._last_seen) <= 5000 + 4096


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "type: threshold\nmatch: {verb: get}\ngroup_by: [user.username]\nwindow: 15m\n",
            "missing required key 'threshold'",
        ),
        (
            "type: threshold\nmatch: {verb: get}\ngroup_by: [user.username]\nwindow: soon\nthreshold: 3\n",
            "window must be a duration",
        ),
        (
            "type: threshold\nmatch: {verb: get}\ngroup_by: [user..x]\nwindow: 1m\nthreshold: 3\n",
            "group_by: bad field path",
        ),
        ("type: sequence\nby: [$principal]\nwithin: 1m\nsteps: [{match: {verb: get}}]\n", "at least two steps"),
        (
            "type: new_terms\nmatch: {verb: get}\ngroup_by: [$principal]\nterms: [userAgent]\nhistory: 7d\nlearn: 1d\n",
            "unknown key 'learn'",
        ),
        ("type: teleport\nmatch: {verb: get}\n", "unknown rule type 'teleport'"),
    ],
)
def test_stateful_rule_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(HEADER.format(id="broken", name="Broken") + body)
    with pytest.raises(RuleErrors, match=message) as info:
        load_rules([str(path)])
    assert str(info.value).startswith(f"{path}:")


def test_inline_sequence_tests_run(tmp_path: Path) -> None:
    from detectors.loading.testing import run_case

    event = orjson.dumps(denied_secret_get()).decode()
    path = tmp_path / "denied-burst.yaml"
    path.write_text(HEADER.format(id="denied-burst", name="Denied burst") + THRESHOLD + textwrap.dedent(f"""\
        tests:
          - name: five in five minutes
            expect: alert
            alerts: 1
            sequence:
              - event: {event}
                repeat: 5
                every: 1m
          - name: four is not enough
            expect: none
            sequence:
              - event: {event}
                repeat: 4
                every: 1m
        """))  # fmt: skip
    (detector,) = load_rules([str(path)])
    assert isinstance(detector, SelfTested)
    results = [run_case(detector, case, path=str(path)) for case in detector.tests]
    assert [r.ok for r in results] == [True, True], [r.detail for r in results]


def test_a_redelivered_event_counts_once_and_the_memory_of_events_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detectors.pipeline as pipeline_module

    pipeline = rule(tmp_path, "denied-burst", THRESHOLD)
    base = denied_secret_get()
    four = [at(base, i, n=i) for i in range(4)]
    assert run(pipeline, four + four) == []  # a retried batch: still 4, not 8
    assert len(run(pipeline, [at(base, 10, n=10)])) == 1
    monkeypatch.setattr(pipeline_module, "DEDUPE_WINDOW", 100)
    fresh = pipeline.fresh()
    run(fresh, [at(base, 1000 + i, n=1000 + i, user={"username": f"u{i}", "groups": []}) for i in range(1000)])
    assert len(fresh._seen or ()) == 100 and len(fresh._seen_order) == 100


def _plain_distinct_window(events: list[tuple[int, str]], window: float, minimum: int) -> list[int]:
    """What DISTINCT (one key) must answer, computed the plain way: which events alert."""
    seen: dict[str, float] = {}
    alerts = []
    for i, (t, name) in enumerate(events):
        seen[name] = t
        seen = {v: ts for v, ts in seen.items() if ts > t - window}
        if len(seen) >= minimum:
            alerts.append(i)
            seen = {}
    return alerts


@settings(max_examples=150, deadline=None)
@example(times=[(0, "a"), (400, "b"), (-100, "c"), (300, "d")], cut=0)
@given(
    times=st.lists(st.tuples(st.integers(0, 1200), st.sampled_from("abcde")), min_size=1, max_size=30),
    cut=st.integers(0, 30),
)
def test_distinct_count_windows_are_exact_with_late_events_and_restored_state(
    tmp_path_factory: pytest.TempPathFactory, times: list[tuple[int, str]], cut: int
) -> None:
    """Events out of time order and a snapshot whose values are in another order (as earlier versions wrote
    them) expire exactly what a plain scan of the window would."""
    tmp_path = tmp_path_factory.mktemp("distinct")
    base = denied_secret_get()
    stream = [at(base, t, n=i, objectRef__name=name) for i, (t, name) in enumerate(times)]
    first = rule(tmp_path, "secret-spree", DISTINCT)
    fired = [i for i, raw in enumerate(stream[:cut]) if run(first, [raw])]
    state = first.snapshot()
    for _, per_field in state["secret-spree"]["values"]:
        per_field[0] = dict(reversed(per_field[0].items()))
    second = rule(tmp_path, "secret-spree", DISTINCT)
    second.restore(orjson.loads(orjson.dumps(state)))
    fired += [cut + i for i, raw in enumerate(stream[cut:]) if run(second, [raw])]
    assert fired == _plain_distinct_window(times, 360, 3)
