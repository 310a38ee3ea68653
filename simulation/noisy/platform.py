"""Steady traffic of the add-ons and of the applications that call the API.

Informers of Argo CD, Flux, cert-manager, external-secrets, Kyverno, the cluster autoscaler and the
operators (several watch Secrets cluster-wide, as the real ones do); cert-manager's leader Leases;
Prometheus scraping every kubelet through the apiserver's ``nodes/proxy`` (``/metrics`` and
``/metrics/cadvisor``, as the community chart's jobs do) and ``/apis/metrics.k8s.io`` for node metrics;
anonymous ``/readyz`` and ``/livez`` probes of a load balancer and a blackbox exporter; applications
reading their ConfigMap and their own Secret with their pod's token; and a CI runner left with an
expired token whose job retries in bursts of 401s.
"""

from __future__ import annotations

from typing import Final

from simulation.clock import SECOND
from simulation.cluster import Cluster
from simulation.emitter import Actor, object_ref
from simulation.engine import Engine, Process
from simulation.noisy.org import ApiClient, Org
from simulation.noisy.writes import collection_path
from simulation.system import SystemTraffic

_W = tuple[str, str, str, str]  # (resource, group, version, namespace or "")
_ARGOCD: Final[tuple[_W, ...]] = tuple(
    (res, group, "v1", "")
    for res, group in (
        ("pods", ""),
        ("services", ""),
        ("configmaps", ""),
        ("secrets", ""),
        ("serviceaccounts", ""),
        ("deployments", "apps"),
        ("replicasets", "apps"),
        ("statefulsets", "apps"),
        ("daemonsets", "apps"),
        ("jobs", "batch"),
        ("cronjobs", "batch"),
        ("ingresses", "networking.k8s.io"),
        ("networkpolicies", "networking.k8s.io"),
        ("roles", "rbac.authorization.k8s.io"),
        ("rolebindings", "rbac.authorization.k8s.io"),
        ("clusterroles", "rbac.authorization.k8s.io"),
        ("clusterrolebindings", "rbac.authorization.k8s.io"),
        ("customresourcedefinitions", "apiextensions.k8s.io"),
    )
)
_CERT_MANAGER: Final[tuple[_W, ...]] = (
    ("certificates", "cert-manager.io", "v1", ""),
    ("certificaterequests", "cert-manager.io", "v1", ""),
    ("issuers", "cert-manager.io", "v1", ""),
    ("clusterissuers", "cert-manager.io", "v1", ""),
    ("orders", "acme.cert-manager.io", "v1", ""),
    ("challenges", "acme.cert-manager.io", "v1", ""),
    ("secrets", "", "v1", ""),
    ("ingresses", "networking.k8s.io", "v1", ""),
)
_CAINJECTOR: Final[tuple[_W, ...]] = (
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", ""),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", ""),
    ("customresourcedefinitions", "apiextensions.k8s.io", "v1", ""),
)
_EXTERNAL_SECRETS: Final[tuple[_W, ...]] = (
    ("externalsecrets", "external-secrets.io", "v1beta1", ""),
    ("secretstores", "external-secrets.io", "v1beta1", ""),
    ("clustersecretstores", "external-secrets.io", "v1beta1", ""),
    ("secrets", "", "v1", ""),
)
_KYVERNO: Final[tuple[_W, ...]] = (
    ("clusterpolicies", "kyverno.io", "v1", ""),
    ("policies", "kyverno.io", "v1", ""),
    ("namespaces", "", "v1", ""),
    ("configmaps", "", "v1", "kyverno"),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", ""),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io", "v1", ""),
)
_FLUX: Final[tuple[_W, ...]] = (
    ("kustomizations", "kustomize.toolkit.fluxcd.io", "v1", ""),
    ("gitrepositories", "source.toolkit.fluxcd.io", "v1", ""),
    ("helmreleases", "helm.toolkit.fluxcd.io", "v2", ""),
)
_AUTOSCALER: Final[tuple[_W, ...]] = (
    ("nodes", "", "v1", ""),
    ("pods", "", "v1", ""),
    ("poddisruptionbudgets", "policy", "v1", ""),
)
_OPERATOR: Final[tuple[_W, ...]] = (
    ("installations", "operator.tigera.io", "v1", ""),
    ("daemonsets", "apps", "v1", "calico-system"),
    ("deployments", "apps", "v1", "calico-system"),
)
_LONGHORN: Final[tuple[_W, ...]] = (
    ("nodes", "", "v1", ""),
    ("pods", "", "v1", "longhorn-system"),
    ("volumes", "longhorn.io", "v1beta2", "longhorn-system"),
)
_STALE_RUNNERS: Final = tuple(f"10.30.1.{n}" for n in range(10, 42))


class PlatformTraffic:
    def __init__(self, engine: Engine, cluster: Cluster, org: Org, system: SystemTraffic) -> None:
        self.engine, self.em, self.rng = engine, engine.em, engine.rng
        self.cluster, self.org, self.system = cluster, org, system

    def start(self) -> None:
        org, engine, r = self.org, self.engine, self.rng.randrange
        for actor, watches in (
            (org.argocd, _ARGOCD),
            (org.cert_manager, _CERT_MANAGER),
            (org.cainjector, _CAINJECTOR),
            (org.external_secrets, _EXTERNAL_SECRETS),
            (org.kyverno, _KYVERNO),
            (org.kustomize, _FLUX[:2]),
            (org.helm_controller, _FLUX[2:]),
            (org.autoscaler, _AUTOSCALER),
            (org.tigera, _OPERATOR),
            (org.longhorn, _LONGHORN),
        ):
            for res, group, version, ns in watches:
                ref = object_ref(res, ns or None, group=group, version=version)
                self.system.watch(actor, collection_path(res, group, version, ns), ref)
        for name, actor in (
            ("cert-manager-controller", org.cert_manager),
            ("cert-manager-cainjector-leader-election", org.cainjector),
        ):  # cert-manager's defaults: lease 60 s, renew deadline 40 s, retry every 15 s
            host = f"{actor.username.rsplit(':', 1)[1]}-{self.em.token(10)}-{self.em.token(5)}"
            lease = self.system.leader_lease(actor, name, retry_s=15, duration_s=60, host=host)
            engine.spawn(r(15 * SECOND), lease)
        engine.spawn(r(60 * SECOND), self._node_scrapes())
        cp = self.cluster.control_plane
        public = cp.kube_probe.reason
        lb = Actor("system:anonymous", ("system:unauthenticated",), "10.0.0.5", "Go-http-client/1.1", public)
        blackbox = Actor(
            "system:anonymous", ("system:unauthenticated",), "10.244.0.12", "Blackbox Exporter/0.25.0", public
        )
        engine.spawn(r(30 * SECOND), self.system.health(lb, "/readyz", 30))
        engine.spawn(r(60 * SECOND), self.system.health(blackbox, "/livez", 60))
        for client in org.api_clients:
            engine.spawn(r(300 * SECOND), self._api_client(client))
            engine.spawn(r(600 * SECOND), self._api_client_watch(client))
        engine.spawn(engine.exp_s(8 * 3600), self._stale_token_bursts())

    def _node_scrapes(self) -> Process:
        """Prometheus's kubernetes-nodes and -cadvisor jobs through the apiserver proxy, every minute; node
        metrics through metrics.k8s.io for the dashboards."""
        engine, rng, prometheus = self.engine, self.rng, self.cluster.control_plane.prometheus
        while True:
            for node in list(self.cluster.nodes):
                for path in ("metrics", "metrics/cadvisor"):
                    ref = object_ref("nodes", name=node.name, subresource="proxy")
                    uri = f"/api/v1/nodes/{node.name}/proxy/{path}"
                    engine.request(prometheus, "get", uri, ref, stream=80_000 + rng.randrange(400_000))
                    yield 5000 + rng.randrange(200_000)
            uri = "/apis/metrics.k8s.io/v1beta1/nodes"
            engine.request(prometheus, "list", uri, object_ref("nodes", group="metrics.k8s.io", version="v1beta1"))
            yield 60 * SECOND + rng.randrange(2 * SECOND)

    def _api_client(self, client: ApiClient) -> Process:
        """An application reading its ConfigMap every few minutes, and its own Secret at start and every 6 h."""
        engine, rng, dep = self.engine, self.rng, client.dep
        ns, name = dep.ns, dep.name
        secret_due: dict[str, int] = {}
        while True:
            if dep.pods:
                pod = rng.choice(dep.pods)
                actor = client.actor(pod, self.em)
                uri = f"/api/v1/namespaces/{ns}/configmaps/{name}-config"
                engine.request(actor, "get", uri, object_ref("configmaps", ns, f"{name}-config"))
                if engine.now >= secret_due.get(pod.uid, 0):
                    secret_due[pod.uid] = engine.now + 6 * 3600 * SECOND
                    yield 20_000 + rng.randrange(200_000)
                    secret = f"{name}-credentials"
                    uri = f"/api/v1/namespaces/{ns}/secrets/{secret}"
                    engine.request(actor, "get", uri, object_ref("secrets", ns, secret))
            yield (120 + rng.randrange(180)) * SECOND

    def _api_client_watch(self, client: ApiClient) -> Process:
        """The application's informer on its namespace's ConfigMaps, from whichever pod runs it."""
        engine, rng, dep = self.engine, self.rng, client.dep
        path, ref = f"/api/v1/namespaces/{dep.ns}/configmaps", object_ref("configmaps", dep.ns)
        while True:
            timeout = 300 + rng.randrange(300)
            if dep.pods:
                actor = client.actor(dep.pods[0], self.em)
                query = f"allowWatchBookmarks=true&resourceVersion={self.em.rv()}&timeoutSeconds={timeout}&watch=true"
                uri = f"{path}?{query}"
                engine.request(actor, "watch", uri, ref, stream=timeout * SECOND)
            yield timeout * SECOND + 1000 + rng.randrange(40_000)

    def _stale_token_bursts(self) -> Process:
        """A CI job whose kubeconfig holds an expired token: discovery, then the same request retried."""
        engine, rng = self.engine, self.rng
        while True:
            ip = rng.choice(_STALE_RUNNERS)
            ua = rng.choice(("kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46", "Helm/3.16.3"))
            dep = rng.choice(self.cluster.deployments)
            target = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}"
            for i in range(12 + rng.randrange(30)):
                if i < 4:
                    uri, ref = ("/api", "/apis", "/api/v1", "/apis/apps/v1")[i] + "?timeout=32s", None
                else:
                    uri, ref = target, object_ref("deployments", dep.ns, dep.name, "apps")
                self.em.unauthenticated(engine.now, ip, ua, "get", uri, ref)
                yield 50_000 + rng.randrange(4 * SECOND if i >= 4 else 200_000)
            yield engine.exp_s(16 * 3600)
