"""A compiled condition (one generated function) decides exactly as the tree it comes from, read node by node."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.events import AuditEvent
from detectors.fieldpath import compile_path
from detectors.rules.condition_code import (
    All,
    Among,
    AnyOf,
    Check,
    Cond,
    Member,
    Not,
    Prefixed,
    cheapest_first,
    compiled,
)
from detectors.rules.conditions import condition_tree
from tests.support.fuzz_events import get_at, real_event, real_event_count, set_at

BUILTIN = Path(__file__).parents[2] / "detectors" / "rules" / "builtin"


def reference(cond: Cond, event: AuditEvent) -> bool:
    """The tree read node by node: the semantics the generated code must keep."""
    if isinstance(cond, All):
        return all(reference(part, event) for part in cond.parts)
    if isinstance(cond, AnyOf):
        return any(reference(part, event) for part in cond.parts)
    if isinstance(cond, Not):
        return not reference(cond.part, event)
    if isinstance(cond, Check):
        return cond.predicate(event)
    if isinstance(cond, Among):
        return any(isinstance(v, str) and v in cond.strings for v in cond.values(event))
    if isinstance(cond, Prefixed):
        return any(isinstance(v, str) and v.startswith(cond.prefixes) for v in cond.values(event))
    choices = cond.choices

    def hit(value: Any) -> bool:
        if type(value) in (str, int):
            return value in choices
        if type(value) is list:
            return any(type(v) in (str, int) and v in choices for v in value)
        return False

    outer = event.raw.get(cond.keys[0])
    if len(cond.keys) == 1:
        return hit(outer)
    if type(outer) is dict:
        return hit(outer.get(cond.keys[1]))
    return type(outer) is list and any(type(o) is dict and hit(o.get(cond.keys[1])) for o in outer)


VALUES: list[Any] = [None, "x", "y", 1, 2, True, 1.0, [], ["x"], [1, "z"], [True], [["x"]], {"b": "x"}, {"b": 2},
                     {"b": ["y", 1]}, {"b": {"x": 1}}, [{"b": "x"}], [{"b": 3}, "x"], [{"c": "x"}]]  # fmt: skip
MEMBERS = [Member(("a",), frozenset({"x"})), Member(("a", "b"), frozenset({"x", 1})), Member(("a", "b"), frozenset({2})),
           Member(("c",), frozenset({1, "y"}))]  # fmt: skip
TEST = Check(lambda event: event.raw.get("c") == "x")
AMONG = Among(compile_path("a.b[0]").values, frozenset({"x", "z"}))
PREFIXED = Prefixed(compile_path("a[*].b").values, ("x", "y"))
PREFIXED_INLINE = [Prefixed(compile_path("a.b").values, ("x", "y"), ("a", "b")),
                   Prefixed(compile_path("a").values, ("x",), ("a",))]  # fmt: skip


def trees() -> list[Cond]:
    leaves: list[Cond] = [*MEMBERS, TEST, AMONG, PREFIXED, *PREFIXED_INLINE]
    shapes: list[Cond] = list(leaves)
    for a, b in itertools.permutations(leaves, 2):
        shapes += [All((a, b)), AnyOf((a, b)), Not(a), All((Not(a), AnyOf((b, a))))]
    return shapes


@pytest.mark.parametrize("tree", trees(), ids=repr)
def test_every_small_tree_on_every_value_shape(tree: Cond) -> None:
    predicate = compiled(tree)
    for a, c in itertools.product(VALUES, ["x", 1, None, ["y"]]):
        event = AuditEvent({"a": a, "c": c})
        found = predicate(event)
        assert type(found) is bool
        assert found == reference(tree, event), (a, c)


def builtin_trees() -> list[tuple[str, Cond]]:
    out = []
    for path in sorted(BUILTIN.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        steps = [doc.get("match")] + [step.get("match") for step in doc.get("steps", []) if isinstance(step, dict)]
        out += [(f"{path.stem}[{i}]", condition_tree(m, path=str(path), line=0)) for i, m in enumerate(steps) if m]
    return out


def object_paths(doc: Any, below: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of an event's object members, parents first, not below request and response objects."""
    out: list[tuple[Any, ...]] = []
    if type(doc) is dict:
        for key, value in doc.items():
            if key not in ("requestObject", "responseObject"):
                out += [(*below, key), *object_paths(value, (*below, key))]
    return out


def test_the_builtin_rules_on_real_events_and_on_each_with_a_field_of_another_type() -> None:
    rules = [(name, tree, compiled(tree)) for name, tree in builtin_trees()]
    assert len(rules) > 50
    swaps: list[Any] = [None, "x", 7, True, [], [{"username": "system:anonymous"}], {"code": 403, "groups": ["x"]}]
    for index in range(0, real_event_count(), 40):
        raws = [real_event(index)]
        for path in object_paths(raws[0]):
            for value in swaps:
                raw = real_event(index)
                if get_at(raw, path) != value:
                    set_at(raw, path, value)
                    raws.append(raw)
        for raw in raws:
            for name, tree, predicate in rules:
                assert predicate(AuditEvent(raw)) == reference(tree, AuditEvent(raw)), (name, index)


def test_the_cheapest_tests_run_first() -> None:
    """A derived field (here counted) is read only when the plain fields' tests leave the answer open."""
    reads: list[int] = []

    def derived(event: AuditEvent) -> list[Any]:
        reads.append(1)
        return ["allow"]

    tree = All((Among(derived, frozenset({"allow"})), AnyOf((Prefixed(compile_path("a.b").values, ("x",), ("a", "b")),
                                                             Member(("c",), frozenset({"y"}))))))  # fmt: skip
    reordered = cheapest_first(tree)
    assert isinstance(reordered, All) and isinstance(reordered.parts[0], AnyOf)
    assert isinstance(reordered.parts[0].parts[0], Member)  # and inside the `or` too
    predicate = compiled(tree)
    assert predicate(AuditEvent({"a": {"b": "zz"}, "c": "n"})) is False and reads == []
    assert predicate(AuditEvent({"a": {"b": "xx"}})) is True and reads == [1]


@pytest.mark.parametrize("text", ["$decision", "$principal"])
def test_a_single_value_root_is_tested_without_its_list(text: str) -> None:
    """`$decision: allow` reads the decision alone (`Among.value`); it decides as the list of values does."""
    path = compile_path(text)
    assert path.scalar
    strings = frozenset({"allow", "alice"})
    alone, listed = compiled(Among(path.values, strings, None, path.value)), compiled(Among(path.values, strings))
    shapes: list[Any] = [None, "allow", "forbid", "", 7, True, ["allow"], {"allow": 1}]
    for annotation, code, user in itertools.product(shapes, [None, 200, 403, "200"], shapes):
        raw: dict[str, Any] = {"responseStatus": {"code": code}, "user": {"username": user}}
        if annotation is not None:
            raw["annotations"] = {"authorization.k8s.io/decision": annotation}
        assert alone(AuditEvent(raw)) is listed(AuditEvent(raw)), raw
