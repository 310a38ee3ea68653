"""Evaluate an audit policy as the apiserver's `checker.go` does: the first matching rule decides.

The rule's omitStages are the union of the policy's and its own; its omitManagedFields, when set,
overrides the policy's. `apply_policy` shows an event as a policy would have recorded it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.events import AuditEvent
from detectors.policy.model import LEVEL_RANK, Decision, Policy, PolicyRule, RequestAttributes


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
