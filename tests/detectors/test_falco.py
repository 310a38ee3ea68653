"""Falco k8s_audit rule files, unmodified: loading, the condition language, all 48 stock rules, the CLI."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.errors import RuleErrors
from detectors.events import AuditEvent
from detectors.falco.condition import compile_condition
from detectors.falco.request_fields import image_repository
from detectors.falco.ruleset import FalcoRuleset
from detectors.falco.syntax import expand, parse
from detectors.loading.formats import LoadOptions
from detectors.loading.loader import rule_files
from detectors.packs import PACKS
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.cli import CliRun
from tests.support.falco_events import binding, create_pod, event, role

# the files of the shipped `falco` pack, as Falco publishes them
FALCO = PACKS["falco"] / "k8s_audit_rules.yaml"
GKE = PACKS["falco"] / "k8s_audit_rules_gke.yaml"


def ruleset(*paths: Path | str, matching: str = "first") -> FalcoRuleset:
    detectors = load_rules([str(p) for p in paths], LoadOptions(rule_matching=matching))
    (falco,) = [d for d in detectors if isinstance(d, FalcoRuleset)]
    return falco


_CACHE: dict[tuple[str, ...], FalcoRuleset] = {}


def stock(matching: str = "first", *extra: Path) -> FalcoRuleset:
    key = (matching, *map(str, extra))
    if key not in _CACHE:
        _CACHE[key] = ruleset(FALCO, *extra, matching=matching)
    return _CACHE[key]


def fired(rs: FalcoRuleset, raw: dict[str, Any]) -> list[str]:
    return [a.rule_name for a in rs.detect(AuditEvent(raw=raw, origin="test"))]


# ---- the 48 stock rules ----------------------------------------------------------------------------------


@dataclass
class Case:
    rule: str
    positive: dict[str, Any]
    negative: dict[str, Any]
    also: frozenset[str] = field(default_factory=frozenset)  # other rules that match the positive ("all")
    first: str | None = None  # the rule Falco reports under rule_matching=first (default: `rule`)


HOSTPATH = [{"name": "docker-sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}]
SAFE_HOSTPATH = [{"name": "logs", "hostPath": {"path": "/var/log/app", "type": "DirectoryOrCreate"}}]
SECRET = {
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {"name": "db-creds", "namespace": "shop"},
    "type": "Opaque",
    "data": {"password": "czNjcjN0"},
}


def service(kind: str) -> dict[str, Any]:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "type": kind,
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def configmap(data: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "app-config", "namespace": "shop"},
        "data": data,
    }


def ingress(tls: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "shop.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ],
    }
    if tls:
        spec["tls"] = [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    return {
        "kind": "Ingress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec,
    }


def node(name: str) -> dict[str, Any]:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "node.kubernetes.io/instance-type": "m6i.large"},
        },
        "spec": {},
    }


def activity(
    resource: str, verb: str, name: str, body: Any = None, namespace: str | None = "shop", **kw: Any
) -> dict[str, Any]:
    return event(verb, resource, name=name, namespace=namespace, request=body, **kw)


SA = "system:serviceaccount:shop:web"
CTRL = "system:serviceaccount:kube-system:namespace-controller"
EXEC_QUERY = "command=sh&command=-c&command=id&container=app&stdin=true&stdout=true&tty=true"
READ = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
WRITE = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]}]
SUBJECTS = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob@example.com"}]

CASES = [
    Case(
        "Disallowed K8s User",
        event("list", "pods", namespace="shop", user="alice@example.com", groups=("dev", "system:authenticated")),
        event("list", "pods", namespace="shop"),
    ),
    Case(
        "Create Privileged Pod",
        create_pod(privileged=True),
        create_pod(privileged=True, image="quay.io/calico/node:v3.28.0"),
    ),
    Case("Create Sensitive Mount Pod", create_pod(volumes=HOSTPATH), create_pod(volumes=SAFE_HOSTPATH)),
    Case(
        "Create HostNetwork Pod",
        create_pod(hostNetwork=True),
        create_pod(hostNetwork=True, image="gke.gcr.io/kube-proxy:v1.30.2-gke.100"),
    ),
    Case("Create HostPid Pod", create_pod(hostPID=True), create_pod(hostPID=False)),
    Case("Create HostIPC Pod", create_pod(hostIPC=True), create_pod()),
    Case(
        "Create NodePort Service",
        activity("services", "create", "web", service("NodePort")),
        activity("services", "create", "web", service("ClusterIP")),
        also=frozenset({"K8s Service Created"}),
    ),
    Case(
        "Create/Modify Configmap With Private Credentials",
        activity("configmaps", "create", "app-config", configmap({"DB_PASSWORD": "x", "db.ini": "password=hunter2"})),
        activity("configmaps", "create", "app-config", configmap({"log_level": "debug"})),
        also=frozenset({"K8s ConfigMap Created"}),
    ),
    Case(
        "Anonymous Request Allowed",
        event(
            "get",
            "secrets",
            namespace="shop",
            name="db-creds",
            user="system:anonymous",
            groups=("system:unauthenticated",),
            code=200,
        ),
        event("get", "healthz", user="system:anonymous", groups=("system:unauthenticated",), uri="/healthz?verbose"),
        also=frozenset({"K8s Secret Get Successfully"}),
    ),
    Case(
        "Attach/Exec Pod",
        event(
            "create",
            "pods",
            namespace="shop",
            name="web-7d4b9c",
            subresource="exec",
            stage="ResponseStarted",
            query=EXEC_QUERY,
        ),
        event("get", "pods", namespace="shop", name="web-7d4b9c", subresource="log", query="container=app"),
    ),
    Case(
        "port-forward",
        event(
            "create", "pods", namespace="shop", name="web-7d4b9c", subresource="portforward", stage="ResponseStarted"
        ),
        event("get", "pods", namespace="shop", name="web-7d4b9c", subresource="proxy"),
    ),
    Case(
        "EphemeralContainers Created",
        event(
            "patch",
            "pods",
            namespace="shop",
            name="web-7d4b9c",
            subresource="ephemeralcontainers",
            code=200,
            request={
                "spec": {
                    "ephemeralContainers": [
                        {"name": "debugger-x7k2p", "image": "busybox:1.36", "stdin": True, "tty": True}
                    ]
                }
            },
        ),
        event("get", "pods", namespace="shop", name="web-7d4b9c", subresource="ephemeralcontainers"),
    ),
    Case(
        "Create Disallowed Namespace",
        activity("namespaces", "create", "crypto", {"kind": "Namespace", "metadata": {"name": "crypto"}}, None),
        activity(
            "namespaces",
            "create",
            "kube-public",
            {"kind": "Namespace", "metadata": {"name": "kube-public"}},
            None,
            user="system:apiserver",
            groups=("system:masters",),
        ),
        also=frozenset({"K8s Namespace Created"}),
    ),
    Case(
        "Pod Created in Kube Namespace",
        create_pod("kube-system", image="docker.io/library/busybox:1.36"),
        create_pod("kube-system", image="registry.k8s.io/kube-apiserver:v1.30.2"),
    ),
    Case(
        "Service Account Created in Kube Namespace",
        activity(
            "serviceaccounts",
            "create",
            "backdoor",
            {"kind": "ServiceAccount", "metadata": {"name": "backdoor"}},
            "kube-system",
        ),
        activity(
            "serviceaccounts",
            "create",
            "coredns",
            {"kind": "ServiceAccount", "metadata": {"name": "coredns"}},
            "kube-system",
        ),
        also=frozenset({"K8s Serviceaccount Created"}),
    ),
    Case(
        "System ClusterRole Modified/Deleted",
        activity(
            "clusterroles",
            "patch",
            "system:aggregate-to-edit",
            [
                {
                    "op": "add",
                    "path": "/rules/-",
                    "value": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                }
            ],
            None,
        ),
        activity("clusterroles", "patch", "system:coredns", [{"op": "add", "path": "/rules/-", "value": {}}], None),
    ),
    Case(
        "Attach to cluster-admin Role",
        activity(
            "clusterrolebindings",
            "create",
            "ops-admin",
            binding("ClusterRoleBinding", "ops-admin", "cluster-admin", SUBJECTS),
            None,
        ),
        activity(
            "clusterrolebindings",
            "create",
            "ops-view",
            binding("ClusterRoleBinding", "ops-view", "view", SUBJECTS),
            None,
        ),
        also=frozenset({"K8s ClusterRoleBinding Created"}),
    ),
    Case(
        "ClusterRole With Wildcard Created",
        activity(
            "clusterroles",
            "create",
            "everything",
            role("ClusterRole", "everything", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            None,
        ),
        activity("clusterroles", "create", "pod-reader", role("ClusterRole", "pod-reader", READ), None),
        also=frozenset({"K8s ClusterRole Created"}),
    ),
    Case(
        "ClusterRole With Write Privileges Created",
        activity("clusterroles", "create", "cm-writer", role("ClusterRole", "cm-writer", WRITE), None),
        activity("clusterroles", "create", "pod-reader", role("ClusterRole", "pod-reader", READ), None),
        also=frozenset({"K8s ClusterRole Created"}),
    ),
    Case(
        "ClusterRole With Pod Exec Created",
        activity(
            "roles",
            "create",
            "exec",
            role("Role", "exec", [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]}], "shop"),
        ),
        activity(
            "roles",
            "create",
            "logs",
            role("Role", "logs", [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}], "shop"),
        ),
        also=frozenset({"ClusterRole With Write Privileges Created", "K8s Role Created"}),
        first="ClusterRole With Write Privileges Created",
    ),
]

ACTIVITY: list[tuple[str, str, str, Any, str | None]] = [
    ("Deployment", "deployments", "web", {"kind": "Deployment", "metadata": {"name": "web"}}, "shop"),
    ("Service", "services", "web", service("ClusterIP"), "shop"),
    ("ConfigMap", "configmaps", "app-config", configmap({"log_level": "info"}), "shop"),
    ("Namespace", "namespaces", "kube-public", {"kind": "Namespace", "metadata": {"name": "kube-public"}}, None),
    ("Serviceaccount", "serviceaccounts", "ci-bot", {"kind": "ServiceAccount", "metadata": {"name": "ci-bot"}}, "shop"),
    ("Role", "roles", "pod-reader", role("Role", "pod-reader", READ, "shop"), "shop"),
    ("ClusterRole", "clusterroles", "pod-reader", role("ClusterRole", "pod-reader", READ), None),
    (
        "RoleBinding",
        "rolebindings",
        "read-pods",
        binding("RoleBinding", "read-pods", "pod-reader", SUBJECTS, "shop"),
        "shop",
    ),
    (
        "ClusterRoleBinding",
        "clusterrolebindings",
        "read-pods",
        binding("ClusterRoleBinding", "read-pods", "pod-reader", SUBJECTS),
        None,
    ),
    ("Secret", "secrets", "db-creds", SECRET, "shop"),
]
for kind, resource, name, body, ns in ACTIVITY:
    creator = "system:apiserver" if resource == "namespaces" else "kubernetes-admin"
    CASES.append(
        Case(
            f"K8s {kind} Created",
            activity(resource, "create", name, body, ns, user=creator),
            activity(resource, "create", name, body, ns, user=creator, code=409),
        )
    )
    CASES.append(
        Case(
            f"K8s {kind} Deleted",
            activity(resource, "delete", name, None, ns),
            activity(
                resource,
                "delete",
                name,
                None,
                ns,
                user=CTRL if resource == "namespaces" else "kubernetes-admin",
                code=200 if resource == "namespaces" else 404,
            ),
        )
    )
CASES += [
    Case(
        "K8s Secret Get Successfully",
        activity("secrets", "get", "db-creds", user=SA, groups=("system:serviceaccounts",)),
        activity("secrets", "list", "db-creds", user=SA, groups=("system:serviceaccounts",)),
    ),
    Case(
        "K8s Secret Get Unsuccessfully Tried",
        activity("secrets", "get", "admin-token", user=SA, groups=("system:serviceaccounts",), code=403),
        activity("secrets", "get", "db-creds", user=SA, groups=("system:serviceaccounts",)),
    ),
    Case(
        "Ingress Object without TLS Certificate Created",
        activity("ingresses", "create", "web", ingress(False)),
        activity("ingresses", "create", "web", ingress(True)),
    ),
]

# Dormant by default: each fires once a second file overrides the switch macro.
DORMANT = {
    "Create Disallowed Pod": (
        "- macro: allowed_k8s_containers\n  condition: (ka.req.pod.containers.image.repository in (registry.example.com/shop/web))\n"
        "  override:\n    condition: replace\n",
        create_pod(image="ghcr.io/evil/miner:latest"),
        create_pod(image="registry.example.com/shop/web:1.4.2"),
    ),
    "All K8s Audit Events": (
        "- macro: consider_all_events\n  condition: (k8s_audit_always_true)\n",  # a plain redefinition
        event(
            "update",
            "leases",
            namespace="kube-node-lease",
            name="ip-10-0-1-23",
            user="system:node:ip-10-0-1-23",
            groups=("system:nodes",),
            code=200,
            user_agent="kubelet/v1.30.2 (linux/amd64) kubernetes/3968350",
        ),
        event("get", "pods", namespace="shop", name="web", stage="ResponseStarted"),
    ),
    "Full K8s Administrative Access": (
        "- macro: allowed_full_admin_users\n  condition: (k8s_audit_never_true)\n  override:\n    condition: replace\n",
        event("list", "pods", namespace="shop"),
        event("list", "pods", namespace="shop", user="system:kube-scheduler", groups=("system:authenticated",)),
    ),
    "Untrusted Node Successfully Joined the Cluster": (
        "- macro: allow_all_k8s_nodes\n  condition: (k8s_audit_never_true)\n  override:\n    condition: replace\n"
        "- list: allowed_k8s_nodes\n  items: [ip-10-0-1-23]\n  override:\n    items: append\n",
        activity(
            "nodes",
            "create",
            "ip-10-0-9-99",
            node("ip-10-0-9-99"),
            None,
            user="system:node:ip-10-0-9-99",
            groups=("system:nodes",),
        ),
        activity(
            "nodes",
            "create",
            "ip-10-0-1-23",
            node("ip-10-0-1-23"),
            None,
            user="system:node:ip-10-0-1-23",
            groups=("system:nodes",),
        ),
    ),
    "Untrusted Node Unsuccessfully Tried to Join the Cluster": (
        "- macro: allow_all_k8s_nodes\n  condition: (k8s_audit_never_true)\n  override:\n    condition: replace\n",
        activity(
            "nodes",
            "create",
            "rogue-1",
            node("rogue-1"),
            None,
            user="system:node:rogue-1",
            groups=("system:nodes",),
            code=403,
        ),
        activity(
            "nodes",
            "create",
            "rogue-1",
            node("rogue-1"),
            None,
            user="system:node:rogue-1",
            groups=("system:nodes",),
            code=201,
        ),
    ),
}


def test_the_stock_file_has_48_rules_and_all_compile() -> None:
    rs = stock("all")
    names = [r.name for r in rs.rules]
    assert len(names) == 48 == len(set(names))
    assert {c.rule for c in CASES} | set(DORMANT) == set(names)
    assert len(CASES) == 43
    assert all(r.rule_id == "falco:" + r.rule_id.split(":", 1)[1] for r in rs.rules)
    by_name = {r.name: r for r in rs.rules}
    assert by_name["Create/Modify Configmap With Private Credentials"].rule_id == (
        "falco:create-modify-configmap-with-private-credentials"
    )
    assert by_name["K8s Secret Get Successfully"].priority == "Error"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_fires_on_its_event_in_all_mode(case: Case) -> None:
    assert sorted(fired(stock("all"), case.positive)) == sorted({case.rule} | case.also)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_in_first_mode_gives_one_alert(case: Case) -> None:
    assert fired(stock("first"), case.positive) == [case.first or case.rule]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_stays_silent_on_the_near_miss(case: Case) -> None:
    for matching in ("first", "all"):
        assert case.rule not in fired(stock(matching), case.negative)


@pytest.mark.parametrize("rule", list(DORMANT))
def test_dormant_rules_fire_once_overridden(rule: str, tmp_path: Path) -> None:
    override, positive, negative = DORMANT[rule]
    for matching in ("first", "all"):
        assert rule not in fired(stock(matching), positive)
    user = tmp_path / "falco_rules.local.yaml"
    user.write_text(override)
    for matching in ("first", "all"):
        rs = ruleset(FALCO, user, matching=matching)
        got = fired(rs, positive)
        assert rule in got, got
        assert rule not in fired(rs, negative)
    if rule == "All K8s Audit Events":  # it comes late in the file: earlier rules still win under "first"
        rs = ruleset(FALCO, user)
        assert fired(rs, CASES[0].positive) == ["Disallowed K8s User"]
        assert sorted(fired(ruleset(FALCO, user, matching="all"), CASES[0].positive)) == [
            "All K8s Audit Events",
            "Disallowed K8s User",
        ]


def test_first_mode_claims_namespace_creates_like_falco() -> None:
    ev = activity(
        "namespaces",
        "create",
        "team-a",
        {"kind": "Namespace", "metadata": {"name": "team-a"}},
        None,
        user="alice@example.com",
    )
    assert fired(stock("first"), ev) == ["Disallowed K8s User"]
    assert fired(stock("all"), ev) == ["Disallowed K8s User", "Create Disallowed Namespace", "K8s Namespace Created"]


def test_port_forward_has_no_stage_filter() -> None:
    ev = event("create", "pods", namespace="shop", name="web", subresource="portforward", stage="ResponseComplete")
    assert fired(stock("first"), ev) == ["port-forward"]


def test_privileged_init_container_counts() -> None:
    assert fired(stock(), create_pod(init_privileged=True)) == ["Create Privileged Pod"]


# ---- the GKE add-on ------------------------------------------------------------------------------------


def gke_robot_event() -> dict[str, Any]:
    """GKE's own control-plane robot writing a kube-system ConfigMap."""
    return event(
        "update",
        "configmaps",
        namespace="kube-system",
        name="cluster-autoscaler-status",
        user="service-123@container-engine-robot.iam.gserviceaccount.com",
        groups=("system:authenticated",),
    )


GKE_PRIVILEGED_POD = create_pod(privileged=True, image="gke.gcr.io/netd:v0.4.5-gke.1")


def test_gke_file_loads_after_the_main_one_and_its_exception_works() -> None:
    robot = gke_robot_event()
    assert fired(stock(), robot) == ["Disallowed K8s User"]
    gke = stock("first", GKE)
    assert fired(gke, robot) == []
    assert fired(gke, CASES[0].positive) == ["Disallowed K8s User"]
    # its list appends: a GKE image may now run privileged
    assert fired(gke, GKE_PRIVILEGED_POD) == []
    assert fired(stock(), GKE_PRIVILEGED_POD) == ["Create Privileged Pod"]


def test_the_falco_pack_is_the_main_file_then_the_gke_file() -> None:
    assert rule_files("falco") == [FALCO, GKE]
    for matching in ("first", "all"):
        pack = ruleset("falco", matching=matching)
        gke = stock(matching, GKE)
        for raw in [*(c.positive for c in CASES), *(c.negative for c in CASES), gke_robot_event(), GKE_PRIVILEGED_POD]:
            assert fired(pack, raw) == fired(gke, raw)
    # and on Falco's own test events the pack gives the stock file's results
    pack = ruleset("falco")
    assert [fired(pack, c.positive) for c in CASES] == [[c.first or c.rule] for c in CASES]


def test_gke_file_alone_is_an_error() -> None:
    with pytest.raises(RuleErrors) as info:
        load_rules([str(GKE)])
    assert f"{GKE}:28: " in str(info.value) and "not defined before" in str(info.value)


# ---- alert shape ---------------------------------------------------------------------------------------


def test_alert_shape() -> None:
    ev = CASES[9].positive  # Attach/Exec Pod
    (alert,) = stock().detect(AuditEvent(raw=ev, origin="f.jsonl:3"))
    assert alert.rule_name == "Attach/Exec Pod" and alert.rule_id == "falco:attach-exec-pod"
    assert alert.severity.label == "low" and alert.mitre == ()
    assert alert.message == (
        "Attach/Exec to pod (user=kubernetes-admin pod=web-7d4b9c resource=pods ns=shop action=exec command=sh)"
    )
    d = alert.details
    assert d["priority"] == "Notice" and d["source"] == "k8s_audit" and d["tags"] == ["k8s"]
    assert d["output"] == "2026-11-20T10:15:42.131877000+0000: Notice " + alert.message
    assert d["output_fields"] == {
        "evt.time": 1795169742131877000,
        "ka.user.name": "kubernetes-admin",
        "ka.target.name": "web-7d4b9c",
        "ka.target.resource": "pods",
        "ka.target.namespace": "shop",
        "ka.target.subresource": "exec",
        "ka.uri.param[command]": "sh",
    }
    (alert,) = stock().detect(AuditEvent(raw=CASES[1].positive))  # list fields render as (a,b); missing as <NA>
    assert "images=(docker.io/library/nginx:1.27.2) init_images=<NA> ephemeral_images=<NA>" in alert.message
    assert alert.details["output_fields"]["ka.req.pod.initContainers.image"] is None


def test_mitre_tags_and_severity(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        textwrap.dedent("""\
        - rule: Exec by anyone
          desc: d
          condition: ka.target.subresource = exec
          output: exec by %ka.user.name
          priority: CRITICAL
          tags: [k8s, mitre_execution, T1609]
        """)
    )
    (alert,) = ruleset(path).detect(AuditEvent(raw=CASES[9].positive))
    assert alert.severity.label == "critical" and alert.mitre == ("mitre_execution", "T1609")


# ---- loading semantics and errors ----------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


RULE = """\
- list: bad_users
  items: [mallory, eve]
- macro: is_bad
  condition: ka.user.name in (bad_users)
- rule: Bad user
  desc: d
  condition: is_bad
  output: bad %ka.user.name
  priority: WARNING
"""


def user_event(user: str, **kw: Any) -> dict[str, Any]:
    return event("get", "pods", namespace="shop", name="web", user=user, **kw)


def test_overrides_appends_and_toggles(tmp_path: Path) -> None:
    base = write(tmp_path, RULE, "a.yaml")
    assert fired(ruleset(base), user_event("eve")) == ["Bad user"]
    extra = write(
        tmp_path,
        """\
        - list: bad_users
          items: [trudy]
          override: {items: append}
        - rule: Bad user
          condition: and ka.verb = get
          override: {condition: append}
        - rule: Bad user
          exceptions:
            - name: known
              fields: [ka.user.name, ka.target.namespace]
              comps: ["=", in]
              values: [[eve, [shop, dev]]]
          override: {exceptions: append}
        - rule: Bad user
          exceptions:
            - name: known
              values: [[trudy, [kube-system]]]
          append: true
        - rule: Bad user
          priority: ERROR
          output: very bad %ka.user.name
          override: {priority: replace, output: replace}
        """,
        "b.yaml",
    )
    rs = ruleset(base, extra)
    assert fired(rs, user_event("trudy")) == ["Bad user"]
    assert fired(rs, user_event("eve")) == []  # excepted in shop
    assert fired(rs, user_event("mallory", code=200)) == ["Bad user"]
    assert fired(rs, event("list", "pods", namespace="shop", user="mallory")) == []  # appended condition
    (alert,) = rs.detect(AuditEvent(raw=user_event("mallory")))
    assert alert.message == "very bad mallory" and alert.details["priority"] == "Error"
    off = write(tmp_path, "- rule: Bad user\n  enabled: false\n", "c.yaml")
    assert fired(ruleset(base, off), user_event("eve")) == []
    redefined = write(tmp_path, "- macro: is_bad\n  condition: ka.user.name = bob\n", "d.yaml")
    assert fired(ruleset(base, redefined), user_event("eve")) == []
    assert fired(ruleset(base, redefined), user_event("bob")) == ["Bad user"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("condition: ka.usr.name = x", 3, "unknown field 'ka.usr.name'"),
        ("condition: ka.user.name equals x", 3, "expected an operator"),
        ("condition: ka.user.name = x and undefined_macro", 3, "undefined macro 'undefined_macro'"),
        ("condition: ka.user.name = (x", 3, "expected a value"),
        ("condition: ka.user.groups = admins", 3, "cannot be used on list field 'ka.user.groups'"),
        ("condition: ka.user.name bcontains 41", 3, "not supported"),
        ("condition: ka.req.pod.volumes.hostpath pmatch (/etc)", 3, "cannot be used on list field"),
        ("condition: ka.uri.param = x", 3, "needs an argument"),
        ("condition: ka.verb = get\n  output: '%ka.nope'", 4, "unknown field 'ka.nope'"),
        ("condition: ka.verb = get\n  priority: URGENT", 4, "priority 'URGENT'"),
        ("condition: ka.verb = get\n  colour: red", 4, "unknown key 'colour'"),
    ],
)
def test_errors_carry_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    body = f"- rule: R\n  desc: d\n  {text}\n"
    if "output:" not in text:
        body += "  output: o\n"
    if "priority:" not in text:
        body += "  priority: INFO\n"
    path = write(tmp_path, body)
    with pytest.raises(RuleErrors) as info:
        load_rules([str(path)])
    (error,) = info.value.errors
    assert str(error).startswith(f"{path}:{line}: "), str(error)
    assert message in str(error)


def test_all_errors_are_collected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        - macro: m
          condition: ka.verb = (
        - rule: A
          desc: d
          condition: ka.nope = 1
          output: o
          priority: INFO
        - rule: B
          desc: d
          condition: not_a_macro
          output: o
          priority: INFO
        - list: l
          items: [a]
          override: {items: prepend}
        """,
    )
    with pytest.raises(RuleErrors) as info:
        load_rules([str(path)])
    lines = sorted(e.line or 0 for e in info.value.errors)
    assert lines == [2, 5, 10, 15], info.value


# ---- the condition language ----------------------------------------------------------------------------


def holds(
    cond: str, raw: dict[str, Any], macros: dict[str, str] | None = None, lists: dict[str, list[str]] | None = None
) -> bool:
    m = {k: parse(v) for k, v in (macros or {}).items()}
    return compile_condition(expand(parse(cond), m, lists or {}))(AuditEvent(raw=raw))


POD = create_pod(privileged=True, volumes=HOSTPATH)


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("ka.verb = get or ka.verb = create and ka.target.resource = nodes", False),  # and binds tighter
        ("(ka.verb = get or ka.verb = create) and ka.target.resource = pods", True),
        ("not ka.verb = get and ka.verb = create", True),
        ("not not ka.verb = create", True),
        ("ka.impuser.name = x", False),  # missing field: every comparison is false...
        ("ka.impuser.name != x", False),
        ("not ka.impuser.name = x", True),  # ...except under not
        ("not ka.impuser.name exists", True),
        ("ka.response.code startswith 2", True),  # numbers are JSON text
        ("ka.response.code = 201 and ka.response.code > 200 and ka.response.code < 3", True),
        ("jevt.value[/requestObject/spec/containers/0/securityContext/privileged] = true", True),
        ("ka.req.pod.containers.privileged intersects (true)", True),
        ("ka.req.pod.containers.privileged in (true, false)", True),
        ("ka.req.pod.containers.image.repository in (docker.io/library/nginx)", True),
        ("ka.req.pod.containers.image.repository in (other)", False),
        ("ka.req.pod.containers.image[0] = docker.io/library/nginx:1.27.2", True),
        ("ka.req.pod.containers.image[1] exists", False),
        ("ka.uri pmatch (/api/v1/namespaces/shop)", True),
        ("ka.uri pmatch (/api/v1/name)", False),  # component boundaries
        ("ka.user.name glob 'kube*-ad?in'", True),
        ("ka.user.name iglob 'KUBE*'", True),
        ("ka.user.name glob 'KUBE*'", False),
        ("ka.user.name regex 'kube.*'", True),
        ("ka.user.name regex 'kube'", False),  # full match
        ("ka.user.name contains rnetes and ka.user.name icontains ADMIN", True),
        ('ka.user.name endswith admin and ka.user.name = "kubernetes-admin"', True),
        ("ka.user.name = Kubernetes-Admin", False),  # case-sensitive
        ("tolower(ka.target.resource) = pods and toupper(ka.verb) = CREATE", True),
        ("len(ka.user.groups) = 2 and basename(ka.uri) = pods", True),
        ("ka.target.name = val(ka.resp.name)", True),
        ("ka.user.name in (admins)", True),  # nested list names expand
        ("ka.user.groups intersects (admins)", True),
        ("ka.user.groups in (admins)", False),  # not every group is in the list
        ("ka.req.volume.hostpath[/var/run*] = true and ka.req.volume.hostpath[/etc] = false", True),
        ("is_pod and not is_node", True),
    ],
)
def test_condition_semantics(cond: str, expected: bool) -> None:
    lists = {"admins": ["root", "more_admins"], "more_admins": ["kubernetes-admin", "system:masters"]}
    macros = {"is_pod": "ka.target.resource = pods", "is_node": "ka.target.resource = nodes"}
    assert holds(cond, POD, macros, lists) is expected


def test_empty_list_is_missing_and_list_fields_in_exists() -> None:
    ev = event("list", "pods", namespace="shop", groups=())
    assert not holds("ka.user.groups exists", ev)
    assert not holds("ka.user.groups intersects (a)", ev)
    assert holds("not ka.user.groups in (a)", ev)


def test_event_without_audit_id_yields_no_fields() -> None:
    ev = dict(CASES[0].positive)
    del ev["auditID"]
    assert fired(stock("all"), ev) == []


def test_deliberate_field_fixes() -> None:
    assert image_repository("reg:5000/team/app:1.2") == "reg:5000/team/app"
    assert image_repository("reg:5000/team/app") == "reg:5000/team/app"
    assert image_repository("nginx@sha256:abcd") == "nginx"
    assert image_repository("docker.io/library/nginx:1.27") == "docker.io/library/nginx"
    assert holds("ka.sourceips intersects (10.20.0.15)", POD)
    raw = create_pod(image="registry.internal:5000/shop/web:2.0")
    assert holds("ka.req.pod.containers.image.repository in (registry.internal:5000/shop/web)", raw)


def test_pipeline_runs_falco_alongside_builtin_rules() -> None:
    detectors = load_rules(["builtin", str(FALCO)])
    pipeline = Pipeline(detectors)
    alerts = pipeline.process(AuditEvent(raw=CASES[1].positive))
    names = {a.rule_name for a in alerts}
    assert "Create Privileged Pod" in names and "Privileged container created" in names


# ---- end to end through the CLI ------------------------------------------------------------------------


def test_cli_replay_with_the_stock_file(tmp_path: Path, run_cli: Callable[..., CliRun]) -> None:
    def run_replay(path: Path, *extra: str) -> list[dict[str, Any]]:
        run = run_cli("replay", str(path), "--rules", str(FALCO), "--output", "-", *extra)
        assert run.code == 0, run.err
        return [orjson.loads(line) for line in run.out.splitlines() if line.strip()]

    events = [c.positive for c in CASES]
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    first = run_replay(path)
    assert [(a["rule"], a["audit_id"]) for a in first] == [(c.first or c.rule, c.positive["auditID"]) for c in CASES]
    every = run_replay(path, "--rule-matching", "all")
    assert len(every) == sum(1 + len(c.also) for c in CASES)
    assert {a["rule_id"] for a in every} >= {"falco:create-privileged-pod", "falco:port-forward"}
    falco = run_replay(path, "--output-format", "falco")
    assert falco[0]["rule"] == "Disallowed K8s User" and falco[0]["priority"] == "Warning"
    assert falco[0]["source"] == "k8s_audit" and falco[0]["tags"] == ["k8s"]
    assert falco[0]["output"].startswith("2026-11-20T10:15:42.131877000+0000: Warning K8s Operation performed by")
    assert falco[0]["output_fields"]["ka.user.name"] == "alice@example.com"
    assert falco[0]["output_fields"]["evt.time"] == 1795169742131877000


def test_replay_runs_the_falco_pack_in_process(tmp_path: Path, run_cli: Callable[..., CliRun]) -> None:
    events = [*(c.positive for c in CASES), gke_robot_event(), GKE_PRIVILEGED_POD]
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    run = run_cli("replay", str(log), "--rules", "falco", "--output", "-", "--quiet")
    assert run.code == 0, run.err
    alerts = [orjson.loads(line) for line in run.out.splitlines() if line.strip()]
    # Falco's verdict on each of its rules' events; the GKE add-on silences GKE's own robot and images
    assert [(a["rule"], a["audit_id"]) for a in alerts] == [(c.first or c.rule, c.positive["auditID"]) for c in CASES]
    assert {a["rule_id"] for a in alerts} >= {"falco:create-privileged-pod", "falco:attach-exec-pod"}
