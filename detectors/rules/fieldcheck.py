"""The field paths a native rule reads, with their lines, and warnings for those no audit event can have.

A typo such as `objectRef.resouce` loads (the path is well-formed) and silently never matches; the loader
and `rules lint` report it instead, from `detectors.eventschema`. Paths are read from `match` (and every
step's `match`), `group_by`, `terms`, `distinct`, `by` and the message's placeholders.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from detectors.eventschema import path_problem
from detectors.loading.yamlload import LocatedDict, LocatedList

_COMBINATORS = frozenset({"all", "any", "not"})
_KEY_FIELDS = ("group_by", "terms", "by")  # a field path or a list of them


def _condition_paths(node: Any, line: int) -> Iterator[tuple[str, int]]:
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _condition_paths(item, node.line_of(i) if isinstance(node, LocatedList) else line)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        key_line = node.line_of(key) if isinstance(node, LocatedDict) else line
        if key in _COMBINATORS:
            yield from _condition_paths(value, key_line)
        elif isinstance(key, str):
            yield key, key_line


def _key_paths(node: LocatedDict, key: str) -> Iterator[tuple[str, int]]:
    value = node.get(key)
    for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
        if isinstance(text, str):
            yield text, node.line_of(key)


def rule_paths(node: LocatedDict) -> Iterator[tuple[str, int]]:
    """(field path, line) for every path the rule mapping reads, placeholders of its message aside."""
    if "match" in node:
        yield from _condition_paths(node["match"], node.line_of("match"))
    for key in _KEY_FIELDS:
        yield from _key_paths(node, key)
    distinct = node.get("distinct")
    if isinstance(distinct, LocatedDict):
        yield from ((name, distinct.line_of(name)) for name in distinct if isinstance(name, str))
    steps = node.get("steps")
    if isinstance(steps, LocatedList):
        for step in steps:
            if isinstance(step, LocatedDict):
                yield from rule_paths(step)


def unknown_field_warnings(paths: Iterable[tuple[str, int]], *, path: str, rule_id: str) -> tuple[str, ...]:
    """`file:line: rule 'id': no audit event has 'x.y': ...` for each path no audit event can have."""
    found: dict[str, None] = {}
    for text, line in paths:
        problem = path_problem(text)
        if problem is not None:
            found[f"{path}:{line}: rule {rule_id!r}: {problem}"] = None
    return tuple(found)
