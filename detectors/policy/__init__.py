"""Kubernetes audit policies: load, validate and evaluate them exactly as the kube-apiserver does.

Sources: `k8s.io/apiserver` `pkg/audit/policy/reader.go` (loading), `checker.go` (evaluation) and
`pkg/apis/audit/validation` (validation). Pure: text in, decisions out.

- Only `audit.k8s.io/v1` `Policy`. Decoded strictly; on a strict error (unknown or duplicate field) it
  is decoded leniently and the problem becomes a warning. 0 rules is an error.
- Rules are tried in order, the first match wins; no match means level None.
- The rule's omitStages are the union of the policy's and its own; its omitManagedFields, when set,
  overrides the policy's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import yaml

from detectors.errors import DetectorError, RuleError
from detectors.events import STAGES, AuditEvent
from detectors.rules.yamlload import LocatedDict, LocatedList, load_yaml

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}
API_VERSION = "audit.k8s.io/v1"
_POLICY_KEYS = frozenset({"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"})
_RULE_KEYS = frozenset(
    {"level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs", "omitStages",
     "omitManagedFields"}
)  # fmt: skip
_GROUP_KEYS = frozenset({"group", "resources", "resourceNames"})
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


class PolicyError(DetectorError):
    """A policy the apiserver would refuse to start with; `errors` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid audit policy:\n" + "\n".join(f"  {e}" for e in errors))


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()  # already the union with the policy's
    omit_managed_fields: bool | None = None
    index: int = 0
    line: int = 0

    def describe(self) -> str:
        return f"rules[{self.index}]" + (f" (line {self.line})" if self.line else "")


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the apiserver records for a request: its level, the stages left out, managed fields or not."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    rule: PolicyRule | None = None


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """The authorizer attributes a policy sees. `user` None is a failed authentication (no user at all)."""

    user: str | None
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @classmethod
    def from_event(cls, event: AuditEvent | Mapping[str, Any]) -> RequestAttributes:
        """The attributes of the request an audit Event records (its authenticated user, not the
        impersonated one: the policy runs before impersonation)."""
        raw = event.raw if isinstance(event, AuditEvent) else event
        user = raw.get("user")
        username: str | None = None
        groups: tuple[str, ...] = ()
        if isinstance(user, dict) and (user.get("username") or user.get("groups")):
            username = str(user.get("username") or "")
            raw_groups = user.get("groups")
            groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else ()
        uri = str(raw.get("requestURI") or "")
        path, _, query = uri.partition("?")
        verb = str(raw.get("verb") or "")
        ref = raw.get("objectRef")
        if not isinstance(ref, dict) or not ref.get("resource"):
            return cls(username, groups, verb, False, path=path)
        name = str(ref.get("name") or "")
        if not name and verb in ("list", "watch") and query:
            name = field_selector_name(query)
        return cls(
            username, groups, verb, True,
            namespace=str(ref.get("namespace") or ""), api_group=str(ref.get("apiGroup") or ""),
            resource=str(ref.get("resource") or ""), subresource=str(ref.get("subresource") or ""),
            name=name, path=path,
        )  # fmt: skip


def field_selector_name(query: str) -> str:
    """`fieldSelector=metadata.name=X` (or `==X`) names the object of a list/watch, as RequestInfo does."""
    for selector in parse_qs(query).get("fieldSelector", []):
        for term in selector.split(","):
            for op in ("==", "="):
                key, sep, value = term.partition(op)
                if sep and key.strip() == "metadata.name" and not key.endswith("!"):
                    value = value.strip()
                    if value and value not in (".", "..") and "/" not in value and "%" not in value:
                        return value
                    return ""
    return ""


# --- loading and validation ----------------------------------------------------------------------------


def _line(node: Any, key: str | int | None = None) -> int:
    if key is not None and isinstance(node, (LocatedDict, LocatedList)):
        try:
            return node.line_of(key)  # type: ignore[arg-type]
        except (KeyError, IndexError, TypeError):
            pass
    return int(getattr(node, "line", 0) or 0)


def _strings(node: Mapping[str, Any], key: str, where: str, errors: list[str]) -> tuple[str, ...]:
    value = node.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{where}.{key}: must be a list of strings (decode error)")
        return ()
    return tuple(value)


def _stages(values: tuple[str, ...], where: str, errors: list[str]) -> None:
    for i, stage in enumerate(values):
        if stage not in STAGES:
            errors.append(f'{where}[{i}]: Invalid value: "{stage}": allowed stages are {",".join(STAGES)}')


def _check_urls(urls: tuple[str, ...], where: str, errors: list[str]) -> None:
    for i, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            errors.append(
                f"{where}[{i}]: Invalid value: \"{url}\": non-resource URL rules must begin with a '/' character"
            )
        if url and "*" in url[:-1]:
            errors.append(
                f"{where}[{i}]: Invalid value: \"{url}\": non-resource URL wildcards '*' must be the final character "
                "of the rule"
            )


def _unknown(node: Mapping[str, Any], known: frozenset[str], where: str, warnings: list[str]) -> None:
    for key in node:
        if key not in known:
            warnings.append(f'{where}: strict decoding error: unknown field "{key}" (ignored)')


def _group_resources(raw: Any, where: str, errors: list[str], warnings: list[str]) -> tuple[GroupResources, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(f"{where}: must be a list (decode error)")
        return ()
    out = []
    for i, item in enumerate(raw):
        item_where = f"{where}[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{item_where}: must be a mapping (decode error)")
            continue
        _unknown(item, _GROUP_KEYS, item_where, warnings)
        group = item.get("group", "")
        if group is None:
            group = ""
        if not isinstance(group, str):
            errors.append(f"{item_where}.group: must be a string (decode error)")
            continue
        resources = _strings(item, "resources", item_where, errors)
        names = _strings(item, "resourceNames", item_where, errors)
        # the apiserver names these paths without the index: resources.group, resources.resourceNames
        if group not in ("", "*") and not (len(group) <= 253 and _DNS_SUBDOMAIN.match(group)):
            errors.append(
                f'{where}.group: Invalid value: "{group}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            )
        if names and not resources:
            errors.append(
                f"{where}.resourceNames: Invalid value: {list(names)}: using resourceNames requires at least one "
                "resource"
            )
        out.append(GroupResources(group, resources, names))
    return tuple(out)


def parse_policy(text: str, *, source: str = "<policy>") -> tuple[Policy | None, list[str], list[str]]:
    """(policy or None, errors, warnings): the apiserver's `LoadPolicyFromBytes` and validation."""
    errors: list[str] = []
    warnings: list[str] = []
    try:
        doc: Any = load_yaml(text, path=source)
    except RuleError as exc:  # duplicate keys: a strict decoding error; decode again leniently
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as yexc:
            return None, [f"{source}: failed decoding: {yexc}"], warnings
        warnings.append(f"{source}: strict decoding error: {exc.message} (line {exc.line}); decoded leniently")
    if not isinstance(doc, dict):
        return None, [f"{source}: failed decoding: not a Policy object"], warnings
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version is None or kind is None:
        return None, [f"{source}: failed decoding: Object 'apiVersion' or 'kind' is missing"], warnings
    if api_version != API_VERSION:
        return (
            None,
            [
                f'{source}: failed decoding: no kind "{kind}" is registered for version "{api_version}" '
                f"(only {API_VERSION} is accepted; v1alpha1 and v1beta1 were removed in Kubernetes 1.24)"
            ],
            warnings,
        )
    if kind != "Policy":
        return None, [f'{source}: failed decoding: kind "{kind}" is not Policy'], warnings
    _unknown(doc, _POLICY_KEYS, "policy", warnings)
    omit = _strings(doc, "omitStages", "policy", errors)
    _stages(omit, "omitStages", errors)
    omf = doc.get("omitManagedFields", False)
    if not isinstance(omf, bool):
        errors.append("omitManagedFields: must be a boolean (decode error)")
        omf = False
    raw_rules = doc.get("rules")
    if raw_rules is not None and not isinstance(raw_rules, list):
        errors.append("rules: must be a list (decode error)")
        raw_rules = None
    rules: list[PolicyRule] = []
    for i, raw in enumerate(raw_rules or []):
        where = f"rules[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: must be a mapping (decode error)")
            continue
        _unknown(raw, _RULE_KEYS, where, warnings)
        level = raw.get("level")
        if level is None or level == "":
            errors.append(f"{where}.level: Required value")
            level = "None"
        elif level not in LEVELS:
            errors.append(
                f'{where}.level: Unsupported value: "{level}": supported values: ' + ", ".join(f'"{v}"' for v in LEVELS)
            )
        urls = _strings(raw, "nonResourceURLs", where, errors)
        _check_urls(urls, f"{where}.nonResourceURLs", errors)
        resources = _group_resources(raw.get("resources"), f"{where}.resources", errors, warnings)
        rule_omit = _strings(raw, "omitStages", where, errors)
        _stages(rule_omit, f"{where}.omitStages", errors)
        namespaces = _strings(raw, "namespaces", where, errors)
        if urls and (resources or namespaces):
            errors.append(
                f"{where}.nonResourceURLs: Invalid value: {list(urls)}: rules cannot apply to both regular "
                "resources and non-resource URLs"
            )
        rule_omf = raw.get("omitManagedFields")
        if rule_omf is not None and not isinstance(rule_omf, bool):
            errors.append(f"{where}.omitManagedFields: must be a boolean (decode error)")
            rule_omf = None
        rules.append(
            PolicyRule(
                level=str(level),
                users=_strings(raw, "users", where, errors),
                user_groups=_strings(raw, "userGroups", where, errors),
                verbs=_strings(raw, "verbs", where, errors),
                resources=resources,
                namespaces=namespaces,
                non_resource_urls=urls,
                omit_stages=frozenset(omit) | frozenset(rule_omit),
                omit_managed_fields=rule_omf,
                index=i,
                line=_line(raw_rules, i),
            )  # fmt: skip
        )
    if not errors and not rules:
        errors.append(f"loaded illegal policy with 0 rules from file {source}")
    if errors:
        return None, errors, warnings
    return Policy(tuple(rules), frozenset(omit), omf, tuple(warnings)), errors, warnings


def load_policy(text: str, *, source: str = "<policy>") -> Policy:
    policy, errors, _warnings = parse_policy(text, source=source)
    if policy is None:
        raise PolicyError(errors)
    return policy


# --- evaluation (checker.go) ---------------------------------------------------------------------------


def path_matches(path: str, spec: str) -> bool:
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def _matches_resource(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    if not attrs.resource_request:
        return False
    if rule.namespaces and attrs.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    resource, sub = attrs.resource, attrs.subresource
    combined = f"{resource}/{sub}" if sub else resource
    for gr in rule.resources:
        if gr.group != attrs.api_group and gr.group != "*":
            continue
        if not gr.resources:
            return True
        for res in gr.resources:
            if gr.resource_names and attrs.name not in gr.resource_names:
                continue
            if res == combined or res == "*":
                return True
            if sub and res.startswith("*/") and sub == res[2:]:
                return True
            if res.endswith("/*") and resource == res[:-2]:  # the prefix quirk: pods/* matches plain pods
                return True
    return False


def rule_matches(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    if rule.users and (attrs.user is None or attrs.user not in rule.users):
        return False
    if rule.user_groups:
        if attrs.user is None or not any(g in rule.user_groups for g in attrs.groups):
            return False
    if rule.verbs and attrs.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _matches_resource(rule, attrs)
    if rule.non_resource_urls:
        return not attrs.resource_request and any(path_matches(attrs.path, s) for s in rule.non_resource_urls)
    return True


def evaluate(policy: Policy, attrs: RequestAttributes) -> Decision:
    for rule in policy.rules:
        if rule_matches(rule, attrs):
            omf = policy.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
            return Decision(rule.level, rule.omit_stages, omf, rule)
    return Decision("None", policy.omit_stages, policy.omit_managed_fields, None)


def evaluate_event(policy: Policy, event: AuditEvent | Mapping[str, Any]) -> Decision:
    return evaluate(policy, RequestAttributes.from_event(event))


def _without_managed_fields(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict) and "managedFields" in body["metadata"]:
        meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
        return {**body, "metadata": meta}
    return body


def apply_policy(policy: Policy, event: AuditEvent) -> AuditEvent | None:
    """The event as this policy would have recorded it, or None when it would not be recorded at all.

    Bodies cannot be added back: an event recorded at Metadata stays without them under RequestResponse.
    """
    decision = evaluate_event(policy, event)
    if decision.level == "None" or event.stage in decision.omit_stages:
        return None
    raw = dict(event.raw)
    rank = LEVEL_RANK[decision.level]
    if rank < LEVEL_RANK["Request"]:
        raw.pop("requestObject", None)
    if rank < LEVEL_RANK["RequestResponse"]:
        raw.pop("responseObject", None)
    if decision.omit_managed_fields:
        for key in ("requestObject", "responseObject"):
            if key in raw:
                raw[key] = _without_managed_fields(raw[key])
    raw["level"] = decision.level
    return AuditEvent(raw=raw, origin=event.origin)
