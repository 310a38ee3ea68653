"""Sigma rules (SigmaHQ's Kubernetes audit rules, pySigma-parsed) evaluated directly on audit events."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.errors import RuleError, RuleErrors
from detectors.events import AuditEvent
from detectors.loading.loader import BUILTIN_DIR
from detectors.loading.yamlload import load_yaml_documents
from detectors.packs import PACKS
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.sigma import SigmaDetector, SigmaRules, build_detector
from tests.support.cli import CliRun

SIGMA_DIR = PACKS["sigma"]  # SigmaHQ's 16 Kubernetes audit rules, shipped unmodified as the `sigma` pack
ENUMERATION = "sigma:597a7e84-187d-458b-9e4f-2f5a0e676711"


# ---------------------------------------------------------------- realistic events

_counter = iter(range(1, 10_000))


def event(
    *,
    verb: str,
    uri: str,
    stage: str = "ResponseComplete",
    code: int = 200,
    resource: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    api_group: str | None = None,
    api_version: str = "v1",
    subresource: str | None = None,
    username: str = "alice@example.com",
    groups: tuple[str, ...] = ("system:authenticated", "oidc:platform-admins"),
    user_agent: str = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
    request_object: Any = None,
    decision: str = "allow",
    level: str = "Metadata",
) -> dict[str, Any]:
    """A full audit.k8s.io/v1 Event as kube-apiserver writes it."""
    n = next(_counter)
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": f"5f0c2a9e-4b7d-4c1e-9a3f-{n:012d}",
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": {"username": username, "groups": list(groups)},
        "sourceIPs": ["203.0.113.24"],
        "userAgent": user_agent,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-11-20T10:04:11.512304Z",
        "stageTimestamp": "2026-11-20T10:04:11.539871Z",
        "annotations": {
            "authorization.k8s.io/decision": decision,
            "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "platform-admins" of ClusterRole "cluster-admin" to Group "oidc:platform-admins"'
            if decision == "allow"
            else "",
        },
    }
    if resource is not None:
        ref: dict[str, Any] = {"resource": resource, "apiVersion": api_version}
        for key, value in (("namespace", namespace), ("name", name), ("apiGroup", api_group),
                           ("subresource", subresource)):  # fmt: skip
            if value is not None:
                ref[key] = value
        raw["objectRef"] = ref
    if code >= 400:
        reason = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(code, "")
        raw["responseStatus"] = {"metadata": {}, "status": "Failure", "reason": reason, "code": code}
    if request_object is not None:
        raw["level"] = "Request"
        raw["requestObject"] = request_object
    return raw


def pod(name: str, namespace: str, *, volumes: list[Any] | None = None, security: Any = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.example.com/shop/app:1.4.2",
                                 "resources": {}, "imagePullPolicy": "IfNotPresent"}  # fmt: skip
    if security is not None:
        container["securityContext"] = security
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
    if volumes is not None:
        spec["volumes"] = volumes
        container["volumeMounts"] = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in volumes]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def create_pod(namespace: str, name: str, **kwargs: Any) -> dict[str, Any]:
    return event(verb="create", uri=f"/api/v1/namespaces/{namespace}/pods?fieldManager=kubectl-run",
                 resource="pods", namespace=namespace, name=name, code=201,
                 request_object=pod(name, namespace, **kwargs))  # fmt: skip


# rule id -> (positive events, negative events)
CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "sigma:eed82177-38f5-4299-8a76-098d50d225ab": (  # Kubernetes Admission Controller Modification
        [
            event(
                verb="create",
                uri="/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations?fieldManager=kubectl-client-side-apply",
                resource="validatingwebhookconfigurations",
                name="audit-sink",
                api_group="admissionregistration.k8s.io",
                code=201,
            ),
            event(
                verb="delete",
                uri="/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector",
                resource="mutatingwebhookconfigurations",
                name="istio-sidecar-injector",
                api_group="admissionregistration.k8s.io",
            ),
        ],
        [
            event(
                verb="list",
                uri="/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations?limit=500",
                resource="validatingwebhookconfigurations",
                api_group="admissionregistration.k8s.io",
            )
        ],
    ),
    "sigma:0c9b3bda-41a6-4442-9345-356ae86343dc": (  # Kubernetes CronJob/Job Modification
        [
            event(
                verb="create",
                uri="/apis/batch/v1/namespaces/shop/cronjobs?fieldManager=kubectl-create",
                resource="cronjobs",
                namespace="shop",
                name="backup",
                api_group="batch",
                code=201,
            )
        ],
        [
            event(
                verb="get",
                uri="/apis/batch/v1/namespaces/shop/cronjobs/backup",
                resource="cronjobs",
                namespace="shop",
                name="backup",
                api_group="batch",
            )
        ],
    ),
    "sigma:40967487-139b-4811-81d9-c9767a92aa5a": (  # Deployment Deleted From Kubernetes Cluster
        [
            event(
                verb="delete",
                uri="/apis/apps/v1/namespaces/shop/deployments/checkout",
                resource="deployments",
                namespace="shop",
                name="checkout",
                api_group="apps",
            )
        ],
        [
            event(
                verb="delete",
                uri="/apis/apps/v1/namespaces/shop/deployments/checkout",
                resource="deployments",
                namespace="shop",
                name="checkout",
                api_group="apps",
                stage="RequestReceived",
            ),
            event(
                verb="get",
                uri="/apis/apps/v1/namespaces/shop/deployments/checkout",
                resource="deployments",
                namespace="shop",
                name="checkout",
                api_group="apps",
            ),
        ],
    ),
    "sigma:3132570d-cab2-4561-9ea6-1743644b2290": (  # Kubernetes Events Deleted
        [
            event(
                verb="delete",
                uri="/api/v1/namespaces/shop/events/checkout-7d9f.17a3c2",
                resource="events",
                namespace="shop",
                name="checkout-7d9f.17a3c2",
            )
        ],
        [
            event(
                verb="create",
                uri="/api/v1/namespaces/shop/events",
                resource="events",
                namespace="shop",
                code=201,
                username="system:serviceaccount:kube-system:replicaset-controller",
            )
        ],
    ),
    "sigma:a1b0ca4e-7835-413e-8471-3ff2b8a66be6": (  # Potential Remote Command Execution In Pod Container
        [
            event(
                verb="create",
                stage="ResponseStarted",
                code=101,
                resource="pods",
                namespace="shop",
                name="checkout-7d9f",
                subresource="exec",
                uri="/api/v1/namespaces/shop/pods/checkout-7d9f/exec?command=%2Fbin%2Fsh&container=app&stdin=true&stdout=true&tty=true",
            ),
            event(
                verb="create",
                code=403,
                decision="forbid",
                resource="pods",
                namespace="kube-system",
                name="etcd-cp-1",
                subresource="exec",
                uri="/api/v1/namespaces/kube-system/pods/etcd-cp-1/exec?command=sh&stdin=true&stdout=true&tty=true",
            ),
        ],
        [
            event(
                verb="create",
                stage="ResponseComplete",
                code=101,
                resource="pods",
                namespace="shop",
                name="checkout-7d9f",
                subresource="exec",
                uri="/api/v1/namespaces/shop/pods/checkout-7d9f/exec?command=%2Fbin%2Fsh&container=app&stdin=true&stdout=true&tty=true",
            ),
            event(
                verb="get",
                resource="pods",
                namespace="shop",
                name="checkout-7d9f",
                subresource="log",
                uri="/api/v1/namespaces/shop/pods/checkout-7d9f/log?container=app",
            ),
        ],
    ),
    "sigma:402b955c-8fe0-4a8c-b635-622b4ac5f902": (  # Container With A hostPath Mount Created
        [create_pod("shop", "debug", volumes=[{"name": "host", "hostPath": {"path": "/", "type": ""}}])],
        [create_pod("shop", "web", volumes=[{"name": "cache", "emptyDir": {}}])],
    ),
    "sigma:a80d927d-ac6e-443f-a867-e8d6e3897318": (  # Creation Of Pod In System Namespace
        [create_pod("kube-system", "kube-proxy-bv61v")],
        [create_pod("shop", "kube-proxy-bv61v")],
    ),
    "sigma:c5cd1b20-36bb-488d-8c05-486be3d0cb97": (  # Privileged Container Deployed
        [create_pod("shop", "netdebug", security={"capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]}})],
        [create_pod("shop", "web", security={"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True})],
    ),
    "sigma:84b777bd-c946-4d17-aa2e-c39f5a454325": (  # RBAC Permission Enumeration Attempt
        [
            event(
                verb="create",
                uri="/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                resource="selfsubjectrulesreviews",
                api_group="authorization.k8s.io",
                code=201,
                request_object={
                    "kind": "SelfSubjectRulesReview",
                    "apiVersion": "authorization.k8s.io/v1",
                    "metadata": {},
                    "spec": {"namespace": "default"},
                },
            )
        ],
        [
            event(
                verb="create",
                uri="/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                resource="selfsubjectaccessreviews",
                api_group="authorization.k8s.io",
                code=201,
            )
        ],
    ),
    "sigma:10b97915-ec8d-455f-a815-9a78926585f6": (  # Kubernetes Rolebinding Modification
        [
            event(
                verb="create",
                uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create",
                resource="clusterrolebindings",
                name="backdoor",
                api_group="rbac.authorization.k8s.io",
                code=201,
            )
        ],
        [
            event(
                verb="list",
                uri="/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings",
                resource="rolebindings",
                namespace="shop",
                api_group="rbac.authorization.k8s.io",
            )
        ],
    ),
    "sigma:eeb3e9e1-b685-44e4-9232-6bb701f925b5": (  # Kubernetes Secrets Enumeration
        [event(verb="list", uri="/api/v1/secrets?limit=500", resource="secrets")],
        [
            event(
                verb="get",
                uri="/api/v1/namespaces/shop/secrets/db-password",
                resource="secrets",
                namespace="shop",
                name="db-password",
            )
        ],
    ),
    "sigma:58d31a75-a4f8-4c40-985b-373d58162ca2": (  # Kubernetes Secrets Modified or Deleted
        [
            event(
                verb="patch",
                uri="/api/v1/namespaces/shop/secrets/db-password?fieldManager=kubectl-patch",
                resource="secrets",
                namespace="shop",
                name="db-password",
                request_object={"data": {"password": "c2VjcmV0"}},
            )
        ],
        [event(verb="watch", uri="/api/v1/namespaces/shop/secrets?watch=true", resource="secrets", namespace="shop")],
    ),
    "sigma:e31bae15-83ed-473e-bf31-faf4f8a17d36": (  # New Kubernetes Service Account Created
        [
            event(
                verb="create",
                uri="/api/v1/namespaces/shop/serviceaccounts",
                resource="serviceaccounts",
                namespace="shop",
                name="ci-deployer",
                code=201,
            )
        ],
        [
            event(
                verb="list", uri="/api/v1/namespaces/shop/serviceaccounts", resource="serviceaccounts", namespace="shop"
            )
        ],
    ),
    "sigma:ad9012a6-e518-4432-9890-f3b82b8fc71f": (  # Potential Sidecar Injection Into Running Deployment
        [
            event(
                verb="patch",
                uri="/apis/apps/v1/namespaces/shop/deployments/checkout?fieldManager=kubectl-patch",
                resource="deployments",
                namespace="shop",
                name="checkout",
                api_group="apps",
                request_object={
                    "spec": {
                        "template": {"spec": {"containers": [{"name": "sidecar", "image": "evil.example/miner:1"}]}}
                    }
                },
            )
        ],
        [
            event(
                verb="patch",
                uri="/apis/apps/v1/namespaces/shop/daemonsets/node-agent?fieldManager=kubectl-patch",
                resource="daemonsets",
                namespace="shop",
                name="node-agent",
                api_group="apps",
            )
        ],
    ),
    "sigma:0d933542-1f1f-420d-97d4-21b2c3c492d9": (  # Kubernetes Unauthorized or Unauthenticated Access
        [
            event(
                verb="list",
                uri="/api/v1/namespaces/kube-system/secrets",
                resource="secrets",
                namespace="kube-system",
                code=403,
                decision="forbid",
                username="system:serviceaccount:shop:default",
                groups=("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"),
            ),
            # failed authentication: one ResponseStarted event, no user, no decision
            {
                **event(
                    verb="get",
                    uri="/api/v1/namespaces/default/pods",
                    stage="ResponseStarted",
                    code=401,
                    user_agent="curl/8.5.0",
                ),
                "user": {},
                "annotations": {},
            },
        ],
        [
            event(
                verb="get",
                uri="/api/v1/namespaces/shop/pods/checkout-7d9f",
                resource="pods",
                namespace="shop",
                name="checkout-7d9f",
            )
        ],
    ),
}


@pytest.fixture(scope="module")
def sigma_rules() -> dict[str, SigmaDetector]:
    detectors = load_rules(["sigma"])
    assert all(isinstance(d, SigmaDetector) for d in detectors)
    return {d.id: d for d in detectors if isinstance(d, SigmaDetector)}


def fire(detector: SigmaDetector, raw: dict[str, Any]) -> list[Any]:
    return Pipeline([detector]).process(AuditEvent(raw=copy.deepcopy(raw), origin="test"))


def test_all_sixteen_rules_load(sigma_rules: dict[str, SigmaDetector]) -> None:
    assert len(sigma_rules) == 16
    assert set(CASES) | {ENUMERATION} == set(sigma_rules)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_realistic_events(sigma_rules: dict[str, SigmaDetector], rule_id: str) -> None:
    detector = sigma_rules[rule_id]
    positives, negatives = CASES[rule_id]
    for raw in positives:
        alerts = fire(detector, raw)
        assert len(alerts) == 1, (detector.name, raw["requestURI"], raw["stage"])
        alert = alerts[0]
        assert alert.rule_name == detector.name
        assert alert.rule_id == rule_id and alert.audit_id == raw["auditID"]
        assert alert.message.startswith(detector.name + ": ")
        assert alert.details["sigma_id"] == rule_id.removeprefix("sigma:")
        assert alert.details["level"] == alert.severity.label or alert.details["level"] == "informational"
    for raw in negatives:
        assert fire(detector, raw) == [], (detector.name, raw["requestURI"], raw["stage"])


def test_rule_metadata(sigma_rules: dict[str, SigmaDetector]) -> None:
    admission = sigma_rules["sigma:eed82177-38f5-4299-8a76-098d50d225ab"]
    assert admission.name == "Kubernetes Admission Controller Modification"
    assert admission.severity.label == "medium"
    assert admission.mitre == ("T1078", "T1552", "T1552.007")
    assert admission.resources == {"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}
    assert admission.details["status"] == "test"
    assert "attack.t1552.007" in admission.details["tags"]
    assert admission.details["references"][0] == "https://kubernetes.io/docs/reference/config-api/apiserver-audit.v1/"
    assert sigma_rules["sigma:40967487-139b-4811-81d9-c9767a92aa5a"].severity.label == "low"
    unauthorized = sigma_rules["sigma:0d933542-1f1f-420d-97d4-21b2c3c492d9"]
    assert unauthorized.resources is None and unauthorized.mitre == ()


def test_enumeration_rule_cannot_match_and_is_reported(sigma_rules: dict[str, SigmaDetector]) -> None:
    detector = sigma_rules[ENUMERATION]
    path = SIGMA_DIR / "kubernetes_audit_potential_enumeration_activity.yml"
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "responseStatus.code" in text)
    assert detector.warnings == (
        f"{path}:{line}: Sigma rule 'Kubernetes Potential Enumeration Activity' can never match as written: "
        "responseStatus.code is an integer in audit events; it never equals 'ALLOW'",
    )
    # exactly what the rule is after (an allowed exec of /bin/sh, a trufflehog scan), and still nothing
    shell = event(
        verb="create",
        stage="ResponseStarted",
        code=101,
        resource="pods",
        namespace="shop",
        name="web-1",
        subresource="exec",
        uri="/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fbin%2Fsh&stdin=true&tty=true",
    )
    scan = event(verb="list", uri="/api/v1/secrets", resource="secrets", user_agent="trufflehog/3.63.0")
    assert fire(detector, shell) == [] and fire(detector, scan) == []
    # the format collects the warnings of every file it loaded; the other 15 rules have none
    fmt = SigmaRules()
    for file in sorted(SIGMA_DIR.glob("*.yml")):
        fmt.add(file, load_yaml_documents(file.read_text(), path=str(file)))
    assert fmt.warnings == list(detector.warnings)


def test_each_request_is_evaluated_once(sigma_rules: dict[str, SigmaDetector]) -> None:
    secrets = sigma_rules["sigma:eeb3e9e1-b685-44e4-9232-6bb701f925b5"]
    base = CASES[secrets.id][0][0]
    stages = {stage: fire(secrets, {**base, "stage": stage})
              for stage in ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")}  # fmt: skip
    assert {s: len(a) for s, a in stages.items()} == {"RequestReceived": 0, "ResponseStarted": 0,
                                                      "ResponseComplete": 1, "Panic": 0}  # fmt: skip
    watch = event(verb="watch", uri="/api/v1/secrets?watch=true", resource="secrets")
    assert fire(secrets, {**watch, "stage": "ResponseStarted"}) == []


# ---------------------------------------------------------------- modifiers and conditions


def rule(detection: str, *, extra: str = "") -> SigmaDetector:
    text = f"""title: Unit rule
id: 6f2b1d0e-0000-4000-8000-000000000001
status: test
logsource:
    product: kubernetes
    service: audit
{extra}detection:
{detection}
level: high
"""
    return build_detector(load_yaml_documents(text, path="unit.yml")[0], path="unit.yml")


def matches(detector: SigmaDetector, raw: dict[str, Any]) -> bool:
    return detector.predicate(AuditEvent(raw=raw))


SHELL = event(
    verb="create",
    stage="ResponseStarted",
    code=101,
    resource="pods",
    namespace="shop",
    name="web-1",
    subresource="exec",
    uri="/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fbin%2Fbash&stdin=true",
)
LIST = event(verb="list", uri="/api/v1/secrets?limit=500", resource="secrets", user_agent="Trufflehog/3.63.0")


@pytest.mark.parametrize(
    ("detection", "expected"),
    [
        ("    sel:\n        verb: CREATE\n    condition: sel", (True, False)),  # case-insensitive
        ("    sel:\n        verb|cased: CREATE\n    condition: sel", (False, False)),
        ("    sel:\n        requestURI|contains: '%2fBIN%2fbash'\n    condition: sel", (True, False)),
        ("    sel:\n        requestURI|startswith: /API/v1/secrets\n    condition: sel", (False, True)),
        ("    sel:\n        requestURI|endswith: '=500'\n    condition: sel", (False, True)),
        ("    sel:\n        requestURI: '/api/v1/*/shop/pods/web-?/exec*'\n    condition: sel", (True, False)),
        ("    sel:\n        requestURI: '/api/v1/\\*'\n    condition: sel", (False, False)),  # escaped wildcard
        ("    sel:\n        requestURI|re: 'command=%2Fbin%2F(ba)?sh'\n    condition: sel", (True, False)),
        ("    sel:\n        requestURI|re: 'COMMAND='\n    condition: sel", (False, False)),  # re is case-sensitive
        ("    sel:\n        requestURI|re|i: 'COMMAND='\n    condition: sel", (True, False)),
        ("    sel:\n        requestURI|contains|all: [exec, stdin]\n    condition: sel", (True, False)),
        ("    sel:\n        requestURI|contains|all: [exec, secrets]\n    condition: sel", (False, False)),
        ("    sel:\n        sourceIPs|cidr: 203.0.113.0/24\n    condition: sel", (True, True)),
        ("    sel:\n        sourceIPs|cidr: 10.0.0.0/8\n    condition: sel", (False, False)),
        ("    sel:\n        objectRef.subresource|exists: true\n    condition: sel", (True, False)),
        ("    sel:\n        objectRef.subresource|exists: false\n    condition: sel", (False, True)),
        ("    sel:\n        objectRef.subresource: null\n    condition: sel", (False, True)),
        ("    sel:\n        responseStatus.code: 101\n    condition: sel", (True, False)),
        ("    sel:\n        responseStatus.code: '200'\n    condition: sel", (False, True)),  # string vs number
        ("    sel:\n        responseStatus.code|gte: 200\n    condition: sel", (False, True)),
        ("    sel:\n        responseStatus.code|lt: 200\n    condition: sel", (True, False)),
        ("    sel:\n        verb: [get, list]\n    condition: sel", (False, True)),
        ("    sel:\n        - verb: list\n        - objectRef.subresource: exec\n    condition: sel", (True, True)),
        ("    sel:\n        verb: create\n        objectRef.resource: secrets\n    condition: sel", (False, False)),
        ("    sel:\n        verb: create\n    condition: not sel", (False, True)),
        ("    sel:\n        verb|neq: create\n    condition: sel", (False, True)),
        (
            "    a:\n        verb: create\n    b:\n        objectRef.resource: pods\n    c:\n        userAgent|contains: trufflehog\n"
            "    condition: (a and b) or c",
            (True, True),
        ),
        (
            "    a:\n        verb: create\n    b:\n        objectRef.resource: pods\n    c:\n        userAgent|contains: trufflehog\n"
            "    condition: a and (b or c)",
            (True, False),
        ),
        ("    sel_a:\n        verb: create\n    sel_b:\n        verb: list\n    condition: 1 of sel_*", (True, True)),
        (
            "    sel_a:\n        verb: create\n    sel_b:\n        objectRef.resource: pods\n    condition: all of sel_*",
            (True, False),
        ),
        (
            "    sel_a:\n        verb: create\n    sel_b:\n        objectRef.resource: pods\n    condition: all of them",
            (True, False),
        ),
        (
            "    sel_a:\n        verb: patch\n    sel_b:\n        objectRef.resource: secrets\n    condition: 1 of them",
            (False, True),
        ),
        (
            "    sel:\n        verb: create\n    filter:\n        objectRef.namespace: shop\n    condition: sel and not filter",
            (False, False),
        ),
        ("    keywords:\n        - trufflehog\n    condition: keywords", (False, True)),  # full-text keyword
        ("    sel:\n        requestURI|windash|contains: ' -stdin'\n    condition: sel", (False, False)),
        (
            "    sel:\n        user.groups: oidc:platform-admins\n    condition: sel",
            (True, True),
        ),  # list field: any element
        ("    sel:\n        apiGroup: null\n    condition: sel", (True, True)),  # mapped to objectRef.apiGroup
        ("    sel:\n        annotations['authorization.k8s.io/decision']: allow\n    condition: sel", (True, True)),
        ("    sel:\n        - verb: create\n        - verb: patch\n    condition: sel", (True, False)),
        ("    condition: sel or other\n    sel:\n        verb: list\n    other:\n        verb: get", (False, True)),
    ],
)
def test_modifiers_and_conditions(detection: str, expected: tuple[bool, bool]) -> None:
    detector = rule(detection)
    assert (matches(detector, SHELL), matches(detector, LIST)) == expected


@pytest.mark.parametrize(
    "field",
    ["annotations.authorization.k8s.io/decision", "annotations['authorization.k8s.io/decision']",
     "authorization.k8s.io/decision"],
)  # fmt: skip
def test_decision_field_reads_the_response_code_when_an_exporter_dropped_the_annotations(field: str) -> None:
    allowed = {k: v for k, v in SHELL.items() if k != "annotations"}  # 101: the session was opened
    refused = dict(allowed, responseStatus={"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403})
    detector = rule(f"    sel:\n        {field}: allow\n    condition: sel")
    assert (matches(detector, SHELL), matches(detector, allowed), matches(detector, refused)) == (True, True, False)


def test_base64_modifier() -> None:
    raw = event(verb="patch", uri="/api/v1/namespaces/shop/secrets/db", resource="secrets", namespace="shop",
                request_object={"data": {"password": "c2VjcmV0"}})  # fmt: skip
    detector = rule("    sel:\n        requestObject.data.password|base64: secret\n    condition: sel")
    assert matches(detector, raw)


def test_mapped_pseudo_fields_read_pod_specs() -> None:
    host = rule("    sel:\n        hostPath|startswith: /var/run\n    condition: sel")
    socket = create_pod("shop", "dind", volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}])
    assert matches(host, socket)
    deployment = event(verb="create", uri="/apis/apps/v1/namespaces/shop/deployments", resource="deployments",
                       namespace="shop", api_group="apps", code=201,
                       request_object={"kind": "Deployment", "spec": {"template": {"spec": pod("x", "shop", security={
                           "capabilities": {"add": ["SYS_ADMIN"]}})["spec"]}}})  # fmt: skip
    caps = rule("    sel:\n        capabilities: sys_admin\n    condition: sel")
    assert matches(caps, deployment) and not matches(host, deployment)


def test_resources_index_and_stage_rules() -> None:
    assert rule("    sel:\n        objectRef.resource: [pods, secrets]\n    condition: sel").resources == {
        "pods",
        "secrets",
    }
    assert rule("    sel:\n        objectRef.resource|contains: pod\n    condition: sel").resources is None
    assert rule("    sel:\n        objectRef.resource: pods\n    condition: not sel").resources is None
    staged = rule("    sel:\n        stage: RequestReceived\n        verb: delete\n    condition: sel")
    assert staged.stages is not None and "RequestReceived" in staged.stages
    raw = event(verb="delete", uri="/api/v1/namespaces/shop/pods/x", resource="pods", stage="RequestReceived")
    assert len(Pipeline([staged]).process(AuditEvent(raw=raw))) == 1


@pytest.mark.parametrize(
    ("detection", "reason"),
    [
        (
            "    sel:\n        kubernetes.audit.verb: delete\n    condition: sel",
            "field 'kubernetes.audit.verb' does not exist in Kubernetes audit events",
        ),
        ("    sel:\n        stage: Completed\n    condition: sel", "stage is never 'Completed' in audit events"),
        (
            "    sel:\n        responseStatus.code|contains: forbid\n    condition: sel",
            "responseStatus.code is an integer in audit events; it never equals '*forbid*'",
        ),
    ],
)
def test_unmatchable_rules_are_reported(detection: str, reason: str) -> None:
    detector = rule(detection)
    assert detector.warnings == (f"unit.yml:9: Sigma rule 'Unit rule' can never match as written: {reason}",)


def test_satisfiable_alternatives_are_not_reported() -> None:
    assert (
        rule("    a:\n        responseStatus.code: ALLOW\n    b:\n        verb: get\n    condition: a or b").warnings
        == ()
    )
    assert rule("    a:\n        responseStatus.code: ALLOW\n    condition: not a").warnings == ()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("    sel:\n        verb|bogus: create\n    condition: sel", 9, "Unknown modifier"),
        ("    sel:\n        verb: create\n    condition: sel and missing", 10, "missing"),
        ("    sel:\n        verb: create\n    condition: sel and (", 10, "Sigma:"),
        ("    sel:\n        requestURI|re: '(unclosed'\n    condition: sel", 9, "(unclosed"),
        ("    sel:\n        requestURI|expand: '%var%'\n    condition: sel", 9, "placeholder"),
    ],
)
def test_detection_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(RuleError) as info:
        rule(text)
    assert info.value.path == "unit.yml" and info.value.line == line
    assert message in info.value.message


def test_other_logsources_and_missing_id_are_errors(tmp_path: Path) -> None:
    gcp = tmp_path / "gcp.yml"
    gcp.write_text("title: GKE thing\nid: 6f2b1d0e-0000-4000-8000-000000000002\nlogsource:\n    product: gcp\n"
                   "    service: gcp.audit\ndetection:\n    sel:\n        gcp.audit.method_name: x\n    condition: sel\n")  # fmt: skip
    no_id = tmp_path / "noid.yml"
    no_id.write_text("title: No id\nlogsource:\n    product: kubernetes\n    service: audit\n"
                     "detection:\n    sel:\n        verb: get\n    condition: sel\n")  # fmt: skip
    bad_level = tmp_path / "level.yml"
    bad_level.write_text("title: Bad level\nid: 6f2b1d0e-0000-4000-8000-000000000003\nlogsource:\n"
                         "    product: kubernetes\n    service: audit\ndetection:\n    sel:\n        verb: get\n"
                         "    condition: sel\nlevel: severe\n")  # fmt: skip
    with pytest.raises(RuleErrors) as info:
        load_rules([str(tmp_path)])
    errors = {Path(e.path).name: e for e in info.value.errors}
    assert errors["gcp.yml"].line == 3 and "product: gcp" in errors["gcp.yml"].message
    assert "product: kubernetes, service: audit only" in errors["gcp.yml"].message
    assert errors["noid.yml"].line == 1 and "'id'" in errors["noid.yml"].message
    assert errors["level.yml"].line == 10


@pytest.mark.parametrize("header", ["id: true", "id: [a, b]", "id: {a: 1}", "title: [x]", "tags: 7", "level: [high]",
                                    "date: 12", "references: {a: 1}"])  # fmt: skip
def test_values_of_another_type_are_rule_errors(tmp_path: Path, header: str) -> None:
    """Found by fuzzing: pySigma raised AttributeError or TypeError on these (a traceback instead of file:line)."""
    bad = tmp_path / "bad.yml"
    fields = {"title": "T", "id": "6f2b1d0e-0000-4000-8000-000000000004", "logsource": None}
    key = header.split(":")[0]
    lines = [header if k == key else f"{k}: {v}" for k, v in fields.items() if k != "logsource"]
    if key not in fields:
        lines.append(header)
    bad.write_text("\n".join(lines) + "\nlogsource:\n    product: kubernetes\n    service: audit\n"
                   "detection:\n    sel:\n        verb: get\n    condition: sel\n")  # fmt: skip
    with pytest.raises(RuleErrors) as info:
        load_rules([str(bad)])
    (error,) = info.value.errors
    assert error.path == str(bad) and error.message.startswith("Sigma")


def test_multi_document_file_and_mixed_pack(tmp_path: Path) -> None:
    two = tmp_path / "two.yml"
    two.write_text(
        "title: One\nid: 6f2b1d0e-0000-4000-8000-000000000004\nlogsource: {product: kubernetes, service: audit}\n"
        "detection: {sel: {verb: get}, condition: sel}\n---\n"
        "title: Two\nid: 6f2b1d0e-0000-4000-8000-000000000005\nlogsource: {product: kubernetes, service: audit}\n"
        "detection: {sel: {verb: list}, condition: sel}\n"
    )
    native = tmp_path / "native" / "pod-exec-attach.yaml"
    native.parent.mkdir()
    native.write_bytes((BUILTIN_DIR / "pod-exec-attach.yaml").read_bytes())
    detectors = load_rules([str(two), str(native)])
    names = [d.id for d in detectors]
    assert names[:2] == ["sigma:6f2b1d0e-0000-4000-8000-000000000004", "sigma:6f2b1d0e-0000-4000-8000-000000000005"]
    assert names[2:] == ["pod-exec-attach"]


def test_replay_cli_prints_sigma_alerts(tmp_path: Path, run_cli: Callable[..., CliRun]) -> None:
    events = [CASES["sigma:a1b0ca4e-7835-413e-8471-3ff2b8a66be6"][0][0],
              CASES["sigma:a1b0ca4e-7835-413e-8471-3ff2b8a66be6"][1][0],  # the exec's ResponseComplete: no second alert
              CASES["sigma:0d933542-1f1f-420d-97d4-21b2c3c492d9"][0][0],
              CASES["sigma:eeb3e9e1-b685-44e4-9232-6bb701f925b5"][1][0]]  # fmt: skip
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = run_cli("replay", str(log), "--rules", "sigma", "--output", "-")
    assert out.code == 0, out.err
    alerts = [orjson.loads(line) for line in out.out.splitlines() if line.strip()]
    got = sorted((a["rule"], a["audit_id"]) for a in alerts)
    assert got == sorted([
        ("Potential Remote Command Execution In Pod Container", events[0]["auditID"]),
        ("Kubernetes Unauthorized or Unauthenticated Access", events[2]["auditID"]),
        ("Kubernetes Secrets Enumeration", events[2]["auditID"]),
    ])  # fmt: skip
    exec_alert = next(a for a in alerts if a["audit_id"] == events[0]["auditID"])
    assert exec_alert["rule_id"] == "sigma:a1b0ca4e-7835-413e-8471-3ff2b8a66be6"
    assert (
        exec_alert["severity"] == "medium"
        and exec_alert["mitre"] == ["T1609"]
        and exec_alert["stage"] == "ResponseStarted"
    )
    assert exec_alert["details"]["level"] == "medium" and exec_alert["details"]["status"] == "test"
    assert exec_alert["message"] == ("Potential Remote Command Execution In Pod Container: "
                                     "alice@example.com create pods/exec shop/checkout-7d9f (101)")  # fmt: skip


def test_replay_runs_the_sigma_pack_in_process(tmp_path: Path, run_cli: Callable[..., CliRun]) -> None:
    positives = [raw for rule_id in sorted(CASES) for raw in CASES[rule_id][0]]
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in positives))
    run = run_cli("replay", str(log), "--rules", "sigma", "--output", "-", "--quiet")
    assert run.code == 0, run.err
    # the pack's one unmatchable rule loads, and says so
    assert "Sigma rule 'Kubernetes Potential Enumeration Activity' can never match as written" in run.err
    assert str(SIGMA_DIR / "kubernetes_audit_potential_enumeration_activity.yml") in run.err
    alerts = {(a["rule_id"], a["audit_id"]) for a in (orjson.loads(x) for x in run.out.splitlines() if x.strip())}
    assert {rule_id for rule_id, _ in alerts} == set(CASES)  # the 15 that can match, and not the enumeration rule
    for rule_id, (rule_positives, _) in CASES.items():
        for raw in rule_positives:
            assert (rule_id, raw["auditID"]) in alerts, (rule_id, raw["requestURI"])
