"""Benign workload churn driven through the controllers: rolling updates, pods starting and stopping.

Each image change (by CI or a human) drives a realistic RollingUpdate: the deployment controller
creates the new ReplicaSet and scales both, the ReplicaSet controller creates and deletes Pods with
the full pod spec, the scheduler binds them, the kubelets patch ``pods/status`` and create core
Events, and the endpointslice controller follows (5-15 API calls per pod).
"""

from __future__ import annotations

from typing import Any

from simulation.clock import SECOND
from simulation.cluster import APP_NAMES, Cluster, Deployment, Pod
from simulation.emitter import Actor, object_ref, success_status
from simulation.engine import Engine, Process
from simulation.manifests import (
    deployment_status_object,
    endpoint_slice_metadata,
    endpoint_slice_object,
    pod_create_body,
    pod_status_patch,
    replica_set_object,
)


class Workloads:
    def __init__(self, engine: Engine, cluster: Cluster) -> None:
        self.engine = engine
        self.em = engine.em
        self.rng = engine.rng
        self.cluster = cluster
        cp = cluster.control_plane
        self.deploy_ctrl, self.rs_ctrl, self.scheduler = (
            cp.deployment_controller,
            cp.replicaset_controller,
            cp.scheduler,
        )

    def bump_version(self, dep: Deployment) -> None:
        """A new image tag: mostly a patch release, sometimes a minor one."""
        major, minor, patch = dep.version.split(".")
        if self.rng.random() < 0.8:
            dep.version = f"{major}.{minor}.{int(patch) + 1}"
        else:
            dep.version = f"{major}.{int(minor) + 1}.0"

    def rollout(self, dep: Deployment) -> Process:
        """A RollingUpdate (maxSurge 1, maxUnavailable 0): new ReplicaSet, then pod by pod."""
        engine, em, rng = self.engine, self.em, self.rng
        dep.rolling = True
        dep.generation += 1
        dep.revision += 1
        old_hash = dep.rs_hash
        old_pods = list(dep.pods)
        dep.rs_hash, dep.rs_uid = em.token(10), em.uuid()
        ns = dep.ns
        yield 4000 + rng.randrange(20_000)
        self._create_replica_set(dep, 1)
        yield 3000 + rng.randrange(10_000)
        self._deployment_status(dep, 0)
        self._core_event(self.deploy_ctrl, ns, dep.name)
        for i in range(dep.replicas):
            yield 2000 + rng.randrange(8000)
            if i > 0:
                rs = self._replica_set(dep, i + 1, dep.rs_hash, dep.rs_uid)
                engine.request(
                    self.deploy_ctrl,
                    "update",
                    f"/apis/apps/v1/namespaces/{ns}/replicasets/{dep.rs_name}",
                    object_ref("replicasets", ns, dep.rs_name, "apps"),
                    level="Request",
                    req_obj=rs,
                    obj_meta=(dep.rs_name, dep.rs_uid, em.rv()),
                )
                yield 2000 + rng.randrange(6000)
            pod = self.cluster.new_pod(dep, em)
            yield from self._start_pod(dep, pod)
            dep.pods.append(pod)
            yield 3000 + rng.randrange(15_000)
            self._update_slice(dep)
            if old_pods:
                old = old_pods.pop(0)
                yield 5000 + rng.randrange(20_000)
                old_rs = f"{dep.name}-{old_hash}"
                rs = self._replica_set(dep, len(old_pods), old_hash, em.uuid())
                engine.request(
                    self.deploy_ctrl,
                    "update",
                    f"/apis/apps/v1/namespaces/{ns}/replicasets/{old_rs}",
                    object_ref("replicasets", ns, old_rs, "apps"),
                    level="Request",
                    req_obj=rs,
                    obj_meta=(old_rs, None, em.rv()),
                )
                yield from self._stop_pod(dep, old)
        yield 1000 + rng.randrange(20_000)
        self._deployment_status(dep, dep.replicas)
        dep.rolling = False

    def new_deployment(self, ns: str) -> Deployment | None:
        """A Deployment about to be created in ``ns`` (rolling until its first pod runs), or None if every
        application name is taken there."""
        rng, em = self.rng, self.em
        taken = {d.name for d in self.cluster.deployments if d.ns == ns}
        free = [n for n in APP_NAMES if n not in taken]
        if not free:
            return None
        name = rng.choice(free)
        dep = Deployment(
            ns,
            name,
            em.uuid(),
            f"0.{rng.randrange(1, 9)}.0",
            1,
            8080,
            em.token(10),
            em.uuid(),
            em.uuid(),
            "",
            em.uuid(),
            1,
            1,
            registry=self.cluster.profile.site.registry,
        )
        dep.slice_name = f"{dep.name}-{em.token(5)}"
        dep.rolling = True
        return dep

    def scale_up_new(self, dep: Deployment) -> Process:
        """The controllers' work after a new Deployment was created: its ReplicaSet and first pod."""
        self._create_replica_set(dep, dep.replicas)
        yield 5000 + self.rng.randrange(10_000)
        pod = self.cluster.new_pod(dep, self.em)
        yield from self._start_pod(dep, pod)
        dep.pods.append(pod)
        yield 5000
        self._deployment_status(dep, 1)
        dep.rolling = False

    def evict(self, dep: Deployment, pod: Pod, evictor: Actor) -> Process:
        """A drain's eviction of ``pod``: its ReplicaSet starts a replacement elsewhere, its kubelet stops it."""
        engine, rng, ns = self.engine, self.rng, dep.ns
        body = {
            "kind": "Eviction",
            "apiVersion": "policy/v1",
            "metadata": {"name": pod.name, "namespace": ns, "creationTimestamp": None},
            "deleteOptions": {},
        }
        engine.request(
            evictor,
            "create",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}/eviction",
            object_ref("pods", ns, pod.name, subresource="eviction"),
            code=201,
            level="Request",
            req_obj=body,
        )
        if pod in dep.pods:
            dep.pods.remove(pod)
        yield 2000 + rng.randrange(5000)
        engine.spawn(0, self._replace(dep))
        yield 1 * SECOND + rng.randrange(8 * SECOND)
        self._core_event(pod.node.kubelet, ns, pod.name)  # Killing
        yield 500_000 + rng.randrange(2 * SECOND)
        self._pod_status(pod, dep, "Terminated")

    def _replace(self, dep: Deployment) -> Process:
        pod = self.cluster.new_pod(dep, self.em)
        yield from self._start_pod(dep, pod)
        dep.pods.append(pod)
        yield 3000 + self.rng.randrange(15_000)
        self._update_slice(dep)

    def _replica_set(self, dep: Deployment, replicas: int, rs_hash: str, rs_uid: str | None) -> dict[str, Any]:
        """The ReplicaSet object; an existing one (``rs_uid`` given) gets a fresh resourceVersion."""
        stored = None
        if rs_uid is not None:
            stored = (rs_uid, self.em.rv(), self.em.clock.sec(self.engine.now - 60 * SECOND))
        return replica_set_object(dep, replicas, rs_hash, stored)

    def _create_replica_set(self, dep: Deployment, replicas: int) -> None:
        self.engine.request(
            self.deploy_ctrl,
            "create",
            f"/apis/apps/v1/namespaces/{dep.ns}/replicasets",
            object_ref("replicasets", dep.ns, group="apps"),
            code=201,
            level="Request",
            req_obj=self._replica_set(dep, replicas, dep.rs_hash, None),
            obj_meta=(dep.rs_name, None, None),
        )

    def _deployment_status(self, dep: Deployment, updated: int) -> None:
        rv = self.em.rv()
        self.engine.request(
            self.deploy_ctrl,
            "update",
            f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}/status",
            object_ref("deployments", dep.ns, dep.name, "apps", subresource="status"),
            level="Request",
            req_obj=deployment_status_object(dep, rv, updated),
            obj_meta=(dep.name, dep.uid, rv),
        )

    def _core_event(self, actor: Actor, ns: str, involved: str) -> None:
        name = f"{involved}.{self.em.hex(8)}"
        self.engine.request(
            actor,
            "create",
            f"/api/v1/namespaces/{ns}/events",
            object_ref("events", ns),
            code=201,
            obj_meta=(name, None, None),
        )

    def _update_slice(self, dep: Deployment) -> None:
        rv, prev = self.em.rv(), self.em.rv()
        meta = endpoint_slice_metadata(dep, prev, self.em.clock.sec(self.engine.start - 9 * 86400 * SECOND))
        self.engine.request(
            self.cluster.control_plane.endpointslice_controller,
            "update",
            f"/apis/discovery.k8s.io/v1/namespaces/{dep.ns}/endpointslices/{dep.slice_name}",
            object_ref("endpointslices", dep.ns, dep.slice_name, "discovery.k8s.io"),
            level="RequestResponse",
            req_obj=endpoint_slice_object(dep, meta),
            resp_obj=endpoint_slice_object(dep, {**meta, "resourceVersion": rv}),
            obj_meta=(dep.slice_name, dep.slice_uid, prev),
        )

    def _pod_status(self, pod: Pod, dep: Deployment, phase: str) -> None:
        body = pod_status_patch(pod, dep, phase, self.em.clock.sec(self.engine.now))
        self.engine.request(
            pod.node.kubelet,
            "patch",
            f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}/status",
            object_ref("pods", dep.ns, pod.name, subresource="status"),
            level="Request",
            req_obj=body,
            latency=2500 + self.rng.randrange(8000),
        )

    def _start_pod(self, dep: Deployment, pod: Pod) -> Process:
        engine, em, rng, ns = self.engine, self.em, self.rng, dep.ns
        engine.request(
            self.rs_ctrl,
            "create",
            f"/api/v1/namespaces/{ns}/pods",
            object_ref("pods", ns),
            code=201,
            level="Request",
            req_obj=pod_create_body(dep),
            latency=4000 + rng.randrange(12_000),
        )
        yield 1000 + rng.randrange(4000)
        self._core_event(self.rs_ctrl, ns, dep.rs_name)
        yield 3000 + rng.randrange(25_000)
        binding = {
            "kind": "Binding",
            "apiVersion": "v1",
            "metadata": {"name": pod.name, "namespace": ns, "uid": pod.uid, "creationTimestamp": None},
            "target": {"kind": "Node", "name": pod.node.name},
        }
        engine.request(
            self.scheduler,
            "create",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}/binding",
            object_ref("pods", ns, pod.name, subresource="binding"),
            code=201,
            level="RequestResponse",
            req_obj=binding,
            resp_obj=success_status(),
            obj_meta=(pod.name, pod.uid, None),
        )
        yield 1000 + rng.randrange(3000)
        engine.request(
            self.scheduler,
            "create",
            f"/apis/events.k8s.io/v1/namespaces/{ns}/events",
            object_ref("events", ns, group="events.k8s.io"),
            code=201,
            obj_meta=(f"{pod.name}.{em.hex(8)}", None, None),
        )
        yield 60_000 + rng.randrange(300_000)
        self._pod_status(pod, dep, "Pending")
        for _ in range(2):  # Pulled/Created, Started
            yield 300_000 + rng.randrange(2 * SECOND)
            self._core_event(pod.node.kubelet, ns, pod.name)
        yield 2 * SECOND + rng.randrange(6 * SECOND)
        self._pod_status(pod, dep, "Running")

    def _stop_pod(self, dep: Deployment, pod: Pod) -> Process:
        engine, rng, ns = self.engine, self.rng, dep.ns
        engine.request(
            self.rs_ctrl,
            "delete",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}",
            object_ref("pods", ns, pod.name),
            level="Request",
            req_obj={"kind": "DeleteOptions", "apiVersion": "v1"},
        )
        if pod in dep.pods:
            dep.pods.remove(pod)
        yield 2000 + rng.randrange(5000)
        self._core_event(self.rs_ctrl, ns, dep.rs_name)
        yield 5000 + rng.randrange(15_000)
        self._update_slice(dep)
        yield 1 * SECOND + rng.randrange(8 * SECOND)
        self._core_event(pod.node.kubelet, ns, pod.name)  # Killing
        yield 500_000 + rng.randrange(2 * SECOND)
        self._pod_status(pod, dep, "Terminated")
        yield 20_000 + rng.randrange(200_000)
        engine.request(
            pod.node.kubelet,
            "delete",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}",
            object_ref("pods", ns, pod.name),
            level="Request",
            req_obj={
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": pod.uid},
            },
        )
