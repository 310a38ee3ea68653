"""Labelled attack campaigns: which technique, by whom, when; planned over a window and built on demand.

Each loud campaign is one technique from a public catalogue (Stratus Red Team's Kubernetes techniques,
Atomic Red Team T1609/T1610/T1613/T1552.007/T1053.007, peirates' secret harvest and pod pivot, and the
simulator's own attack story), run either by a dedicated attacker identity or with the stolen credentials
of an identity that already exists in the benign traffic (CI's service account, or a human's kubeconfig)
from an outside address. Each quiet campaign (:mod:`simulation.attacks.quiet`, ids ``quiet.*``) borrows
an identity of the benign world, mostly from its usual address and client, and picks its own variant.
Every event a campaign emits is malicious or a direct consequence of a malicious request (e.g. the
ReplicaSet a controller creates from the attacker's Deployment).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from simulation.attacks import atomic, peirates, quiet, stratus
from simulation.attacks.cursor import CampaignRun
from simulation.attacks.story import attack_story, stolen_ci_identity
from simulation.benign import ClusterSimulation
from simulation.clock import SECOND, stage_timestamp_us
from simulation.cluster import ClusterProfile
from simulation.emitter import Actor, Emitter, Event, rbac_reason

#: technique id -> what it does (catalogue: description)
TECHNIQUES: Final[dict[str, str]] = {
    "stratus.dump-secrets": "Stratus k8s.credential-access.dump-secrets: list secrets in all namespaces",
    "stratus.steal-sa-token": "Stratus steal-serviceaccount-token: SA token Secret created and read",
    "stratus.create-admin-clusterrole": "Stratus create-admin-clusterrole: SA + */* ClusterRole + binding + token",
    "stratus.client-certificate": "Stratus k8s.persistence.create-client-certificate: client-auth CSR, approve, fetch",
    "stratus.create-token": "Stratus create-token: TokenRequest for kube-system:clusterrole-aggregation-controller",
    "stratus.hostpath-volume": "Stratus k8s.privilege-escalation.hostpath-volume: pod mounting the node's / ",
    "stratus.nodes-proxy": "Stratus k8s.privilege-escalation.nodes-proxy: kubelet API through nodes/proxy",
    "stratus.privileged-pod": "Stratus k8s.privilege-escalation.privileged-pod: privileged pod",
    "atomic.T1609": "Atomic T1609 container administration command: kubectl exec (ls, id) into a pod",
    "atomic.T1610": "Atomic T1610 deploy container: Deployment with an outside image, plus controller objects",
    "atomic.T1613": "Atomic T1613 container and resource discovery: cluster-wide lists, some forbidden",
    "atomic.T1552.007": "Atomic T1552.007 container API: list and read secrets of a namespace",
    "atomic.T1053.007": "Atomic T1053.007 container orchestration job: CronJob running curl | sh",
    "peirates.secret-harvest": "peirates: can-i, list namespaces, list + get secrets namespace by namespace",
    "peirates.pod-pivot": "peirates: exec to steal a pod's SA token, then use it from outside",
    # the id names the simulator's former module; campaign ids, and so their seeds and labels, contain it
    "synth.story": "the simulator's attack story (can-i, exec, privileged hostPath Deployment, RBAC, anonymous)",
    "quiet.stolen-pod-token": "an application pod's token replayed from another pod with the application's client",
    "quiet.slow-recon": "a developer's workstation reads outside their team, one request every 10-40 min for hours",
    "quiet.ci-new-image": "CI's own credential and runner deploy one workload with an image never run in the cluster",
    "quiet.off-hours-credential": "a developer's credential at night from a new address lists and reads Secrets",
    "quiet.minted-token": "an SRE's credential mints a token for a cluster-wide service account, used minutes later",
}
#: technique id -> MITRE ATT&CK technique ids (Containers matrix)
MITRE: Final[dict[str, tuple[str, ...]]] = {
    "stratus.dump-secrets": ("T1552.007",),
    "stratus.steal-sa-token": ("T1528",),
    "stratus.create-admin-clusterrole": ("T1098.006",),
    "stratus.client-certificate": ("T1098", "T1649"),
    "stratus.create-token": ("T1528",),
    "stratus.hostpath-volume": ("T1611",),
    "stratus.nodes-proxy": ("T1611",),
    "stratus.privileged-pod": ("T1610", "T1611"),
    "atomic.T1609": ("T1609",),
    "atomic.T1610": ("T1610",),
    "atomic.T1613": ("T1613",),
    "atomic.T1552.007": ("T1552.007",),
    "atomic.T1053.007": ("T1053.007",),
    "peirates.secret-harvest": ("T1552.007", "T1613"),
    "peirates.pod-pivot": ("T1609", "T1528", "T1550.001"),
    "synth.story": ("T1069", "T1609", "T1611", "T1098.006", "T1552.007", "T1078.001"),
    "quiet.stolen-pod-token": ("T1528", "T1550.001"),
    "quiet.slow-recon": ("T1613", "T1069.003"),
    "quiet.ci-new-image": ("T1610", "T1195.002"),
    "quiet.off-hours-credential": ("T1078.004", "T1552.007"),
    "quiet.minted-token": ("T1528", "T1550.001"),
}
#: quiet technique -> (whose credential it uses: its variant, how long it may run in seconds)
QUIET: Final[dict[str, tuple[str, int]]] = {
    "quiet.stolen-pod-token": ("stolen-sa", 3600),
    "quiet.slow-recon": ("stolen-user", 10 * 3600),
    "quiet.ci-new-image": ("stolen-sa", 600),
    "quiet.off-hours-credential": ("stolen-user", 18 * 3600),
    "quiet.minted-token": ("stolen-user", 1800),
}
_STORY: Final = "synth.story"
_BUILDERS: Final[dict[str, Callable[[CampaignRun], None]]] = {
    "stratus.dump-secrets": stratus.dump_secrets,
    "stratus.steal-sa-token": stratus.steal_sa_token,
    "stratus.create-admin-clusterrole": stratus.create_admin_clusterrole,
    "stratus.client-certificate": stratus.client_certificate,
    "stratus.create-token": stratus.create_token,
    "stratus.hostpath-volume": stratus.hostpath_volume,
    "stratus.nodes-proxy": stratus.nodes_proxy,
    "stratus.privileged-pod": stratus.privileged_pod,
    "atomic.T1609": atomic.container_administration_command,
    "atomic.T1610": atomic.deploy_container,
    "atomic.T1613": atomic.resource_discovery,
    "atomic.T1552.007": atomic.container_api_secrets,
    "atomic.T1053.007": atomic.orchestration_cronjob,
    "peirates.secret-harvest": peirates.secret_harvest,
    "peirates.pod-pivot": peirates.pod_pivot,
    "quiet.stolen-pod-token": quiet.stolen_pod_token,
    "quiet.slow-recon": quiet.slow_recon,
    "quiet.ci-new-image": quiet.ci_new_image,
    "quiet.off-hours-credential": quiet.off_hours_credential,
    "quiet.minted-token": quiet.minted_token,
}

VARIANTS: Final = ("dedicated", "stolen-sa", "stolen-user")


@dataclass
class Campaign:
    """One planned campaign; :func:`build_campaign` fills in who ran it, its end and its auditIDs."""

    id: str
    technique: str
    variant: str  # dedicated | stolen-sa | stolen-user
    start_us: int  # planned start (first request's requestReceivedTimestamp)
    actor: str = ""
    src_ip: str = ""
    end_us: int = 0  # last stageTimestamp, set once built
    audit_ids: list[str] = field(default_factory=list)

    @property
    def mitre(self) -> tuple[str, ...]:
        return MITRE.get(self.technique, ())

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_us / SECOND, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_us / SECOND, UTC)


def plan_campaigns(
    profile: ClusterProfile,
    *,
    eval_start_us: int,
    eval_end_us: int,
    seed: int,
    techniques: list[str] | None = None,
    variants: tuple[str, ...] = VARIANTS[:2],
    stolen_user_every: int = 2,
) -> list[Campaign]:
    """One campaign per (technique, variant) of the loud techniques, one per quiet technique (with its own
    variant), at seeded random times spread over the evaluation window.

    Variant ``stolen-sa`` alternates with a human's kubeconfig (every ``stolen_user_every``-th technique
    uses the human) unless ``stolen-user`` is a variant of its own. A campaign that runs for hours starts
    early enough to end in the window."""
    techs = techniques or list(TECHNIQUES)
    rng = random.Random(f"auditwatch-campaign-plan:{seed}")
    jobs: list[tuple[str, str]] = []
    loud = [t for t in techs if t not in QUIET]
    for i, tech in enumerate(loud):
        for v in variants:
            if v == "stolen-sa" and stolen_user_every and i % stolen_user_every == 1 and "stolen-user" not in variants:
                v = "stolen-user"
            jobs.append((tech, v))
    jobs += [(tech, QUIET[tech][0]) for tech in techs if tech in QUIET]
    rng.shuffle(jobs)
    n = len(jobs)
    slot = (eval_end_us - eval_start_us) // max(n, 1)
    out: list[Campaign] = []
    for i, (tech, v) in enumerate(jobs):
        # a random point in the slot, leaving 30 min at its end for the campaign to run
        start = eval_start_us + i * slot + rng.randrange(max(slot - 1800 * SECOND, 1))
        if tech in QUIET:
            start = max(eval_start_us, min(start, eval_end_us - (QUIET[tech][1] + 1800) * SECOND))
        out.append(Campaign(f"c{i:02d}-{tech}-{v}", tech, v, start))
    return out


def build_campaign(sim: ClusterSimulation, camp: Campaign, seed: int, idx: int) -> list[tuple[int, Event]]:
    """Emit ``camp``'s events (stageTimestamp µs, event) and fill its actor, end and auditIDs.

    ``idx`` (the campaign's rank in the stream) picks its source address.
    """
    em = Emitter(random.Random(f"auditwatch-campaign:{seed}:{camp.id}"))
    actor = _campaign_actor(sim, camp.variant, idx)
    camp.actor, camp.src_ip = actor.username, actor.ip
    out: list[tuple[int, Event]] = []
    if camp.technique == _STORY:
        if not actor.username.startswith("system:serviceaccount:"):  # the story binds its actor as an SA
            name = "attacker" if camp.variant == "dedicated" else "deployer"
            ns = "default" if camp.variant == "dedicated" else "ci"
            actor = Actor(
                f"system:serviceaccount:{ns}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
                actor.ip,
                actor.ua,
                actor.reason,
                uid=em.uuid(),
            )
            camp.actor = actor.username
        ns, pod, _ = CampaignRun(sim.cluster, em, camp.start_us, actor).live_pod()
        for _, ev in attack_story(em, camp.start_us, actor, (ns, pod)):
            out.append((stage_timestamp_us(ev["stageTimestamp"]), ev))
    else:
        run = CampaignRun(sim.cluster, em, camp.start_us, actor, org=sim.org)
        _BUILDERS[camp.technique](run)
        camp.actor, camp.src_ip = run.actor.username, run.actor.ip
        out = em.drain()
        if camp.technique in QUIET and out:  # a quiet campaign may wait for its moment (e.g. the night)
            camp.start_us = min(stage_timestamp_us(ev["requestReceivedTimestamp"]) for _, ev in out)
    camp.audit_ids = sorted({ev["auditID"] for _, ev in out})
    camp.end_us = max((ts for ts, _ in out), default=camp.start_us)  # no events: nothing to borrow here
    return out


def _campaign_actor(sim: ClusterSimulation, variant: str, idx: int) -> Actor:
    ip = f"203.0.113.{10 + idx % 200}"
    if variant == "dedicated":
        return Actor(
            "mallory@contractor.example",
            ("contractors", "system:authenticated"),
            f"198.51.100.{10 + idx % 200}",
            "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
            rbac_reason(
                "ClusterRoleBinding", "contractors-admin", "ClusterRole", "cluster-admin", "Group", "contractors"
            ),
        )
    if variant == "stolen-sa":  # CI's service account, uid and credential id of the real one
        return dataclasses.replace(stolen_ci_identity(sim.cluster, sim.emitter), ip=ip)
    # stolen-user: a human's kubeconfig, same user agent, from outside
    cluster = sim.cluster
    human = cluster.humans[0].actor if cluster.humans else stolen_ci_identity(cluster, sim.emitter)
    return Actor(
        human.username,
        human.groups,
        ip,
        human.ua,
        rbac_reason(
            "ClusterRoleBinding",
            f"admin-{human.username.split('@')[0]}",
            "ClusterRole",
            "admin",
            "User",
            human.username,
        ),
        uid=human.uid,
        extra=human.extra,
    )
