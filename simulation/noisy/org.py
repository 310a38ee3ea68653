"""The noisy world's cast: platform controllers, third-party workloads, on-call people, and people's habits.

Everything is built once from the cluster's emitter (ids) and from random generators of its own per
person (habits), so a person's day does not depend on what else happened in the simulation.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Final

from simulation.clock import SECOND
from simulation.cluster import Cluster, Deployment, Human, Pod, controller_account, service_account
from simulation.emitter import Actor, Emitter, rbac_reason
from simulation.noisy.catalog import API_CLIENT_AGENTS, RELEASES, Workload
from simulation.site import Site

DAY_US: Final = 86400 * SECOND
_SRE_NAMES: Final = ("olivia", "peggy", "trent", "victor")
_KUBECTL_UPGRADES: Final = {  # what a person's kubectl becomes after an upgrade
    "kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46": "kubectl/v1.32.0 (darwin/arm64) kubernetes/70d3cc9",
    "kubectl/v1.30.5 (linux/amd64) kubernetes/74e84a9": "kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47",
    "kubectl/v1.31.2 (windows/amd64) kubernetes/5864a46": "kubectl/v1.31.4 (windows/amd64) kubernetes/a78aa47",
    "kubectl/v1.29.10 (darwin/amd64) kubernetes/f0c1d8e": "kubectl/v1.31.4 (darwin/amd64) kubernetes/a78aa47",
}
_SRE_KUBECTL: Final = (
    "kubectl/v1.29.10 (darwin/amd64) kubernetes/f0c1d8e",
    "kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46",
)
CLIENT_GO: Final = "{}/v0.0.0 (linux/amd64) kubernetes/$Format"  # client-go's default User-Agent of a binary


class Habits:
    """One person's working pattern: shift (UTC hours), days worked, address of the day, kubectl version.

    Days are drawn one after another from the person's own generator: on most weekdays they work, at
    their desk or over the VPN (whose address changes now and then), seldom at weekends; at some point
    they may upgrade kubectl.
    """

    def __init__(self, seed: str, desk_ip: str, ua: str, shift: tuple[int, int], start_us: int) -> None:
        self.rng = random.Random(seed)
        self.desk_ip, self.ua, self.shift, self.start_us = desk_ip, ua, shift, start_us
        self.upgraded_ua = _KUBECTL_UPGRADES.get(ua, ua)
        self.upgrade_day = self.rng.randrange(3, 40)
        self._vpn = self._vpn_address()
        self._days: list[tuple[bool, str]] = []

    def _vpn_address(self) -> str:
        return f"10.8.{self.rng.randrange(4)}.{self.rng.randrange(2, 255)}"

    def day(self, now_us: int) -> tuple[bool, str, str]:
        """(works that day, address, User-Agent) for the day of ``now_us``."""
        d = max(0, (now_us - self.start_us) // DAY_US)
        while len(self._days) <= d:
            weekday = ((self.start_us // DAY_US) + len(self._days) + 3) % 7  # 1970-01-01 was a Thursday
            rng = self.rng
            works = rng.random() > 0.08 if weekday < 5 else rng.random() < 0.05
            if rng.random() < 0.12:
                self._vpn = self._vpn_address()
            self._days.append((works, self.desk_ip if rng.random() < 0.7 else self._vpn))
        works, ip = self._days[d]
        return works, ip, self.upgraded_ua if d >= self.upgrade_day else self.ua

    def on_shift(self, now_us: int) -> bool:
        lo, hi = self.shift
        return self.day(now_us)[0] and lo <= (now_us // SECOND // 3600) % 24 < hi


@dataclass
class ApiClient:
    """An application whose pods call the API with their service account (configmaps, its own Secret)."""

    dep: Deployment
    ua: str
    sa_uid: str
    by_pod: dict[str, Actor] = field(default_factory=dict)

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.dep.ns}:{self.dep.name}"

    def actor(self, pod: Pod, em: Emitter) -> Actor:
        """The identity of ``pod``'s bound token (issued once per pod), from the pod's address."""
        found = self.by_pod.get(pod.uid)
        if found is None:
            ns, name = self.dep.ns, self.dep.name
            found = Actor(
                self.username,
                ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
                pod.ip,
                self.ua,
                rbac_reason("RoleBinding", f"{name}/{ns}", "Role", name, "ServiceAccount", f"{name}/{ns}"),
                uid=self.sa_uid,
                extra=(
                    ("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}"),
                    ("authentication.kubernetes.io/node-name", pod.node.name),
                    ("authentication.kubernetes.io/pod-name", pod.name),
                    ("authentication.kubernetes.io/pod-uid", pod.uid),
                ),
            )
            self.by_pod[pod.uid] = found
        return found


@dataclass
class Org:
    site: Site
    argocd: Actor
    kustomize: Actor
    helm_controller: Actor
    cert_manager: Actor
    cainjector: Actor
    external_secrets: Actor
    kyverno: Actor
    autoscaler: Actor
    tigera: Actor
    longhorn: Actor
    daemonset_controller: Actor
    cronjob_controller: Actor
    job_controller: Actor
    csr_approver: Actor
    sres: list[Human]
    platform: list[Deployment]
    api_clients: list[ApiClient]
    habits: dict[str, Habits]
    helm_ci: Actor | None

    def identity(self, human: Human, now_us: int) -> Actor:
        """``human`` as they connect today: the day's address and kubectl."""
        _, ip, ua = self.habits[human.actor.username].day(now_us)
        return dataclasses.replace(human.actor, ip=ip, ua=ua)

    def on_shift(self, human: Human, now_us: int) -> bool:
        return self.habits[human.actor.username].on_shift(now_us)

    def on_call(self, now_us: int) -> Human:
        """The SRE on call this week."""
        return self.sres[(now_us // (7 * DAY_US)) % len(self.sres)]


def _addon(em: Emitter, ns: str, name: str, ua: str, ip: str, role: str | None = None) -> Actor:
    reason = rbac_reason(
        "ClusterRoleBinding", role or name, "ClusterRole", role or name, "ServiceAccount", f"{name}/{ns}"
    )
    return dataclasses.replace(service_account(em, ns, name, ip, ua, reason, bound_pod=True), ip=ip)


def build_org(cluster: Cluster, em: Emitter, start_us: int) -> Org:
    """The noisy world's extra identities and workloads (ids drawn from ``em``, in this order)."""
    site = cluster.profile.site
    cm_ua = "{}/v1.16.2 (linux/amd64) cert-manager/2a0ef53b06e183356d922cd58af2510d8885bef5"
    org = Org(
        site=site,
        argocd=_addon(
            em,
            "argocd",
            "argocd-application-controller",
            "argocd-application-controller/v2.13.1+af54ef8 (linux/amd64)",
            "10.244.1.240",
        ),
        kustomize=_addon(
            em,
            "flux-system",
            "kustomize-controller",
            CLIENT_GO.format("kustomize-controller"),
            "10.244.1.241",
            "cluster-reconciler-flux-system",
        ),
        helm_controller=_addon(
            em,
            "flux-system",
            "helm-controller",
            CLIENT_GO.format("helm-controller"),
            "10.244.1.242",
            "cluster-reconciler-flux-system",
        ),
        cert_manager=_addon(
            em,
            "cert-manager",
            "cert-manager",
            cm_ua.format("cert-manager-certificates-issuing"),
            "10.244.1.243",
            "cert-manager-controller-certificates",
        ),
        cainjector=_addon(em, "cert-manager", "cert-manager-cainjector", cm_ua.format("cainjector"), "10.244.1.244"),
        external_secrets=_addon(
            em,
            "external-secrets",
            "external-secrets",
            CLIENT_GO.format("external-secrets"),
            "10.244.1.245",
            "external-secrets-controller",
        ),
        kyverno=_addon(
            em,
            "kyverno",
            "kyverno-admission-controller",
            CLIENT_GO.format("kyverno"),
            "10.244.1.246",
            "kyverno:admission-controller",
        ),
        autoscaler=_addon(
            em, "kube-system", "cluster-autoscaler", CLIENT_GO.format("cluster-autoscaler"), "10.244.1.247"
        ),
        tigera=_addon(em, "tigera-operator", "tigera-operator", CLIENT_GO.format("operator"), "10.0.1.11"),
        longhorn=_addon(
            em,
            "longhorn-system",
            "longhorn-service-account",
            CLIENT_GO.format("longhorn-manager"),
            "10.244.1.248",
            "longhorn-role",
        ),
        daemonset_controller=controller_account(em, "daemon-set-controller"),
        cronjob_controller=controller_account(em, "cronjob-controller"),
        job_controller=controller_account(em, "job-controller"),
        csr_approver=controller_account(em, "certificate-controller"),
        sres=[],
        platform=[],
        api_clients=[],
        habits={},
        helm_ci=None,
    )
    _people(org, cluster, start_us)
    _workloads(org, cluster, em)
    if cluster.ci:
        ci = cluster.ci[1] if len(cluster.ci) > 1 else cluster.ci[0]
        org.helm_ci = dataclasses.replace(ci, ua="Helm/3.16.3")
    return org


def _people(org: Org, cluster: Cluster, start_us: int) -> None:
    """On-call SREs, and everyone's habits (shifts around the profile's working hours)."""
    seed, (lo, hi) = cluster.profile.seed, cluster.profile.working_hours
    reason = rbac_reason("ClusterRoleBinding", "sre-cluster-admin", "ClusterRole", "cluster-admin", "Group", "sre")
    for i, name in enumerate(_SRE_NAMES[:2]):
        actor = Actor(
            f"{name}@{org.site.domain}",
            ("sre", "oncall", "system:authenticated"),
            f"10.20.9.{10 + i}",
            _SRE_KUBECTL[i],
            reason,
        )
        org.sres.append(Human(actor, cluster.profile.namespaces))
    for i, human in enumerate([*cluster.humans, *org.sres]):
        user = human.actor.username
        shifts = random.Random(f"auditwatch-shift:{seed}:{user}")
        offset = shifts.choice((-2, -1, 0, 0, 0, 1, 2, 5)) if i else 0
        shift = (max(0, lo + offset), min(24, hi + offset))
        org.habits[user] = Habits(f"auditwatch-habits:{seed}:{user}", human.actor.ip, human.actor.ua, shift, start_us)


def platform_deployment(w: Workload, cluster: Cluster, em: Emitter, *, running: bool = True) -> Deployment:
    """An add-on's Deployment, its pods running (or, not ``running``, about to be created)."""
    rng = em.rng
    dep = Deployment(
        w.ns, w.name, em.uuid(), w.version, w.replicas, 8443, em.token(10), em.uuid(), em.uuid(),
        f"{w.name}-{em.token(5)}", em.uuid(), rng.randrange(2, 9), rng.randrange(2, 9),
        repository=w.repository, tag_prefix=w.tag_prefix,
    )  # fmt: skip
    if running:
        dep.pods.extend(cluster.new_pod(dep, em) for _ in range(dep.replicas))
    dep.rolling = not running
    return dep


def _workloads(org: Org, cluster: Cluster, em: Emitter) -> None:
    """The add-ons' Deployments (public images) and the applications that call the API."""
    rng = em.rng
    for release in RELEASES:
        org.platform.extend(platform_deployment(w, cluster, em) for w in release.workloads)
    seen: set[str] = set()
    for dep in cluster.deployments:
        if dep.ns not in seen:  # one application per namespace talks to the API
            seen.add(dep.ns)
            ua = rng.choice(API_CLIENT_AGENTS).format(app=dep.name)
            org.api_clients.append(ApiClient(dep, ua, em.uuid()))
