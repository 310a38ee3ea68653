"""Falco's fields of what a request's object holds: a pod's spec (its containers, volumes and security context),
a binding's subjects, a role's rules, a configmap's data. An extractor returns None when the object lacks what it
reads; most yes-or-no fields answer "false" instead, as the plugin does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from detectors.falco.values import Extractor, FieldError, Value, dicts, get_path, render, str_list


def _pod_spec(raw: dict[str, Any]) -> dict[str, Any]:
    spec = get_path(raw, "requestObject", "spec")
    return spec if isinstance(spec, dict) else {}


def image_repository(image: str) -> str:
    """`reg:5000/team/app:1.2@sha256:..` -> `reg:5000/team/app` (a port in the registry survives)."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def _bool_default(value: Any) -> str:
    return render(value) or "false" if value is not None else "false"


# Per-container attributes: name -> function(container, pod spec) -> JSON value (None = absent)
def _sc(c: dict[str, Any], key: str) -> Any:
    return get_path(c, "securityContext", key)


def _host_port(c: dict[str, Any], spec: dict[str, Any]) -> Any:
    ports = []
    for p in dicts(c.get("ports")):
        if p.get("hostPort") is not None:
            ports.append(p["hostPort"])
        elif spec.get("hostNetwork") is True and p.get("containerPort") is not None:
            ports.append(p["containerPort"])
    return ports or None


def _joined(value: Any) -> str | None:
    if isinstance(value, list):
        return " ".join(str(render(v)) for v in value)
    return render(value)


CONTAINER_ATTRS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "name": lambda c, s: c.get("name"),
    "image": lambda c, s: c.get("image"),
    "image.repository": lambda c, s: image_repository(c["image"]) if isinstance(c.get("image"), str) else None,
    "command": lambda c, s: _joined(c.get("command")),
    "args": lambda c, s: _joined(c.get("args")),
    "privileged": lambda c, s: _bool_default(_sc(c, "privileged")),
    "allow_privilege_escalation": lambda c, s: _bool_default(_sc(c, "allowPrivilegeEscalation")),
    "read_only_fs": lambda c, s: _bool_default(_sc(c, "readOnlyRootFilesystem")),
    "run_as_user": lambda c, s: _sc(c, "runAsUser"),
    "run_as_group": lambda c, s: _sc(c, "runAsGroup"),
    "eff_run_as_user": lambda c, s: _first_set(_sc(c, "runAsUser"), get_path(s, "securityContext", "runAsUser"), 0),
    "eff_run_as_group": lambda c, s: _first_set(_sc(c, "runAsGroup"), get_path(s, "securityContext", "runAsGroup"), 0),
    "proc_mount": lambda c, s: _sc(c, "procMount"),
    "add_capabilities": lambda c, s: get_path(c, "securityContext", "capabilities", "add"),
    "host_port": _host_port,
}


def _first_set(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def container_field(lst: str, attr: str) -> Callable[[str | None], Extractor]:
    fn = CONTAINER_ATTRS[attr]

    def per_container(raw: dict[str, Any]) -> list[list[str]]:
        spec = _pod_spec(raw)
        out: list[list[str]] = []
        for c in dicts(spec.get(lst)):
            v = fn(c, spec)
            if v is None:
                out.append([])
            elif isinstance(v, list):
                out.append([s for s in (render(x) for x in v) if s is not None])
            else:
                out.append([render(v) or ""])
        return out

    def build(arg: str | None) -> Extractor:
        if arg is None:

            def all_of(raw: dict[str, Any]) -> Value:
                flat = [s for vals in per_container(raw) for s in vals]
                return flat or None

            return all_of
        try:
            idx = int(arg)
        except ValueError:
            raise FieldError(f"index must be an integer, got {arg!r}") from None

        def one(raw: dict[str, Any]) -> Value:
            items = per_container(raw)
            if not 0 <= idx < len(items) or not items[idx]:
                return None
            vals = items[idx]
            return vals[0] if len(vals) == 1 else " ".join(vals)

        return one

    return build


def _subjects(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return dicts(get_path(raw, "requestObject", "subjects"))


def subject_names(kind: str, with_ns: bool = False) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        out = []
        for s in _subjects(raw):
            if s.get("kind") == kind and isinstance(s.get("name"), str):
                out.append(f"{s.get('namespace') or ''}:{s['name']}" if with_ns else s["name"])
        return out or None

    return get


def role_rules(key: str | None) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        rules = dicts(get_path(raw, "requestObject", "rules"))
        if key is None:
            return [orjson.dumps(r).decode() for r in rules] or None
        out: list[str] = []
        for r in rules:
            out.extend(str_list(r.get(key)) or [])
        return out or None

    return get


def _volumes(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return dicts(_pod_spec(raw).get("volumes"))


def hostpaths(raw: dict[str, Any]) -> Value:
    out = [p for v in _volumes(raw) if isinstance(p := get_path(v, "hostPath", "path"), str)]
    return out or None


def flex_drivers(raw: dict[str, Any]) -> Value:
    out = [d for v in _volumes(raw) if isinstance(d := get_path(v, "flexVolume", "driver"), str)]
    return out or None


def volume_types(raw: dict[str, Any]) -> Value:
    out = [k for v in _volumes(raw) for k in v if k != "name"]
    return out or None


def volume_hostpath(arg: str | None) -> Extractor:
    if not arg:
        raise FieldError("needs a path argument, e.g. ka.req.volume.hostpath[/etc*]")
    prefix = arg[:-1] if arg.endswith("*") else None

    def get(raw: dict[str, Any]) -> Value:
        paths = hostpaths(raw) or []
        hit = any(p.startswith(prefix) if prefix is not None else p == arg for p in paths)
        return "true" if hit else "false"

    return get


def has_name(arg: str | None) -> Extractor:
    if not arg:
        raise FieldError("needs a subject name argument")

    def get(raw: dict[str, Any]) -> Value:
        return "true" if any(s.get("name") == arg for s in _subjects(raw)) else "false"

    return get


def pod_sc(key: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        return render(get_path(_pod_spec(raw), "securityContext", key))

    return get


def first_container(attr: str) -> Extractor:
    fn = CONTAINER_ATTRS[attr]

    def get(raw: dict[str, Any]) -> Value:
        spec = _pod_spec(raw)
        containers = dicts(spec.get("containers"))
        return render(fn(containers[0], spec)) if containers else None

    return get


def any_privileged(raw: dict[str, Any]) -> Value:
    spec = _pod_spec(raw)
    containers = dicts(spec.get("containers"))
    if not containers:
        return None
    return "true" if any(_sc(c, "privileged") is True for c in containers) else "false"


def configmap_obj(raw: dict[str, Any]) -> Value:
    # As the plugin does (plugins#249): only `data` of the request object.
    data = get_path(raw, "requestObject", "data")
    return orjson.dumps(data).decode() if data is not None else None


def supplemental_groups(raw: dict[str, Any]) -> Value:
    return str_list(get_path(_pod_spec(raw), "securityContext", "supplementalGroups"))
