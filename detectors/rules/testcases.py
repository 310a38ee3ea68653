"""A native rule's `tests:`, which `auditwatch rules test` runs: `{name, expect, event}` for single-event rules,
`{name, expect, sequence: [...]}` for stateful ones. Each case, and each item of a sequence, is checked apart,
so that a rule's errors are all reported at once (each at the line of its case or item)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from detectors.base import RuleTest
from detectors.errors import RuleError, RuleErrors, check_each, collect
from detectors.events import parse_time
from detectors.loading.yamlload import LocatedDict, LocatedList, plain
from detectors.rules.durations import parse_duration

_SHAPE = "{name, expect: alert|none, event}"
_SEQUENCE_SHAPE = "{name, expect: alert|none, sequence: [{event, repeat?, every?}], alerts?}"


def parse_tests(node: LocatedDict, *, path: str, sequences: bool = False) -> tuple[RuleTest, ...]:
    """The rule's test cases; RuleErrors with the errors of all of them.

    A sequence item is `{event, repeat?: N, every?: 30s}`: the event, then N-1 copies `every` apart with
    their own auditIDs, so a test of "20 denied reads in 15 minutes" stays readable.
    """
    raw = node.get("tests")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleError("tests must be a list", path=path, line=node.line_of("tests"))
    lines = [raw.line_of(i) if isinstance(raw, LocatedList) else node.line_of("tests") for i in range(len(raw))]
    return tuple(check_each(partial(_parse_case, case, path, lines[i], sequences) for i, case in enumerate(raw)))


def _parse_case(case: Any, path: str, line: int, sequences: bool) -> RuleTest:
    body_key = "sequence" if sequences else "event"
    allowed = {"name", "expect", body_key} | ({"alerts"} if sequences else set())
    if not isinstance(case, dict) or not {"name", "expect", body_key} <= set(case) or set(case) - allowed:
        raise RuleError(f"a test is {_SEQUENCE_SHAPE if sequences else _SHAPE}", path=path, line=line)
    errors: list[RuleError] = []
    if case["expect"] not in ("alert", "none"):
        errors.append(RuleError("test expect must be 'alert' or 'none'", path=path, line=line))
    expected_count = case.get("alerts")
    if expected_count is not None and (not isinstance(expected_count, int) or isinstance(expected_count, bool)):
        wanted = "test alerts must be an integer (how many alerts the sequence raises)"
        errors.append(RuleError(wanted, path=path, line=line))
    if sequences:
        events = collect(errors, partial(_expand_sequence, case["sequence"], path, line), [])
    else:
        events = [case["event"]]
    if not all(isinstance(event, dict) for event in events):
        errors.append(RuleError("test event must be a mapping (a full audit Event)", path=path, line=line))
    if errors or not events:  # no events: the sequence's errors are above
        raise RuleErrors(errors)
    return RuleTest(str(case["name"]), case["expect"] == "alert", plain(events[0]), line,
                    tuple(plain(e) for e in events), expected_count)  # fmt: skip


def _expand_sequence(items: Any, path: str, line: int) -> list[Any]:
    if not isinstance(items, list) or not items:
        raise RuleError("sequence must be a non-empty list of {event, repeat?, every?}", path=path, line=line)
    expanded = check_each(partial(_expand_item, item, path, line) for item in items)
    return [event for events in expanded for event in events]


def _expand_item(item: Any, path: str, line: int) -> list[Any]:
    """A sequence item's events: the event, then `repeat` - 1 copies `every` apart."""
    where = item.line if isinstance(item, LocatedDict) else line
    if not isinstance(item, dict) or "event" not in item or set(item) - {"event", "repeat", "every"}:
        raise RuleError("a sequence item is {event, repeat?, every?}", path=path, line=where)
    errors: list[RuleError] = []
    repeat = item.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10_000:
        errors.append(RuleError("repeat must be an integer from 1 to 10000", path=path, line=where))
    every = collect(errors, partial(parse_duration, item.get("every", "1s"), path=path, line=where, what="every"), 0.0)
    if errors:
        raise RuleErrors(errors)
    base = item["event"]
    return [base, *(_shifted(base, n, every * n) for n in range(1, repeat))]


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
