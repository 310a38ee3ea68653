"""Dotted field paths over audit events, compiled once and evaluated many times.

Syntax: `a.b.c`, `a[*].b` (every element), `a[0]` (one element), `annotations['k.io/x']` (a key with dots),
and virtual roots computed from the whole event (`$containers`, `$podSpecs`, ...; see docs/rules.md).
A key applied to a list applies to each element, and a final list value is flattened, so
`user.groups` or `requestObject.rules.verbs` yield their elements.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, Protocol

from detectors.decision import decision_of
from detectors.errors import DetectorError
from detectors.execcommand import command_line, copy_of, exec_argv


class EventView(Protocol):
    """What field paths read of an event (`detectors.events.AuditEvent` is one): the raw dict, a per-event
    cache for derived views, and the two shortcuts the virtual roots use."""

    @property
    def raw(self) -> dict[str, Any]: ...

    @property
    def cache(self) -> dict[str, Any]: ...

    @property
    def resource(self) -> str: ...

    @property
    def principal(self) -> str: ...


class PathError(DetectorError):
    """A field path that does not parse."""


class Each(Enum):
    """`[*]` in a field path: every element of a list."""

    EACH = "[*]"


EACH = Each.EACH
Step = str | int | Each  # a key, an index, or [*]
_TOKEN = re.compile(
    r"""\.?(?P<name>[A-Za-z0-9_\-]+)|\[(?P<each>\*)\]|\[(?P<index>-?\d+)\]|\[(?P<q>['"])(?P<key>.*?)(?P=q)\]"""
)

# Pod specs live at different depths depending on the object that carries them.
_POD_SPEC_KEYS = frozenset(
    {"containers", "initContainers", "ephemeralContainers", "volumes", "hostNetwork", "hostPID", "hostIPC"}
)
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _request_object(event: EventView) -> Any:
    """requestObject as an object: JSON-patch arrays become a partial object holding their values."""
    cached = event.cache.get("$request")
    if cached is not None:
        return cached
    body = event.raw.get("requestObject")
    result: Any = patch_overlay(body) if isinstance(body, list) else body
    event.cache["$request"] = result if result is not None else {}
    return event.cache["$request"]


def patch_overlay(ops: list[Any]) -> dict[str, Any]:
    """Build the partial object that a JSON patch (RFC 6902) writes: values of add/replace/copy-less ops.

    `[{"op":"add","path":"/spec/containers/0/securityContext","value":{"privileged":true}}]` becomes
    `{"spec":{"containers":[{"securityContext":{"privileged":true}}]}}`, so the same field paths match
    a patch and a full object.
    """
    root: dict[str, Any] = {}
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace") or not isinstance(op.get("path"), str):
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if not parts:
            if isinstance(op.get("value"), dict):
                root.update(op["value"])
            continue
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and (_is_index(parts[i + 1]) or parts[i + 1] == "-")
            if isinstance(node, dict):
                if last:
                    node[part] = op.get("value")
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
            elif isinstance(node, list):
                idx = len(node) if part == "-" else int(part) if _is_index(part) else None
                if idx is None or idx >= MAX_PATCH_INDEX:
                    break
                while len(node) <= idx:
                    node.append({})
                if last:
                    node[idx] = op.get("value")
                else:
                    if not isinstance(node[idx], (dict, list)):
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            else:
                break
    return root


# The overlay holds a list up to the highest index a patch writes (placeholders before it): a path like
# /spec/containers/100000000 must not allocate that much. No Kubernetes list comes near this length.
MAX_PATCH_INDEX = 10_000


def _is_index(part: str) -> bool:
    return part.isdigit() and part.isascii()  # "²".isdigit() too, and int() refuses it


def _pod_specs(event: EventView) -> list[Any]:
    cached = event.cache.get("$podSpecs")
    if cached is not None:
        return list(cached)
    specs: list[dict[str, Any]] = []
    body = _request_object(event)
    if isinstance(body, dict):
        spec = body.get("spec")
        template = body.get("template")  # PodTemplate objects
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            specs.append(template["spec"])
        if isinstance(spec, dict):
            tmpl = spec.get("template")
            if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
                specs.append(tmpl["spec"])
            job = spec.get("jobTemplate")
            if isinstance(job, dict):
                job_spec = job.get("spec")
                if isinstance(job_spec, dict):
                    jt = job_spec.get("template")
                    if isinstance(jt, dict) and isinstance(jt.get("spec"), dict):
                        specs.append(jt["spec"])
            if event.resource == "pods" or body.get("kind") == "Pod" or not _POD_SPEC_KEYS.isdisjoint(spec):
                specs.append(spec)
    event.cache["$podSpecs"] = specs
    return list(specs)


def _containers(event: EventView) -> list[Any]:
    out: list[Any] = []
    for spec in _pod_specs(event):
        for key in _CONTAINER_LISTS:
            items = spec.get(key)
            if isinstance(items, list):
                out.extend(c for c in items if isinstance(c, dict))
    return out


def image_registry(image: str) -> str:
    """The registry of an image reference, as the container runtime resolves it (docker.io by default)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _registries(event: EventView) -> list[Any]:
    images = (c.get("image") for c in _containers(event))
    return list(dict.fromkeys(image_registry(i) for i in images if isinstance(i, str) and i))


def _volumes(event: EventView) -> list[Any]:
    out: list[Any] = []
    for spec in _pod_specs(event):
        items = spec.get("volumes")
        if isinstance(items, list):
            out.extend(v for v in items if isinstance(v, dict))
    return out


def _decision(event: EventView) -> list[Any]:
    cache = event.cache
    decision = cache.get("$decision", cache)  # the cache itself stands for "not computed yet"
    if decision is cache:
        decision = cache["$decision"] = decision_of(event.raw)
    return [] if decision is None else [decision]


def _exec(event: EventView) -> list[Any]:
    """`{command, commandLine, source, copy?}` of an exec-like request (detectors/execcommand.py), once per event."""
    cached = event.cache.get("$exec")
    if cached is None:
        found = exec_argv(event.raw, _request_object(event))
        cached = {}
        if found is not None:
            argv, source = found
            cached = {"command": list(argv), "commandLine": command_line(argv), "source": source}
            copy = copy_of(argv)
            if copy is not None:
                cached["copy"] = copy
        event.cache["$exec"] = cached
    return [cached] if cached else []


def _principal(event: EventView) -> list[Any]:
    principal = event.principal
    return [principal] if principal else []


def _request(event: EventView) -> list[Any]:
    body = _request_object(event)
    return [body] if body else []


# name -> (function, yields a list of several values)
VIRTUAL_ROOTS: dict[str, tuple[Callable[[EventView], list[Any]], bool]] = {
    "decision": (_decision, False),
    "exec": (_exec, False),
    "principal": (_principal, False),
    "request": (_request, False),
    # list-valued roots are one list value, so `$containers[*]` expands it like any JSON list
    "podSpecs": (lambda e: [_pod_specs(e)], True),
    "containers": (lambda e: [_containers(e)], True),
    "volumes": (lambda e: [_volumes(e)], True),
    "registries": (lambda e: [_registries(e)], True),  # of every container's image, each once
}


@dataclass(frozen=True, slots=True)
class CompiledPath:
    text: str
    values: Callable[[EventView], list[Any]]  # flattened, for conditions
    many: bool  # may yield several values (has [*] or a list-valued root)
    value: Callable[[EventView], Any]  # as stored (lists not flattened); the list of values if `many`
    keys: tuple[str, ...] | None = None  # plain dict keys from the event root, when the path is just that


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.extend(x for x in v if x is not None)
        elif v is not None:
            out.append(v)
    return out


def _tokenize(text: str) -> list[Step]:
    tokens: list[Step] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos or (pos == 0 and text.startswith(".")):
            raise PathError(f"bad field path {text!r} at character {pos + 1}")
        if m.group("name") is not None:
            tokens.append(m.group("name"))
        elif m.group("each") is not None:
            tokens.append(EACH)
        elif m.group("index") is not None:
            tokens.append(int(m.group("index")))
        else:
            tokens.append(m.group("key"))
        pos = m.end()
    return tokens


def parse_path(text: str) -> tuple[str | None, list[Step]]:
    """A field path as (its virtual root's name, or None for the event itself; its steps); PathError says
    what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("empty field path")
    if not text.startswith("$"):
        return None, _tokenize(text)
    m = re.match(r"\$([A-Za-z]+)", text)
    name = m.group(1) if m else ""
    if name not in VIRTUAL_ROOTS:
        raise PathError(f"unknown virtual field ${name} (known: {', '.join('$' + k for k in VIRTUAL_ROOTS)})")
    rest = text[len(name) + 1 :]
    if rest.startswith("."):
        rest = rest[1:]
        if not rest:
            raise PathError(f"bad field path {text!r}: nothing after the dot")
    return name, _tokenize(rest) if rest else []


@lru_cache(maxsize=4096)
def compile_path(text: str) -> CompiledPath:
    """Parse a field path once (cached); PathError says what is wrong with it."""
    root, tokens = parse_path(text)
    root_fn: Callable[[EventView], list[Any]] | None = None
    many = False
    if root is not None:
        root_fn, many = VIRTUAL_ROOTS[root]
    many = many or any(t is EACH for t in tokens)

    keys = tuple(t for t in tokens if isinstance(t, str))
    if root_fn is None and len(keys) == len(tokens):
        return _compile_keys(text, keys, many)

    start = root_fn
    if start is not None and not tokens and not many:
        # a single-value root alone ($decision, $principal, $exec): its list is the values (none is a list)
        only = start

        def first_of(event: EventView) -> Any:
            found = only(event)
            return found[0] if len(found) == 1 else found or None

        return CompiledPath(text, only, many, first_of)

    def walk(event: EventView) -> list[Any]:
        roots = start(event) if start is not None else [event.raw]
        return _walk(roots, tokens)

    def first(event: EventView) -> Any:
        found = walk(event)
        return found if many else (found[0] if len(found) == 1 else found or None)

    key, index = (tokens[0], tokens[1]) if len(tokens) == 2 else (None, None)
    if start is None and isinstance(key, str) and type(index) is int:  # `sourceIPs[-1]`, without the walk's lists

        def item(event: EventView) -> Any:
            items = event.raw.get(key)
            if not isinstance(items, list) or not -len(items) <= index < len(items):
                return None
            found = items[index]
            return first(event) if isinstance(found, list) else found

        return CompiledPath(text, walk, many, item)

    return CompiledPath(text, walk, many, first)


def _compile_keys(text: str, keys: tuple[str, ...], many: bool) -> CompiledPath:
    """A path of plain dict keys from the event root (no virtual root, index or [*]): the common case."""

    def simple(event: EventView) -> list[Any]:
        node: Any = event.raw
        for i, key in enumerate(keys):
            if isinstance(node, dict):
                node = node.get(key)
                if node is None:
                    return []
            elif isinstance(node, list):
                return _walk([node], keys[i:])
            else:
                return []
        if isinstance(node, list):
            return _flatten(node)
        return [node]

    # The hot path: most rule fields are one or two keys deep (verb, objectRef.resource).
    if len(keys) == 1:
        (k1,) = keys

        def simple(event: EventView) -> list[Any]:  # noqa: F811 - a faster equivalent
            value = event.raw.get(k1)
            if value is None:
                return []
            return _flatten(value) if type(value) is list else [value]

    elif len(keys) == 2:
        k1, k2 = keys
        general = simple

        def simple(event: EventView) -> list[Any]:  # noqa: F811 - a faster equivalent
            outer = event.raw.get(k1)
            if type(outer) is not dict:
                return general(event) if type(outer) is list else []
            value = outer.get(k2)
            if value is None:
                return []
            return _flatten(value) if type(value) is list else [value]

    def single(event: EventView) -> Any:
        node: Any = event.raw
        for key in keys:
            if not isinstance(node, dict):
                return simple(event) if isinstance(node, list) else None
            node = node.get(key)
        return node

    return CompiledPath(text, simple, many, simple if many else single, keys)


def _walk(values: list[Any], tokens: tuple[Any, ...] | list[Any]) -> list[Any]:
    for tok in tokens:
        nxt: list[Any] = []
        for v in values:
            if tok is EACH:
                if isinstance(v, list):
                    nxt.extend(v)
            elif isinstance(tok, int):
                if isinstance(v, list) and -len(v) <= tok < len(v):
                    nxt.append(v[tok])
            elif isinstance(v, dict):
                if tok in v:
                    nxt.append(v[tok])
            elif isinstance(v, list):  # a key applied to a list applies to each element
                nxt.extend(x[tok] for x in v if isinstance(x, dict) and tok in x)
        values = nxt
        if not values:
            return []
    return _flatten(values)
