"""The end-to-end scenario against a real kube-apiserver: a benign phase, then an attack in steps, each with the
alerts it must raise; and the corpus captured from a live run of it (tests/data/kube-e2e)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.support.kube_cluster import USERS, KubeCluster
from tests.support.paths import DATA

CORPUS = DATA / "kube-e2e" / "audit.jsonl.gz"
LIVE_ALERTS = DATA / "kube-e2e" / "alerts.json"
TUNING = DATA / "kube-e2e" / "tuning.yaml"  # the cluster's own registry: auditwatch runs with --tuning TUNING


def corpus_events() -> list[dict[str, Any]]:
    with gzip.open(CORPUS, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def live_alerts() -> list[dict[str, str]]:
    alerts: list[dict[str, str]] = orjson.loads(LIVE_ALERTS.read_bytes())
    return alerts


NS = "shop"


def deployment(name: str, image: str, *, privileged: bool = False, replicas: int = 2) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "ports": [{"containerPort": 8080}]}
    if privileged:
        container["securityContext"] = {"privileged": True}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }  # fmt: skip


NODE_SHELL_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "node-shell", "namespace": NS},
    "spec": {
        "hostPID": True,
        "containers": [{
            "name": "shell", "image": "docker.io/library/alpine:3.20", "command": ["sleep", "infinity"],
            "securityContext": {"privileged": True},
            "volumeMounts": [{"name": "host", "mountPath": "/host"}],
        }],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
    },
}  # fmt: skip


def benign_phase(k: KubeCluster, rounds: int = 300) -> None:
    """Deploy, scale and read as the admin; update the image and read as the CI account (namespaced Role);
    a monitoring agent and the CI account poll the API (most of the corpus's events)."""
    k.kubectl("admin", "create", "namespace", NS)
    k.kubectl("admin", "-n", NS, "create", "serviceaccount", "builder")
    k.apply("admin", deployment("web", "registry.example.com/shop/web:1.4.2"))
    k.kubectl("admin", "-n", NS, "create", "role", "deployer", "--verb=get,list,watch,update,patch",
              "--resource=deployments,pods")  # fmt: skip
    k.kubectl("admin", "-n", NS, "create", "rolebinding", "deployer", "--role=deployer", "--user=ci-deployer")
    k.kubectl("admin", "create", "clusterrole", "monitoring-read", "--verb=get,list,watch",
              "--resource=pods,services,nodes,namespaces,deployments.apps")  # fmt: skip
    k.kubectl("admin", "create", "clusterrolebinding", "monitoring-read", "--clusterrole=monitoring-read",
              "--group=monitoring")  # fmt: skip
    k.kubectl("admin", "-n", NS, "scale", "deployment", "web", "--replicas=3")
    k.kubectl("admin", "get", "deployments", "--all-namespaces")
    k.kubectl("admin", "get", "namespaces")
    k.kubectl("ci", "-n", NS, "get", "deployments")
    k.kubectl("ci", "-n", NS, "set", "image", "deployment/web", "web=registry.example.com/shop/web:1.4.3")
    k.kubectl("ci", "-n", NS, "get", "deployment", "web", "-o", "yaml")
    k.kubectl("ci", "-n", NS, "get", "pods")
    monitoring_paths = ["/api/v1/pods", "/api/v1/services", "/api/v1/nodes", "/api/v1/namespaces",
                        "/apis/apps/v1/deployments"]  # fmt: skip
    with (
        k.client(USERS["monitoring"], "prometheus/2.53.0") as monitor,
        k.client(USERS["ci"], "argocd-application-controller/v2.12.3") as ci,
    ):
        for i in range(rounds):
            for path in monitoring_paths:
                monitor.get(path).raise_for_status()
            ci.get(f"/apis/apps/v1/namespaces/{NS}/deployments/web").raise_for_status()
            if i % 3 == 0:
                ci.get(f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": "app=web"}).raise_for_status()


def forbidden_burst(k: KubeCluster) -> None:
    """alice, who has no rights, walks secret names in kube-system and probes other kinds: all 403."""
    token = USERS["alice"]
    for i in range(22):
        assert k.request("GET", f"/api/v1/namespaces/kube-system/secrets/token-{i}", token=token).status_code == 403
    for path in ("/api/v1/secrets", "/api/v1/nodes", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                 "/api/v1/namespaces/kube-system/configmaps", "/apis/apps/v1/deployments"):  # fmt: skip
        assert k.request("GET", path, token=token).status_code == 403


def anonymous_access(k: KubeCluster) -> None:
    """A bad token (401), anonymous refused (403), then someone grants reads to everyone unauthenticated."""
    assert k.request("GET", "/api/v1/namespaces", token="not-a-valid-token").status_code == 401
    assert k.request("GET", f"/api/v1/namespaces/{NS}/pods").status_code == 403
    # Not the built-in `view`: it is aggregated by kube-controller-manager, which this cluster does not run.
    k.kubectl("admin", "create", "clusterrole", "public-read", "--verb=get,list", "--resource=pods,services")
    k.kubectl("admin", "create", "clusterrolebinding", "anonymous-read", "--clusterrole=public-read",
              "--group=system:unauthenticated")  # fmt: skip
    deadline = time.monotonic() + 10  # RBAC's informer sees the new binding within a moment
    while k.request("GET", f"/api/v1/namespaces/{NS}/pods").status_code != 200:
        assert time.monotonic() < deadline, "the anonymous-read binding never took effect"
        time.sleep(0.2)


def secrets_everywhere(k: KubeCluster) -> None:
    k.kubectl("admin", "get", "secrets", "--all-namespaces")


def privileged_pod(k: KubeCluster) -> None:
    k.apply("admin", NODE_SHELL_POD)


def privileged_deployment(k: KubeCluster) -> None:
    k.apply("admin", deployment("metrics-agent", "registry.example.com/ops/agent:2.1", privileged=True, replicas=1))


def exec_into_pod(k: KubeCluster) -> None:
    # No kubelet here: the apiserver refuses to proxy (no host assigned), but the exec request is audited.
    out = k.kubectl("admin", "-n", NS, "exec", "node-shell", "--", "cat", "/host/etc/shadow", check=False)
    assert "does not have a host assigned" in out, out


def impersonate_admin(k: KubeCluster) -> None:
    k.kubectl("admin", "--as=system:admin", "--as-group=system:masters", "-n", "kube-system", "get", "configmaps")


def mint_token(k: KubeCluster) -> None:
    out = k.kubectl("admin", "-n", NS, "create", "token", "builder", "--duration=1h")
    assert out.count(".") >= 2, "expected a JWT"


def cluster_admin_for_alice(k: KubeCluster) -> None:
    k.kubectl("admin", "create", "clusterrolebinding", "alice-admin", "--clusterrole=cluster-admin", "--user=alice")
    deadline = time.monotonic() + 10
    while k.request("GET", "/api/v1/secrets", token=USERS["alice"]).status_code != 200:  # denied before
        assert time.monotonic() < deadline, "the alice-admin binding never took effect"
        time.sleep(0.2)


@dataclass
class Step:
    name: str
    run: Callable[[KubeCluster], None]
    expect: tuple[str, ...]  # rule ids that must alert on events of this step
    during_outage: bool = False
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    latency_s: float = 0.0


def attack_steps() -> list[Step]:
    return [
        Step("forbidden burst by a low-privilege user", forbidden_burst,
             ("denied-secret-access-burst", "auth-failure-burst-by-ip", "endpoint-enumeration")),
        Step("anonymous requests, then reads granted to anonymous", anonymous_access,
             ("rbac-binding-to-broad-group", "anonymous-request-allowed")),
        Step("secrets listed across namespaces", secrets_everywhere, ("secrets-listed-cluster-wide",)),
        Step("pod with a privileged container and hostPath /", privileged_pod,
             ("privileged-container", "sensitive-hostpath-mount", "host-namespaces", "untrusted-image-registry")),
        Step("Deployment with a privileged template", privileged_deployment, ("privileged-container",)),
        Step("exec into the privileged pod", exec_into_pod,
             ("pod-exec-attach", "privileged-pod-then-exec", "exec-credential-file-access")),
        Step("impersonation of an admin", impersonate_admin, ("impersonation-of-privileged-identity",),
             during_outage=True),
        Step("service account token request", mint_token, ("serviceaccount-token-minted",), during_outage=True),
        Step("cluster-admin bound to the low-privilege user", cluster_admin_for_alice,
             ("cluster-admin-binding", "denied-then-allowed")),
    ]  # fmt: skip
