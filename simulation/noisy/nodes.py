"""The cluster autoscaler: its status ConfigMap every minute, nodes added under load and removed later.

A scale-up is the node's TLS bootstrap (a CSR for the ``kubernetes.io/kube-apiserver-client-kubelet``
signer by ``system:bootstrap:<token-id>``, approved and signed by the controller manager), the kubelet
registering its Node, the DaemonSet controller's pods (kube-proxy, Calico) and Longhorn's privileged
instance-manager pod in ``longhorn-system``. A scale-down taints the node, evicts its pods (their
ReplicaSets start replacements elsewhere) and deletes the Node.
"""

from __future__ import annotations

from typing import Final

from simulation.clock import SECOND
from simulation.cluster import Cluster, Deployment, Node, add_node
from simulation.emitter import Actor, object_ref, rbac_reason
from simulation.engine import Engine, Process
from simulation.noisy.objects import node_agent_spec, node_object, pod_object
from simulation.noisy.operators import Operators
from simulation.noisy.org import Org
from simulation.system import SystemTraffic
from simulation.workloads import Workloads

_MAX_ADDED: Final = 3
_CSR_PATH: Final = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
_INSTANCE_MANAGER: Final = "docker.io/longhornio/longhorn-instance-manager:v1.7.2"
_BOOTSTRAP_REASON: Final = rbac_reason(
    "ClusterRoleBinding",
    "kubeadm:kubelet-bootstrap",
    "ClusterRole",
    "system:node-bootstrapper",
    "Group",
    "system:bootstrappers:kubeadm:default-node-token",
)


class NodeLifecycle:
    def __init__(
        self, engine: Engine, cluster: Cluster, org: Org, system: SystemTraffic, workloads: Workloads, ops: Operators
    ) -> None:
        self.engine, self.em, self.rng = engine, engine.em, engine.rng
        self.cluster, self.org, self.system, self.workloads, self.ops = cluster, org, system, workloads, ops
        self.added: list[tuple[Node, str]] = []  # (node, its instance-manager pod)

    def start(self) -> None:
        self.engine.spawn(self.rng.randrange(60 * SECOND), self._status())
        self.engine.spawn(self.engine.exp_s(16 * 3600), self._scale())

    def _status(self) -> Process:
        ca, ns, name = self.org.autoscaler, "kube-system", "cluster-autoscaler-status"
        uri, ref = f"/api/v1/namespaces/{ns}/configmaps/{name}", object_ref("configmaps", ns, name)
        while True:
            self.engine.request(ca, "update", uri, ref)
            yield 60 * SECOND + self.rng.randrange(SECOND)

    def _scale(self) -> Process:
        engine = self.engine
        while True:
            if len(self.added) < _MAX_ADDED:
                yield from self._join()
                node = self.added[-1][0]
                engine.spawn((3 + self.rng.randrange(8)) * 3600 * SECOND, self._leave(node))
            yield engine.exp_s(16 * 3600)

    def _join(self) -> Process:
        engine, em, rng = self.engine, self.em, self.rng
        node = add_node(self.cluster, em, em.clock.sec(engine.now))
        self.cluster.nodes.remove(node)  # schedulable once registered
        bootstrap = Actor(
            f"system:bootstrap:{em.token(6)}",
            ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"),
            node.ip,
            node.kubelet.ua,
            _BOOTSTRAP_REASON,
        )
        csr = f"csr-{em.token(5)}"
        body = {
            "kind": "CertificateSigningRequest",
            "apiVersion": "certificates.k8s.io/v1",
            "metadata": {"generateName": "csr-", "creationTimestamp": None},
            "spec": {
                "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
            },
            "status": {},
        }
        group = "certificates.k8s.io"
        ref = object_ref("certificatesigningrequests", group=group)
        engine.request(
            bootstrap, "create", _CSR_PATH, ref, code=201, level="Request", req_obj=body, obj_meta=(csr, None, None)
        )
        yield 300_000 + rng.randrange(SECOND)
        for sub in ("approval", "status"):
            ref = object_ref("certificatesigningrequests", name=csr, group=group, subresource=sub)
            engine.request(
                self.org.csr_approver, "update", f"{_CSR_PATH}/{csr}/{sub}", ref, level="Request", req_obj=body
            )
            yield 100_000 + rng.randrange(500_000)
        yield 2 * SECOND + rng.randrange(3 * SECOND)
        pod_cidr = f"10.244.{node.pod_cidr + 1}.0/24"
        engine.request(
            node.kubelet,
            "create",
            "/api/v1/nodes",
            object_ref("nodes"),
            code=201,
            level="Request",
            req_obj=node_object(node.name, node.ip, pod_cidr),
            obj_meta=(node.name, None, None),
        )
        self.cluster.nodes.append(node)
        self.system.start_node(node)
        for ds, ns, spec, uid in self.ops.daemonsets:
            yield 500_000 + rng.randrange(3 * SECOND)
            self.ops.create_daemon_pod(ds, ns, node.name, spec, uid)
        yield 5 * SECOND + rng.randrange(20 * SECOND)
        manager = f"instance-manager-{em.hex(16)}"
        spec = node_agent_spec(
            _INSTANCE_MANAGER, "longhorn-service-account", ["/dev", "/proc", "/var/lib/longhorn"], node.name
        )
        meta = {
            "name": manager,
            "namespace": "longhorn-system",
            "creationTimestamp": None,
            "labels": {"longhorn.io/component": "instance-manager"},
        }
        engine.request(
            self.org.longhorn,
            "create",
            "/api/v1/namespaces/longhorn-system/pods",
            object_ref("pods", "longhorn-system"),
            code=201,
            level="Request",
            req_obj=pod_object(meta, spec),
            obj_meta=(manager, None, None),
        )
        self.added.append((node, manager))

    def _leave(self, node: Node) -> Process:
        engine, rng, ca = self.engine, self.rng, self.org.autoscaler
        if node in self.cluster.nodes:
            self.cluster.nodes.remove(node)  # cordoned: no new pods there
        taint = {
            "spec": {
                "taints": [
                    {
                        "key": "ToBeDeletedByClusterAutoscaler",
                        "value": str(engine.now // SECOND),
                        "effect": "NoSchedule",
                    }
                ]
            }
        }
        engine.request(
            ca,
            "patch",
            f"/api/v1/nodes/{node.name}",
            object_ref("nodes", name=node.name),
            level="Request",
            req_obj=taint,
        )
        deps: list[Deployment] = [*self.cluster.deployments, *self.org.platform]
        for dep in deps:
            for pod in [p for p in dep.pods if p.node is node]:
                yield 1 * SECOND + rng.randrange(3 * SECOND)
                engine.spawn(0, self.workloads.evict(dep, pod, ca))
        yield 30 * SECOND + rng.randrange(60 * SECOND)
        manager = next(m for n, m in self.added if n is node)
        uri = f"/api/v1/namespaces/longhorn-system/pods/{manager}"
        engine.request(
            self.org.longhorn,
            "delete",
            uri,
            object_ref("pods", "longhorn-system", manager),
            level="Request",
            req_obj={"kind": "DeleteOptions", "apiVersion": "v1"},
        )
        yield 10 * SECOND + rng.randrange(20 * SECOND)
        engine.request(
            ca,
            "delete",
            f"/api/v1/nodes/{node.name}",
            object_ref("nodes", name=node.name),
            level="Request",
            req_obj={"kind": "DeleteOptions", "apiVersion": "v1"},
        )
        node.alive = False
        self.added = [(n, m) for n, m in self.added if n is not node]
