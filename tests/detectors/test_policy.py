"""Audit policies: loading, validation and evaluation with the kube-apiserver's exact semantics (§3)."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.events import AuditEvent
from detectors.policy import (
    PolicyError,
    RequestAttributes,
    apply_policy,
    evaluate,
    evaluate_event,
    load_policy,
    parse_policy,
    path_matches,
)
from detectors.policy.check import covers, lint

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


def policy(body: str) -> Any:
    return load_policy(HEAD + body)


def errors_of(body: str) -> list[str]:
    return parse_policy(HEAD + body)[1]


def req(resource: str = "pods", *, verb: str = "get", ns: str = "default", group: str = "", sub: str = "",
        name: str = "", user: str | None = "alice", groups: tuple[str, ...] = ("system:authenticated",)) -> RequestAttributes:  # fmt: skip
    return RequestAttributes(user, groups if user is not None else (), verb, True, namespace=ns, api_group=group,
                             resource=resource, subresource=sub, name=name)  # fmt: skip


def url(path: str, verb: str = "get", user: str | None = "alice") -> RequestAttributes:
    return RequestAttributes(user, ("system:authenticated",) if user else (), verb, False, path=path)


def level(p: Any, attrs: RequestAttributes) -> str:
    return str(evaluate(p, attrs).level)


# --- loading and validation -----------------------------------------------------------------------------


def test_only_v1_policy_is_accepted() -> None:
    for text in ("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: Metadata}]\n",
                 "apiVersion: audit.k8s.io/v1\nkind: EventList\nrules: [{level: Metadata}]\n",
                 "kind: Policy\nrules: [{level: Metadata}]\n"):  # fmt: skip
        p, errors, _ = parse_policy(text)
        assert p is None and errors and "failed decoding" in errors[0]


def test_strict_then_lenient_decoding_warns_about_unknown_and_duplicate_fields() -> None:
    p, errors, warnings = parse_policy(HEAD + "rules:\n- level: Metadata\n  userGroup: [x]\n")
    assert p is not None and not errors
    assert any('unknown field "userGroup"' in w for w in warnings)
    assert p.rules[0].user_groups == ()  # the misspelt field is dropped: the rule matches everyone
    p, errors, warnings = parse_policy(HEAD + "rules:\n- level: Metadata\n  level: None\n")
    assert p is not None and any("duplicate key" in w for w in warnings)


def test_zero_rules_is_an_error() -> None:
    assert any("0 rules" in e for e in errors_of("rules: []\n"))
    assert any("0 rules" in e for e in errors_of("omitStages: [RequestReceived]\n"))
    with pytest.raises(PolicyError):
        policy("rules: []\n")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules: [{verbs: [get]}]", "rules[0].level: Required value"),
        ("rules: [{level: Everything}]", 'rules[0].level: Unsupported value: "Everything"'),
        ("rules: [{level: metadata}]", 'Unsupported value: "metadata"'),
        (
            "omitStages: [RequestRecieved]\nrules: [{level: Metadata}]",
            'omitStages[0]: Invalid value: "RequestRecieved"',
        ),
        ("rules: [{level: Metadata, omitStages: [Done]}]", 'rules[0].omitStages[0]: Invalid value: "Done"'),
        ("rules: [{level: None, nonResourceURLs: [healthz]}]", "must begin with a '/' character"),
        ("rules: [{level: None, nonResourceURLs: ['/a*b']}]", "must be the final character"),
        ("rules: [{level: None, nonResourceURLs: ['*x']}]", "must begin with a '/'"),
        (
            "rules: [{level: None, resources: [{group: rbac.authorization.k8s.io/v1}]}]",
            "rules[0].resources.group: Invalid value",
        ),
        ("rules: [{level: None, resources: [{group: Apps}]}]", "RFC 1123 subdomain"),
        (
            "rules: [{level: None, resources: [{group: '', resourceNames: [x]}]}]",
            "using resourceNames requires at least one resource",
        ),
        (
            "rules: [{level: None, nonResourceURLs: [/x], resources: [{group: ''}]}]",
            "both regular resources and non-resource URLs",
        ),
        (
            "rules: [{level: None, nonResourceURLs: [/x], namespaces: [a]}]",
            "both regular resources and non-resource URLs",
        ),
    ],
)
def test_validation_errors_match_the_apiserver(body: str, message: str) -> None:
    errors = errors_of(body + "\n")
    assert any(message in e for e in errors), errors


def test_valid_edge_values() -> None:
    assert not errors_of("rules: [{level: None, nonResourceURLs: ['*', '/healthz*', '/x']}, {level: Metadata}]\n")
    assert not errors_of("rules: [{level: None, resources: [{group: '*'}, {group: ''}, {group: apps}]}]\n")


# --- evaluation -----------------------------------------------------------------------------------------


def test_first_match_wins_and_no_match_is_none() -> None:
    p = policy(
        "rules:\n- {level: Request, resources: [{group: '', resources: [pods]}]}\n- {level: Metadata, resources: [{group: ''}]}\n"
    )
    assert level(p, req("pods")) == "Request"
    assert level(p, req("secrets")) == "Metadata"
    assert level(p, req("deployments", group="apps")) == "None"
    assert evaluate(p, req("deployments", group="apps")).rule is None


def test_users_exact_and_groups_any() -> None:
    p = policy(
        "rules:\n- {level: None, users: [alice]}\n- {level: Request, userGroups: [admins, ops]}\n- {level: Metadata}\n"
    )
    assert level(p, req(user="alice")) == "None"
    assert level(p, req(user="alice2")) == "Metadata"  # exact, not prefix
    assert level(p, req(user="bob", groups=("devs", "ops"))) == "Request"
    assert level(p, req(user="bob", groups=("devs",))) == "Metadata"


def test_a_nil_user_never_matches_user_or_group_rules() -> None:
    p = policy(
        "rules:\n- {level: None, users: ['']}\n- {level: None, userGroups: [system:unauthenticated]}\n- {level: Metadata}\n"
    )
    assert level(p, req(user=None)) == "Metadata"
    failed_authn = {"auditID": "a", "stage": "ResponseStarted", "verb": "list", "requestURI": "/api/v1/pods",
                    "user": {}, "objectRef": {"resource": "pods", "apiVersion": "v1"}}  # fmt: skip
    assert RequestAttributes.from_event(failed_authn).user is None
    assert evaluate_event(p, failed_authn).level == "Metadata"
    anonymous = dict(failed_authn, user={"username": "system:anonymous", "groups": ["system:unauthenticated"]})
    assert evaluate_event(p, anonymous).level == "None"


def test_verbs_exact() -> None:
    p = policy("rules:\n- {level: None, verbs: [list, watch]}\n- {level: Metadata}\n")
    assert level(p, req(verb="watch")) == "None"
    assert level(p, req(verb="get")) == "Metadata"
    assert level(p, req(verb="deletecollection")) == "Metadata"


def test_namespaces_exact_and_empty_for_cluster_scope_and_all_namespaces() -> None:
    p = policy(
        "rules:\n- {level: Request, namespaces: ['']}\n- {level: RequestResponse, namespaces: [kube-system]}\n- {level: Metadata}\n"
    )
    assert level(p, req("nodes", ns="")) == "Request"  # cluster-scoped
    assert level(p, req("secrets", verb="list", ns="")) == "Request"  # kubectl get secrets -A
    assert level(p, req("pods", ns="kube-system")) == "RequestResponse"
    assert level(p, req("pods", ns="kube-system-2")) == "Metadata"
    # DELETE /api/v1/namespaces/kube-system: the namespace of the request is kube-system itself
    event = {"verb": "delete", "requestURI": "/api/v1/namespaces/kube-system", "user": {"username": "mallory"},
             "objectRef": {"resource": "namespaces", "namespace": "kube-system", "name": "kube-system"}}  # fmt: skip
    assert evaluate_event(p, event).level == "RequestResponse"
    # namespaces (or resources) make a rule resource-only
    assert level(p, url("/healthz")) == "Metadata"


def test_groups_and_the_core_group() -> None:
    p = policy(
        "rules:\n- {level: Request, resources: [{group: ''}]}\n- {level: RequestResponse, resources: [{group: '*', resources: [leases]}]}\n- {level: Metadata}\n"
    )
    assert level(p, req("pods")) == "Request"
    assert level(p, req("pods/log", sub="")) == "Request"
    assert level(p, req("deployments", group="apps")) == "Metadata"  # "" is core only
    assert level(p, req("leases", group="coordination.k8s.io")) == "RequestResponse"
    falco = policy(
        "rules:\n- {level: RequestResponse, resources: [{group: '', resources: [deployments]}]}\n- {level: Metadata}\n"
    )
    assert level(falco, req("deployments", group="apps")) == "Metadata"  # Falco's bug: never matches


def test_an_empty_resource_list_means_the_whole_group_subresources_included() -> None:
    p = policy("rules:\n- {level: Request, resources: [{group: ''}]}\n- {level: Metadata}\n")
    assert level(p, req("pods", sub="exec")) == "Request"


def test_resource_and_subresource_matching_with_the_prefix_quirk() -> None:
    p = policy("rules:\n- {level: Request, resources: [{group: '', resources: ['pods/*']}]}\n- {level: Metadata}\n")
    assert level(p, req("pods", sub="exec")) == "Request"
    assert level(p, req("pods")) == "Request"  # pods/* also matches plain pods (checker.go checks the prefix only)
    plain = policy("rules:\n- {level: Request, resources: [{group: '', resources: [pods]}]}\n- {level: Metadata}\n")
    assert level(plain, req("pods", sub="log")) == "Metadata"  # plain pods does not match pods/log
    exact = policy(
        "rules:\n- {level: Request, resources: [{group: '', resources: [pods/exec]}]}\n- {level: Metadata}\n"
    )
    assert level(exact, req("pods", sub="exec")) == "Request"
    assert level(exact, req("pods", sub="attach")) == "Metadata"
    assert level(exact, req("pods")) == "Metadata"
    scale = policy(
        "rules:\n- {level: Request, resources: [{group: '*', resources: ['*/scale']}]}\n- {level: Metadata}\n"
    )
    assert level(scale, req("deployments", group="apps", sub="scale")) == "Request"
    assert level(scale, req("replicationcontrollers", sub="scale")) == "Request"
    assert level(scale, req("deployments", group="apps")) == "Metadata"
    star = policy("rules:\n- {level: Request, resources: [{group: '', resources: ['*']}]}\n- {level: Metadata}\n")
    assert level(star, req("pods", sub="exec")) == "Request"


def test_resource_names_and_field_selector_lists() -> None:
    p = policy(
        "rules:\n- {level: None, resources: [{group: '', resources: [configmaps], resourceNames: [cluster-autoscaler-status]}]}\n- {level: Metadata}\n"
    )
    assert level(p, req("configmaps", ns="kube-system", name="cluster-autoscaler-status")) == "None"
    assert level(p, req("configmaps", ns="kube-system", name="other")) == "Metadata"
    assert level(p, req("configmaps", verb="create", ns="kube-system")) == "Metadata"  # creates have no name
    assert level(p, req("configmaps", verb="list", ns="kube-system")) == "Metadata"  # an unnamed list
    base = {"user": {"username": "kubelet"}, "objectRef": {"resource": "configmaps", "namespace": "kube-system"}}
    for verb, query in (("list", "fieldSelector=metadata.name%3Dcluster-autoscaler-status"),
                        ("watch", "fieldSelector=metadata.name%3D%3Dcluster-autoscaler-status&watch=true"),
                        ("list", "fieldSelector=spec.x%3Dy,metadata.name%3Dcluster-autoscaler-status")):  # fmt: skip
        event = dict(base, verb=verb, requestURI=f"/api/v1/namespaces/kube-system/configmaps?{query}")
        assert evaluate_event(p, event).level == "None", query
    event = dict(
        base,
        verb="list",
        requestURI="/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name!%3Dcluster-autoscaler-status",
    )
    assert evaluate_event(p, event).level == "Metadata"


def test_non_resource_urls() -> None:
    p = policy(
        "rules:\n- {level: None, nonResourceURLs: ['/healthz*', /version]}\n- {level: Request, nonResourceURLs: ['*']}\n- {level: Metadata}\n"
    )
    assert level(p, url("/healthz")) == "None"
    assert level(p, url("/healthz/etcd")) == "None"
    assert level(p, url("/healthzx")) == "None"  # a trailing * is a plain prefix
    assert level(p, url("/version")) == "None"
    assert level(p, url("/version/")) == "Request"  # exact only
    assert level(p, url("/metrics")) == "Request"  # * matches every non-resource URL
    assert level(p, req("pods")) == "Metadata"  # ... and no resource request
    event = {"verb": "get", "requestURI": "/version?timeout=32s", "user": {"username": "alice"}}
    assert evaluate_event(p, event).level == "None"  # the query string is not part of the path
    assert path_matches("/apis/apps", "/api**")  # every trailing * is trimmed (validation refuses such specs)


def test_a_rule_without_resource_or_url_fields_matches_everything() -> None:
    p = policy("rules:\n- {level: Request, verbs: [get]}\n")
    assert level(p, req("pods")) == "Request" and level(p, url("/metrics")) == "Request"


def test_omit_stages_is_the_union_and_omit_managed_fields_overrides() -> None:
    p = policy("omitStages: [RequestReceived]\nomitManagedFields: true\nrules:\n"
               "- {level: Request, resources: [{group: ''}], omitStages: [ResponseStarted], omitManagedFields: false}\n"
               "- {level: Metadata}\n")  # fmt: skip
    first = evaluate(p, req("pods"))
    assert first.omit_stages == {"RequestReceived", "ResponseStarted"} and first.omit_managed_fields is False
    second = evaluate(p, req("deployments", group="apps"))
    assert second.omit_stages == {"RequestReceived"} and second.omit_managed_fields is True
    none = evaluate(policy("omitStages: [Panic]\nrules: [{level: None, verbs: [get]}]\n"), req(verb="list"))
    assert none.level == "None" and none.omit_stages == {"Panic"}


def test_the_policy_runs_on_the_authenticated_user_not_the_impersonated_one() -> None:
    p = policy("rules:\n- {level: None, users: [system:admin]}\n- {level: Metadata}\n")
    event = {"verb": "get", "requestURI": "/api/v1/pods", "user": {"username": "mallory"},
             "impersonatedUser": {"username": "system:admin"}, "objectRef": {"resource": "pods"}}  # fmt: skip
    assert evaluate_event(p, event).level == "Metadata"


def test_apply_policy_drops_and_strips() -> None:
    p = policy("omitStages: [RequestReceived]\nomitManagedFields: true\nrules:\n"
               "- {level: None, resources: [{group: coordination.k8s.io}]}\n"
               "- {level: Request, resources: [{group: ''}]}\n- {level: Metadata}\n")  # fmt: skip
    body = {"metadata": {"name": "x", "managedFields": [{"manager": "kubectl"}]}}
    raw = {"auditID": "a", "stage": "ResponseComplete", "verb": "create", "requestURI": "/api/v1/namespaces/d/pods",
           "user": {"username": "alice"}, "objectRef": {"resource": "pods", "namespace": "d"},
           "requestObject": body, "responseObject": body, "level": "RequestResponse"}  # fmt: skip
    out = apply_policy(p, AuditEvent(raw=raw, origin="f:1"))
    assert out is not None and out.raw["level"] == "Request" and "responseObject" not in out.raw
    assert out.raw["requestObject"] == {"metadata": {"name": "x"}} and out.origin == "f:1"
    assert raw["requestObject"] is body and "managedFields" in body["metadata"]  # the original is not mutated
    assert apply_policy(p, AuditEvent(raw=dict(raw, stage="RequestReceived"))) is None
    apps = dict(raw, objectRef={"resource": "deployments", "apiGroup": "apps", "namespace": "d"})
    meta = apply_policy(p, AuditEvent(raw=apps))
    assert meta is not None and meta.raw["level"] == "Metadata" and "requestObject" not in meta.raw
    lease = dict(raw, objectRef={"resource": "leases", "apiGroup": "coordination.k8s.io"})
    assert apply_policy(p, AuditEvent(raw=lease)) is None


# --- lints and coverage ---------------------------------------------------------------------------------


def test_lints() -> None:
    p = policy("omitStages: [ResponseStarted]\nrules:\n"
               "- {level: RequestResponse, resources: [{group: '', resources: [secrets]}]}\n"
               "- {level: Request, resources: [{group: '', resources: [deployments]}]}\n"
               "- {level: Metadata, resources: [{group: ''}]}\n"
               "- {level: Request, resources: [{group: '', resources: [pods]}]}\n")  # fmt: skip
    warnings = "\n".join(lint(p))
    assert "credentials logged: get secrets is recorded at RequestResponse by rules[0]" in warnings
    assert '"deployments" is listed under the core group "" but lives in "apps"' in warnings
    assert "rules[3] (line 8) is shadowed by rules[2] (line 7)" in warnings
    assert "no catch-all rule" in warnings
    assert "pods/exec is recorded" in warnings and "ResponseStarted is omitted" in warnings
    assert not lint(policy("rules: [{level: Metadata}]\n"))
    unrecorded = lint(
        policy(
            "rules:\n- {level: None, resources: [{group: '', resources: ['pods/exec', 'pods/attach']}]}\n- {level: Metadata}\n"
        )
    )
    assert any("pods/exec is not recorded" in w for w in unrecorded)


def test_covers_is_conservative() -> None:
    a = policy("rules:\n- {level: None, verbs: [get, list], resources: [{group: '', resources: ['pods/*']}]}\n").rules[
        0
    ]
    b = policy("rules:\n- {level: None, verbs: [get], resources: [{group: '', resources: [pods/log, pods]}]}\n").rules[
        0
    ]
    assert covers(a, b) and not covers(b, a)
