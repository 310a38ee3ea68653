"""Benign traffic of the cluster's own components: kubelets, leader election, informers, probes, autoscaler.

Cadences as in real clusters: kubelet Lease every 10 s (+4 % jitter) and ``nodes/status`` every 5 min,
TokenReview/SubjectAccessReview for kubelet-API scrapes, leader Leases every 2 s, client-go watches
with ``timeoutSeconds`` 300-600 s, ``/livez``, ``/readyz`` and ``/healthz`` as ``system:anonymous``,
prometheus scraping ``/metrics``, the HPA controller every 15 s, and a stale cron script whose token
was revoked (a lone 401 every 10 min).
"""

from __future__ import annotations

from simulation.clock import SECOND
from simulation.cluster import Cluster, Deployment, Node
from simulation.emitter import Actor, object_ref, watch_uri
from simulation.engine import Engine, Process
from simulation.manifests import hpa_object, lease_object

_NOT_HEADLESS = "&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"
_KCM_INFORMERS = (
    ("/api/v1/pods", "pods", ""),
    ("/api/v1/nodes", "nodes", ""),
    ("/api/v1/namespaces", "namespaces", ""),
    ("/api/v1/services", "services", ""),
    ("/api/v1/serviceaccounts", "serviceaccounts", ""),
    ("/apis/apps/v1/deployments", "deployments", "apps"),
    ("/apis/apps/v1/replicasets", "replicasets", "apps"),
    ("/apis/apps/v1/daemonsets", "daemonsets", "apps"),
    ("/apis/apps/v1/statefulsets", "statefulsets", "apps"),
    ("/apis/discovery.k8s.io/v1/endpointslices", "endpointslices", "discovery.k8s.io"),
    ("/apis/autoscaling/v2/horizontalpodautoscalers", "horizontalpodautoscalers", "autoscaling"),
    ("/apis/batch/v1/jobs", "jobs", "batch"),
    ("/apis/policy/v1/poddisruptionbudgets", "poddisruptionbudgets", "policy"),
)
_SCHEDULER_INFORMERS = (
    ("/api/v1/pods", "pods", ""),
    ("/api/v1/nodes", "nodes", ""),
    ("/api/v1/persistentvolumeclaims", "persistentvolumeclaims", ""),
    ("/apis/storage.k8s.io/v1/csinodes", "csinodes", "storage.k8s.io"),
    ("/apis/storage.k8s.io/v1/storageclasses", "storageclasses", "storage.k8s.io"),
    ("/apis/policy/v1/poddisruptionbudgets", "poddisruptionbudgets", "policy"),
)


class SystemTraffic:
    def __init__(self, engine: Engine, cluster: Cluster) -> None:
        self.engine = engine
        self.em = engine.em
        self.rng = engine.rng
        self.cluster = cluster

    def start(self) -> None:
        """Spawn every component's processes (the spawn order breaks ties between them)."""
        engine, cp, r = self.engine, self.cluster.control_plane, self.rng.randrange
        for node in self.cluster.nodes:
            self.start_node(node)
        for dns in cp.coredns:
            self.watch(
                dns, "/apis/discovery.k8s.io/v1/endpointslices", object_ref("endpointslices", group="discovery.k8s.io")
            )
            self.watch(dns, "/api/v1/services", object_ref("services"))
            self.watch(dns, "/api/v1/namespaces", object_ref("namespaces"))
        for path, res, group in _KCM_INFORMERS:
            self.watch(cp.kcm_informers, path, object_ref(res, group=group))
        for path, res, group in _SCHEDULER_INFORMERS:
            self.watch(cp.scheduler, path, object_ref(res, group=group))
        for res in ("pods", "services", "endpoints"):
            self.watch(cp.prometheus, f"/api/v1/{res}", object_ref(res))
        engine.spawn(r(2 * SECOND), self.leader_lease(cp.kcm_leader_election, "kube-controller-manager"))
        engine.spawn(r(2 * SECOND), self.leader_lease(cp.scheduler_leader_election, "kube-scheduler"))
        engine.spawn(r(10 * SECOND), self.health(cp.kube_probe, "/livez", 10))
        engine.spawn(r(10 * SECOND), self.health(cp.kube_probe, "/readyz", 10))
        engine.spawn(r(15 * SECOND), self.health(cp.lb_health_check, "/healthz", 15))
        engine.spawn(r(30 * SECOND), self._metrics_scrape())
        engine.spawn(r(600 * SECOND), self._stale_cron())
        for dep in self.cluster.hpa_targets:
            engine.spawn(r(15 * SECOND), self._hpa(dep))

    def start_node(self, node: Node) -> None:
        """Spawn a node's kubelet and kube-proxy processes; they stop once the node is no longer ``alive``."""
        engine, r = self.engine, self.rng.randrange
        engine.spawn(r(10 * SECOND), self._kubelet_lease(node))
        engine.spawn(r(300 * SECOND), self._kubelet_node_status(node))
        engine.spawn(r(120 * SECOND), self._kubelet_authn(node))
        self._node_watches(node)

    def _node_watches(self, node: Node) -> None:
        kubelet, proxy = node.kubelet, node.kube_proxy
        this_node = f"&fieldSelector=metadata.name%3D{node.name}"
        slices = object_ref("endpointslices", group="discovery.k8s.io")
        for actor, path, ref, selector in (
            (kubelet, "/api/v1/pods", object_ref("pods"), f"&fieldSelector=spec.nodeName%3D{node.name}"),
            (kubelet, "/api/v1/nodes", object_ref("nodes"), this_node),
            (kubelet, "/api/v1/services", object_ref("services"), ""),
            (kubelet, "/apis/storage.k8s.io/v1/csidrivers", object_ref("csidrivers", group="storage.k8s.io"), ""),
            (kubelet, "/apis/node.k8s.io/v1/runtimeclasses", object_ref("runtimeclasses", group="node.k8s.io"), ""),
            (proxy, "/api/v1/services", object_ref("services"), _NOT_HEADLESS),
            (proxy, "/apis/discovery.k8s.io/v1/endpointslices", slices, _NOT_HEADLESS),
            (proxy, "/api/v1/nodes", object_ref("nodes"), this_node),
        ):
            self.watch(actor, path, ref, selector, alive=node)

    def watch(
        self, actor: Actor, path: str, ref: dict[str, str], selector: str = "", alive: Node | None = None
    ) -> None:
        """An informer: a watch that times out after 5-10 min and is re-established at once, until ``alive``
        (a node whose agent makes it) is removed."""
        engine = self.engine

        def proc() -> Process:
            while alive is None or alive.alive:
                timeout = 300 + self.rng.randrange(300)
                uri = watch_uri(path, self.em.rv(), timeout, selector)
                engine.request(actor, "watch", uri, ref, stream=timeout * SECOND)
                yield timeout * SECOND + 1000 + self.rng.randrange(40_000)

        # the first re-watch of an informer that was already running lands anywhere in the next 10 min
        engine.spawn(self.rng.randrange(600 * SECOND), proc())

    def _kubelet_lease(self, node: Node) -> Process:
        engine, em, clock, ns = self.engine, self.em, self.em.clock, "kube-node-lease"
        rv = em.rv()
        uri = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{node.name}?timeout=10s"
        ref = object_ref("leases", ns, node.name, group="coordination.k8s.io")
        touched = clock.sec(engine.now - 10 * SECOND)
        while node.alive:
            renew = clock.micro(engine.now)
            spec = {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": renew}
            new_rv, now_s = em.rv(), clock.sec(engine.now)
            lease = (ns, node.name, node.lease_uid)
            req = lease_object(*lease, rv, node.lease_created, "kubelet", spec, node, touched)
            resp = lease_object(*lease, new_rv, node.lease_created, "kubelet", dict(spec), node, now_s)
            engine.request(
                node.kubelet,
                "update",
                uri,
                ref,
                level="RequestResponse",
                req_obj=req,
                resp_obj=resp,
                obj_meta=(node.name, node.lease_uid, rv),
                latency=1500 + self.rng.randrange(6000),
            )
            rv, touched = new_rv, now_s
            yield engine.jitter(10, 0.04)

    def leader_lease(
        self,
        actor: Actor,
        name: str,
        ns: str = "kube-system",
        *,
        retry_s: int = 2,
        duration_s: int = 15,
        host: str = "cp-1",
    ) -> Process:
        """Leader election: the leader renews its Lease every ``retry_s`` (client-go's RetryPeriod)."""
        engine, em, clock = self.engine, self.em, self.em.clock
        uid, rv, holder = em.uuid(), em.rv(), f"{host}_{em.uuid()}"
        created = clock.sec(engine.start - 18 * 86400 * SECOND)
        acquired = clock.micro(engine.start - 3 * 86400 * SECOND - self.rng.randrange(86400 * SECOND))
        uri = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}?timeout=5s"
        ref = object_ref("leases", ns, name, group="coordination.k8s.io")
        manager = actor.ua.split("/", 1)[0]
        touched = clock.sec(engine.now - retry_s * SECOND)
        while True:
            spec = {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration_s,
                "acquireTime": acquired,
                "renewTime": clock.micro(engine.now),
                "leaseTransitions": 2,
            }
            new_rv, now_s = em.rv(), clock.sec(engine.now)
            req = lease_object(ns, name, uid, rv, created, manager, spec, None, touched)
            resp = lease_object(ns, name, uid, new_rv, created, manager, dict(spec), None, now_s)
            engine.request(
                actor,
                "update",
                uri,
                ref,
                level="RequestResponse",
                req_obj=req,
                resp_obj=resp,
                obj_meta=(name, uid, rv),
                latency=1200 + self.rng.randrange(5000),
            )
            rv, touched = new_rv, now_s
            yield retry_s * SECOND + self.rng.randrange(8000)

    def _kubelet_node_status(self, node: Node) -> Process:
        types = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
        uri = f"/api/v1/nodes/{node.name}/status?timeout=10s"
        ref = object_ref("nodes", name=node.name, subresource="status")
        while node.alive:
            beat = self.em.clock.sec(self.engine.now)
            body = {
                "status": {
                    "$setElementOrder/conditions": [{"type": t} for t in types],
                    "conditions": [{"lastHeartbeatTime": beat, "type": t} for t in types],
                }
            }
            latency = 3000 + self.rng.randrange(9000)
            self.engine.request(node.kubelet, "patch", uri, ref, level="Request", req_obj=body, latency=latency)
            yield self.engine.jitter(300, 0.01)

    def _kubelet_authn(self, node: Node) -> Process:
        """Kubelet webhook authn/authz of API scrapes: TokenReview every 2 min, SAR every ~5 min (TTLs)."""
        engine = self.engine
        tr_uri = "/apis/authentication.k8s.io/v1/tokenreviews"
        tr_ref = object_ref("tokenreviews", group="authentication.k8s.io")
        sar_uri = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        sar_ref = object_ref("subjectaccessreviews", group="authorization.k8s.io")
        sar_due = engine.now
        while node.alive:
            engine.request(node.kubelet, "create", tr_uri, tr_ref, code=201)
            if engine.now >= sar_due:
                yield 1500 + self.rng.randrange(3000)
                engine.request(node.kubelet, "create", sar_uri, sar_ref, code=201)
                sar_due = engine.now + 300 * SECOND
            yield engine.jitter(120, 0.05)

    def health(self, actor: Actor, path: str, period_s: int) -> Process:
        while True:
            self.engine.request(actor, "get", path, None, latency=200 + self.rng.randrange(1500))
            yield period_s * SECOND + self.rng.randrange(3000)

    def _metrics_scrape(self) -> Process:
        prometheus = self.cluster.control_plane.prometheus
        while True:
            self.engine.request(prometheus, "get", "/metrics", None, latency=40_000 + self.rng.randrange(60_000))
            yield 30 * SECOND + self.rng.randrange(5000)

    def _stale_cron(self) -> Process:
        """A forgotten cron script on a build box whose service-account token was revoked."""
        namespaces = self.cluster.profile.namespaces
        ns = namespaces[0] if namespaces else "default"
        while True:
            uri, ref = f"/api/v1/namespaces/{ns}/pods", object_ref("pods", ns)
            self.em.unauthenticated(self.engine.now, "10.30.0.57", "python-requests/2.31.0", "list", uri, ref)
            yield 600 * SECOND + self.rng.randrange(2 * SECOND)

    def _hpa(self, dep: Deployment) -> Process:
        engine, em, rng = self.engine, self.em, self.rng
        hpa_ctrl = self.cluster.control_plane.hpa_controller
        ns, name = dep.ns, dep.name
        scale_uri = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"
        scale_ref = object_ref("deployments", ns, name, "apps", subresource="scale")
        metrics_uri = f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=app%3D{name}"
        metrics_ref = object_ref("pods", ns, group="metrics.k8s.io", version="v1beta1")
        status_uri = f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}/status"
        status_ref = object_ref("horizontalpodautoscalers", ns, name, "autoscaling", "v2", "status")
        uid, created = em.uuid(), em.clock.sec(engine.start - 9 * 86400 * SECOND)
        while True:
            engine.request(hpa_ctrl, "get", scale_uri, scale_ref)
            yield 2000 + rng.randrange(4000)
            engine.request(hpa_ctrl, "list", metrics_uri, metrics_ref, latency=4000 + rng.randrange(20_000))
            if rng.random() < 0.25:
                yield 25_000 + rng.randrange(10_000)
                rv = em.rv()
                body = hpa_object(dep, uid, rv, created, utilization=35 + rng.randrange(40))
                engine.request(
                    hpa_ctrl, "update", status_uri, status_ref, level="Request", req_obj=body, obj_meta=(name, uid, rv)
                )
            yield 15 * SECOND + rng.randrange(20_000)
