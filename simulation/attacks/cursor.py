"""Building blocks of attacks: a time cursor that issues one actor's requests in turn, and shared requests.

Attack events are built by the same :class:`~simulation.emitter.Emitter` as the benign traffic
(stages, timestamps, levels, decisions and authorization reasons alike), each attack with an emitter
of its own seeded random generator, so adding an attack never changes the benign stream.
"""

from __future__ import annotations

from typing import Any

from simulation.clock import SECOND
from simulation.cluster import Cluster
from simulation.emitter import Actor, Emitter, forbidden_status, object_ref
from simulation.noisy.org import Org

_PAUSE_JITTER_US = SECOND // 2


class RequestCursor:
    """Issues an actor's requests one after another, each ``dt_s`` (plus up to 0.5 s) after the previous.

    With ``first_at_start`` the first request starts exactly at ``t0``; otherwise it too waits.
    """

    def __init__(self, em: Emitter, t0: int, actor: Actor, *, first_at_start: bool = True) -> None:
        self.em, self.rng, self.t, self.actor = em, em.rng, t0, actor
        self._first = first_at_start

    def request(
        self, dt_s: float, verb: str, uri: str, ref: dict[str, str] | None, *, actor: Actor | None = None, **kw: Any
    ) -> str:
        """Emit a request (keywords as :meth:`Emitter.request`) as ``actor`` or the cursor's; returns its auditID."""
        if self._first:
            self._first = False
        else:
            self.t += int(dt_s * SECOND) + self.rng.randrange(_PAUSE_JITTER_US)
        return self.em.request(self.t, actor or self.actor, verb, uri, ref, **kw)

    def forbidden(self, dt_s: float, verb: str, uri: str, ref: dict[str, str], kind: str) -> str:
        """A request the cursor's actor is not allowed to make (403, with the RBAC message)."""
        user = self.actor.username
        scope = f'in the namespace "{ref["namespace"]}"' if "namespace" in ref else "at the cluster scope"
        msg = (
            f'{ref["resource"]} is forbidden: User "{user}" cannot {verb} resource "{ref["resource"]}" '
            f'in API group "{ref.get("apiGroup", "")}" {scope}'
        )
        status = forbidden_status(msg, {"kind": kind})
        return self.request(dt_s, verb, uri, ref, code=403, status=status, decision="forbid", reason="")


class CampaignRun(RequestCursor):
    """A cursor that also sees the live cluster (and the noisy world's cast, if any), for techniques that
    pick targets or borrow identities in it. Techniques read them, never change them."""

    def __init__(
        self,
        cluster: Cluster,
        em: Emitter,
        t0: int,
        actor: Actor,
        *,
        first_at_start: bool = True,
        org: Org | None = None,
    ) -> None:
        super().__init__(em, t0, actor, first_at_start=first_at_start)
        self.cluster = cluster
        self.org = org

    def live_pod(self) -> tuple[str, str, str]:
        """(namespace, pod, deployment name) of a pod alive now."""
        deployments = self.cluster.deployments
        deps = [d for d in deployments if d.pods and not d.rolling] or [d for d in deployments if d.pods] or deployments
        dep = self.rng.choice(deps)
        pod = self.rng.choice(dep.pods).name if dep.pods else f"{dep.name}-{self.em.token(10)}-{self.em.token(5)}"
        return dep.ns, pod, dep.name

    def exec_verb(self) -> str:
        """kubectl >= 1.30 execs over WebSocket (a `get`), older ones over SPDY (a `create`)."""
        ua = self.actor.ua
        return "get" if ua.startswith(("kubectl/v1.30", "kubectl/v1.31", "kubectl/v1.32")) else "create"

    def namespaces(self) -> list[str]:
        return list(self.cluster.profile.namespaces) or ["default"]


def rules_review(cursor: RequestCursor, dt_s: float, ns: str, actor: Actor | None = None) -> str:
    """``kubectl auth can-i --list``: a SelfSubjectRulesReview."""
    return cursor.request(
        dt_s,
        "create",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        object_ref("selfsubjectrulesreviews", group="authorization.k8s.io"),
        actor=actor,
        code=201,
        level="Request",
        req_obj={
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"namespace": ns},
            "status": {"resourceRules": None, "nonResourceRules": None, "incomplete": False},
        },
    )


def list_all_secrets(cursor: RequestCursor, dt_s: float) -> str:
    """``kubectl get secrets -A``."""
    latency = 40_000 + cursor.rng.randrange(80_000)
    return cursor.request(dt_s, "list", "/api/v1/secrets?limit=500", object_ref("secrets"), latency=latency)
