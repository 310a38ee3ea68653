"""Falco's field table (`ka.*` of the k8saudit plugin, `jevt.*`/`json.*` of the json plugin): long, as a table is.

Every field is a function of the event's raw dict that returns `None` (cannot be extracted), a string
(scalar field) or a list of strings (list field). Numbers, booleans, objects and arrays are rendered as
JSON text (`"201"`, `"true"`), as the plugin does. An empty list counts as missing.

Three extractors deliberately differ from the plugin (v0.18.0): two where it is known to be wrong, one for
events without annotations:

* `ka.sourceips` reads the event's top-level `sourceIPs` (the plugin reads `requestObject.rules[].sourceIPs`,
  so it is always empty; falcosecurity/plugins#236).
* `*.image.repository` strips the tag after the last `/`, so a registry with a port keeps it
  (`reg:5000/x:1` -> `reg:5000/x`; the plugin cuts at the first `:` and yields `reg`). A digest
  (`@sha256:...`) is stripped first.
* `ka.auth.decision` is the authorization annotation when the event has it, else the decision the response
  code proves (`detectors.decision`: 2xx/101 allow, 403 forbid), so rules that test it still work on events
  whose exporter dropped the annotations.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from detectors.annotations import REASON_ANNOTATION
from detectors.decision import decision_of

Value = str | list[str] | None
Extractor = Callable[[dict[str, Any]], Value]


class FieldError(Exception):
    """A field name or argument the plugin does not know."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How to build an extractor. `arg`: "none", "required" (a key) or "index" (optional `[i]`)."""

    name: str
    is_list: bool
    arg: str
    build: Callable[[str | None], Extractor]
    cost: int = 1  # 1: a few dict lookups; 2: worth caching per event


def render(value: Any) -> str | None:
    """A JSON value as the plugin renders it: strings as they are, everything else as JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def scalar_field(*keys: str) -> Extractor:
    """The extractor of the value at `keys` (a nested dict path), rendered as the plugin does."""
    if len(keys) == 1:
        (k,) = keys

        def one(raw: dict[str, Any]) -> Value:
            v = raw.get(k)
            return v if isinstance(v, str) else render(v)

        return one
    if len(keys) == 2:
        k1, k2 = keys

        def two(raw: dict[str, Any]) -> Value:
            node = raw.get(k1)
            if type(node) is not dict:
                return None
            v = node.get(k2)
            return v if isinstance(v, str) else render(v)

        return two

    def many(raw: dict[str, Any]) -> Value:
        return render(_get(raw, *keys))

    return many


def _str_list(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    out = [s for s in (render(v) for v in value) if s is not None]
    return out or None


def _annotation(key: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        return render(_get(raw, "annotations", key))

    return get


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _pod_spec(raw: dict[str, Any]) -> dict[str, Any]:
    spec = _get(raw, "requestObject", "spec")
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
    return _get(c, "securityContext", key)


def _host_port(c: dict[str, Any], spec: dict[str, Any]) -> Any:
    ports = []
    for p in _dicts(c.get("ports")):
        if p.get("hostPort") is not None:
            ports.append(p["hostPort"])
        elif spec.get("hostNetwork") is True and p.get("containerPort") is not None:
            ports.append(p["containerPort"])
    return ports or None


def _joined(value: Any) -> str | None:
    if isinstance(value, list):
        return " ".join(str(render(v)) for v in value)
    return render(value)


_CONTAINER_ATTRS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
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
    "eff_run_as_user": lambda c, s: _first_set(_sc(c, "runAsUser"), _get(s, "securityContext", "runAsUser"), 0),
    "eff_run_as_group": lambda c, s: _first_set(_sc(c, "runAsGroup"), _get(s, "securityContext", "runAsGroup"), 0),
    "proc_mount": lambda c, s: _sc(c, "procMount"),
    "add_capabilities": lambda c, s: _get(c, "securityContext", "capabilities", "add"),
    "host_port": _host_port,
}


def _first_set(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _container_field(lst: str, attr: str) -> Callable[[str | None], Extractor]:
    fn = _CONTAINER_ATTRS[attr]

    def per_container(raw: dict[str, Any]) -> list[list[str]]:
        spec = _pod_spec(raw)
        out: list[list[str]] = []
        for c in _dicts(spec.get(lst)):
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


def _simple(fn: Extractor) -> Callable[[str | None], Extractor]:
    return lambda arg: fn


def _pointer(arg: str | None) -> Extractor:
    """RFC 6901 JSON pointer into the event (the json plugin's `jevt.value[/a/b~1c/0]`)."""
    if arg is None or not (arg == "" or arg.startswith("/")):
        raise FieldError(f"needs a JSON pointer argument starting with '/', got {arg!r}")
    parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in arg.split("/")[1:])
    if len(parts) == 1:
        (key,) = parts

        def top(raw: dict[str, Any]) -> Value:
            v = raw.get(key)
            return v if isinstance(v, str) else render(v)

        return top

    def get(raw: dict[str, Any]) -> Value:
        node: Any = raw
        for p in parts:
            if isinstance(node, dict):
                node = node.get(p)
            elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
                node = node[int(p)]
            else:
                return None
        return render(node)

    return get


def _obj(raw: dict[str, Any]) -> Value:
    return orjson.dumps(raw).decode()


def rawtime_ns(raw: dict[str, Any]) -> int | None:
    """The event time (`stageTimestamp`) in nanoseconds since the epoch, keeping nanosecond fractions."""
    ts = raw.get("stageTimestamp")
    if not isinstance(ts, str) or len(ts) < 20:
        return None
    try:
        base = calendar.timegm(
            (int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]), int(ts[14:16]), int(ts[17:19]), 0, 0, 0)
        )
    except ValueError:
        return None
    rest = ts[19:]
    frac = 0
    if rest.startswith("."):
        digits = ""
        i = 1
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        frac = int((digits + "000000000")[:9]) if digits else 0
        rest = rest[i:]
    if rest in ("Z", "z", ""):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        try:
            offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
        except ValueError:
            return None
    else:
        return None
    return (base - offset) * 1_000_000_000 + frac


def _rawtime(raw: dict[str, Any]) -> Value:
    ns = rawtime_ns(raw)
    return str(ns) if ns is not None else None


def _uri_param(arg: str | None) -> Extractor:
    if not arg:
        raise FieldError("needs a query parameter name, e.g. ka.uri.param[command]")

    def get(raw: dict[str, Any]) -> Value:
        uri = raw.get("requestURI")
        if not isinstance(uri, str) or "?" not in uri:
            return None
        values = parse_qs(urlsplit(uri).query, keep_blank_values=True).get(arg)
        return values[0] if values else None

    return get


def _subjects(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return _dicts(_get(raw, "requestObject", "subjects"))


def _subject_names(kind: str, with_ns: bool = False) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        out = []
        for s in _subjects(raw):
            if s.get("kind") == kind and isinstance(s.get("name"), str):
                out.append(f"{s.get('namespace') or ''}:{s['name']}" if with_ns else s["name"])
        return out or None

    return get


def _role_rules(key: str | None) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        rules = _dicts(_get(raw, "requestObject", "rules"))
        if key is None:
            return [orjson.dumps(r).decode() for r in rules] or None
        out: list[str] = []
        for r in rules:
            out.extend(_str_list(r.get(key)) or [])
        return out or None

    return get


def _volumes(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return _dicts(_pod_spec(raw).get("volumes"))


def _hostpaths(raw: dict[str, Any]) -> Value:
    out = [p for v in _volumes(raw) if isinstance(p := _get(v, "hostPath", "path"), str)]
    return out or None


def _flex_drivers(raw: dict[str, Any]) -> Value:
    out = [d for v in _volumes(raw) if isinstance(d := _get(v, "flexVolume", "driver"), str)]
    return out or None


def _volume_types(raw: dict[str, Any]) -> Value:
    out = [k for v in _volumes(raw) for k in v if k != "name"]
    return out or None


def _volume_hostpath(arg: str | None) -> Extractor:
    if not arg:
        raise FieldError("needs a path argument, e.g. ka.req.volume.hostpath[/etc*]")
    prefix = arg[:-1] if arg.endswith("*") else None

    def get(raw: dict[str, Any]) -> Value:
        paths = _hostpaths(raw) or []
        hit = any(p.startswith(prefix) if prefix is not None else p == arg for p in paths)
        return "true" if hit else "false"

    return get


def _has_name(arg: str | None) -> Extractor:
    if not arg:
        raise FieldError("needs a subject name argument")

    def get(raw: dict[str, Any]) -> Value:
        return "true" if any(s.get("name") == arg for s in _subjects(raw)) else "false"

    return get


def _pod_sc(key: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        return render(_get(_pod_spec(raw), "securityContext", key))

    return get


def _first_container(attr: str) -> Extractor:
    fn = _CONTAINER_ATTRS[attr]

    def get(raw: dict[str, Any]) -> Value:
        spec = _pod_spec(raw)
        containers = _dicts(spec.get("containers"))
        return render(fn(containers[0], spec)) if containers else None

    return get


def _any_privileged(raw: dict[str, Any]) -> Value:
    spec = _pod_spec(raw)
    containers = _dicts(spec.get("containers"))
    if not containers:
        return None
    return "true" if any(_sc(c, "privileged") is True for c in containers) else "false"


def _target_pod_name(raw: dict[str, Any]) -> Value:
    if _get(raw, "objectRef", "resource") != "pods":
        return None
    return render(_get(raw, "responseObject", "metadata", "name"))


def _configmap_obj(raw: dict[str, Any]) -> Value:
    # As the plugin does (plugins#249): only `data` of the request object.
    data = _get(raw, "requestObject", "data")
    return orjson.dumps(data).decode() if data is not None else None


def _list_of_json(*keys: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        items = _get(raw, *keys)
        if not isinstance(items, list):
            return None
        return [orjson.dumps(i).decode() if not isinstance(i, str) else i for i in items] or None

    return get


def _list(*keys: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        return _str_list(_get(raw, *keys))

    return get


FIELDS: dict[str, FieldSpec] = {}


def _add(name: str, build: Callable[[str | None], Extractor], *, is_list: bool = False, arg: str = "none",
         cost: int = 1) -> None:  # fmt: skip
    FIELDS[name] = FieldSpec(name, is_list, arg, build, cost)


def _register() -> None:
    s = _simple
    _add("ka.auditid", s(scalar_field("auditID")))
    _add("ka.stage", s(scalar_field("stage")))
    _add("ka.auth.decision", s(decision_of))  # deliberate: also without the annotation
    _add("ka.auth.reason", s(_annotation(REASON_ANNOTATION)))
    _add("ka.auth.openshift.decision", s(_annotation("authorization.openshift.io/decision")))
    _add("ka.auth.openshift.username", s(_annotation("authentication.openshift.io/username")))
    _add("ka.validations.admission.policy.failure",
         s(_annotation("validation.policy.admission.k8s.io/validation_failure")))  # fmt: skip
    _add("ka.security.pod.violations", s(_annotation("pod-security.kubernetes.io/audit-violations")))
    _add("ka.user.name", s(scalar_field("user", "username")))
    _add("ka.user.groups", s(_list("user", "groups")), is_list=True)
    _add("ka.impuser.name", s(scalar_field("impersonatedUser", "username")))
    _add("ka.verb", s(scalar_field("verb")))
    _add("ka.uri", s(scalar_field("requestURI")))
    _add("ka.uri.param", _uri_param, arg="required")
    _add("ka.target.name", s(scalar_field("objectRef", "name")))
    _add("ka.target.namespace", s(scalar_field("objectRef", "namespace")))
    _add("ka.target.resource", s(scalar_field("objectRef", "resource")))
    _add("ka.target.subresource", s(scalar_field("objectRef", "subresource")))
    _add("ka.target.pod.name", s(_target_pod_name))
    _add("ka.req.binding.subjects", s(_list_of_json("requestObject", "subjects")), is_list=True)
    _add("ka.req.binding.role", s(scalar_field("requestObject", "roleRef", "name")))
    _add("ka.req.binding.subject.has_name", _has_name, arg="required")
    _add("ka.req.binding.subjects.user_names", s(_subject_names("User")), is_list=True)
    _add("ka.req.binding.subjects.group_names", s(_subject_names("Group")), is_list=True)
    _add("ka.req.binding.subjects.serviceaccount_names", s(_subject_names("ServiceAccount")), is_list=True)
    _add("ka.req.binding.subjects.serviceaccount_ns_names", s(_subject_names("ServiceAccount", True)),
         is_list=True)  # fmt: skip
    _add("ka.req.configmap.name", s(scalar_field("requestObject", "metadata", "name")))
    _add("ka.req.configmap.obj", s(_configmap_obj), cost=2)
    _add("ka.req.container.image", s(_first_container("image")))
    _add("ka.req.container.image.repository", s(_first_container("image.repository")))
    _add("ka.req.container.privileged", s(_any_privileged))
    _add("ka.req.container.host_network", s(scalar_field("requestObject", "spec", "hostNetwork")))
    _add("ka.req.pod.host_ipc", s(scalar_field("requestObject", "spec", "hostIPC")))
    _add("ka.req.pod.host_network", s(scalar_field("requestObject", "spec", "hostNetwork")))
    _add("ka.req.pod.host_pid", s(scalar_field("requestObject", "spec", "hostPID")))
    _add("ka.req.pod.run_as_user", s(_pod_sc("runAsUser")))
    _add("ka.req.pod.run_as_group", s(_pod_sc("runAsGroup")))
    _add("ka.req.pod.fs_group", s(_pod_sc("fsGroup")))
    _add(
        "ka.req.pod.supplemental_groups",
        s(lambda raw: _str_list(_get(_pod_spec(raw), "securityContext", "supplementalGroups"))),
        is_list=True,
    )
    _add("ka.req.pod.volumes.hostpath", s(_hostpaths), is_list=True)
    _add("ka.req.pod.volumes.flexvolume_driver", s(_flex_drivers), is_list=True)
    _add("ka.req.pod.volumes.volume_type", s(_volume_types), is_list=True)
    _add("ka.req.volume.hostpath", _volume_hostpath, arg="required")
    _add("ka.req.role.rules", s(_role_rules(None)), is_list=True)
    _add("ka.req.role.rules.apiGroups", s(_role_rules("apiGroups")), is_list=True)
    _add("ka.req.role.rules.nonResourceURLs", s(_role_rules("nonResourceURLs")), is_list=True)
    _add("ka.req.role.rules.verbs", s(_role_rules("verbs")), is_list=True)
    _add("ka.req.role.rules.resources", s(_role_rules("resources")), is_list=True)
    _add("ka.req.service.type", s(scalar_field("requestObject", "spec", "type")))
    _add("ka.req.service.ports", s(_list_of_json("requestObject", "spec", "ports")), is_list=True)
    _add("ka.resp.name", s(scalar_field("responseObject", "metadata", "name")))
    _add("ka.response.code", s(scalar_field("responseStatus", "code")))
    _add("ka.response.reason", s(scalar_field("responseStatus", "reason")))
    _add("ka.useragent", s(scalar_field("userAgent")))
    _add("ka.sourceips", s(_list("sourceIPs")), is_list=True)  # deliberate: top-level sourceIPs
    _add("ka.cluster.name", s(_annotation("cluster_name")))
    for lst in ("containers", "initContainers", "ephemeralContainers"):
        for attr in _CONTAINER_ATTRS:
            if lst == "ephemeralContainers" and attr == "host_port":
                continue  # ephemeral containers may not have ports
            _add(f"ka.req.pod.{lst}.{attr}", _container_field(lst, attr), is_list=True, arg="index", cost=2)
    for prefix in ("jevt", "json"):
        _add(f"{prefix}.value", _pointer, arg="required")
        _add(f"{prefix}.obj", s(_obj), cost=2)
        _add(f"{prefix}.rawtime", s(_rawtime))


_register()


def resolve(name: str, arg: str | None) -> tuple[Extractor, bool, int]:
    """(extractor, is a list field, cost) for `name[arg]`; FieldError if unknown or misused."""
    spec = FIELDS.get(name)
    if spec is None:
        raise FieldError(f"unknown field {name!r}")
    if spec.arg == "none" and arg is not None:
        raise FieldError(f"field {name!r} takes no argument")
    if spec.arg == "required" and arg is None:
        raise FieldError(f"field {name!r} needs an argument: {name}[...]")
    try:
        extractor = spec.build(arg)
    except FieldError as exc:
        raise FieldError(f"field {name!r}: {exc}") from None
    return extractor, spec.is_list and arg is None, spec.cost
