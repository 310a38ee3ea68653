"""Strict YAML for rule files: duplicate keys are errors, every mapping and list remembers its line.

Timestamps stay strings (audit events carry RFC 3339 strings, not YAML dates).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from detectors.errors import RuleError

_Base: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader  # libyaml when installed
MAX_EXPANDED_VALUES = 1_000_000  # values a document may hold once its aliases are expanded


class LocatedDict(dict[str, Any]):
    """A mapping from a YAML file, with the line of the mapping and of each key."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _StrictLoader(_Base):  # type: ignore[misc]
    path = "<string>"


# Copy the resolvers without the timestamp one, so "2026-11-20T10:00:00Z" stays a string.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LocatedDict:
    own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # merged pairs (`<<: *base`) come first, then the mapping's own keys
    merged_count = len(node.value) - own
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    merged: set[str] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            key = str(key)
        if key in out and key not in merged:
            raise RuleError(f"duplicate key {key!r}", path=loader.path, line=line)
        merged.discard(key)  # a mapping's own key overrides a merged one, once
        if index < merged_count:
            merged.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: Any, node: yaml.SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_expansion(root: yaml.Node, path: str) -> None:
    """Refuse a document whose aliases make it hold more than MAX_EXPANDED_VALUES values (and more than it has
    nodes): an alias is one shared node here, but whatever walks the document visits each copy, so a few
    lines of nested aliases (a "billion laughs") would take time and memory exponential in their number.
    Linear in the number of distinct nodes; a recursive alias is left to the constructor, which refuses it."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack[-1]
        if id(node) in sizes:
            stack.pop()
            continue
        pending = [c for c in _children(node) if id(c) not in sizes]
        if id(node) not in open_nodes and pending:
            if any(id(c) in open_nodes for c in pending):
                return  # recursive
            open_nodes.add(id(node))
            stack.extend(pending)
            continue
        stack.pop()
        open_nodes.discard(id(node))
        size = 1 + sum(sizes.get(id(c), 0) for c in _children(node))
        sizes[id(node)] = min(size, MAX_EXPANDED_VALUES + 1)
        if size > MAX_EXPANDED_VALUES and size > len(sizes):
            raise RuleError(
                f"YAML aliases expand this value to more than {MAX_EXPANDED_VALUES:,} values",
                path=path, line=node.start_mark.line + 1,
            )  # fmt: skip


def load_yaml_documents(text: str, *, path: str = "<string>") -> list[Any]:
    """Every document of a YAML stream (Sigma files may hold several), strictly, with file:line errors."""
    loader = _StrictLoader(text)
    loader.path = path
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_expansion(node, path)
            docs.append(loader.construct_document(node))
    except RuleError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleError(f"YAML syntax error: {exc.problem or exc}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"YAML error: {exc}", path=path) from None
    finally:
        loader.dispose()
    return [d for d in docs if d is not None]


def load_yaml(text: str, *, path: str = "<string>") -> Any:
    """Parse one YAML document strictly (None for an empty one); more than one is an error."""
    docs = load_yaml_documents(text, path=path)
    if len(docs) > 1:
        raise RuleError("expected a single YAML document, found several", path=path)
    return docs[0] if docs else None


def read_rule_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            raise RuleError(f"broken symbolic link (to {os.readlink(path)})", path=str(path)) from None
        raise RuleError(f"cannot read rule file: {exc}", path=str(path)) from None


def plain(value: Any) -> Any:
    """Located containers back to plain dicts/lists, so values are exactly what JSON would give."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
