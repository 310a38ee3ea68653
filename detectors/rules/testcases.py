"""A native rule's `tests:`, which `auditwatch rules test` runs: `{name, expect, event}` for single-event rules,
`{name, expect, sequence: [...]}` for stateful ones."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from detectors.base import RuleTest
from detectors.errors import RuleError
from detectors.events import parse_time
from detectors.loading.yamlload import LocatedDict, LocatedList, plain
from detectors.rules.durations import parse_duration


def parse_tests(node: LocatedDict, *, path: str, sequences: bool = False) -> tuple[RuleTest, ...]:
    """`{name, expect, event}` for single-event rules; `{name, expect, sequence: [...]}` for stateful ones.

    A sequence item is `{event, repeat?: N, every?: 30s}`: the event, then N-1 copies `every` apart with
    their own auditIDs, so a test of "20 denied reads in 15 minutes" stays readable.
    """
    raw = node.get("tests")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleError("tests must be a list", path=path, line=node.line_of("tests"))
    tests: list[RuleTest] = []
    body_key = "sequence" if sequences else "event"
    for i, case in enumerate(raw):
        line = raw.line_of(i) if isinstance(raw, LocatedList) else 0
        allowed = {"name", "expect", body_key} | ({"alerts"} if sequences else set())
        if not isinstance(case, dict) or not {"name", "expect", body_key} <= set(case) or set(case) - allowed:
            shape = "{name, expect: alert|none, sequence: [{event, repeat?, every?}], alerts?}" if sequences else (
                "{name, expect: alert|none, event}")  # fmt: skip
            raise RuleError(f"a test is {shape}", path=path, line=line)
        if case["expect"] not in ("alert", "none"):
            raise RuleError("test expect must be 'alert' or 'none'", path=path, line=line)
        expected_count = case.get("alerts")
        if expected_count is not None and (not isinstance(expected_count, int) or isinstance(expected_count, bool)):
            raise RuleError(
                "test alerts must be an integer (how many alerts the sequence raises)", path=path, line=line
            )
        events = _expand_sequence(case[body_key], path, line) if sequences else [case["event"]]
        for event in events:
            if not isinstance(event, dict):
                raise RuleError("test event must be a mapping (a full audit Event)", path=path, line=line)
        tests.append(
            RuleTest(str(case["name"]), case["expect"] == "alert", plain(events[0]), line,
                     tuple(plain(e) for e in events), expected_count)
        )  # fmt: skip
    return tuple(tests)


def _expand_sequence(items: Any, path: str, line: int) -> list[Any]:
    if not isinstance(items, list) or not items:
        raise RuleError("sequence must be a non-empty list of {event, repeat?, every?}", path=path, line=line)
    events: list[Any] = []
    for item in items:
        where = item.line if isinstance(item, LocatedDict) else line
        if not isinstance(item, dict) or "event" not in item or set(item) - {"event", "repeat", "every"}:
            raise RuleError("a sequence item is {event, repeat?, every?}", path=path, line=where)
        repeat = item.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10_000:
            raise RuleError("repeat must be an integer from 1 to 10000", path=path, line=where)
        every = parse_duration(item.get("every", "1s"), path=path, line=where, what="every")
        base = item["event"]
        events.append(base)
        for n in range(1, repeat):
            events.append(_shifted(base, n, every * n))
    return events


def _shifted(event: Any, n: int, seconds: float) -> Any:
    """A copy of a test event `seconds` later, with an auditID of its own (still UUID-shaped)."""
    copy = plain(event)
    if not isinstance(copy, dict):
        return copy
    audit_id = str(copy.get("auditID", ""))
    copy["auditID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{audit_id}#{n}"))
    for key in ("requestReceivedTimestamp", "stageTimestamp"):
        parsed = parse_time(copy.get(key))
        if parsed is not None:
            copy[key] = (parsed + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return copy
