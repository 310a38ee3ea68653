"""Quiet campaigns: attacks that look like the benign traffic they hide in.

Each uses an identity that exists in the benign world, mostly from where and with the client it always
uses, and does little: what gives it away is the context (a token from another pod, a read outside the
person's habits, an image never deployed, an hour and an address never seen, a token minted then used).
Builders read the live cluster (and the noisy world's cast when there is one) but never change them, so
adding a campaign never changes the benign stream.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from simulation.attacks.cursor import CampaignRun, rules_review
from simulation.clock import SECOND
from simulation.cluster import Deployment, Human
from simulation.emitter import Actor, object_ref, rbac_reason
from simulation.humans import namespace_reason
from simulation.manifests import pod_create_body, replica_set_object
from simulation.noisy.objects import token_request
from simulation.noisy.org import ApiClient

_HOUR: Final = 3600 * SECOND
_SECRET_NAMES: Final = ("db-credentials", "stripe-api-key", "smtp-password", "oauth-client", "api-keys")


def _human(r: CampaignRun, index: int) -> Human | None:
    humans = r.cluster.humans
    return humans[index % len(humans)] if humans else None


def _usual(r: CampaignRun, human: Human) -> Actor:
    """``human`` as they usually connect at the cursor's time (their address and kubectl of the day)."""
    return r.org.identity(human, r.t) if r.org is not None else human.actor


def _live(r: CampaignRun, exclude: Deployment | None = None) -> list[Deployment]:
    return [d for d in r.cluster.deployments if d.pods and not d.rolling and d is not exclude]


def stolen_pod_token(r: CampaignRun) -> None:
    """An application pod's token (stolen through the application) replayed from another pod, with the
    application's own client: reads of its namespace, its Secret, and a few refused probes."""
    clients = [c for c in (r.org.api_clients if r.org else []) if c.dep.pods]
    if clients:
        client = r.rng.choice(clients)
    else:
        dep = r.rng.choice([d for d in r.cluster.deployments if d.pods])
        client = ApiClient(dep, f"{dep.name}/v0.0.0 (linux/amd64) kubernetes/$Format", r.em.uuid())
    dep = client.dep
    victim = r.rng.choice(dep.pods)
    token = client.by_pod.get(victim.uid) or ApiClient(dep, client.ua, client.sa_uid).actor(victim, r.em)
    others = [p for d in _live(r, exclude=dep) for p in d.pods]
    foothold = r.rng.choice(others).ip if others else "10.244.7.23"
    r.actor = dataclasses.replace(token, ip=foothold)
    ns = dep.ns
    r.request(0, "list", f"/api/v1/namespaces/{ns}/pods", object_ref("pods", ns))
    r.forbidden(
        60 + r.rng.randrange(240), "list", f"/api/v1/namespaces/{ns}/secrets", object_ref("secrets", ns), "secrets"
    )
    secret = f"{dep.name}-credentials"
    r.request(
        30 + r.rng.randrange(120), "get", f"/api/v1/namespaces/{ns}/secrets/{secret}", object_ref("secrets", ns, secret)
    )
    other = r.rng.choice(_SECRET_NAMES)
    r.forbidden(
        120 + r.rng.randrange(300),
        "get",
        f"/api/v1/namespaces/{ns}/secrets/{other}",
        object_ref("secrets", ns, other),
        "secrets",
    )
    r.forbidden(
        200 + r.rng.randrange(600),
        "list",
        "/api/v1/namespaces/kube-system/pods",
        object_ref("pods", "kube-system"),
        "pods",
    )


def slow_recon(r: CampaignRun) -> None:
    """A developer's workstation, compromised: from their usual address and kubectl, one read every
    10-40 minutes for hours, outside their team's namespaces and into what they never look at."""
    human = _human(r, 1)
    if human is None:
        return
    if r.org is not None:  # the malware runs while the workstation is in use, if that is soon
        planned, habits = r.t, r.org.habits[human.actor.username]
        for _ in range(16):
            if habits.on_shift(r.t):
                break
            r.t += _HOUR
        else:
            r.t = planned
    r.actor = _usual(r, human)
    namespaces = r.namespaces()
    others = [ns for ns in namespaces if ns not in human.team] or namespaces
    rules_review(r, 0, r.rng.choice(others))
    reads = [
        ("serviceaccounts", "", "v1"),
        ("configmaps", "", "v1"),
        ("services", "", "v1"),
        ("networkpolicies", "networking.k8s.io", "v1"),
        ("ingresses", "networking.k8s.io", "v1"),
        ("persistentvolumeclaims", "", "v1"),
        ("cronjobs", "batch", "v1"),
        ("deployments", "apps", "v1"),
    ]
    for i in range(10 + r.rng.randrange(6)):
        dt = (600 + r.rng.randrange(1800)) if i else 0
        r.t += dt * SECOND
        if r.rng.random() < 0.25:  # cluster-scoped or RBAC reads a developer may not make
            res, group = r.rng.choice(
                (
                    ("nodes", ""),
                    ("namespaces", ""),
                    ("clusterrolebindings", "rbac.authorization.k8s.io"),
                    ("roles", "rbac.authorization.k8s.io"),
                )
            )
            prefix = f"/apis/{group}/v1" if group else "/api/v1"
            r.forbidden(0, "list", f"{prefix}/{res}?limit=500", object_ref(res, group=group), res)
            continue
        res, group, version = r.rng.choice(reads)
        ns = r.rng.choice(others)
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        r.request(
            0,
            "list",
            f"{prefix}/namespaces/{ns}/{res}?limit=500",
            object_ref(res, ns, group=group, version=version),
            reason=namespace_reason(ns),
        )


def ci_new_image(r: CampaignRun) -> None:
    """CI's own credential, from its runner (a poisoned pipeline): one Deployment set to an image from a
    repository the cluster never ran, and what the controllers make of it."""
    if not r.cluster.ci:
        return
    r.actor = r.cluster.ci[0]
    deps = _live(r) or r.cluster.deployments
    dep = r.rng.choice(deps)
    handle = f"{r.em.token(6)}-{r.rng.choice(('dev', 'ci', 'build', 'ops'))}"
    registry = dep.registry
    host, _, path = registry.partition("/")
    lookalike = f"{host[: len(host) // 2]}{r.em.token(1)}{host[len(host) // 2 + 1 :]}" + (f"/{path}" if path else "")
    repo = r.rng.choice(
        (f"{lookalike}/{dep.ns}/{dep.name}", f"docker.io/{handle}/{dep.name}", f"ghcr.io/{handle}/{dep.name}")
    )
    bad = dataclasses.replace(
        dep, repository=repo, tag_prefix="", version=dep.version, pods=[], rs_hash=r.em.token(10), rs_uid=r.em.uuid()
    )
    ns, name = dep.ns, dep.name
    base = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    ref = object_ref("deployments", ns, name, "apps")
    r.request(0, "get", base, ref)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [{"image": bad.image, "name": "app"}],
                }
            }
        }
    }
    r.request(0.3, "patch", base + "?fieldManager=kubectl-set", ref, level="Request", req_obj=patch)
    cp = r.cluster.control_plane
    rs = replica_set_object(bad, 1, bad.rs_hash, None)
    r.request(
        0.01,
        "create",
        f"/apis/apps/v1/namespaces/{ns}/replicasets",
        object_ref("replicasets", ns, group="apps"),
        actor=cp.deployment_controller,
        code=201,
        level="Request",
        req_obj=rs,
        obj_meta=(bad.rs_name, None, None),
    )
    r.request(
        0.01,
        "create",
        f"/api/v1/namespaces/{ns}/pods",
        object_ref("pods", ns),
        actor=cp.replicaset_controller,
        code=201,
        level="Request",
        req_obj=pod_create_body(bad),
    )
    r.request(0.5, "get", base, ref)


def off_hours_credential(r: CampaignRun) -> None:
    """A developer's credential used at night (for them), from an address they never used, with their
    kubectl: discovery from a cold cache, then their team's Secrets listed and read."""
    human = _human(r, 2)
    if human is None:
        return
    lo, hi = r.org.habits[human.actor.username].shift if r.org else r.cluster.profile.working_hours
    night = [h for h in range(24) if not lo - 2 <= h < hi + 3 and not lo - 2 <= h + 24 < hi + 3]
    while (r.t // _HOUR) % 24 not in night:
        r.t += _HOUR
    r.t += r.rng.randrange(_HOUR // 2)
    usual = _usual(r, human)
    r.actor = dataclasses.replace(usual, ip=r.actor.ip)
    ns = r.rng.choice(human.team or r.namespaces())
    discovery = rbac_reason(
        "ClusterRoleBinding", "system:discovery", "ClusterRole", "system:discovery", "Group", "system:authenticated"
    )
    r.request(0, "get", "/api?timeout=32s", None, reason=discovery)
    r.request(0.05, "get", "/apis?timeout=32s", None, reason=discovery)
    r.request(
        4, "list", f"/api/v1/namespaces/{ns}/secrets?limit=500", object_ref("secrets", ns), reason=namespace_reason(ns)
    )
    for name in r.rng.sample(_SECRET_NAMES, 2):
        r.request(
            20 + r.rng.randrange(60),
            "get",
            f"/api/v1/namespaces/{ns}/secrets/{name}",
            object_ref("secrets", ns, name),
            reason=namespace_reason(ns),
        )


def minted_token(r: CampaignRun) -> None:
    """An SRE's credential mints a token for a service account with cluster-wide rights (``kubectl create
    token``); minutes later the token reads Secrets and bindings from the SRE's machine."""
    if r.org is not None:
        minter = _usual(r, r.org.sres[0])
        sa = r.rng.choice((r.org.argocd, r.org.kustomize))
    else:
        human = next((h for h in r.cluster.humans if "oncall" in h.actor.groups), _human(r, 0))
        minter = human.actor if human is not None else r.actor
        sa = r.cluster.control_plane.deployment_controller
    r.actor = minter
    _, ns, name = sa.username.rsplit(":", 2)
    jti = f"JTI={r.em.uuid()}"
    uri = f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"
    ref = object_ref("serviceaccounts", ns, name, subresource="token")
    annotations = {"authentication.kubernetes.io/issued-credential-id": jti}
    r.request(0, "create", uri, ref, code=201, level="Request", req_obj=token_request(3600), annotations=annotations)
    used = Actor(
        sa.username,
        sa.groups,
        minter.ip,
        minter.ua,
        sa.reason,
        uid=sa.uid,
        extra=(("authentication.kubernetes.io/credential-id", jti),),
    )
    r.t += (120 + r.rng.randrange(360)) * SECOND
    namespaces = r.namespaces()
    for i, target in enumerate(r.rng.sample(namespaces, min(2, len(namespaces)))):
        secret = r.rng.choice(_SECRET_NAMES)
        r.request(
            0 if i == 0 else 40,
            "get",
            f"/api/v1/namespaces/{target}/secrets/{secret}",
            object_ref("secrets", target, secret),
            actor=used,
        )
    r.request(
        30,
        "list",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?limit=500",
        object_ref("clusterrolebindings", group="rbac.authorization.k8s.io"),
        actor=used,
    )
