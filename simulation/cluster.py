"""The simulated cluster: its profile (the knobs), nodes, identities and application workloads.

A kubeadm-style cluster (Kubernetes v1.31): kubelets and kube-proxy on every node, the controller manager
with per-controller service accounts (``--use-service-account-credentials``), the scheduler, coredns,
prometheus, anonymous health checkers, human kubectl users, CI service accounts, and 2-3 Deployments
per application namespace. Building it draws ids from the emitter's seeded random generator, so the
order of the builders below is part of the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from simulation.clock import SECOND
from simulation.emitter import Actor, Emitter, rbac_reason
from simulation.site import CLEAN_SITE, Site, noisy_site

K8S_VERSION: Final = "v1.31.4"
K8S_COMMIT: Final = "a78aa47"
CONTROL_PLANE_IP: Final = "10.0.0.10"
KCM_USER_AGENT: Final = f"kube-controller-manager/{K8S_VERSION} (linux/amd64) kubernetes/{K8S_COMMIT}"
APP_NAMES: Final = (
    "frontend",
    "api",
    "worker",
    "gateway",
    "auth",
    "catalog",
    "cart",
    "ledger",
    "notifier",
    "reports",
    "search",
    "cache",
)
_HUMAN_NAMES: Final = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
_CI_NAMES: Final = ("deployer", "release", "promoter", "nightly")
_KUBECTL_USER_AGENTS: Final = (
    "kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46",
    "kubectl/v1.30.5 (linux/amd64) kubernetes/74e84a9",
    "kubectl/v1.31.2 (windows/amd64) kubernetes/5864a46",
)
_HPA_APPS: Final = ("frontend", "api", "gateway", "search")
REALISMS: Final = ("clean", "noisy")


@dataclass(frozen=True)
class ClusterProfile:
    """Knobs of the simulated cluster. Everything else is derived from ``seed``."""

    nodes: int = 20
    #: application namespaces (each gets 2-3 Deployments, Services and EndpointSlices)
    namespaces: tuple[str, ...] = ("web", "payments", "checkout", "search")
    #: number of human kubectl users (alice, bob, carol, ...)
    humans: int = 3
    #: number of CI service accounts in namespace ``ci`` (deployer, release, ...)
    ci_accounts: int = 1
    start: datetime = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
    seed: int = 1
    #: UTC hours [start, end) during which humans are active
    working_hours: tuple[int, int] = (8, 18)
    #: "clean": nothing a rule should flag (the demo, the historical benchmark); "noisy": the benign traffic
    #: of a real cluster on top (GitOps, operators, on-call people, exec habits: :mod:`simulation.noisy`)
    realism: str = "clean"
    #: share of requests whose events are written without ``annotations`` (as some exporters and SIEM
    #: normalisers do), chosen by auditID; 0 writes every event as the apiserver does
    unannotated_share: float = 0.0

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.humans < 0 or self.ci_accounts < 0:
            raise ValueError("need nodes >= 1, humans >= 0 and ci_accounts >= 0")
        if not 0 <= self.working_hours[0] <= self.working_hours[1] <= 24:
            raise ValueError(f"bad working_hours {self.working_hours}")
        if self.realism not in REALISMS:
            raise ValueError(f"realism {self.realism!r} is not one of {', '.join(REALISMS)}")
        if not 0.0 <= self.unannotated_share <= 1.0:
            raise ValueError(f"unannotated_share {self.unannotated_share} is not in [0, 1]")

    @property
    def site(self) -> Site:
        """The organisation running the cluster (placeholder names in a clean world, seeded in a noisy one)."""
        return CLEAN_SITE if self.realism == "clean" else noisy_site(self.seed)


# The mutable state of the running simulation (pods come and go, rollouts move ReplicaSets).


@dataclass(slots=True)
class Node:
    name: str
    ip: str
    uid: str
    lease_uid: str
    pod_cidr: int  # third octet of 10.244.X.0/24
    kubelet: Actor
    kube_proxy: Actor
    lease_created: str
    next_pod_ip: int = 2
    alive: bool = True  # False once removed (scale-down): its kubelet's processes stop


@dataclass(slots=True)
class Pod:
    name: str
    uid: str
    node: Node
    ip: str
    container_id: str = ""


@dataclass(slots=True)
class Deployment:
    ns: str
    name: str
    uid: str
    version: str
    replicas: int
    port: int
    rs_hash: str
    rs_uid: str
    svc_uid: str
    slice_name: str
    slice_uid: str
    revision: int
    generation: int
    pods: list[Pod] = field(default_factory=list)
    rolling: bool = False
    restarted_at: str = ""
    registry: str = CLEAN_SITE.registry
    repository: str = ""  # a third-party image repository (e.g. docker.io/library/redis) instead of our own
    tag_prefix: str = ""  # e.g. "v" for tags like v1.16.2

    @property
    def image_repository(self) -> str:
        return self.repository or f"{self.registry}/{self.ns}/{self.name}"

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.tag_prefix}{self.version}"

    @property
    def rs_name(self) -> str:
        return f"{self.name}-{self.rs_hash}"


@dataclass(frozen=True)
class ControlPlane:
    """Identities of the control plane and the cluster's add-ons."""

    kcm_leader_election: Actor
    kcm_informers: Actor
    scheduler_leader_election: Actor
    scheduler: Actor
    deployment_controller: Actor
    replicaset_controller: Actor
    endpointslice_controller: Actor
    hpa_controller: Actor
    coredns: tuple[Actor, ...]
    prometheus: Actor
    kube_probe: Actor
    lb_health_check: Actor


@dataclass(frozen=True)
class Human:
    actor: Actor  # its reason is empty: RBAC reasons are per namespace, filled per request
    team: tuple[str, ...]  # the namespaces this person works in


@dataclass
class Cluster:
    profile: ClusterProfile
    nodes: list[Node]
    control_plane: ControlPlane
    humans: list[Human]
    ci: list[Actor]
    deployments: list[Deployment]
    hpa_targets: list[Deployment]
    kube_proxy_uid: str = ""  # kube-proxy's service account, shared by the nodes added later
    nodes_built: int = 0  # nodes ever built, removed ones included (names and addresses are never reused)

    def new_pod(self, dep: Deployment, em: Emitter) -> Pod:
        """A pod of ``dep``'s current ReplicaSet, on a random node."""
        node = em.rng.choice(self.nodes)
        node.next_pod_ip = node.next_pod_ip % 250 + 1
        return Pod(
            f"{dep.rs_name}-{em.token(5)}",
            em.uuid(),
            node,
            f"10.244.{node.pod_cidr + 1}.{node.next_pod_ip}",
            em.hex(32),
        )


def service_account(em: Emitter, ns: str, name: str, ip: str, ua: str, reason: str, bound_pod: bool = False) -> Actor:
    """A service account's identity; ``bound_pod`` adds the pod-bound token claims of a pod on node-01."""
    extra: list[tuple[str, str]] = [("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}")]
    if bound_pod:
        extra[:0] = [("authentication.kubernetes.io/node-name", "node-01")]
        extra.append(("authentication.kubernetes.io/pod-name", f"{name}-{em.token(10)}-{em.token(5)}"))
        extra.append(("authentication.kubernetes.io/pod-uid", em.uuid()))
    return Actor(
        f"system:serviceaccount:{ns}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
        ip,
        ua,
        reason,
        uid=em.uuid(),
        extra=tuple(extra),
    )


def controller_account(em: Emitter, name: str) -> Actor:
    """The service account of one of kube-controller-manager's controllers (``deployment-controller``, ...)."""
    sa = f"system:serviceaccount:kube-system:{name}"
    reason = rbac_reason(
        "ClusterRoleBinding",
        f"system:controller:{name}",
        "ClusterRole",
        f"system:controller:{name}",
        "ServiceAccount",
        f"{name}/kube-system",
    )
    return service_account(em, "kube-system", name, CONTROL_PLANE_IP, f"{KCM_USER_AGENT}/{sa}", reason)


def build_cluster(profile: ClusterProfile, em: Emitter, start_us: int) -> Cluster:
    created = em.clock.sec(start_us - 18 * 86400 * SECOND)
    proxy_sa_uid = em.uuid()
    nodes = [_new_node(i, em, proxy_sa_uid, created) for i in range(profile.nodes)]
    control_plane = _build_control_plane(em)
    humans = _build_humans(profile, em)
    ci = _build_ci(profile, em)
    cluster = Cluster(profile, nodes, control_plane, humans, ci, [], [], proxy_sa_uid, profile.nodes)
    _add_deployments(cluster, em)
    cluster.hpa_targets.extend([d for d in cluster.deployments if d.name in _HPA_APPS][:3])
    return cluster


def add_node(cluster: Cluster, em: Emitter, created: str) -> Node:
    """A node that joins now (e.g. a scale-up): the next name and address, never one used before."""
    node = _new_node(cluster.nodes_built, em, cluster.kube_proxy_uid, created)
    cluster.nodes_built += 1
    cluster.nodes.append(node)
    return node


_PROXY_REASON: Final = rbac_reason(
    "ClusterRoleBinding",
    "kubeadm:node-proxier",
    "ClusterRole",
    "system:node-proxier",
    "ServiceAccount",
    "kube-proxy/kube-system",
)


def _new_node(i: int, em: Emitter, proxy_sa_uid: str, created: str) -> Node:
    name = f"node-{i + 1:02d}"
    ip = f"10.0.1.{11 + i}" if i < 240 else f"10.0.{2 + i // 240}.{11 + i % 240}"
    kubelet_ua = f"kubelet/{K8S_VERSION} (linux/amd64) kubernetes/{K8S_COMMIT}"
    kubelet = Actor(f"system:node:{name}", ("system:nodes", "system:authenticated"), ip, kubelet_ua, "")
    proxy = Actor(
        "system:serviceaccount:kube-system:kube-proxy",
        ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
        ip,
        f"kube-proxy/{K8S_VERSION} (linux/amd64) kubernetes/{K8S_COMMIT}",
        _PROXY_REASON,
        uid=proxy_sa_uid,
        extra=(
            ("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}"),
            ("authentication.kubernetes.io/node-name", name),
            ("authentication.kubernetes.io/pod-name", f"kube-proxy-{em.token(5)}"),
            ("authentication.kubernetes.io/pod-uid", em.uuid()),
        ),
    )
    return Node(name, ip, em.uuid(), em.uuid(), i, kubelet, proxy, created)


def _build_control_plane(em: Emitter) -> ControlPlane:
    cp = CONTROL_PLANE_IP
    kcm_reason = rbac_reason(
        "ClusterRoleBinding",
        "system:kube-controller-manager",
        "ClusterRole",
        "system:kube-controller-manager",
        "User",
        "system:kube-controller-manager",
    )
    kcm_groups = ("system:authenticated",)
    sched_reason = rbac_reason(
        "ClusterRoleBinding",
        "system:kube-scheduler",
        "ClusterRole",
        "system:kube-scheduler",
        "User",
        "system:kube-scheduler",
    )
    sched_ua = f"kube-scheduler/{K8S_VERSION} (linux/amd64) kubernetes/{K8S_COMMIT}"

    def addon(ns: str, name: str, ip: str, ua: str, binding: str) -> Actor:
        reason = rbac_reason("ClusterRoleBinding", binding, "ClusterRole", binding, "ServiceAccount", f"{name}/{ns}")
        return service_account(em, ns, name, ip, ua, reason, bound_pod=True)

    public = rbac_reason(
        "ClusterRoleBinding",
        "system:public-info-viewer",
        "ClusterRole",
        "system:public-info-viewer",
        "Group",
        "system:unauthenticated",
    )
    anon_groups = ("system:unauthenticated",)
    # keyword arguments are evaluated in order: the ids below are drawn in this order
    return ControlPlane(
        kcm_leader_election=Actor(
            "system:kube-controller-manager", kcm_groups, cp, KCM_USER_AGENT + "/leader-election", kcm_reason
        ),
        kcm_informers=Actor(
            "system:kube-controller-manager", kcm_groups, cp, KCM_USER_AGENT + "/shared-informers", kcm_reason
        ),
        scheduler_leader_election=Actor(
            "system:kube-scheduler", ("system:authenticated",), cp, sched_ua + "/leader-election", sched_reason
        ),
        scheduler=Actor("system:kube-scheduler", ("system:authenticated",), cp, sched_ua + "/scheduler", sched_reason),
        deployment_controller=controller_account(em, "deployment-controller"),
        replicaset_controller=controller_account(em, "replicaset-controller"),
        endpointslice_controller=controller_account(em, "endpointslice-controller"),
        hpa_controller=controller_account(em, "horizontal-pod-autoscaler"),
        coredns=tuple(
            addon(
                "kube-system",
                "coredns",
                f"10.244.0.{3 + i}",
                "coredns/v0.0.0 (linux/amd64) kubernetes/$Format",
                "system:coredns",
            )
            for i in range(2)
        ),
        prometheus=addon("monitoring", "prometheus", "10.244.0.9", "Prometheus/2.54.1", "prometheus"),
        kube_probe=Actor("system:anonymous", anon_groups, cp, "kube-probe/1.31", public),
        lb_health_check=Actor("system:anonymous", anon_groups, "10.0.0.4", "Go-http-client/1.1", public),
    )


def _build_humans(profile: ClusterProfile, em: Emitter) -> list[Human]:
    humans = []
    for i in range(profile.humans):
        base = _HUMAN_NAMES[i] if i < len(_HUMAN_NAMES) else f"user{i + 1}"
        groups = ("devs", "oncall", "system:authenticated") if i == 1 else ("devs", "system:authenticated")
        ip = f"10.20.{1 + i // 200}.{15 + i % 200}"
        ua = _KUBECTL_USER_AGENTS[i % len(_KUBECTL_USER_AGENTS)]
        actor = Actor(f"{base}@{profile.site.domain}", groups, ip, ua, "")
        k = min(len(profile.namespaces), 2)
        team = tuple(sorted(em.rng.sample(profile.namespaces, k))) if profile.namespaces else ()
        humans.append(Human(actor, team))
    return humans


def _build_ci(profile: ClusterProfile, em: Emitter) -> list[Actor]:
    ci = []
    for i in range(profile.ci_accounts):
        name = _CI_NAMES[i] if i < len(_CI_NAMES) else f"deployer-{i + 1}"
        reason = rbac_reason(
            "ClusterRoleBinding", f"ci-{name}", "ClusterRole", "ci-deployer", "ServiceAccount", f"{name}/ci"
        )
        ci.append(
            service_account(
                em, "ci", name, f"10.30.0.{21 + i}", "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46", reason
            )
        )
    return ci


def _add_deployments(cluster: Cluster, em: Emitter) -> None:
    rng = em.rng
    registry = cluster.profile.site.registry
    for ns in cluster.profile.namespaces:
        for name in rng.sample(APP_NAMES, rng.choice((2, 2, 3))):
            dep = Deployment(
                ns,
                name,
                em.uuid(),
                f"1.{rng.randrange(2, 14)}.{rng.randrange(10)}",
                rng.choice((2, 2, 3)),
                rng.choice((8080, 8080, 3000, 9000)),
                em.token(10),
                em.uuid(),
                em.uuid(),
                f"{name}-{em.token(5)}",
                em.uuid(),
                rng.randrange(3, 40),
                rng.randrange(3, 40),
                registry=registry,
            )
            for _ in range(dep.replicas):
                dep.pods.append(cluster.new_pod(dep, em))
            cluster.deployments.append(dep)
