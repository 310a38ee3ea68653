"""Deterministic generator of realistic Kubernetes audit events (``audit.k8s.io/v1``).

It simulates one kube-apiserver of a small kubeadm-style cluster (Kubernetes v1.31) whose audit
webhook/log backend writes every stage, and yields the Events exactly as the backend serialises them
(``json.loads`` of one log line), in ``stageTimestamp`` order. Everything is driven by one seeded
``random.Random``, so the same :class:`ClusterProfile` always gives the same events, auditIDs included.

Who talks to the apiserver (cadences are the components' defaults, e.g. KEP-0009's 10 s node Lease):

* **kubelets** (``system:node:<node>``, group ``system:nodes``, Node authorizer, so an empty
  ``authorization.k8s.io/reason``): renew their Lease in ``kube-node-lease`` every 10 s (+4 % jitter),
  patch ``nodes/status`` every 5 min, patch ``pods/status`` and create core Events as their pods start
  and stop, delete terminated pods, create TokenReviews/SubjectAccessReviews for kubelet-API scrapes,
  and keep watches (pods on the node, its Node, services, CSIDrivers, RuntimeClasses).
* **kube-controller-manager** and **kube-scheduler**: leader Leases renewed every 2 s, shared-informer
  watches; the per-controller service accounts (``--use-service-account-credentials``) do the work:
  ``deployment-controller`` (ReplicaSets, deployment status), ``replicaset-controller`` (creates Pods with
  the full pod spec, deletes old ones), ``endpointslice-controller``, ``horizontal-pod-autoscaler``
  (scale + metrics reads every 15 s); the scheduler creates ``pods/binding``.
* **coredns**, **kube-proxy** and **prometheus**: client-go watches (``timeoutSeconds`` 300-600 s, so
  RequestReceived, ResponseStarted and, 5-10 min later, ResponseComplete); prometheus scrapes ``/metrics``.
* **health checks**: ``/livez``, ``/readyz`` (kube-probe) and ``/healthz`` (load balancer) as
  ``system:anonymous``, allowed by ``system:public-info-viewer``, as in real clusters.
* **humans** (``alice@example.com``, ``bob@example.com``, ... with groups ``devs``/``oncall``,
  ``system:authenticated``) during working hours 08:00-18:00 UTC, in sessions of ``kubectl get``,
  ``describe``, ``logs`` (long-running ``pods/log``), server-side ``apply`` (patch whose body is the whole
  manifest), ``create`` of a Deployment, ``rollout restart``; sometimes a 401 first (expired OIDC token,
  then a retry), a 403 (``list nodes``, ``create namespaces``, pods in ``kube-system``, ...) or a 404.
* **CI** (``system:serviceaccount:ci:deployer``): ``kubectl set image`` (strategic-merge patch) followed
  by ``kubectl rollout status``; each image change drives a realistic rolling update through the
  controllers, the scheduler and the kubelets (5-15 API calls per pod).
* a stale cron script whose token was revoked: a lone 401 every 10 min.

The simulated audit policy (first match wins): failed authentication and non-resource URLs at
``Metadata``; ``secrets``, ``configmaps``, ``events``, token/access reviews at ``Metadata``;
``get``/``list``/``watch`` at ``Metadata``; writes to ``leases``, ``endpointslices``, ``pods/binding``
and RBAC at ``RequestResponse``; every other write at ``Request``. Per the apiserver, RequestReceived
events carry no annotations, ``responseStatus`` or objects, and on ResponseComplete the ``objectRef`` is
completed with name/uid/resourceVersion taken from the request object.

Benign traffic deliberately contains nothing a sensible security rule would flag: no exec/attach/
portforward, no privileged, hostPath, hostNetwork/PID/IPC pods, no cluster-admin or wildcard RBAC,
no cluster-wide secret reads, no human-created pods in ``kube-system``, no NodePort services, no
admission-webhook changes, no Event deletion and no anonymous access beyond the health endpoints.
:func:`attack_events` provides the malicious story separately (labelled), :func:`demo_events` mixes both.

Every event is a fresh tree of dicts and lists (no nested object is shared between two events), so
consumers may mutate events freely. Throughput: ~150k events/s streamed on one core; materialising
hundreds of thousands of events in a list is dominated by CPython's cyclic GC (disable or freeze it
around the list, or stream / pre-serialise with orjson).
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

__all__ = [
    "ATTACK_TECHNIQUES",
    "DEMO_PATH",
    "ClusterProfile",
    "attack_events",
    "benign_events",
    "demo_attack_labels",
    "demo_events",
    "demo_profile",
    "write_jsonl",
]

Event = dict[str, Any]

DEMO_PATH: Final = Path(__file__).with_name("data") / "demo-events.jsonl.gz"

K8S: Final = "v1.31.4"
_COMMIT: Final = "a78aa47"
_SEC: Final = 1_000_000  # microseconds per second
_AUTHZ_DECISION: Final = "authorization.k8s.io/decision"
_AUTHZ_REASON: Final = "authorization.k8s.io/reason"
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_HUMAN_NAMES: Final = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
_APP_NAMES: Final = (
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
_CI_NAMES: Final = ("deployer", "release", "promoter", "nightly")

#: Technique labels used by :func:`attack_events` (technique -> what the event is).
ATTACK_TECHNIQUES: Final[dict[str, str]] = {
    "permission-discovery": "kubectl auth can-i --list (SelfSubjectRulesReview) from the stolen token",
    "pod-exec": "kubectl exec into a running pod that reads the pod's service-account token",
    "privileged-hostpath-workload": (
        "Deployment with a privileged container and a hostPath '/' volume, "
        "plus the ReplicaSet/Pod the controllers create from it"
    ),
    "cluster-admin-rolebinding": "RoleBinding in 'default' granting cluster-admin to the attacker",
    "secrets-list-all-namespaces": "list secrets across all namespaces",
    "anonymous-access-binding": "RoleBinding in kube-system granting 'view' to system:anonymous",
    "anonymous-access": "anonymous (unauthenticated) request allowed to list kube-system configmaps",
}


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

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.humans < 0 or self.ci_accounts < 0:
            raise ValueError("need nodes >= 1, humans >= 0 and ci_accounts >= 0")
        if not 0 <= self.working_hours[0] <= self.working_hours[1] <= 24:
            raise ValueError(f"bad working_hours {self.working_hours}")


# --------------------------------------------------------------------------------------------------
# Low-level helpers: time, ids, objectRefs
# --------------------------------------------------------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


class _Clock:
    """Formats epoch microseconds as MicroTime (``…T15:04:05.000000Z``) or metav1.Time (``…T15:04:05Z``)."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def _prefix(self, sec: int) -> str:
        p = self._cache.get(sec)
        if p is None:
            if len(self._cache) > 8192:
                self._cache.clear()
            p = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._cache[sec] = p
        return p

    def micro(self, us: int) -> str:
        sec, frac = divmod(us, _SEC)
        return f"{self._prefix(sec)}.{frac:06d}Z"

    def sec(self, us: int) -> str:
        return self._prefix(us // _SEC) + "Z"


def _ref(
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    group: str = "",
    version: str = "v1",
    subresource: str | None = None,
) -> dict[str, str]:
    """An ``objectRef`` as the apiserver builds it from the URL (Go ``omitempty`` key order)."""
    ref = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    if group:
        ref["apiGroup"] = group
    ref["apiVersion"] = version
    if subresource:
        ref["subresource"] = subresource
    return ref


_REF_ORDER: Final = (
    "resource",
    "namespace",
    "name",
    "uid",
    "apiGroup",
    "apiVersion",
    "resourceVersion",
    "subresource",
)


def _complete_ref(ref: dict[str, str], name: str | None, uid: str | None, rv: str | None) -> dict[str, str]:
    """objectRef at ResponseComplete: name/uid/resourceVersion filled from the request object."""
    merged = dict(ref)
    if name and "name" not in merged:
        merged["name"] = name
    if uid:
        merged["uid"] = uid
    if rv:
        merged["resourceVersion"] = rv
    return {k: merged[k] for k in _REF_ORDER if k in merged}


@dataclass(slots=True)
class _Actor:
    """An authenticated identity plus where it connects from and its User-Agent."""

    username: str
    groups: tuple[str, ...]
    ip: str
    ua: str
    reason: str  # authorization.k8s.io/reason on allowed requests
    uid: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def user(self) -> dict[str, Any]:
        u: dict[str, Any] = {"username": self.username}
        if self.uid:
            u["uid"] = self.uid
        u["groups"] = list(self.groups)
        if self.extra:
            u["extra"] = {k: [v] for k, v in self.extra}
        return u


def _rbac(kind: str, binding: str, role_kind: str, role: str, subject_kind: str, subject: str) -> str:
    return f'RBAC: allowed by {kind} "{binding}" of {role_kind} "{role}" to {subject_kind} "{subject}"'


# --------------------------------------------------------------------------------------------------
# The event builder
# --------------------------------------------------------------------------------------------------


class _Emitter:
    """Builds the audit Events of one request and queues them by stageTimestamp."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clock = _Clock()
        self.out: list[tuple[int, int, Event]] = []  # heap of (stageTimestamp µs, seq, event)
        self._seq = 0
        self._rv = 48_211_337 + rng.randrange(1_000_000)

    # ids -------------------------------------------------------------------------------------------
    def uuid(self) -> str:
        n = (self.rng.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def rv(self) -> str:
        self._rv += 1 + self.rng.randrange(40)
        return str(self._rv)

    def token(self, n: int) -> str:
        choice = self.rng.choice
        return "".join(choice(_NAME_ALPHABET) for _ in range(n))

    def hex(self, nbytes: int) -> str:
        return f"{self.rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"

    # queue -----------------------------------------------------------------------------------------
    def push(self, ts: int, ev: Event) -> None:
        self._seq += 1
        heapq.heappush(self.out, (ts, self._seq, ev))

    # requests --------------------------------------------------------------------------------------
    def request(
        self,
        t: int,
        actor: _Actor,
        verb: str,
        uri: str,
        ref: dict[str, str] | None,
        *,
        level: str = "Metadata",
        code: int = 200,
        latency: int | None = None,
        req_obj: dict[str, Any] | None = None,
        resp_obj: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
        stream: int | None = None,
        decision: str = "allow",
        reason: str | None = None,
        obj_meta: tuple[str | None, str | None, str | None] | None = None,
    ) -> str:
        """Queue the events of one request that starts at ``t`` (µs) and return its auditID.

        ``stream`` (µs) marks a long-running request (watch, pods/log, exec): it gets a ResponseStarted
        shortly after ``t`` and its ResponseComplete ``stream`` µs after ``t``. ``obj_meta`` is the
        (name, uid, resourceVersion) of the request object, copied into the final objectRef.
        """
        rng = self.rng
        aid = self.uuid()
        ts0 = self.clock.micro(t)
        rr: Event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": aid,
            "stage": "RequestReceived",
            "requestURI": uri,
            "verb": verb,
            "user": actor.user(),
            "sourceIPs": [actor.ip],
            "userAgent": actor.ua,
        }
        if ref is not None:
            rr["objectRef"] = dict(ref)
        rr["requestReceivedTimestamp"] = ts0
        rr["stageTimestamp"] = ts0
        self.push(t, rr)

        annotations = {_AUTHZ_DECISION: decision, _AUTHZ_REASON: actor.reason if reason is None else reason}
        final_ref = ref
        if ref is not None and obj_meta is not None:
            final_ref = _complete_ref(ref, *obj_meta)
        if stream is not None:
            t_started = t + 600 + rng.randrange(2500)
            started: Event = {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": level,
                "auditID": aid,
                "stage": "ResponseStarted",
                "requestURI": uri,
                "verb": verb,
                "user": actor.user(),
                "sourceIPs": [actor.ip],
                "userAgent": actor.ua,
            }
            if final_ref is not None:
                started["objectRef"] = dict(final_ref)
            started["responseStatus"] = {"metadata": {}, "code": code}
            started["requestReceivedTimestamp"] = ts0
            started["stageTimestamp"] = self.clock.micro(t_started)
            started["annotations"] = dict(annotations)
            self.push(t_started, started)
            t_end = t + max(stream + rng.randrange(3000), t_started - t + 1000)
        else:
            if latency is None:
                latency = 700 + int(rng.expovariate(1 / 2500))
            t_end = t + latency

        rc: Event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": aid,
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": actor.user(),
            "sourceIPs": [actor.ip],
            "userAgent": actor.ua,
        }
        if final_ref is not None:
            rc["objectRef"] = dict(final_ref)
        rc["responseStatus"] = status if status is not None else {"metadata": {}, "code": code}
        if req_obj is not None and level in ("Request", "RequestResponse"):
            rc["requestObject"] = req_obj
        if resp_obj is not None and level == "RequestResponse":
            rc["responseObject"] = resp_obj
        rc["requestReceivedTimestamp"] = ts0
        rc["stageTimestamp"] = self.clock.micro(t_end)
        rc["annotations"] = annotations
        self.push(t_end, rc)
        return aid

    def unauthenticated(self, t: int, ip: str, ua: str, verb: str, uri: str, ref: dict[str, str] | None) -> str:
        """A 401: authentication failed, so a single ResponseStarted event with an empty user."""
        aid = self.uuid()
        ev: Event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": aid,
            "stage": "ResponseStarted",
            "requestURI": uri,
            "verb": verb,
            "user": {},
            "sourceIPs": [ip],
            "userAgent": ua,
        }
        if ref is not None:
            ev["objectRef"] = dict(ref)
        ev["responseStatus"] = {
            "metadata": {},
            "message": "Authentication failed, attempted: bearer",
            "code": 401,
        }
        ev["requestReceivedTimestamp"] = self.clock.micro(t)
        t_end = t + 80 + self.rng.randrange(400)
        ev["stageTimestamp"] = self.clock.micro(t_end)
        self.push(t_end, ev)
        return aid


def _forbidden(message: str, details: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


def _not_found(message: str, details: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NotFound",
        "details": details,
        "code": 404,
    }


def _status_success(code: int = 201) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}


def _watch_uri(path: str, rv: str, timeout_s: int, selector: str = "") -> str:
    """client-go reflector watch URL (query keys sorted, as url.Values.Encode does)."""
    m, s = divmod(timeout_s, 60)
    return (
        f"{path}?allowWatchBookmarks=true{selector}&resourceVersion={rv}"
        f"&timeout={m}m{s}s&timeoutSeconds={timeout_s}&watch=true"
    )


# --------------------------------------------------------------------------------------------------
# Cluster state
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    name: str
    ip: str
    uid: str
    lease_uid: str
    pod_cidr: int  # third octet of 10.244.X.0/24
    actor: _Actor
    proxy: _Actor
    lease_created: str
    next_pod_ip: int = 2


@dataclass(slots=True)
class _Pod:
    name: str
    uid: str
    node: _Node
    ip: str
    container_id: str = ""


@dataclass(slots=True)
class _Deployment:
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
    pods: list[_Pod] = field(default_factory=list)
    rolling: bool = False
    restarted_at: str = ""

    @property
    def image(self) -> str:
        return f"registry.example.com/{self.ns}/{self.name}:{self.version}"

    @property
    def rs_name(self) -> str:
        return f"{self.name}-{self.rs_hash}"


def _container(dep: _Deployment) -> dict[str, Any]:
    return {
        "name": "app",
        "image": dep.image,
        "ports": [{"name": "http", "containerPort": dep.port, "protocol": "TCP"}],
        "env": [{"name": "APP_ENV", "value": "production"}, {"name": "LOG_LEVEL", "value": "info"}],
        "resources": {
            "limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        },
    }


def _pod_spec(dep: _Deployment) -> dict[str, Any]:
    return {
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "containers": [_container(dep)],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": dep.name,
        "serviceAccount": dep.name,
        "securityContext": {
            "runAsUser": 10001,
            "runAsNonRoot": True,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "schedulerName": "default-scheduler",
    }


def _labels(dep: _Deployment) -> dict[str, str]:
    return {"app": dep.name, "app.kubernetes.io/part-of": dep.ns}


def _template(dep: _Deployment, with_hash: bool) -> dict[str, Any]:
    labels = _labels(dep)
    if with_hash:
        labels["pod-template-hash"] = dep.rs_hash
    meta: dict[str, Any] = {"creationTimestamp": None, "labels": labels}
    if dep.restarted_at:
        meta["annotations"] = {"kubectl.kubernetes.io/restartedAt": dep.restarted_at}
    return {"metadata": meta, "spec": _pod_spec(dep)}


def _deployment_manifest(dep: _Deployment) -> dict[str, Any]:
    """What ``kubectl apply`` sends: a plain, non-privileged Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": dep.name, "namespace": dep.ns, "labels": _labels(dep)},
        "spec": {
            "replicas": dep.replicas,
            "selector": {"matchLabels": {"app": dep.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": _template(dep, with_hash=False),
        },
    }


# --------------------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------------------

_Proc = Iterator[int]  # a simulated process yields the µs to sleep before it resumes


class _Sim:
    """Discrete-event simulation: processes (generators) scheduled on a heap emit requests at ``now``."""

    def __init__(self, profile: ClusterProfile) -> None:
        self.p = profile
        self.rng = random.Random(f"auditwatch-synth:{profile.seed}")
        self.em = _Emitter(self.rng)
        self.start = _to_us(profile.start)
        self.now = self.start
        self._sched: list[tuple[int, int, _Proc]] = []
        self._seq = 0
        self._build_cluster()
        self._spawn_all()

    # scheduling ------------------------------------------------------------------------------------
    def spawn(self, delay: int, proc: _Proc) -> None:
        self._seq += 1
        heapq.heappush(self._sched, (self.now + delay, self._seq, proc))

    def run(self) -> Iterator[tuple[int, Event]]:
        """Yield (stageTimestamp µs, event) forever, in stageTimestamp order."""
        sched, out = self._sched, self.em.out
        pop, push = heapq.heappop, heapq.heappush
        while True:
            t_next = sched[0][0]
            while out and out[0][0] <= t_next:
                ts, _, ev = pop(out)
                yield ts, ev
            t, seq, proc = pop(sched)
            self.now = t
            try:
                delay = next(proc)
            except StopIteration:
                continue
            push(sched, (t + delay, seq, proc))

    def req(self, actor: _Actor, verb: str, uri: str, ref: dict[str, str] | None, **kw: Any) -> str:
        return self.em.request(self.now, actor, verb, uri, ref, **kw)

    def jitter(self, base_s: float, frac: float) -> int:
        return int(base_s * _SEC * (1 + frac * self.rng.random()))

    def exp_s(self, mean_s: float) -> int:
        return int(self.rng.expovariate(1 / mean_s) * _SEC)

    # cluster ---------------------------------------------------------------------------------------
    def _sa(self, ns: str, name: str, ip: str, ua: str, reason: str, bound_pod: bool = False) -> _Actor:
        em = self.em
        extra: list[tuple[str, str]] = [("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}")]
        if bound_pod:
            extra[:0] = [("authentication.kubernetes.io/node-name", "node-01")]
            extra.append(("authentication.kubernetes.io/pod-name", f"{name}-{em.token(10)}-{em.token(5)}"))
            extra.append(("authentication.kubernetes.io/pod-uid", em.uuid()))
        return _Actor(
            f"system:serviceaccount:{ns}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
            ip,
            ua,
            reason,
            uid=em.uuid(),
            extra=tuple(extra),
        )

    def _build_cluster(self) -> None:
        p, rng, em = self.p, self.rng, self.em
        created = em.clock.sec(self.start - 18 * 86400 * _SEC)
        kubelet_ua = f"kubelet/{K8S} (linux/amd64) kubernetes/{_COMMIT}"
        proxy_reason = _rbac(
            "ClusterRoleBinding",
            "kubeadm:node-proxier",
            "ClusterRole",
            "system:node-proxier",
            "ServiceAccount",
            "kube-proxy/kube-system",
        )
        proxy_sa_uid = em.uuid()
        self.nodes: list[_Node] = []
        for i in range(p.nodes):
            name = f"node-{i + 1:02d}"
            ip = f"10.0.1.{11 + i}" if i < 240 else f"10.0.{2 + i // 240}.{11 + i % 240}"
            actor = _Actor(f"system:node:{name}", ("system:nodes", "system:authenticated"), ip, kubelet_ua, "")
            proxy = _Actor(
                "system:serviceaccount:kube-system:kube-proxy",
                ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
                ip,
                f"kube-proxy/{K8S} (linux/amd64) kubernetes/{_COMMIT}",
                proxy_reason,
                uid=proxy_sa_uid,
                extra=(
                    ("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}"),
                    ("authentication.kubernetes.io/node-name", name),
                    ("authentication.kubernetes.io/pod-name", f"kube-proxy-{em.token(5)}"),
                    ("authentication.kubernetes.io/pod-uid", em.uuid()),
                ),
            )
            self.nodes.append(_Node(name, ip, em.uuid(), em.uuid(), i, actor, proxy, created))

        cp = "10.0.0.10"
        kcm_ua = f"kube-controller-manager/{K8S} (linux/amd64) kubernetes/{_COMMIT}"
        self.kcm = _Actor(
            "system:kube-controller-manager",
            ("system:authenticated",),
            cp,
            kcm_ua + "/leader-election",
            _rbac(
                "ClusterRoleBinding",
                "system:kube-controller-manager",
                "ClusterRole",
                "system:kube-controller-manager",
                "User",
                "system:kube-controller-manager",
            ),
        )
        self.kcm_informers = _Actor(
            self.kcm.username, self.kcm.groups, cp, kcm_ua + "/shared-informers", self.kcm.reason
        )
        sched_reason = _rbac(
            "ClusterRoleBinding",
            "system:kube-scheduler",
            "ClusterRole",
            "system:kube-scheduler",
            "User",
            "system:kube-scheduler",
        )
        sched_ua = f"kube-scheduler/{K8S} (linux/amd64) kubernetes/{_COMMIT}"
        self.sched_le = _Actor(
            "system:kube-scheduler",
            ("system:authenticated",),
            cp,
            sched_ua + "/leader-election",
            sched_reason,
        )
        self.scheduler = _Actor(
            "system:kube-scheduler", ("system:authenticated",), cp, sched_ua + "/scheduler", sched_reason
        )

        def controller(name: str) -> _Actor:
            sa = f"system:serviceaccount:kube-system:{name}"
            return self._sa(
                "kube-system",
                name,
                cp,
                f"{kcm_ua}/{sa}",
                _rbac(
                    "ClusterRoleBinding",
                    f"system:controller:{name}",
                    "ClusterRole",
                    f"system:controller:{name}",
                    "ServiceAccount",
                    f"{name}/kube-system",
                ),
            )

        self.deploy_ctrl = controller("deployment-controller")
        self.rs_ctrl = controller("replicaset-controller")
        self.eps_ctrl = controller("endpointslice-controller")
        self.hpa_ctrl = controller("horizontal-pod-autoscaler")

        self.coredns = [
            self._sa(
                "kube-system",
                "coredns",
                f"10.244.0.{3 + i}",
                "coredns/v0.0.0 (linux/amd64) kubernetes/$Format",
                _rbac(
                    "ClusterRoleBinding",
                    "system:coredns",
                    "ClusterRole",
                    "system:coredns",
                    "ServiceAccount",
                    "coredns/kube-system",
                ),
                bound_pod=True,
            )
            for i in range(2)
        ]
        self.prometheus = self._sa(
            "monitoring",
            "prometheus",
            "10.244.0.9",
            "Prometheus/2.54.1",
            _rbac(
                "ClusterRoleBinding",
                "prometheus",
                "ClusterRole",
                "prometheus",
                "ServiceAccount",
                "prometheus/monitoring",
            ),
            bound_pod=True,
        )
        public = _rbac(
            "ClusterRoleBinding",
            "system:public-info-viewer",
            "ClusterRole",
            "system:public-info-viewer",
            "Group",
            "system:unauthenticated",
        )
        anon_groups = ("system:unauthenticated",)
        self.probe = _Actor("system:anonymous", anon_groups, cp, "kube-probe/1.31", public)
        self.lb_check = _Actor("system:anonymous", anon_groups, "10.0.0.4", "Go-http-client/1.1", public)

        # humans
        uas = (
            "kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46",
            "kubectl/v1.30.5 (linux/amd64) kubernetes/74e84a9",
            "kubectl/v1.31.2 (windows/amd64) kubernetes/5864a46",
        )
        self.humans: list[tuple[_Actor, tuple[str, ...]]] = []
        for i in range(p.humans):
            base = _HUMAN_NAMES[i] if i < len(_HUMAN_NAMES) else f"user{i + 1}"
            groups = ("devs", "oncall", "system:authenticated") if i == 1 else ("devs", "system:authenticated")
            actor = _Actor(
                f"{base}@example.com", groups, f"10.20.{1 + i // 200}.{15 + i % 200}", uas[i % len(uas)], ""
            )  # per-namespace reason, filled per request
            k = min(len(p.namespaces), 2)
            team = tuple(sorted(rng.sample(p.namespaces, k))) if p.namespaces else ()
            self.humans.append((actor, team))
        self.ci: list[_Actor] = []
        for i in range(p.ci_accounts):
            name = _CI_NAMES[i] if i < len(_CI_NAMES) else f"deployer-{i + 1}"
            self.ci.append(
                self._sa(
                    "ci",
                    name,
                    f"10.30.0.{21 + i}",
                    "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
                    _rbac(
                        "ClusterRoleBinding",
                        f"ci-{name}",
                        "ClusterRole",
                        "ci-deployer",
                        "ServiceAccount",
                        f"{name}/ci",
                    ),
                )
            )

        # workloads
        self.deployments: list[_Deployment] = []
        for ns in p.namespaces:
            for name in rng.sample(_APP_NAMES, rng.choice((2, 2, 3))):
                dep = _Deployment(
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
                )
                for _ in range(dep.replicas):
                    dep.pods.append(self._new_pod(dep))
                self.deployments.append(dep)
        self.hpas = [d for d in self.deployments if d.name in ("frontend", "api", "gateway", "search")][:3]

    def _new_pod(self, dep: _Deployment) -> _Pod:
        node = self.rng.choice(self.nodes)
        node.next_pod_ip = node.next_pod_ip % 250 + 1
        return _Pod(
            f"{dep.rs_name}-{self.em.token(5)}",
            self.em.uuid(),
            node,
            f"10.244.{node.pod_cidr + 1}.{node.next_pod_ip}",
            self.em.hex(32),
        )

    def _spawn_all(self) -> None:
        rng = self.rng
        r = rng.randrange
        for node in self.nodes:
            self.spawn(r(10 * _SEC), self._kubelet_lease(node))
            self.spawn(r(300 * _SEC), self._kubelet_node_status(node))
            self.spawn(r(120 * _SEC), self._kubelet_authn(node))
            ua_sel = f"&fieldSelector=spec.nodeName%3D{node.name}"
            self._watch(node.actor, "/api/v1/pods", _ref("pods"), ua_sel)
            self._watch(node.actor, "/api/v1/nodes", _ref("nodes"), f"&fieldSelector=metadata.name%3D{node.name}")
            self._watch(node.actor, "/api/v1/services", _ref("services"))
            self._watch(node.actor, "/apis/storage.k8s.io/v1/csidrivers", _ref("csidrivers", group="storage.k8s.io"))
            self._watch(node.actor, "/apis/node.k8s.io/v1/runtimeclasses", _ref("runtimeclasses", group="node.k8s.io"))
            self._watch(
                node.proxy,
                "/api/v1/services",
                _ref("services"),
                "&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name",
            )
            self._watch(
                node.proxy,
                "/apis/discovery.k8s.io/v1/endpointslices",
                _ref("endpointslices", group="discovery.k8s.io"),
                "&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name",
            )
            self._watch(node.proxy, "/api/v1/nodes", _ref("nodes"), f"&fieldSelector=metadata.name%3D{node.name}")
        for dns in self.coredns:
            self._watch(
                dns,
                "/apis/discovery.k8s.io/v1/endpointslices",
                _ref("endpointslices", group="discovery.k8s.io"),
            )
            self._watch(dns, "/api/v1/services", _ref("services"))
            self._watch(dns, "/api/v1/namespaces", _ref("namespaces"))
        for path, res, group in (
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
        ):
            self._watch(self.kcm_informers, path, _ref(res, group=group))
        for path, res, group in (
            ("/api/v1/pods", "pods", ""),
            ("/api/v1/nodes", "nodes", ""),
            ("/api/v1/persistentvolumeclaims", "persistentvolumeclaims", ""),
            ("/apis/storage.k8s.io/v1/csinodes", "csinodes", "storage.k8s.io"),
            ("/apis/storage.k8s.io/v1/storageclasses", "storageclasses", "storage.k8s.io"),
            ("/apis/policy/v1/poddisruptionbudgets", "poddisruptionbudgets", "policy"),
        ):
            self._watch(self.scheduler, path, _ref(res, group=group))
        for res in ("pods", "services", "endpoints"):
            self._watch(self.prometheus, f"/api/v1/{res}", _ref(res))
        self.spawn(r(2 * _SEC), self._leader_lease(self.kcm, "kube-controller-manager"))
        self.spawn(r(2 * _SEC), self._leader_lease(self.sched_le, "kube-scheduler"))
        self.spawn(r(10 * _SEC), self._health(self.probe, "/livez", 10))
        self.spawn(r(10 * _SEC), self._health(self.probe, "/readyz", 10))
        self.spawn(r(15 * _SEC), self._health(self.lb_check, "/healthz", 15))
        self.spawn(r(30 * _SEC), self._metrics_scrape())
        self.spawn(r(600 * _SEC), self._stale_cron())
        for dep in self.hpas:
            self.spawn(r(15 * _SEC), self._hpa(dep))
        for ci in self.ci:
            self.spawn(self.exp_s(300), self._ci_pipeline(ci))
        for actor, team in self.humans:
            if team:
                self.spawn(self.exp_s(240), self._human(actor, team))

    # periodic actors -------------------------------------------------------------------------------
    def _lease_obj(
        self,
        ns: str,
        name: str,
        uid: str,
        rv: str,
        created: str,
        manager: str,
        spec: dict[str, Any],
        owner: _Node | None,
        touched: str,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": name,
            "namespace": ns,
            "uid": uid,
            "resourceVersion": rv,
            "creationTimestamp": created,
        }
        fields: dict[str, Any] = {"f:spec": {f"f:{k}": {} for k in spec}}
        if owner is not None:
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": owner.name, "uid": owner.uid}]
            fields["f:metadata"] = {"f:ownerReferences": {".": {}, f'k:{{"uid":"{owner.uid}"}}': {}}}
        meta["managedFields"] = [
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": "coordination.k8s.io/v1",
                "time": touched,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }
        ]
        return {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": meta, "spec": spec}

    def _kubelet_lease(self, node: _Node) -> _Proc:
        ns, clock = "kube-node-lease", self.em.clock
        rv = self.em.rv()
        uri = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{node.name}?timeout=10s"
        ref = _ref("leases", ns, node.name, group="coordination.k8s.io")
        touched = clock.sec(self.now - 10 * _SEC)
        while True:
            renew = clock.micro(self.now)
            spec = {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": renew}
            new_rv, now_s = self.em.rv(), clock.sec(self.now)
            req = self._lease_obj(ns, node.name, node.lease_uid, rv, node.lease_created, "kubelet", spec, node, touched)
            resp = self._lease_obj(
                ns, node.name, node.lease_uid, new_rv, node.lease_created, "kubelet", dict(spec), node, now_s
            )
            self.req(
                node.actor,
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
            yield self.jitter(10, 0.04)

    def _leader_lease(self, actor: _Actor, name: str) -> _Proc:
        em, clock, ns = self.em, self.em.clock, "kube-system"
        uid, rv, holder = em.uuid(), em.rv(), f"cp-1_{em.uuid()}"
        created = clock.sec(self.start - 18 * 86400 * _SEC)
        acquired = clock.micro(self.start - 3 * 86400 * _SEC - self.rng.randrange(86400 * _SEC))
        uri = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}?timeout=5s"
        ref = _ref("leases", ns, name, group="coordination.k8s.io")
        manager = actor.ua.split("/", 1)[0]
        touched = clock.sec(self.now - 2 * _SEC)
        while True:
            spec = {
                "holderIdentity": holder,
                "leaseDurationSeconds": 15,
                "acquireTime": acquired,
                "renewTime": clock.micro(self.now),
                "leaseTransitions": 2,
            }
            new_rv, now_s = em.rv(), clock.sec(self.now)
            req = self._lease_obj(ns, name, uid, rv, created, manager, spec, None, touched)
            resp = self._lease_obj(ns, name, uid, new_rv, created, manager, dict(spec), None, now_s)
            self.req(
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
            yield 2 * _SEC + self.rng.randrange(8000)

    def _kubelet_node_status(self, node: _Node) -> _Proc:
        types = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
        uri = f"/api/v1/nodes/{node.name}/status?timeout=10s"
        ref = _ref("nodes", name=node.name, subresource="status")
        while True:
            beat = self.em.clock.sec(self.now)
            body = {
                "status": {
                    "$setElementOrder/conditions": [{"type": t} for t in types],
                    "conditions": [{"lastHeartbeatTime": beat, "type": t} for t in types],
                }
            }
            self.req(
                node.actor,
                "patch",
                uri,
                ref,
                level="Request",
                req_obj=body,
                latency=3000 + self.rng.randrange(9000),
            )
            yield self.jitter(300, 0.01)

    def _kubelet_authn(self, node: _Node) -> _Proc:
        """Kubelet webhook authn/authz of API scrapes: TokenReview every 2 min, SAR every ~5 min (TTLs)."""
        tr_uri, tr_ref = (
            "/apis/authentication.k8s.io/v1/tokenreviews",
            _ref("tokenreviews", group="authentication.k8s.io"),
        )
        sar_uri = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        sar_ref = _ref("subjectaccessreviews", group="authorization.k8s.io")
        sar_due = self.now
        while True:
            self.req(node.actor, "create", tr_uri, tr_ref, code=201)
            if self.now >= sar_due:
                yield 1500 + self.rng.randrange(3000)
                self.req(node.actor, "create", sar_uri, sar_ref, code=201)
                sar_due = self.now + 300 * _SEC
            yield self.jitter(120, 0.05)

    def _watch(self, actor: _Actor, path: str, ref: dict[str, str], selector: str = "") -> None:
        def proc() -> _Proc:
            while True:
                timeout = 300 + self.rng.randrange(300)
                self.req(
                    actor,
                    "watch",
                    _watch_uri(path, self.em.rv(), timeout, selector),
                    ref,
                    stream=timeout * _SEC,
                )
                yield timeout * _SEC + 1000 + self.rng.randrange(40_000)

        # the first re-watch of an informer that was already running lands anywhere in the next 10 min
        self.spawn(self.rng.randrange(600 * _SEC), proc())

    def _health(self, actor: _Actor, path: str, period_s: int) -> _Proc:
        while True:
            self.req(actor, "get", path, None, latency=200 + self.rng.randrange(1500))
            yield period_s * _SEC + self.rng.randrange(3000)

    def _metrics_scrape(self) -> _Proc:
        while True:
            self.req(self.prometheus, "get", "/metrics", None, latency=40_000 + self.rng.randrange(60_000))
            yield 30 * _SEC + self.rng.randrange(5000)

    def _stale_cron(self) -> _Proc:
        """A forgotten cron script on a build box whose service-account token was revoked."""
        ns = self.p.namespaces[0] if self.p.namespaces else "default"
        while True:
            self.em.unauthenticated(
                self.now,
                "10.30.0.57",
                "python-requests/2.31.0",
                "list",
                f"/api/v1/namespaces/{ns}/pods",
                _ref("pods", ns),
            )
            yield 600 * _SEC + self.rng.randrange(2 * _SEC)

    def _hpa(self, dep: _Deployment) -> _Proc:
        ns, name = dep.ns, dep.name
        scale_uri = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"
        scale_ref = _ref("deployments", ns, name, "apps", subresource="scale")
        metrics_uri = f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=app%3D{name}"
        metrics_ref = _ref("pods", ns, group="metrics.k8s.io", version="v1beta1")
        status_uri = f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}/status"
        status_ref = _ref("horizontalpodautoscalers", ns, name, "autoscaling", "v2", "status")
        uid, created = self.em.uuid(), self.em.clock.sec(self.start - 9 * 86400 * _SEC)
        while True:
            self.req(self.hpa_ctrl, "get", scale_uri, scale_ref)
            yield 2000 + self.rng.randrange(4000)
            self.req(self.hpa_ctrl, "list", metrics_uri, metrics_ref, latency=4000 + self.rng.randrange(20_000))
            if self.rng.random() < 0.25:
                yield 25_000 + self.rng.randrange(10_000)
                rv = self.em.rv()
                util = 35 + self.rng.randrange(40)
                body = {
                    "kind": "HorizontalPodAutoscaler",
                    "apiVersion": "autoscaling/v2",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "uid": uid,
                        "resourceVersion": rv,
                        "creationTimestamp": created,
                    },
                    "spec": {
                        "scaleTargetRef": {"kind": "Deployment", "name": name, "apiVersion": "apps/v1"},
                        "minReplicas": 2,
                        "maxReplicas": 6,
                        "metrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "target": {"type": "Utilization", "averageUtilization": 70},
                                },
                            }
                        ],
                    },
                    "status": {
                        "currentReplicas": dep.replicas,
                        "desiredReplicas": dep.replicas,
                        "currentMetrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "current": {"averageValue": f"{util + 10}m", "averageUtilization": util},
                                },
                            }
                        ],
                        "conditions": [
                            {
                                "type": "AbleToScale",
                                "status": "True",
                                "lastTransitionTime": created,
                                "reason": "ReadyForNewScale",
                                "message": "recommended size matches current size",
                            }
                        ],
                    },
                }
                self.req(
                    self.hpa_ctrl,
                    "update",
                    status_uri,
                    status_ref,
                    level="Request",
                    req_obj=body,
                    obj_meta=(name, uid, rv),
                )
            yield 15 * _SEC + self.rng.randrange(20_000)

    # workload churn --------------------------------------------------------------------------------
    def _pod_status_patch(self, pod: _Pod, dep: _Deployment, phase: str) -> None:
        now = self.em.clock.sec(self.now)
        ready = phase == "Running"
        conds = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        if phase == "Pending":
            state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        elif phase == "Running":
            state = {"running": {"startedAt": now}}
        else:
            state = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": now,
                    "finishedAt": now,
                    "containerID": f"containerd://{pod.container_id}",
                }
            }
        cstatus: dict[str, Any] = {
            "image": dep.image,
            "imageID": "",
            "lastState": {},
            "name": "app",
            "ready": ready,
            "restartCount": 0,
            "started": ready,
            "state": state,
        }
        if phase != "Pending":
            cstatus["containerID"] = f"containerd://{pod.container_id}"
            cstatus["imageID"] = f"registry.example.com/{dep.ns}/{dep.name}@sha256:{pod.container_id[::-1]}"
        body = {
            "metadata": {"uid": pod.uid},
            "status": {
                "$setElementOrder/conditions": [{"type": c} for c in conds],
                "conditions": [
                    {
                        "lastProbeTime": None,
                        "lastTransitionTime": now,
                        "status": "True" if ready else "False",
                        "type": c,
                    }
                    for c in ("PodReadyToStartContainers", "Ready", "ContainersReady")
                ],
                "containerStatuses": [cstatus],
                "hostIP": pod.node.ip,
                "hostIPs": [{"ip": pod.node.ip}],
                "phase": "Running" if phase != "Pending" else "Pending",
                "podIP": pod.ip,
                "podIPs": [{"ip": pod.ip}],
                "startTime": now,
            },
        }
        uri = f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}/status"
        self.req(
            pod.node.actor,
            "patch",
            uri,
            _ref("pods", dep.ns, pod.name, subresource="status"),
            level="Request",
            req_obj=body,
            latency=2500 + self.rng.randrange(8000),
        )

    def _core_event(self, actor: _Actor, ns: str, involved: str) -> None:
        name = f"{involved}.{self.em.hex(8)}"
        self.req(
            actor,
            "create",
            f"/api/v1/namespaces/{ns}/events",
            _ref("events", ns),
            code=201,
            obj_meta=(name, None, None),
        )

    def _update_slice(self, dep: _Deployment) -> None:
        rv, prev = self.em.rv(), self.em.rv()
        meta = {
            "name": dep.slice_name,
            "generateName": f"{dep.name}-",
            "namespace": dep.ns,
            "uid": dep.slice_uid,
            "resourceVersion": prev,
            "generation": dep.revision,
            "creationTimestamp": self.em.clock.sec(self.start - 9 * 86400 * _SEC),
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": dep.name,
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": dep.name,
                    "uid": dep.svc_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }

        def obj(meta: dict[str, Any]) -> dict[str, Any]:
            return {
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": meta,
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [p.ip],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "namespace": dep.ns, "name": p.name, "uid": p.uid},
                        "nodeName": p.node.name,
                    }
                    for p in dep.pods
                ],
                "ports": [{"name": "http", "protocol": "TCP", "port": dep.port}],
            }

        uri = f"/apis/discovery.k8s.io/v1/namespaces/{dep.ns}/endpointslices/{dep.slice_name}"
        self.req(
            self.eps_ctrl,
            "update",
            uri,
            _ref("endpointslices", dep.ns, dep.slice_name, "discovery.k8s.io"),
            level="RequestResponse",
            req_obj=obj(meta),
            resp_obj=obj({**meta, "resourceVersion": rv}),
            obj_meta=(dep.slice_name, dep.slice_uid, prev),
        )

    def _rs_obj(self, dep: _Deployment, replicas: int, rs_hash: str, rs_uid: str | None) -> dict[str, Any]:
        labels = _labels(dep)
        labels["pod-template-hash"] = rs_hash
        meta: dict[str, Any] = {"name": f"{dep.name}-{rs_hash}", "namespace": dep.ns}
        if rs_uid:
            meta["uid"] = rs_uid
            meta["resourceVersion"] = self.em.rv()
        meta["creationTimestamp"] = None if rs_uid is None else self.em.clock.sec(self.now - 60 * _SEC)
        meta["labels"] = labels
        meta["annotations"] = {
            "deployment.kubernetes.io/desired-replicas": str(dep.replicas),
            "deployment.kubernetes.io/max-replicas": str(dep.replicas + 1),
            "deployment.kubernetes.io/revision": str(dep.revision),
        }
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": dep.name,
                "uid": dep.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        tpl = _template(dep, with_hash=False)
        tpl["metadata"]["labels"]["pod-template-hash"] = rs_hash
        return {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": tpl},
            "status": {"replicas": replicas},
        }

    def _deployment_status(self, dep: _Deployment, updated: int) -> None:
        rv = self.em.rv()
        obj = _deployment_manifest(dep)
        obj = {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {
                **obj["metadata"],
                "uid": dep.uid,
                "resourceVersion": rv,
                "generation": dep.generation,
                "annotations": {"deployment.kubernetes.io/revision": str(dep.revision)},
            },
            "spec": obj["spec"],
            "status": {
                "observedGeneration": dep.generation,
                "replicas": dep.replicas + 1,
                "updatedReplicas": updated,
                "readyReplicas": dep.replicas,
                "availableReplicas": dep.replicas,
            },
        }
        uri = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}/status"
        self.req(
            self.deploy_ctrl,
            "update",
            uri,
            _ref("deployments", dep.ns, dep.name, "apps", subresource="status"),
            level="Request",
            req_obj=obj,
            obj_meta=(dep.name, dep.uid, rv),
        )

    def _rollout(self, dep: _Deployment) -> _Proc:
        """A RollingUpdate (maxSurge 1, maxUnavailable 0): new ReplicaSet, then pod by pod."""
        em, rng = self.em, self.rng
        dep.rolling = True
        dep.generation += 1
        dep.revision += 1
        old_hash = dep.rs_hash
        old_pods = list(dep.pods)
        dep.rs_hash, dep.rs_uid = em.token(10), em.uuid()
        ns = dep.ns
        yield 4000 + rng.randrange(20_000)
        self.req(
            self.deploy_ctrl,
            "create",
            f"/apis/apps/v1/namespaces/{ns}/replicasets",
            _ref("replicasets", ns, group="apps"),
            code=201,
            level="Request",
            req_obj=self._rs_obj(dep, 1, dep.rs_hash, None),
            obj_meta=(dep.rs_name, None, None),
        )
        yield 3000 + rng.randrange(10_000)
        self._deployment_status(dep, 0)
        self._core_event(self.deploy_ctrl, ns, dep.name)
        for i in range(dep.replicas):
            yield 2000 + rng.randrange(8000)
            if i > 0:
                self.req(
                    self.deploy_ctrl,
                    "update",
                    f"/apis/apps/v1/namespaces/{ns}/replicasets/{dep.rs_name}",
                    _ref("replicasets", ns, dep.rs_name, "apps"),
                    level="Request",
                    req_obj=self._rs_obj(dep, i + 1, dep.rs_hash, dep.rs_uid),
                    obj_meta=(dep.rs_name, dep.rs_uid, em.rv()),
                )
                yield 2000 + rng.randrange(6000)
            pod = self._new_pod(dep)
            yield from self._start_pod(dep, pod)
            dep.pods.append(pod)
            yield 3000 + rng.randrange(15_000)
            self._update_slice(dep)
            if old_pods:
                old = old_pods.pop(0)
                yield 5000 + rng.randrange(20_000)
                remaining = len(old_pods)
                self.req(
                    self.deploy_ctrl,
                    "update",
                    f"/apis/apps/v1/namespaces/{ns}/replicasets/{dep.name}-{old_hash}",
                    _ref("replicasets", ns, f"{dep.name}-{old_hash}", "apps"),
                    level="Request",
                    req_obj=self._rs_obj(dep, remaining, old_hash, em.uuid()),
                    obj_meta=(f"{dep.name}-{old_hash}", None, em.rv()),
                )
                yield from self._stop_pod(dep, old)
        yield 1000 + rng.randrange(20_000)
        self._deployment_status(dep, dep.replicas)
        dep.rolling = False

    def _start_pod(self, dep: _Deployment, pod: _Pod) -> _Proc:
        em, rng, ns = self.em, self.rng, dep.ns
        tpl = _template(dep, with_hash=True)
        tpl["metadata"] = {
            "generateName": f"{dep.rs_name}-",
            "namespace": ns,
            "creationTimestamp": None,
            "labels": tpl["metadata"]["labels"],
            **({"annotations": tpl["metadata"]["annotations"]} if "annotations" in tpl["metadata"] else {}),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": dep.rs_name,
                    "uid": dep.rs_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        body = {"kind": "Pod", "apiVersion": "v1", **tpl, "status": {}}
        self.req(
            self.rs_ctrl,
            "create",
            f"/api/v1/namespaces/{ns}/pods",
            _ref("pods", ns),
            code=201,
            level="Request",
            req_obj=body,
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
        self.req(
            self.scheduler,
            "create",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}/binding",
            _ref("pods", ns, pod.name, subresource="binding"),
            code=201,
            level="RequestResponse",
            req_obj=binding,
            resp_obj=_status_success(),
            obj_meta=(pod.name, pod.uid, None),
        )
        yield 1000 + rng.randrange(3000)
        ev_name = f"{pod.name}.{em.hex(8)}"
        self.req(
            self.scheduler,
            "create",
            f"/apis/events.k8s.io/v1/namespaces/{ns}/events",
            _ref("events", ns, group="events.k8s.io"),
            code=201,
            obj_meta=(ev_name, None, None),
        )
        yield 60_000 + rng.randrange(300_000)
        self._pod_status_patch(pod, dep, "Pending")
        for _ in range(2):  # Pulled/Created, Started
            yield 300_000 + rng.randrange(2 * _SEC)
            self._core_event(pod.node.actor, ns, pod.name)
        yield 2 * _SEC + rng.randrange(6 * _SEC)
        self._pod_status_patch(pod, dep, "Running")

    def _stop_pod(self, dep: _Deployment, pod: _Pod) -> _Proc:
        rng, ns = self.rng, dep.ns
        self.req(
            self.rs_ctrl,
            "delete",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}",
            _ref("pods", ns, pod.name),
            level="Request",
            req_obj={"kind": "DeleteOptions", "apiVersion": "v1"},
        )
        if pod in dep.pods:
            dep.pods.remove(pod)
        yield 2000 + rng.randrange(5000)
        self._core_event(self.rs_ctrl, ns, dep.rs_name)
        yield 5000 + rng.randrange(15_000)
        self._update_slice(dep)
        yield 1 * _SEC + rng.randrange(8 * _SEC)
        self._core_event(pod.node.actor, ns, pod.name)  # Killing
        yield 500_000 + rng.randrange(2 * _SEC)
        self._pod_status_patch(pod, dep, "Terminated")
        yield 20_000 + rng.randrange(200_000)
        self.req(
            pod.node.actor,
            "delete",
            f"/api/v1/namespaces/{ns}/pods/{pod.name}",
            _ref("pods", ns, pod.name),
            level="Request",
            req_obj={
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": pod.uid},
            },
        )

    def _bump_version(self, dep: _Deployment) -> None:
        major, minor, patch = dep.version.split(".")
        if self.rng.random() < 0.8:
            dep.version = f"{major}.{minor}.{int(patch) + 1}"
        else:
            dep.version = f"{major}.{int(minor) + 1}.0"

    # CI --------------------------------------------------------------------------------------------
    def _ci_pipeline(self, ci: _Actor) -> _Proc:
        rng = self.rng
        while True:
            candidates = [d for d in self.deployments if not d.rolling]
            if candidates:
                dep = rng.choice(candidates)
                ns, name = dep.ns, dep.name
                ref = _ref("deployments", ns, name, "apps")
                base = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
                self.req(ci, "get", base, ref)
                yield 150_000 + rng.randrange(300_000)
                self._bump_version(dep)
                patch = {
                    "spec": {
                        "template": {
                            "spec": {
                                "$setElementOrder/containers": [{"name": "app"}],
                                "containers": [{"image": dep.image, "name": "app"}],
                            }
                        }
                    }
                }
                self.req(
                    ci,
                    "patch",
                    base + "?fieldManager=kubectl-set",
                    ref,
                    level="Request",
                    req_obj=patch,
                    latency=6000 + rng.randrange(15_000),
                )
                self.spawn(1000, self._rollout(dep))
                yield 400_000 + rng.randrange(600_000)  # kubectl rollout status
                self.req(ci, "get", base, ref)
                yield 20_000 + rng.randrange(30_000)
                wait = (30 + 18 * dep.replicas + rng.randrange(20)) * _SEC
                watch = _watch_uri(
                    f"/apis/apps/v1/namespaces/{ns}/deployments",
                    self.em.rv(),
                    300 + rng.randrange(300),
                    f"&fieldSelector=metadata.name%3D{name}",
                )
                self.req(ci, "watch", watch, _ref("deployments", ns, group="apps"), stream=wait)
            yield self.exp_s(900)

    # humans ----------------------------------------------------------------------------------------
    def _ns_reason(self, ns: str) -> str:
        return _rbac("RoleBinding", f"devs-edit/{ns}", "ClusterRole", "edit", "Group", "devs")

    def _working(self) -> bool:
        lo, hi = self.p.working_hours
        return lo <= (self.now // _SEC // 3600) % 24 < hi

    def _human(self, actor: _Actor, team: tuple[str, ...]) -> _Proc:
        rng = self.rng
        commands: list[tuple[Callable[[_Actor, str], _Proc], int]] = [
            (self._kubectl_get_pods, 24),
            (self._kubectl_describe, 12),
            (self._kubectl_get_other, 16),
            (self._kubectl_logs, 12),
            (self._kubectl_apply, 6),
            (self._kubectl_restart, 2),
            (self._kubectl_create, 1),
            (self._kubectl_forbidden, 3),
            (self._kubectl_not_found, 3),
        ]
        funcs, weights = [c for c, _ in commands], [w for _, w in commands]
        while True:
            if not self._working():
                yield self.exp_s(1800)
                continue
            ns = rng.choice(team)
            if rng.random() < 0.15:  # cached OIDC id-token expired: one 401, the plugin refreshes, retry
                self.em.unauthenticated(
                    self.now,
                    actor.ip,
                    actor.ua,
                    "list",
                    f"/api/v1/namespaces/{ns}/pods?limit=500",
                    _ref("pods", ns),
                )
                yield 800_000 + rng.randrange(1500_000)
            if rng.random() < 0.25:  # cold discovery cache
                for path in ("/api", "/apis"):
                    self.req(
                        actor,
                        "get",
                        f"{path}?timeout=32s",
                        None,
                        reason=_rbac(
                            "ClusterRoleBinding",
                            "system:discovery",
                            "ClusterRole",
                            "system:discovery",
                            "Group",
                            "system:authenticated",
                        ),
                    )
                    yield 20_000 + rng.randrange(40_000)
            for _ in range(rng.randrange(3, 10)):
                if rng.random() < 0.3:
                    ns = rng.choice(team)
                yield from rng.choices(funcs, weights)[0](actor, ns)
                yield int((2 + rng.expovariate(1 / 20)) * _SEC)
            yield self.exp_s(900)

    def _deps_in(self, ns: str) -> list[_Deployment]:
        return [d for d in self.deployments if d.ns == ns] or self.deployments

    def _kubectl_get_pods(self, actor: _Actor, ns: str) -> _Proc:
        self.req(
            actor,
            "list",
            f"/api/v1/namespaces/{ns}/pods?limit=500",
            _ref("pods", ns),
            reason=self._ns_reason(ns),
            latency=3000 + self.rng.randrange(15_000),
        )
        yield 0

    def _kubectl_get_other(self, actor: _Actor, ns: str) -> _Proc:
        res, group, ver = self.rng.choice(
            (
                ("deployments", "apps", "v1"),
                ("deployments", "apps", "v1"),
                ("services", "", "v1"),
                ("configmaps", "", "v1"),
                ("events", "", "v1"),
                ("replicasets", "apps", "v1"),
                ("horizontalpodautoscalers", "autoscaling", "v2"),
                ("ingresses", "networking.k8s.io", "v1"),
            )
        )
        prefix = f"/apis/{group}/{ver}" if group else "/api/v1"
        self.req(
            actor,
            "list",
            f"{prefix}/namespaces/{ns}/{res}?limit=500",
            _ref(res, ns, group=group, version=ver),
            reason=self._ns_reason(ns),
        )
        yield 0

    def _kubectl_describe(self, actor: _Actor, ns: str) -> _Proc:
        dep = self.rng.choice(self._deps_in(ns))
        if not dep.pods:
            return
        pod = self.rng.choice(dep.pods)
        self.req(
            actor,
            "get",
            f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}",
            _ref("pods", dep.ns, pod.name),
            reason=self._ns_reason(dep.ns),
        )
        yield 8000 + self.rng.randrange(20_000)
        sel = f"involvedObject.name%3D{pod.name}%2CinvolvedObject.namespace%3D{dep.ns}%2CinvolvedObject.uid%3D{pod.uid}"
        self.req(
            actor,
            "list",
            f"/api/v1/namespaces/{dep.ns}/events?fieldSelector={sel}&limit=500",
            _ref("events", dep.ns),
            reason=self._ns_reason(dep.ns),
        )

    def _kubectl_logs(self, actor: _Actor, ns: str) -> _Proc:
        dep = self.rng.choice(self._deps_in(ns))
        if not dep.pods:
            return
        pod = self.rng.choice(dep.pods)
        reason = self._ns_reason(dep.ns)
        self.req(
            actor,
            "get",
            f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}",
            _ref("pods", dep.ns, pod.name),
            reason=reason,
        )
        yield 10_000 + self.rng.randrange(30_000)
        if self.rng.random() < 0.3:
            query, stream = "container=app&follow=true", (5 + self.rng.randrange(120)) * _SEC
        else:
            query, stream = "container=app&tailLines=200", 30_000 + self.rng.randrange(300_000)
        self.req(
            actor,
            "get",
            f"/api/v1/namespaces/{dep.ns}/pods/{pod.name}/log?{query}",
            _ref("pods", dep.ns, pod.name, subresource="log"),
            reason=reason,
            stream=stream,
        )

    def _kubectl_apply(self, actor: _Actor, ns: str) -> _Proc:
        """Server-side apply: the patch body is the whole (YAML) manifest, transcoded to JSON."""
        dep = self.rng.choice(self._deps_in(ns))
        rollout = not dep.rolling and self.rng.random() < 0.5
        if rollout:
            self._bump_version(dep)
        uri = (
            f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}"
            "?fieldManager=kubectl&fieldValidation=Strict&force=false"
        )
        self.req(
            actor,
            "patch",
            uri,
            _ref("deployments", dep.ns, dep.name, "apps"),
            level="Request",
            req_obj=_deployment_manifest(dep),
            reason=self._ns_reason(dep.ns),
            latency=8000 + self.rng.randrange(20_000),
        )
        if rollout:
            self.spawn(1000, self._rollout(dep))
        yield 0

    def _kubectl_restart(self, actor: _Actor, ns: str) -> _Proc:
        dep = self.rng.choice(self._deps_in(ns))
        if dep.rolling:
            return
        dep.restarted_at = self.em.clock.sec(self.now)
        body = {
            "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": dep.restarted_at}}}}
        }
        self.req(
            actor,
            "patch",
            f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}?fieldManager=kubectl-rollout",
            _ref("deployments", dep.ns, dep.name, "apps"),
            level="Request",
            req_obj=body,
            reason=self._ns_reason(dep.ns),
        )
        self.spawn(1000, self._rollout(dep))
        yield 0

    def _kubectl_create(self, actor: _Actor, ns: str) -> _Proc:
        """``kubectl apply -f`` of a new Deployment (client-side apply -> create)."""
        rng, em = self.rng, self.em
        taken = {d.name for d in self.deployments if d.ns == ns}
        free = [n for n in _APP_NAMES if n not in taken]
        if not free:
            return
        dep = _Deployment(
            ns,
            rng.choice(free),
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
        )
        dep.slice_name = f"{dep.name}-{em.token(5)}"
        manifest = _deployment_manifest(dep)
        manifest["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": orjson.dumps(manifest).decode() + "\n"
        }
        uri = f"/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
        self.req(
            actor,
            "create",
            uri,
            _ref("deployments", ns, group="apps"),
            code=201,
            level="Request",
            req_obj=manifest,
            reason=self._ns_reason(ns),
            obj_meta=(dep.name, None, None),
        )
        self.deployments.append(dep)
        dep.rolling = True
        self.spawn(3000, self._scale_up_new(dep))
        yield 0

    def _scale_up_new(self, dep: _Deployment) -> _Proc:
        self.req(
            self.deploy_ctrl,
            "create",
            f"/apis/apps/v1/namespaces/{dep.ns}/replicasets",
            _ref("replicasets", dep.ns, group="apps"),
            code=201,
            level="Request",
            req_obj=self._rs_obj(dep, dep.replicas, dep.rs_hash, None),
            obj_meta=(dep.rs_name, None, None),
        )
        yield 5000 + self.rng.randrange(10_000)
        pod = self._new_pod(dep)
        yield from self._start_pod(dep, pod)
        dep.pods.append(pod)
        yield 5000
        self._deployment_status(dep, 1)
        dep.rolling = False

    def _kubectl_forbidden(self, actor: _Actor, ns: str) -> _Proc:
        u = actor.username
        choice = self.rng.randrange(4)
        if choice == 0:
            uri, verb, ref = "/api/v1/nodes?limit=500", "list", _ref("nodes")
            st = _forbidden(
                f'nodes is forbidden: User "{u}" cannot list resource "nodes" in API group "" at the cluster scope',
                {"kind": "nodes"},
            )
        elif choice == 1:
            uri, verb, ref = (
                "/api/v1/namespaces/kube-system/pods?limit=500",
                "list",
                _ref("pods", "kube-system"),
            )
            st = _forbidden(
                f'pods is forbidden: User "{u}" cannot list resource "pods" in API group "" in the '
                'namespace "kube-system"',
                {"kind": "pods"},
            )
        elif choice == 2:
            uri, verb, ref = (
                "/api/v1/namespaces?fieldManager=kubectl-create&fieldValidation=Strict",
                "create",
                _ref("namespaces"),
            )
            st = _forbidden(
                f'namespaces is forbidden: User "{u}" cannot create resource "namespaces" in API group "" '
                "at the cluster scope",
                {"kind": "namespaces"},
            )
        else:
            others = [n for n in self.p.namespaces if n != ns] or [ns]
            other = self.rng.choice(others)
            dep = self.rng.choice(self._deps_in(other))
            uri, verb = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}", "delete"
            ref = _ref("deployments", dep.ns, dep.name, "apps")
            st = _forbidden(
                f'deployments.apps "{dep.name}" is forbidden: User "{u}" cannot delete resource '
                f'"deployments" in API group "apps" in the namespace "{dep.ns}"',
                {"name": dep.name, "group": "apps", "kind": "deployments"},
            )
        self.req(actor, verb, uri, ref, code=403, status=st, decision="forbid", reason="")
        yield 0

    def _kubectl_not_found(self, actor: _Actor, ns: str) -> _Proc:
        dep = self.rng.choice(self._deps_in(ns))
        if self.rng.random() < 0.5:
            name = dep.name[:-1] if len(dep.name) > 3 else dep.name + "s"  # a typo
            uri = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{name}"
            ref = _ref("deployments", dep.ns, name, "apps")
            st = _not_found(
                f'deployments.apps "{name}" not found', {"name": name, "group": "apps", "kind": "deployments"}
            )
        else:
            name = f"{dep.name}-{self.em.token(10)}-{self.em.token(5)}"  # a pod that is already gone
            uri, ref = f"/api/v1/namespaces/{dep.ns}/pods/{name}", _ref("pods", dep.ns, name)
            st = _not_found(f'pods "{name}" not found', {"name": name, "kind": "pods"})
        self.req(actor, "get", uri, ref, code=404, status=st, reason=self._ns_reason(dep.ns))
        yield 0


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def benign_events(
    profile: ClusterProfile, *, duration_s: float | None = None, count: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield benign audit Events in stageTimestamp order, starting at ``profile.start``.

    Stops after ``duration_s`` simulated seconds or ``count`` events, whichever comes first; with
    neither it is infinite. Requests still in flight at the end (e.g. open watches) are cut, as in a
    real log window, so some auditIDs lack their later stages.
    """
    sim = _Sim(profile)
    end = None if duration_s is None else sim.start + int(duration_s * _SEC)
    n = 0
    if count is not None and count <= 0:
        return
    for ts, ev in sim.run():
        if end is not None and ts >= end:
            return
        yield ev
        n += 1
        if count is not None and n >= count:
            return


def _attacker(sim: _Sim) -> _Actor:
    """The stolen token: CI's first service account, used from outside with an older kubectl."""
    if sim.ci:
        ci = sim.ci[0]
        username, uid, extra = ci.username, ci.uid, ci.extra
    else:
        username, uid = "system:serviceaccount:ci:deployer", sim.em.uuid()
        extra = (("authentication.kubernetes.io/credential-id", f"JTI={sim.em.uuid()}"),)
    sa = username.rsplit(":", 1)[1]
    return _Actor(
        username,
        ("system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"),
        "203.0.113.77",
        "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
        _rbac("ClusterRoleBinding", f"ci-{sa}", "ClusterRole", "ci-deployer", "ServiceAccount", f"{sa}/ci"),
        uid=uid,
        extra=extra,
    )


def attack_events(
    profile: ClusterProfile, *, at: datetime, target_pod: tuple[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """A small attack story starting at ``at``, as ``(technique, event)`` pairs in stageTimestamp order.

    Every returned event is malicious (or a direct consequence of a malicious request); the technique
    names are the keys of :data:`ATTACK_TECHNIQUES`. Events are standard audit Events without any label.
    The actor is a leaked token of ``system:serviceaccount:ci:deployer`` used from 203.0.113.77 with
    kubectl v1.29 (SPDY, so exec is ``create pods/exec``):

    1. ``permission-discovery``: SelfSubjectRulesReview (``kubectl auth can-i --list``);
    2. ``pod-exec``: ``kubectl exec`` into ``target_pod`` (namespace, name) reading the SA token
       (RequestReceived, ResponseStarted 101, ResponseComplete 101);
    3. ``privileged-hostpath-workload``: Deployment ``default/node-debugger`` with a privileged container
       and a hostPath ``/`` volume, and the ReplicaSet and Pod that the controllers create from it;
    4. ``cluster-admin-rolebinding``: RoleBinding ``default/ci-admin`` -> ClusterRole ``cluster-admin``;
    5. ``secrets-list-all-namespaces``: ``list secrets`` at ``/api/v1/secrets?limit=500``;
    6. ``anonymous-access-binding``: RoleBinding ``kube-system/system:public-view`` -> ClusterRole ``view``
       for User ``system:anonymous``;
    7. ``anonymous-access``: ``system:anonymous`` lists ``kube-system`` configmaps, allowed.

    ``target_pod`` defaults to the first pod of the profile's first Deployment at ``profile.start``.
    """
    sim = _Sim(profile)
    if target_pod is None:
        if sim.deployments and sim.deployments[0].pods:
            d0 = sim.deployments[0]
            target_pod = (d0.ns, d0.pods[0].name)
        else:
            target_pod = ("default", "web-7c9d8f6b5d-x2k9p")
    em = _Emitter(random.Random(f"auditwatch-synth-attack:{profile.seed}:{at.isoformat()}"))
    return _attack_story(em, _to_us(at), _attacker(sim), target_pod)


def _attack_story(em: _Emitter, t0: int, actor: _Actor, target: tuple[str, str]) -> list[tuple[str, dict[str, Any]]]:
    labels: dict[str, str] = {}
    rng = em.rng
    t = t0

    def req(technique: str, dt_s: float, *args: Any, **kw: Any) -> str:
        nonlocal t
        t += int(dt_s * _SEC) + rng.randrange(_SEC // 2)
        aid = em.request(t, *args, **kw)
        labels[aid] = technique
        return aid

    # 1. what can this token do?
    req(
        "permission-discovery",
        0,
        actor,
        "create",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        _ref("selfsubjectrulesreviews", group="authorization.k8s.io"),
        code=201,
        level="Request",
        req_obj={
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"namespace": "default"},
            "status": {"resourceRules": None, "nonResourceRules": None, "incomplete": False},
        },
    )
    # 2. exec into a workload and read its service-account token
    ns, pod = target
    query = (
        "command=sh&command=-c&command=cat%20%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
        "&container=app&stdin=true&stdout=true&tty=true"
    )
    req(
        "pod-exec",
        25,
        actor,
        "create",
        f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{query}",
        _ref("pods", ns, pod, subresource="exec"),
        code=101,
        stream=(2 + rng.randrange(4)) * _SEC,
    )
    # 3. a privileged Deployment mounting the node's root filesystem
    name, dep_uid, rs_hash = "node-debugger", em.uuid(), em.token(10)
    rs_uid = em.uuid()
    labels_ = {"app": name}

    def spec() -> dict[str, Any]:
        return {
            "volumes": [{"name": "host", "hostPath": {"path": "/", "type": ""}}],
            "containers": [
                {
                    "name": "debugger",
                    "image": "docker.io/library/alpine:3.20",
                    "command": ["sleep", "infinity"],
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"privileged": True},
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        }

    deployment = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": None, "labels": dict(labels_)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels_)},
            "template": {"metadata": {"creationTimestamp": None, "labels": dict(labels_)}, "spec": spec()},
            "strategy": {},
        },
        "status": {},
    }
    req(
        "privileged-hostpath-workload",
        60,
        actor,
        "create",
        "/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
        _ref("deployments", "default", group="apps"),
        code=201,
        level="Request",
        req_obj=deployment,
        obj_meta=(name, None, None),
    )
    cp = "10.0.0.10"
    kcm_ua = f"kube-controller-manager/{K8S} (linux/amd64) kubernetes/{_COMMIT}"

    def ctrl(sa: str) -> _Actor:
        return _Actor(
            f"system:serviceaccount:kube-system:{sa}",
            ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
            cp,
            f"{kcm_ua}/system:serviceaccount:kube-system:{sa}",
            _rbac(
                "ClusterRoleBinding",
                f"system:controller:{sa}",
                "ClusterRole",
                f"system:controller:{sa}",
                "ServiceAccount",
                f"{sa}/kube-system",
            ),
            uid=em.uuid(),
            extra=(("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}"),),
        )

    pod_labels = {**labels_, "pod-template-hash": rs_hash}
    owner = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": dep_uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    rs = {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": f"{name}-{rs_hash}",
            "namespace": "default",
            "creationTimestamp": None,
            "labels": dict(pod_labels),
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": "1",
                "deployment.kubernetes.io/max-replicas": "2",
                "deployment.kubernetes.io/revision": "1",
            },
            "ownerReferences": owner,
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(pod_labels)},
            "template": {"metadata": {"creationTimestamp": None, "labels": dict(pod_labels)}, "spec": spec()},
        },
        "status": {"replicas": 0},
    }
    req(
        "privileged-hostpath-workload",
        0.01,
        ctrl("deployment-controller"),
        "create",
        "/apis/apps/v1/namespaces/default/replicasets",
        _ref("replicasets", "default", group="apps"),
        code=201,
        level="Request",
        req_obj=rs,
        obj_meta=(f"{name}-{rs_hash}", None, None),
    )
    pod_obj = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": f"{name}-{rs_hash}-",
            "namespace": "default",
            "creationTimestamp": None,
            "labels": dict(pod_labels),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{name}-{rs_hash}",
                    "uid": rs_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec(),
        "status": {},
    }
    req(
        "privileged-hostpath-workload",
        0.01,
        ctrl("replicaset-controller"),
        "create",
        "/api/v1/namespaces/default/pods",
        _ref("pods", "default"),
        code=201,
        level="Request",
        req_obj=pod_obj,
    )
    # 4. cluster-admin for the stolen identity (a RoleBinding, which draws less attention)
    sa_subject = actor.username.rsplit(":", 2)
    rb = {
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "ci-admin", "namespace": "default", "creationTimestamp": None},
        "subjects": [{"kind": "ServiceAccount", "name": sa_subject[2], "namespace": sa_subject[1]}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    }
    rb_uid, rb_rv = em.uuid(), em.rv()
    rb_resp = {
        **rb,
        "metadata": {
            "name": "ci-admin",
            "namespace": "default",
            "uid": rb_uid,
            "resourceVersion": rb_rv,
            "creationTimestamp": em.clock.sec(t + 70 * _SEC),
        },
    }
    req(
        "cluster-admin-rolebinding",
        65,
        actor,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings?fieldManager=kubectl-create"
        "&fieldValidation=Strict",
        _ref("rolebindings", "default", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=rb,
        resp_obj=rb_resp,
        obj_meta=("ci-admin", None, None),
    )
    # 5. dump every secret in the cluster
    req(
        "secrets-list-all-namespaces",
        50,
        actor,
        "list",
        "/api/v1/secrets?limit=500",
        _ref("secrets"),
        latency=40_000 + rng.randrange(80_000),
    )
    # 6. a backdoor for unauthenticated access
    anon_rb = {
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "system:public-view", "namespace": "kube-system", "creationTimestamp": None},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:anonymous"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    }
    anon_resp = {
        **anon_rb,
        "metadata": {
            "name": "system:public-view",
            "namespace": "kube-system",
            "uid": em.uuid(),
            "resourceVersion": em.rv(),
            "creationTimestamp": em.clock.sec(t + 130 * _SEC),
        },
    }
    req(
        "anonymous-access-binding",
        55,
        actor,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings?fieldManager=kubectl-create"
        "&fieldValidation=Strict",
        _ref("rolebindings", "kube-system", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=anon_rb,
        resp_obj=anon_resp,
        obj_meta=("system:public-view", None, None),
    )
    # 7. ... and use it from curl, without credentials
    anon = _Actor(
        "system:anonymous",
        ("system:unauthenticated",),
        actor.ip,
        "curl/8.5.0",
        _rbac("RoleBinding", "system:public-view/kube-system", "ClusterRole", "view", "User", "system:anonymous"),
    )
    req(
        "anonymous-access",
        40,
        anon,
        "list",
        "/api/v1/namespaces/kube-system/configmaps",
        _ref("configmaps", "kube-system"),
    )
    out: list[tuple[str, dict[str, Any]]] = []
    while em.out:
        _, _, ev = heapq.heappop(em.out)
        out.append((labels[ev["auditID"]], ev))
    return out


def demo_profile(seed: int = 7) -> ClusterProfile:
    """The profile behind :func:`demo_events`: 10 nodes, default namespaces/users."""
    return ClusterProfile(nodes=10, seed=seed)


_DEMO_SECONDS: Final = 20 * 60
_DEMO_ATTACK_AT_S: Final = 12 * 60 + 7


def _demo(seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    profile = demo_profile(seed)
    sim = _Sim(profile)
    end = sim.start + _DEMO_SECONDS * _SEC
    at = sim.start + _DEMO_ATTACK_AT_S * _SEC
    benign: list[tuple[int, dict[str, Any]]] = []
    target: tuple[str, str] | None = None
    for ts, ev in sim.run():
        if ts >= end:
            break
        if target is None and ts >= at:  # exec into a pod that exists at that moment
            live = [d for d in sim.deployments if d.pods and not d.rolling] or [d for d in sim.deployments if d.pods]
            dep = live[0]
            target = (dep.ns, dep.pods[0].name)
        benign.append((ts, ev))
    if target is None:
        target = (sim.deployments[0].ns, sim.deployments[0].pods[0].name)
    em = _Emitter(random.Random(f"auditwatch-synth-attack:{seed}"))
    story = _attack_story(em, at, _attacker(sim), target)
    labels = {ev["auditID"]: tech for tech, ev in story}
    merged = benign + [
        (_to_us(datetime.strptime(ev["stageTimestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")), ev) for _, ev in story
    ]
    merged.sort(key=lambda pair: pair[0])  # stable: benign first on ties
    return [ev for _, ev in merged], labels


def demo_events(seed: int = 7) -> list[dict[str, Any]]:
    """~20 min of a 10-node cluster (a few thousand events), attack story at ~12 min, by stageTimestamp."""
    return _demo(seed)[0]


def demo_attack_labels(seed: int = 7) -> dict[str, str]:
    """auditID -> technique (:data:`ATTACK_TECHNIQUES`) of the attack events in ``demo_events(seed)``."""
    return _demo(seed)[1]


def write_jsonl(events: Iterable[dict[str, Any]], path: Path, *, gzip_: bool = False) -> int:
    """Write one compact JSON object per line and return the count. gzip output is reproducible (mtime 0)."""
    path = Path(path)
    n = 0
    with open(path, "wb") as raw:
        if gzip_:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                for ev in events:
                    gz.write(orjson.dumps(ev) + b"\n")
                    n += 1
        else:
            buf: list[bytes] = []
            for ev in events:
                buf.append(orjson.dumps(ev))
                n += 1
                if len(buf) >= 4096:
                    raw.write(b"\n".join(buf) + b"\n")
                    buf.clear()
            if buf:
                raw.write(b"\n".join(buf) + b"\n")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m auditwatch.synth", description=__doc__.splitlines()[0] if __doc__ else None
    )
    ap.add_argument("--out", required=True, type=Path, help="output .jsonl (or .jsonl.gz) path")
    ap.add_argument("--count", type=int, help="number of benign events (default 10000 unless --duration)")
    ap.add_argument("--duration", type=float, help="simulated seconds of benign traffic")
    ap.add_argument("--demo", action="store_true", help="write demo_events(seed) (20 min, 10 nodes, with attack)")
    ap.add_argument("--seed", type=int, default=None, help="seed (default 7 for --demo, 1 otherwise)")
    ap.add_argument("--nodes", type=int, default=20, help="number of nodes (benign mode)")
    ap.add_argument("--gzip", action="store_true", help="gzip the output (implied by a .gz suffix)")
    args = ap.parse_args(argv)
    use_gzip = bool(args.gzip or args.out.suffix == ".gz")
    if args.demo:
        events: Iterable[dict[str, Any]] = demo_events(7 if args.seed is None else args.seed)
    else:
        count = args.count if args.count is not None or args.duration is not None else 10_000
        profile = ClusterProfile(nodes=args.nodes, seed=1 if args.seed is None else args.seed)
        events = benign_events(profile, duration_s=args.duration, count=count)
    n = write_jsonl(events, args.out, gzip_=use_gzip)
    print(f"wrote {n} events to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
