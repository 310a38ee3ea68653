"""Benign traffic of people: kubectl sessions of developers during working hours.

Humans (``alice@example.com``, ``bob@example.com``, ... with groups ``devs``/``oncall``,
``system:authenticated``) work in sessions of ``kubectl get``, ``describe``, ``logs`` (long-running
``pods/log``), server-side ``apply`` (a patch whose body is the whole manifest), ``create`` of a
Deployment and ``rollout restart``; sometimes a 401 first (expired OIDC token, then a retry), a 403
(``list nodes``, ``create namespaces``, pods in ``kube-system``, ...) or a 404.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from simulation.clock import SECOND
from simulation.cluster import Cluster, Deployment, Human
from simulation.emitter import Actor, forbidden_status, not_found_status, object_ref, rbac_reason
from simulation.engine import Engine, Process
from simulation.manifests import deployment_manifest
from simulation.workloads import Workloads

_DISCOVERY_REASON = rbac_reason(
    "ClusterRoleBinding",
    "system:discovery",
    "ClusterRole",
    "system:discovery",
    "Group",
    "system:authenticated",
)
_LISTED_RESOURCES = (  # (resource, group, version) of `kubectl get <resource>`, duplicates weigh more
    ("deployments", "apps", "v1"),
    ("deployments", "apps", "v1"),
    ("services", "", "v1"),
    ("configmaps", "", "v1"),
    ("events", "", "v1"),
    ("replicasets", "apps", "v1"),
    ("horizontalpodautoscalers", "autoscaling", "v2"),
    ("ingresses", "networking.k8s.io", "v1"),
)


Command = Callable[[Actor, str], Process]  # a kubectl command by an actor in a namespace


def namespace_reason(ns: str) -> str:
    return rbac_reason("RoleBinding", f"devs-edit/{ns}", "ClusterRole", "edit", "Group", "devs")


class HumanUsers:
    def __init__(self, engine: Engine, cluster: Cluster, workloads: Workloads) -> None:
        self.engine = engine
        self.em = engine.em
        self.rng = engine.rng
        self.cluster = cluster
        self.workloads = workloads

    def start(self) -> None:
        for human in self.cluster.humans:
            if human.team:
                self.engine.spawn(self.engine.exp_s(240), self._sessions(human))

    def commands(self) -> list[tuple[Command, float]]:
        """What people type, with weights (a subclass may add to it)."""
        return [
            (self._get_pods, 24),
            (self._describe, 12),
            (self._get_other, 16),
            (self._logs, 12),
            (self._apply, 6),
            (self._rollout_restart, 2),
            (self._create, 1),
            (self._forbidden, 3),
            (self._not_found, 3),
        ]

    def identity(self, human: Human) -> Actor:
        """Who ``human`` is today: their identity, address and kubectl (always the same here)."""
        return human.actor

    def working(self, human: Human) -> bool:
        lo, hi = self.cluster.profile.working_hours
        return lo <= (self.engine.now // SECOND // 3600) % 24 < hi

    def _sessions(self, human: Human) -> Process:
        engine, rng, team = self.engine, self.rng, human.team
        commands = self.commands()
        funcs, weights = [c for c, _ in commands], [w for _, w in commands]
        while True:
            if not self.working(human):
                yield engine.exp_s(1800)
                continue
            actor = self.identity(human)
            ns = rng.choice(team)
            if rng.random() < 0.15:  # cached OIDC id-token expired: one 401, the plugin refreshes, retry
                uri, ref = f"/api/v1/namespaces/{ns}/pods?limit=500", object_ref("pods", ns)
                self.em.unauthenticated(engine.now, actor.ip, actor.ua, "list", uri, ref)
                yield 800_000 + rng.randrange(1500_000)
            if rng.random() < 0.25:  # cold discovery cache
                for path in ("/api", "/apis"):
                    engine.request(actor, "get", f"{path}?timeout=32s", None, reason=_DISCOVERY_REASON)
                    yield 20_000 + rng.randrange(40_000)
            for _ in range(rng.randrange(3, 10)):
                if rng.random() < 0.3:
                    ns = rng.choice(team)
                yield from rng.choices(funcs, weights)[0](actor, ns)
                yield int((2 + rng.expovariate(1 / 20)) * SECOND)
            yield engine.exp_s(900)

    def deployments_in(self, ns: str) -> list[Deployment]:
        return [d for d in self.cluster.deployments if d.ns == ns] or self.cluster.deployments

    def _get_pods(self, actor: Actor, ns: str) -> Process:
        self.engine.request(
            actor,
            "list",
            f"/api/v1/namespaces/{ns}/pods?limit=500",
            object_ref("pods", ns),
            reason=namespace_reason(ns),
            latency=3000 + self.rng.randrange(15_000),
        )
        yield 0

    def _get_other(self, actor: Actor, ns: str) -> Process:
        res, group, ver = self.rng.choice(_LISTED_RESOURCES)
        prefix = f"/apis/{group}/{ver}" if group else "/api/v1"
        uri, ref = f"{prefix}/namespaces/{ns}/{res}?limit=500", object_ref(res, ns, group=group, version=ver)
        self.engine.request(actor, "list", uri, ref, reason=namespace_reason(ns))
        yield 0

    def _describe(self, actor: Actor, ns: str) -> Process:
        dep = self.rng.choice(self.deployments_in(ns))
        if not dep.pods:
            return
        pod = self.rng.choice(dep.pods)
        reason = namespace_reason(dep.ns)
        uri, ref = f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}", object_ref("pods", dep.ns, pod.name)
        self.engine.request(actor, "get", uri, ref, reason=reason)
        yield 8000 + self.rng.randrange(20_000)
        sel = f"involvedObject.name%3D{pod.name}%2CinvolvedObject.namespace%3D{dep.ns}%2CinvolvedObject.uid%3D{pod.uid}"
        uri = f"/api/v1/namespaces/{dep.ns}/events?fieldSelector={sel}&limit=500"
        self.engine.request(actor, "list", uri, object_ref("events", dep.ns), reason=reason)

    def _logs(self, actor: Actor, ns: str) -> Process:
        dep = self.rng.choice(self.deployments_in(ns))
        if not dep.pods:
            return
        pod = self.rng.choice(dep.pods)
        reason = namespace_reason(dep.ns)
        uri, ref = f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}", object_ref("pods", dep.ns, pod.name)
        self.engine.request(actor, "get", uri, ref, reason=reason)
        yield 10_000 + self.rng.randrange(30_000)
        if self.rng.random() < 0.3:
            query, stream = "container=app&follow=true", (5 + self.rng.randrange(120)) * SECOND
        else:
            query, stream = "container=app&tailLines=200", 30_000 + self.rng.randrange(300_000)
        self.engine.request(
            actor,
            "get",
            f"{uri}/log?{query}",
            object_ref("pods", dep.ns, pod.name, subresource="log"),
            reason=reason,
            stream=stream,
        )

    def _apply(self, actor: Actor, ns: str) -> Process:
        """Server-side apply: the patch body is the whole (YAML) manifest, transcoded to JSON."""
        dep = self.rng.choice(self.deployments_in(ns))
        rollout = not dep.rolling and self.rng.random() < 0.5
        if rollout:
            self.workloads.bump_version(dep)
        uri = (
            f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}"
            "?fieldManager=kubectl&fieldValidation=Strict&force=false"
        )
        self.engine.request(
            actor,
            "patch",
            uri,
            object_ref("deployments", dep.ns, dep.name, "apps"),
            level="Request",
            req_obj=deployment_manifest(dep),
            reason=namespace_reason(dep.ns),
            latency=8000 + self.rng.randrange(20_000),
        )
        if rollout:
            self.engine.spawn(1000, self.workloads.rollout(dep))
        yield 0

    def _rollout_restart(self, actor: Actor, ns: str) -> Process:
        dep = self.rng.choice(self.deployments_in(ns))
        if dep.rolling:
            return
        dep.restarted_at = self.em.clock.sec(self.engine.now)
        body = {
            "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": dep.restarted_at}}}}
        }
        self.engine.request(
            actor,
            "patch",
            f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}?fieldManager=kubectl-rollout",
            object_ref("deployments", dep.ns, dep.name, "apps"),
            level="Request",
            req_obj=body,
            reason=namespace_reason(dep.ns),
        )
        self.engine.spawn(1000, self.workloads.rollout(dep))
        yield 0

    def _create(self, actor: Actor, ns: str) -> Process:
        """``kubectl apply -f`` of a new Deployment (client-side apply -> create)."""
        dep = self.workloads.new_deployment(ns)
        if dep is None:
            return
        manifest = deployment_manifest(dep)
        manifest["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": orjson.dumps(manifest).decode() + "\n"
        }
        uri = f"/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
        self.engine.request(
            actor,
            "create",
            uri,
            object_ref("deployments", ns, group="apps"),
            code=201,
            level="Request",
            req_obj=manifest,
            reason=namespace_reason(ns),
            obj_meta=(dep.name, None, None),
        )
        self.cluster.deployments.append(dep)
        self.engine.spawn(3000, self.workloads.scale_up_new(dep))
        yield 0

    def _forbidden(self, actor: Actor, ns: str) -> Process:
        u = actor.username
        choice = self.rng.randrange(4)
        if choice == 0:
            uri, verb, ref = "/api/v1/nodes?limit=500", "list", object_ref("nodes")
            st = forbidden_status(
                f'nodes is forbidden: User "{u}" cannot list resource "nodes" in API group "" at the cluster scope',
                {"kind": "nodes"},
            )
        elif choice == 1:
            uri, verb, ref = "/api/v1/namespaces/kube-system/pods?limit=500", "list", object_ref("pods", "kube-system")
            st = forbidden_status(
                f'pods is forbidden: User "{u}" cannot list resource "pods" in API group "" in the '
                'namespace "kube-system"',
                {"kind": "pods"},
            )
        elif choice == 2:
            uri = "/api/v1/namespaces?fieldManager=kubectl-create&fieldValidation=Strict"
            verb, ref = "create", object_ref("namespaces")
            st = forbidden_status(
                f'namespaces is forbidden: User "{u}" cannot create resource "namespaces" in API group "" '
                "at the cluster scope",
                {"kind": "namespaces"},
            )
        else:
            others = [n for n in self.cluster.profile.namespaces if n != ns] or [ns]
            other = self.rng.choice(others)
            dep = self.rng.choice(self.deployments_in(other))
            uri, verb = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}", "delete"
            ref = object_ref("deployments", dep.ns, dep.name, "apps")
            st = forbidden_status(
                f'deployments.apps "{dep.name}" is forbidden: User "{u}" cannot delete resource '
                f'"deployments" in API group "apps" in the namespace "{dep.ns}"',
                {"name": dep.name, "group": "apps", "kind": "deployments"},
            )
        self.engine.request(actor, verb, uri, ref, code=403, status=st, decision="forbid", reason="")
        yield 0

    def _not_found(self, actor: Actor, ns: str) -> Process:
        dep = self.rng.choice(self.deployments_in(ns))
        if self.rng.random() < 0.5:
            name = dep.name[:-1] if len(dep.name) > 3 else dep.name + "s"  # a typo
            uri = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{name}"
            ref = object_ref("deployments", dep.ns, name, "apps")
            st = not_found_status(
                f'deployments.apps "{name}" not found', {"name": name, "group": "apps", "kind": "deployments"}
            )
        else:
            name = f"{dep.name}-{self.em.token(10)}-{self.em.token(5)}"  # a pod that is already gone
            uri, ref = f"/api/v1/namespaces/{dep.ns}/pods/{name}", object_ref("pods", dep.ns, name)
            st = not_found_status(f'pods "{name}" not found', {"name": name, "kind": "pods"})
        self.engine.request(actor, "get", uri, ref, code=404, status=st, reason=namespace_reason(dep.ns))
        yield 0
