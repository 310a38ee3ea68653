"""Load and validate an audit policy as the apiserver does (`reader.go` and `pkg/apis/audit/validation`).

Only `audit.k8s.io/v1` `Policy`. Decoded strictly; on a strict error (unknown or duplicate field) it is
decoded leniently and the problem becomes a warning. 0 rules is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from detectors.errors import RuleError
from detectors.events import STAGES
from detectors.loading.yamlload import LocatedList, load_yaml
from detectors.policy.model import API_VERSION, LEVELS, GroupResources, Policy, PolicyError, PolicyRule

_POLICY_KEYS = frozenset({"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"})
_RULE_KEYS = frozenset(
    {"level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs", "omitStages",
     "omitManagedFields"}
)  # fmt: skip
_GROUP_KEYS = frozenset({"group", "resources", "resourceNames"})
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


def _line(items: Any, index: int) -> int:
    """The line of item `index` (0 when the policy came from the lenient decoder, which has no lines)."""
    return items.line_of(index) if isinstance(items, LocatedList) else 0


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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: where and what (PyYAML's own text spans several, with a source excerpt)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


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
            return None, [f"{source}: failed decoding: {_yaml_problem(yexc)}"], warnings
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
        if not isinstance(raw, dict):
            errors.append(f"rules[{i}]: must be a mapping (decode error)")
            continue
        rules.append(_parse_rule(raw, i, _line(raw_rules, i), omit, errors, warnings))
    if not errors and not rules:
        errors.append(f"loaded illegal policy with 0 rules from file {source}")
    if errors:
        return None, errors, warnings
    return Policy(tuple(rules), frozenset(omit), omf, tuple(warnings)), errors, warnings


def _parse_rule(
    raw: Mapping[str, Any], i: int, line: int, policy_omit: tuple[str, ...], errors: list[str], warnings: list[str]
) -> PolicyRule:
    """`rules[i]`, validated; its problems go to `errors` and `warnings`."""
    where = f"rules[{i}]"
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
    return PolicyRule(
        level=str(level),
        users=_strings(raw, "users", where, errors),
        user_groups=_strings(raw, "userGroups", where, errors),
        verbs=_strings(raw, "verbs", where, errors),
        resources=resources,
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=frozenset(policy_omit) | frozenset(rule_omit),
        omit_managed_fields=rule_omf,
        index=i,
        line=line,
    )


def load_policy(text: str, *, source: str = "<policy>") -> Policy:
    policy, errors, _warnings = parse_policy(text, source=source)
    if policy is None:
        raise PolicyError(errors)
    return policy
