"""Lints of an audit policy and the detection rules it leaves blind (`auditwatch policy check`).

A rule is blind when no request it could alert on is recorded at a stage it examines, with the bodies it
reads. Requests are probed through the real evaluator: the rule's own constraints (verbs, resources,
subresources, groups, namespaces, users, stages) where it states them, representative values elsewhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.policy.evaluate import evaluate
from detectors.policy.model import LEVEL_RANK, Decision, Policy, PolicyRule, RequestAttributes

# Resources whose group people get wrong (Falco's sample policy lists deployments under "").
RESOURCE_GROUPS: dict[str, str] = {
    "deployments": "apps", "daemonsets": "apps", "statefulsets": "apps", "replicasets": "apps",
    "controllerrevisions": "apps", "jobs": "batch", "cronjobs": "batch", "ingresses": "networking.k8s.io",
    "networkpolicies": "networking.k8s.io", "ingressclasses": "networking.k8s.io",
    "roles": "rbac.authorization.k8s.io", "rolebindings": "rbac.authorization.k8s.io",
    "clusterroles": "rbac.authorization.k8s.io", "clusterrolebindings": "rbac.authorization.k8s.io",
    "leases": "coordination.k8s.io", "mutatingwebhookconfigurations": "admissionregistration.k8s.io",
    "validatingwebhookconfigurations": "admissionregistration.k8s.io",
    "validatingadmissionpolicies": "admissionregistration.k8s.io",
    "validatingadmissionpolicybindings": "admissionregistration.k8s.io",
    "mutatingadmissionpolicies": "admissionregistration.k8s.io",
    "mutatingadmissionpolicybindings": "admissionregistration.k8s.io",
    "certificatesigningrequests": "certificates.k8s.io", "tokenreviews": "authentication.k8s.io",
    "subjectaccessreviews": "authorization.k8s.io", "selfsubjectaccessreviews": "authorization.k8s.io",
    "customresourcedefinitions": "apiextensions.k8s.io", "horizontalpodautoscalers": "autoscaling",
    "poddisruptionbudgets": "policy", "storageclasses": "storage.k8s.io", "csidrivers": "storage.k8s.io",
    "priorityclasses": "scheduling.k8s.io", "runtimeclasses": "node.k8s.io", "endpointslices": "discovery.k8s.io",
    "apiservices": "apiregistration.k8s.io",
}  # fmt: skip
CORE_RESOURCES = frozenset(
    {"pods", "secrets", "configmaps", "services", "serviceaccounts", "namespaces", "nodes", "persistentvolumes",
     "persistentvolumeclaims", "endpoints", "replicationcontrollers", "podtemplates", "resourcequotas",
     "limitranges"}
)  # fmt: skip
CLUSTER_SCOPED = frozenset(
    {"nodes", "namespaces", "persistentvolumes", "clusterroles", "clusterrolebindings", "certificatesigningrequests",
     "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
     "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
     "customresourcedefinitions", "storageclasses", "priorityclasses", "tokenreviews", "apiservices"}
)  # fmt: skip
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
USERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("alice@example.com", ("developers", "system:authenticated")),
    ("system:serviceaccount:default:app", ("system:serviceaccounts", "system:serviceaccounts:default",
                                           "system:authenticated")),
    ("system:anonymous", ("system:unauthenticated",)),
)  # fmt: skip
SAMPLE_RESOURCES = (("pods", "", ""), ("secrets", "", ""), ("deployments", "apps", ""), ("configmaps", "", ""))
_BODY_ROOTS = ("requestObject", "$request", "$containers", "$podSpecs", "$volumes", "$pod")
_MAX_BRANCHES = 256


@dataclass(frozen=True, slots=True)
class BlindRule:
    rule: str
    reason: str


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blind_rules: list[BlindRule] = field(default_factory=list)
    not_analysed: list[str] = field(default_factory=list)


# --- lints ----------------------------------------------------------------------------------------------


def _probe(resource: str, group: str = "", sub: str = "", verb: str = "get", ns: str = "default",
           user: tuple[str, tuple[str, ...]] = USERS[0], name: str = "x") -> RequestAttributes:  # fmt: skip
    if resource in CLUSTER_SCOPED:
        ns = ""
    return RequestAttributes(user[0], user[1], verb, True, namespace=ns, api_group=group, resource=resource,
                             subresource=sub, name=name, path=f"/{resource}")  # fmt: skip


def _where(decision: Decision) -> str:
    return decision.rule.describe() if decision.rule is not None else "no rule matches"


def _covers_resources(a: PolicyRule, b: PolicyRule) -> bool:
    if a.namespaces and not (b.namespaces and set(b.namespaces) <= set(a.namespaces)):
        return False
    if not a.resources:
        return True
    if not b.resources:
        return False
    for gb in b.resources:
        ok = False
        for ga in a.resources:
            if ga.group not in (gb.group, "*"):
                continue
            if ga.resource_names and not (gb.resource_names and set(gb.resource_names) <= set(ga.resource_names)):
                continue
            if not ga.resources:
                ok = True
                break
            if not gb.resources:
                continue
            if all(_res_covered(r, ga.resources) for r in gb.resources):
                ok = True
                break
        if not ok:
            return False
    return True


def _res_covered(res: str, specs: tuple[str, ...]) -> bool:
    if res in specs or "*" in specs:
        return True
    base, _, sub = res.partition("/")
    return (bool(sub) and sub != "*" and f"*/{sub}" in specs) or f"{base}/*" in specs


def covers(a: PolicyRule, b: PolicyRule) -> bool:
    """Whether every request `b` matches is matched by `a` (conservative: False when unsure)."""
    for mine, theirs in ((a.users, b.users), (a.user_groups, b.user_groups), (a.verbs, b.verbs)):
        if mine and not (theirs and set(theirs) <= set(mine)):
            return False
    if a.namespaces or a.resources:
        return (bool(b.namespaces) or bool(b.resources)) and _covers_resources(a, b)
    if a.non_resource_urls:
        return (
            bool(b.non_resource_urls) and not b.resources and not b.namespaces
            and all(any(_url_covered(u, s) for s in a.non_resource_urls) for u in b.non_resource_urls)
        )  # fmt: skip
    return True


def _url_covered(url: str, spec: str) -> bool:
    if spec == "*" or spec == url:
        return True
    return spec.endswith("*") and url.rstrip("*").startswith(spec.rstrip("*"))


def lint(policy: Policy) -> list[str]:
    warnings: list[str] = []
    # credentials in the log
    probes = [
        ("secrets", "", "", "get"), ("secrets", "", "", "list"), ("secrets", "", "", "create"),
        ("secrets", "", "", "update"), ("secrets", "", "", "patch"), ("serviceaccounts", "", "token", "create"),
        ("tokenreviews", "authentication.k8s.io", "", "create"),
    ]  # fmt: skip
    seen: set[tuple[str, str]] = set()
    for resource, group, sub, verb in probes:
        for user in USERS:
            decision = evaluate(policy, _probe(resource, group, sub, verb, user=user))
            if LEVEL_RANK[decision.level] >= LEVEL_RANK["Request"]:
                what = f"{resource}/{sub}" if sub else resource
                if (what, _where(decision)) not in seen:
                    seen.add((what, _where(decision)))
                    warnings.append(
                        f"credentials logged: {verb} {what} is recorded at {decision.level} by {_where(decision)}; "
                        "the bodies hold secrets or tokens (use Metadata)"
                    )
    # exec and attach
    for sub in ("exec", "attach"):
        decisions = [evaluate(policy, _probe("pods", "", sub, verb)) for verb in ("create", "get")]
        if all(d.level == "None" for d in decisions):
            warnings.append(f"pods/{sub} is not recorded ({_where(decisions[0])}): interactive sessions are invisible")
        elif all("ResponseStarted" in d.omit_stages for d in decisions if d.level != "None"):
            d = next(d for d in decisions if d.level != "None")
            warnings.append(
                f"pods/{sub} is recorded ({_where(d)}, its command is in the URI) but ResponseStarted is omitted: "
                "rules that examine the stream when it opens (pod-exec-attach) are blind"
            )
    # catch-all
    catch_all = [r for r in policy.rules if covers(r, PolicyRule(level="None"))]
    if not catch_all:
        warnings.append("no catch-all rule: requests that match no rule are not recorded at all (level None)")
    elif catch_all[0].level == "None":
        warnings.append(f"the catch-all {catch_all[0].describe()} is level None: unmatched requests are not recorded")
    # shadowed rules
    for j, later in enumerate(policy.rules):
        for earlier in policy.rules[:j]:
            if covers(earlier, later):
                warnings.append(
                    f"{later.describe()} is shadowed by {earlier.describe()}: it matches every request the later "
                    "rule would, and the first match wins"
                )
                break
    # known-broken groups
    for rule in policy.rules:
        for gr in rule.resources:
            for res in gr.resources:
                base = res.split("/", 1)[0]
                right = RESOURCE_GROUPS.get(base)
                if right is not None and gr.group == "":
                    warnings.append(
                        f'{rule.describe()}: "{res}" is listed under the core group "" but lives in "{right}": '
                        "it never matches"
                    )
                elif base in CORE_RESOURCES and gr.group not in ("", "*"):
                    warnings.append(
                        f'{rule.describe()}: "{res}" is listed under group "{gr.group}" but is a core resource '
                        '(group ""): it never matches'
                    )
    return warnings


# --- rule coverage --------------------------------------------------------------------------------------

Branch = dict[str, Any]  # field -> tuple of allowed values ("" = absent); "_level" -> body level needed

_FIELDS = {
    "verb": "verb", "objectRef.resource": "resource", "objectRef.subresource": "subresource",
    "objectRef.apiGroup": "group", "objectRef.namespace": "namespace", "objectRef.name": "name",
    "user.username": "user", "user.groups": "groups", "stage": "stage",
}  # fmt: skip


def _level_of(path: str) -> int:
    if path.startswith("responseObject"):
        return LEVEL_RANK["RequestResponse"]
    if path.startswith(_BODY_ROOTS):
        return LEVEL_RANK["Request"]
    return LEVEL_RANK["Metadata"]


def _values(spec: Any) -> tuple[str, ...] | None:
    """The values a field spec allows, "" for absent; None when it constrains nothing we can enumerate."""
    if isinstance(spec, str):
        return (spec,)
    if isinstance(spec, list) and spec and all(isinstance(v, str) for v in spec):
        return tuple(spec)
    if isinstance(spec, dict):
        if spec.get("exists") is False and len(spec) == 1:
            return ("",)
        if set(spec) <= {"equals", "in"}:
            vals: list[str] = []
            for arg in spec.values():
                for v in arg if isinstance(arg, list) else [arg]:
                    if not isinstance(v, str):
                        return None
                    vals.append(v)
            return tuple(vals)
    return None


def _merge(a: Branch, b: Branch) -> Branch | None:
    out = dict(a)
    for key, value in b.items():
        if key == "_level":
            out["_level"] = max(out.get("_level", 1), value)
        elif key in out:
            both = tuple(v for v in out[key] if v in value)
            if not both:
                return None
            out[key] = both
        else:
            out[key] = value
    return out


def branches(cond: Any) -> list[Branch]:
    """The condition as a disjunction of constraint sets (a bounded DNF; `not` constrains nothing)."""
    if not isinstance(cond, Mapping):
        return [{}]
    result: list[Branch] = [{}]
    for key, spec in cond.items():
        if key == "not":
            options: list[Branch] = [{}]
        elif key == "any":
            options = [b for item in (spec or []) for b in branches(item)]
        elif key == "all":
            options = [{}]
            for item in spec or []:
                options = [m for x in options for y in branches(item) if (m := _merge(x, y)) is not None]
        else:
            option: Branch = {}
            absent = isinstance(spec, dict) and spec.get("exists") is False
            if not absent:
                option["_level"] = _level_of(str(key))
            field_name = _FIELDS.get(str(key))
            values = _values(spec) if field_name else None
            if field_name and values is not None:
                option[field_name] = values
            options = [option]
        result = [m for x in result for y in options if (m := _merge(x, y)) is not None][:_MAX_BRANCHES]
    return result


def _candidates(branch: Branch) -> Iterable[RequestAttributes]:
    verbs = branch.get("verb") or ALL_VERBS
    users: list[tuple[str, tuple[str, ...]]] = list(USERS)
    if "user" in branch:
        users = [(u, ("system:authenticated",)) for u in branch["user"]]
    if "groups" in branch:
        users = [(u, tuple(branch["groups"])) for u, _ in users]
    if "resource" in branch:
        triples: list[tuple[str, str, str]] = []
        for res in branch["resource"]:
            groups = branch.get("group") or (RESOURCE_GROUPS.get(res, ""),)
            for grp in groups:
                for sub in branch.get("subresource") or ("",):
                    triples.append((res, grp, sub))
    else:
        triples = [(r, branch["group"][0] if "group" in branch else g, (branch.get("subresource") or (s,))[0])
                   for r, g, s in SAMPLE_RESOURCES]  # fmt: skip
    for (res, grp, sub), verb, user in itertools.product(triples, verbs, users):
        for ns in branch.get("namespace") or ("default", ""):
            for name in branch.get("name") or ("x",):
                yield RequestAttributes(user[0], user[1], verb, True, namespace="" if res in CLUSTER_SCOPED else ns,
                                        api_group=grp, resource=res, subresource=sub, name=name)  # fmt: skip
    if "resource" not in branch and "subresource" not in branch and "group" not in branch:
        for verb, user in itertools.product(verbs, users):  # non-resource requests
            yield RequestAttributes(user[0], user[1], verb, False, path="/api")


def blind_reason(
    policy: Policy, cond: Any, stages: frozenset[str] | None, resources: frozenset[str] | None
) -> str | None:
    """Why a rule can never fire under `policy`, or None when some request it alerts on is recorded."""
    if cond is None:
        cond = {"objectRef.resource": sorted(resources)} if resources else {}
    rule_stages = stages or frozenset({"ResponseComplete", "ResponseStarted"})
    not_recorded: list[str] = []
    stage_omitted: list[str] = []
    too_low: list[str] = []
    for branch in branches(cond):
        wanted_stages = [s for s in rule_stages if s in branch.get("stage", rule_stages)]
        need = branch.get("_level", 1)
        for attrs in _candidates(branch):
            decision = evaluate(policy, attrs)
            what = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource or attrs.path
            if decision.level == "None":
                not_recorded.append(f"{attrs.verb} {what} is not recorded ({_where(decision)})")
                continue
            kept = [s for s in wanted_stages if s not in decision.omit_stages]
            if not kept:
                stage_omitted.append(
                    f"{'/'.join(sorted(wanted_stages))} of {attrs.verb} {what} omitted ({_where(decision)})"
                )
                continue
            if LEVEL_RANK[decision.level] < need:
                body = "responseObject" if need == LEVEL_RANK["RequestResponse"] else "requestObject"
                too_low.append(
                    f"reads {body} (needs level {LEVEL_RANK_NAMES[need]}) but {attrs.verb} {what} is recorded at "
                    f"{decision.level} ({_where(decision)})"
                )
                continue
            return None
    for found in (too_low, stage_omitted, not_recorded):
        if found:
            return found[0] + (f" (and {len(set(found)) - 1} more)" if len(set(found)) > 1 else "")
    return "no request can match this rule"


LEVEL_RANK_NAMES = {rank: level for level, rank in LEVEL_RANK.items()}
