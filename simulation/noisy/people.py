"""People in a noisy world: developers with real habits, and on-call SREs.

Developers keep the kubectl sessions of :class:`~simulation.humans.HumanUsers`, on their own shift (UTC
hours, weekdays, the odd day off), from their desk or the VPN (whose address changes now and then), with
a kubectl that may get upgraded; and they ``kubectl exec`` into their team's pods on most days (now and
then into another team's), port-forward, and copy files out of pods (``kubectl cp``: ``tar cf -``).
kubectl >= 1.30 execs over WebSocket (verb ``get``), older ones over SPDY (``create``); commands are
URL-encoded ``command=`` parameters, as kubectl writes them.

On-call SREs (cluster-admin) look at nodes and all namespaces during their shift, grant a developer a
temporary RoleBinding and remove it hours later, ``kubectl debug`` pods (an ephemeral container, then
attach) and, rarely, nodes (a pod with the host's namespaces and ``/``), mint a token for a monitoring
service account, and get paged at any hour.
"""

from __future__ import annotations

from typing import Final

from simulation.clock import SECOND
from simulation.cluster import Cluster, Human
from simulation.emitter import Actor, exec_uri, object_ref
from simulation.engine import Engine, Process
from simulation.humans import Command, HumanUsers, namespace_reason
from simulation.noisy.catalog import DEBUG_IMAGES
from simulation.noisy.objects import binding, ephemeral_container_patch, node_debug_pod, subject, token_request
from simulation.noisy.org import Org
from simulation.noisy.writes import ObjectWriter
from simulation.workloads import Workloads

_SHELLS: Final = (["sh"], ["/bin/sh"], ["bash"], ["/bin/bash"])
_ONE_OFFS: Final = (
    ["env"],
    ["ps", "aux"],
    ["cat", "/app/config/application.yaml"],
    ["ls", "-la", "/data"],
    ["curl", "-s", "localhost:8080/metrics"],
    ["sh", "-c", "du -sh /tmp/*"],
    ["df", "-h"],
    ["nslookup", "kubernetes.default.svc.cluster.local"],
    ["python", "manage.py", "showmigrations"],
    ["redis-cli", "INFO", "memory"],
)
_COPIED: Final = ("/tmp/heap.hprof", "/app/logs/app.log", "/tmp/profile.pprof", "/data/export.csv")


def websocket(actor: Actor) -> bool:
    """kubectl >= 1.30 streams over WebSocket (a GET), older ones over SPDY (a POST)."""
    return not actor.ua.startswith(("kubectl/v1.2", "kubectl/v1.1"))


class NoisyHumans(HumanUsers):
    def __init__(self, engine: Engine, cluster: Cluster, workloads: Workloads, org: Org) -> None:
        super().__init__(engine, cluster, workloads)
        self.org = org

    def commands(self) -> list[tuple[Command, float]]:
        return [*super().commands(), (self._exec, 2.0), (self._port_forward, 0.6), (self._copy, 0.3)]

    def identity(self, human: Human) -> Actor:
        return self.org.identity(human, self.engine.now)

    def working(self, human: Human) -> bool:
        return self.org.on_shift(human, self.engine.now)

    def _target(self, ns: str) -> tuple[str, str] | None:
        """A running pod of the team's namespace; now and then of another team's."""
        if self.rng.random() < 0.05:
            others = [d.ns for d in self.cluster.deployments if d.ns != ns]
            ns = self.rng.choice(others) if others else ns
        deps = [d for d in self.deployments_in(ns) if d.pods]
        if not deps:
            return None
        dep = self.rng.choice(deps)
        return dep.ns, self.rng.choice(dep.pods).name

    def _exec(self, actor: Actor, ns: str) -> Process:
        rng, target = self.rng, self._target(ns)
        if target is None:
            return
        ns, pod = target
        interactive = rng.random() < 0.6
        command = rng.choice(_SHELLS if interactive else _ONE_OFFS)
        stream = (30 + rng.randrange(1200)) * SECOND if interactive else (1 + rng.randrange(5)) * SECOND
        uri = exec_uri(ns, pod, list(command), interactive=interactive)
        ref = object_ref("pods", ns, pod, subresource="exec")
        verb = "get" if websocket(actor) else "create"
        self.engine.request(actor, verb, uri, ref, code=101, stream=stream, reason=namespace_reason(ns))
        yield 0

    def _copy(self, actor: Actor, ns: str) -> Process:
        """``kubectl cp <pod>:<file> .`` (``tar cf - <file>``), or the other way round (``tar xmf -``)."""
        rng, target = self.rng, self._target(ns)
        if target is None:
            return
        ns, pod = target
        out = rng.random() < 0.7
        command = ["tar", "cf", "-", rng.choice(_COPIED)] if out else ["tar", "xmf", "-", "-C", "/tmp"]
        uri = exec_uri(ns, pod, command, interactive=False)
        if not out:
            uri = uri.replace("&stderr=true&stdout=true", "&stderr=true&stdin=true&stdout=true")
        ref = object_ref("pods", ns, pod, subresource="exec")
        verb = "get" if websocket(actor) else "create"
        stream = (1 + rng.randrange(30)) * SECOND
        self.engine.request(actor, verb, uri, ref, code=101, stream=stream, reason=namespace_reason(ns))
        yield 0

    def _port_forward(self, actor: Actor, ns: str) -> Process:
        target = self._target(ns)
        if target is None:
            return
        ns, pod = target
        port = self.rng.choice((8080, 5432, 6379, 9090))
        ws = websocket(actor) and not actor.ua.startswith("kubectl/v1.30")  # WebSocket port-forward from 1.31
        uri = f"/api/v1/namespaces/{ns}/pods/{pod}/portforward" + (f"?ports={port}" if ws else "")
        ref = object_ref("pods", ns, pod, subresource="portforward")
        stream = (60 + self.rng.randrange(3600)) * SECOND
        self.engine.request(
            actor, "get" if ws else "create", uri, ref, code=101, stream=stream, reason=namespace_reason(ns)
        )
        yield 0


class OnCall:
    """The SREs: daytime checks, grants, debugging, and pages at any hour for whoever is on call."""

    def __init__(self, engine: Engine, cluster: Cluster, org: Org) -> None:
        self.engine, self.em, self.rng = engine, engine.em, engine.rng
        self.cluster, self.org = cluster, org
        self.writer = ObjectWriter(engine)

    def start(self) -> None:
        for sre in self.org.sres:
            self.engine.spawn(self.engine.exp_s(3600), self._shift(sre))
        self.engine.spawn(self.engine.exp_s(2.5 * 86400), self._pages())

    def _shift(self, sre: Human) -> Process:
        engine, rng = self.engine, self.rng
        while True:
            if not self.org.on_shift(sre, engine.now):
                yield engine.exp_s(1800)
                continue
            actor = self.org.identity(sre, engine.now)
            for _ in range(rng.randrange(2, 7)):
                yield from self._look(actor)
                yield int((3 + rng.expovariate(1 / 30)) * SECOND)
            roll = rng.random()
            if roll < 0.06:
                yield from self._grant(actor)
            elif roll < 0.12:
                yield from self._debug_pod(actor)
            elif roll < 0.135:
                yield from self._mint_token(actor)
            elif roll < 0.14:
                yield from self._debug_node(actor)
            yield engine.exp_s(5400)

    def _pages(self) -> Process:
        """An alert pages the on-call SRE, at whatever hour, working from home."""
        engine, rng = self.engine, self.rng
        while True:
            sre = self.org.on_call(engine.now)
            actor = self.org.identity(sre, engine.now)
            for _ in range(rng.randrange(4, 12)):
                yield from self._look(actor)
                yield int((5 + rng.expovariate(1 / 40)) * SECOND)
            if rng.random() < 0.5:
                yield from self._debug_pod(actor)
            yield engine.exp_s(2.5 * 86400)

    def _look(self, actor: Actor) -> Process:
        """A read an SRE makes: nodes, pods and events everywhere, node metrics, a pod's logs."""
        engine, rng = self.engine, self.rng
        choice = rng.randrange(5)
        if choice == 0:
            engine.request(actor, "list", "/api/v1/nodes?limit=500", object_ref("nodes"))
        elif choice == 1:
            engine.request(
                actor, "list", "/api/v1/pods?limit=500", object_ref("pods"), latency=20_000 + rng.randrange(60_000)
            )
        elif choice == 2:
            engine.request(actor, "list", "/api/v1/events?limit=500", object_ref("events"))
        elif choice == 3:
            uri = "/apis/metrics.k8s.io/v1beta1/nodes"
            engine.request(actor, "list", uri, object_ref("nodes", group="metrics.k8s.io", version="v1beta1"))
        else:
            dep = rng.choice([d for d in [*self.cluster.deployments, *self.org.platform] if d.pods])
            pod = rng.choice(dep.pods).name
            uri = f"/api/v1/namespaces/{dep.ns}/pods/{pod}/log?container=app&tailLines=500"
            ref = object_ref("pods", dep.ns, pod, subresource="log")
            engine.request(actor, "get", uri, ref, stream=50_000 + rng.randrange(500_000))
        yield 0

    def _grant(self, actor: Actor) -> Process:
        """``kubectl create rolebinding <dev>-debug --clusterrole=edit --user=<dev>``, removed hours later."""
        engine, rng = self.engine, self.rng
        if not self.cluster.humans or not self.cluster.profile.namespaces:
            return
        dev = rng.choice(self.cluster.humans).actor.username
        ns = rng.choice(self.cluster.profile.namespaces)
        name = f"{dev.split('@')[0]}-debug"
        obj = binding("RoleBinding", name, ns, "ClusterRole", rng.choice(("edit", "view")), [subject("User", dev)])
        self.writer.create(actor, obj, manager="kubectl-create")
        engine.spawn((2 + rng.randrange(5)) * 3600 * SECOND, self._revoke(actor, ns, name))
        yield 0

    def _revoke(self, actor: Actor, ns: str, name: str) -> Process:
        uri = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{name}"
        ref = object_ref("rolebindings", ns, name, "rbac.authorization.k8s.io")
        body = {"kind": "DeleteOptions", "apiVersion": "rbac.authorization.k8s.io/v1"}
        self.engine.request(actor, "delete", uri, ref, level="RequestResponse", req_obj=body)
        yield 0

    def _debug_pod(self, actor: Actor) -> Process:
        """``kubectl debug -it <pod> --image=... --target=app``: an ephemeral container, then attach."""
        engine, rng = self.engine, self.rng
        deps = [d for d in self.cluster.deployments if d.pods]
        if not deps:
            return
        dep = rng.choice(deps)
        pod = rng.choice(dep.pods).name
        base = f"/api/v1/namespaces/{dep.ns}/pods/{pod}"
        engine.request(actor, "get", base, object_ref("pods", dep.ns, pod))
        yield 100_000 + rng.randrange(300_000)
        name = f"debugger-{self.em.token(5)}"
        body = ephemeral_container_patch(name, rng.choice(DEBUG_IMAGES), "app")
        ref = object_ref("pods", dep.ns, pod, subresource="ephemeralcontainers")
        engine.request(actor, "patch", f"{base}/ephemeralcontainers", ref, level="Request", req_obj=body)
        yield 2 * SECOND + rng.randrange(5 * SECOND)
        uri = f"{base}/attach?container={name}&stdin=true&stdout=true&tty=true"
        verb = "get" if websocket(actor) else "create"
        stream = (60 + rng.randrange(900)) * SECOND
        engine.request(actor, verb, uri, object_ref("pods", dep.ns, pod, subresource="attach"), code=101, stream=stream)

    def _debug_node(self, actor: Actor) -> Process:
        """``kubectl debug node/<node> -it --image=busybox``: a pod in the host's namespaces, deleted after."""
        engine, rng = self.engine, self.rng
        node = rng.choice(self.cluster.nodes).name
        name = f"node-debugger-{node}-{self.em.token(5)}"
        self.writer.create(actor, node_debug_pod(name, node, DEBUG_IMAGES[0]), manager="kubectl-debug")
        yield 3 * SECOND + rng.randrange(5 * SECOND)
        uri = f"/api/v1/namespaces/default/pods/{name}/attach?container=debugger&stdin=true&stdout=true&tty=true"
        verb = "get" if websocket(actor) else "create"
        stream = (120 + rng.randrange(900)) * SECOND
        engine.request(
            actor, verb, uri, object_ref("pods", "default", name, subresource="attach"), code=101, stream=stream
        )
        yield stream + rng.randrange(60 * SECOND)
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        engine.request(
            actor,
            "delete",
            f"/api/v1/namespaces/default/pods/{name}",
            object_ref("pods", "default", name),
            level="Request",
            req_obj=body,
        )

    def _mint_token(self, actor: Actor) -> Process:
        """``kubectl create token grafana -n monitoring --duration=24h``, for a dashboard's data source."""
        uri = "/api/v1/namespaces/monitoring/serviceaccounts/grafana/token"
        ref = object_ref("serviceaccounts", "monitoring", "grafana", subresource="token")
        annotations = {"authentication.kubernetes.io/issued-credential-id": f"JTI={self.em.uuid()}"}
        self.engine.request(
            actor, "create", uri, ref, code=201, level="Request", req_obj=token_request(86400), annotations=annotations
        )
        yield 0
