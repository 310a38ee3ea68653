"""Falco's field table (`ka.*` of the k8saudit plugin, `jevt.*`/`json.*` of the json plugin): long, as a table is.
The fields of a request's object (pods, bindings, roles) are extracted in `detectors.falco.request_fields`.

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
from detectors.falco.request_fields import (
    CONTAINER_ATTRS,
    any_privileged,
    configmap_obj,
    container_field,
    first_container,
    flex_drivers,
    has_name,
    hostpaths,
    pod_sc,
    role_rules,
    subject_names,
    supplemental_groups,
    volume_hostpath,
    volume_types,
)
from detectors.falco.values import Extractor, FieldError, Value, get_path, render, str_list


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How to build an extractor. `arg`: "none", "required" (a key) or "index" (optional `[i]`)."""

    name: str
    is_list: bool
    arg: str
    build: Callable[[str | None], Extractor]
    cost: int = 1  # 1: a few dict lookups; 2: worth caching per event


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
        return render(get_path(raw, *keys))

    return many


def _annotation(key: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        return render(get_path(raw, "annotations", key))

    return get


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


def _target_pod_name(raw: dict[str, Any]) -> Value:
    if get_path(raw, "objectRef", "resource") != "pods":
        return None
    return render(get_path(raw, "responseObject", "metadata", "name"))


def _list_of_json(*keys: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        items = get_path(raw, *keys)
        if not isinstance(items, list):
            return None
        return [orjson.dumps(i).decode() if not isinstance(i, str) else i for i in items] or None

    return get


def _list(*keys: str) -> Extractor:
    def get(raw: dict[str, Any]) -> Value:
        return str_list(get_path(raw, *keys))

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
    _add("ka.req.binding.subject.has_name", has_name, arg="required")
    _add("ka.req.binding.subjects.user_names", s(subject_names("User")), is_list=True)
    _add("ka.req.binding.subjects.group_names", s(subject_names("Group")), is_list=True)
    _add("ka.req.binding.subjects.serviceaccount_names", s(subject_names("ServiceAccount")), is_list=True)
    _add("ka.req.binding.subjects.serviceaccount_ns_names", s(subject_names("ServiceAccount", True)),
         is_list=True)  # fmt: skip
    _add("ka.req.configmap.name", s(scalar_field("requestObject", "metadata", "name")))
    _add("ka.req.configmap.obj", s(configmap_obj), cost=2)
    _add("ka.req.container.image", s(first_container("image")))
    _add("ka.req.container.image.repository", s(first_container("image.repository")))
    _add("ka.req.container.privileged", s(any_privileged))
    _add("ka.req.container.host_network", s(scalar_field("requestObject", "spec", "hostNetwork")))
    _add("ka.req.pod.host_ipc", s(scalar_field("requestObject", "spec", "hostIPC")))
    _add("ka.req.pod.host_network", s(scalar_field("requestObject", "spec", "hostNetwork")))
    _add("ka.req.pod.host_pid", s(scalar_field("requestObject", "spec", "hostPID")))
    _add("ka.req.pod.run_as_user", s(pod_sc("runAsUser")))
    _add("ka.req.pod.run_as_group", s(pod_sc("runAsGroup")))
    _add("ka.req.pod.fs_group", s(pod_sc("fsGroup")))
    _add(
        "ka.req.pod.supplemental_groups",
        s(supplemental_groups),
        is_list=True,
    )
    _add("ka.req.pod.volumes.hostpath", s(hostpaths), is_list=True)
    _add("ka.req.pod.volumes.flexvolume_driver", s(flex_drivers), is_list=True)
    _add("ka.req.pod.volumes.volume_type", s(volume_types), is_list=True)
    _add("ka.req.volume.hostpath", volume_hostpath, arg="required")
    _add("ka.req.role.rules", s(role_rules(None)), is_list=True)
    _add("ka.req.role.rules.apiGroups", s(role_rules("apiGroups")), is_list=True)
    _add("ka.req.role.rules.nonResourceURLs", s(role_rules("nonResourceURLs")), is_list=True)
    _add("ka.req.role.rules.verbs", s(role_rules("verbs")), is_list=True)
    _add("ka.req.role.rules.resources", s(role_rules("resources")), is_list=True)
    _add("ka.req.service.type", s(scalar_field("requestObject", "spec", "type")))
    _add("ka.req.service.ports", s(_list_of_json("requestObject", "spec", "ports")), is_list=True)
    _add("ka.resp.name", s(scalar_field("responseObject", "metadata", "name")))
    _add("ka.response.code", s(scalar_field("responseStatus", "code")))
    _add("ka.response.reason", s(scalar_field("responseStatus", "reason")))
    _add("ka.useragent", s(scalar_field("userAgent")))
    _add("ka.sourceips", s(_list("sourceIPs")), is_list=True)  # deliberate: top-level sourceIPs
    _add("ka.cluster.name", s(_annotation("cluster_name")))
    for lst in ("containers", "initContainers", "ephemeralContainers"):
        for attr in CONTAINER_ATTRS:
            if lst == "ephemeralContainers" and attr == "host_port":
                continue  # ephemeral containers may not have ports
            _add(f"ka.req.pod.{lst}.{attr}", container_field(lst, attr), is_list=True, arg="index", cost=2)
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
