"""The virtual roots of field paths (`$containers`, `$podSpecs`, `$decision`, `$exec`, ...): views derived from a
whole event, each computed once per event and kept in its cache (see docs/rules.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from detectors.decision import decision_of
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


def _decision_value(event: EventView) -> Any:
    """`_decision`'s value, or None (the same cache; written out again, as a call more costs more than it)."""
    cache = event.cache
    decision = cache.get("$decision", cache)
    if decision is cache:
        decision = cache["$decision"] = decision_of(event.raw)
    return decision


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


def _principal_value(event: EventView) -> str | None:
    return event.principal or None


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

# The value of a root alone (`$decision` in a key) of those whose list holds at most one value, a string: what the
# list's only value (or None) would be, without the list.
SINGLE_VALUES: dict[str, Callable[[EventView], Any]] = {"decision": _decision_value, "principal": _principal_value}
