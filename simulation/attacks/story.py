"""The attack story: seven labelled steps by a leaked CI token, from discovery to anonymous access.

:func:`attack_events` returns it on its own; :mod:`simulation.demo` mixes it into benign traffic, and
campaigns can run it as technique ``synth.story``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, Final

from simulation.attacks.cursor import RequestCursor, list_all_secrets, rules_review
from simulation.benign import ClusterSimulation
from simulation.clock import SECOND, epoch_us
from simulation.cluster import CONTROL_PLANE_IP, KCM_USER_AGENT, Cluster, ClusterProfile
from simulation.emitter import Actor, Emitter, Event, exec_uri, object_ref, rbac_reason

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
_ATTACKER_IP: Final = "203.0.113.77"
_ATTACKER_UA: Final = "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625"
_READ_SA_TOKEN: Final = ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token"]


def stolen_ci_identity(cluster: Cluster, em: Emitter) -> Actor:
    """The stolen token: CI's first service account, used from outside with an older kubectl.

    Without CI accounts it is a made-up ``ci:deployer`` whose ids come from ``em``.
    """
    if cluster.ci:
        ci = cluster.ci[0]
        username, uid, extra = ci.username, ci.uid, ci.extra
    else:
        username, uid = "system:serviceaccount:ci:deployer", em.uuid()
        extra = (("authentication.kubernetes.io/credential-id", f"JTI={em.uuid()}"),)
    sa = username.rsplit(":", 1)[1]
    return Actor(
        username,
        ("system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"),
        _ATTACKER_IP,
        _ATTACKER_UA,
        rbac_reason("ClusterRoleBinding", f"ci-{sa}", "ClusterRole", "ci-deployer", "ServiceAccount", f"{sa}/ci"),
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
    sim = ClusterSimulation(profile)
    deployments = sim.cluster.deployments
    if target_pod is None:
        if deployments and deployments[0].pods:
            target_pod = (deployments[0].ns, deployments[0].pods[0].name)
        else:
            target_pod = ("default", "web-7c9d8f6b5d-x2k9p")
    # the seed text predates this package; changing it would change every generated story
    em = Emitter(random.Random(f"auditwatch-synth-attack:{profile.seed}:{at.isoformat()}"))
    return attack_story(em, epoch_us(at), stolen_ci_identity(sim.cluster, sim.emitter), target_pod)


def attack_story(em: Emitter, t0: int, actor: Actor, target: tuple[str, str]) -> list[tuple[str, Event]]:
    """The story's (technique, event) pairs in stageTimestamp order, the first request shortly after ``t0``."""
    story = _Story(em, t0, actor)
    story.label("permission-discovery", rules_review(story.cursor, 0, "default"))
    ns, pod = target
    stream = (2 + em.rng.randrange(4)) * SECOND
    uri, ref = exec_uri(ns, pod, _READ_SA_TOKEN), object_ref("pods", ns, pod, subresource="exec")
    story.request("pod-exec", 25, "create", uri, ref, code=101, stream=stream)
    _privileged_hostpath_workload(story)
    _cluster_admin_binding(story)
    story.label("secrets-list-all-namespaces", list_all_secrets(story.cursor, 50))
    _anonymous_backdoor(story)
    return [(story.labels[ev["auditID"]], ev) for _, ev in em.drain()]


class _Story:
    """The story's cursor (every request waits, the first too) plus the technique of each auditID."""

    def __init__(self, em: Emitter, t0: int, actor: Actor) -> None:
        self.em = em
        self.cursor = RequestCursor(em, t0, actor, first_at_start=False)
        self.labels: dict[str, str] = {}

    def label(self, technique: str, audit_id: str) -> None:
        self.labels[audit_id] = technique

    def request(self, technique: str, dt_s: float, *args: Any, **kw: Any) -> None:
        self.label(technique, self.cursor.request(dt_s, *args, **kw))


def _debugger_pod_spec() -> dict[str, Any]:
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


def _controller(em: Emitter, sa: str) -> Actor:
    """A controller-manager service account creating objects on the attacker's behalf."""
    return Actor(
        f"system:serviceaccount:kube-system:{sa}",
        ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
        CONTROL_PLANE_IP,
        f"{KCM_USER_AGENT}/system:serviceaccount:kube-system:{sa}",
        rbac_reason(
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


def _privileged_hostpath_workload(story: _Story) -> None:
    """Step 3: a privileged Deployment mounting the node's root filesystem, and what the controllers make of it."""
    em, technique = story.em, "privileged-hostpath-workload"
    name, dep_uid, rs_hash = "node-debugger", em.uuid(), em.token(10)
    rs_uid = em.uuid()
    rs_name = f"{name}-{rs_hash}"
    story.request(
        technique,
        60,
        "create",
        "/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
        object_ref("deployments", "default", group="apps"),
        code=201,
        level="Request",
        req_obj=_debugger_deployment(name),
        obj_meta=(name, None, None),
    )
    story.request(
        technique,
        0.01,
        "create",
        "/apis/apps/v1/namespaces/default/replicasets",
        object_ref("replicasets", "default", group="apps"),
        actor=_controller(em, "deployment-controller"),
        code=201,
        level="Request",
        req_obj=_debugger_replica_set(name, dep_uid, rs_hash),
        obj_meta=(rs_name, None, None),
    )
    story.request(
        technique,
        0.01,
        "create",
        "/api/v1/namespaces/default/pods",
        object_ref("pods", "default"),
        actor=_controller(em, "replicaset-controller"),
        code=201,
        level="Request",
        req_obj=_debugger_pod(name, rs_hash, rs_uid),
    )


def _debugger_deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": None, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"creationTimestamp": None, "labels": dict(labels)}, "spec": _debugger_pod_spec()},
            "strategy": {},
        },
        "status": {},
    }


def _debugger_replica_set(name: str, dep_uid: str, rs_hash: str) -> dict[str, Any]:
    pod_labels = {"app": name, "pod-template-hash": rs_hash}
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": dep_uid}
    return {
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
            "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(pod_labels)},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": dict(pod_labels)},
                "spec": _debugger_pod_spec(),
            },
        },
        "status": {"replicas": 0},
    }


def _debugger_pod(name: str, rs_hash: str, rs_uid: str) -> dict[str, Any]:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-{rs_hash}", "uid": rs_uid}
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": f"{name}-{rs_hash}-",
            "namespace": "default",
            "creationTimestamp": None,
            "labels": {"app": name, "pod-template-hash": rs_hash},
            "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": _debugger_pod_spec(),
        "status": {},
    }


def _cluster_admin_binding(story: _Story) -> None:
    """Step 4: cluster-admin for the stolen identity (a RoleBinding, which draws less attention)."""
    em, actor = story.em, story.cursor.actor
    _, sa_ns, sa_name = actor.username.rsplit(":", 2)
    rb = {
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "ci-admin", "namespace": "default", "creationTimestamp": None},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    }
    rb_uid, rb_rv = em.uuid(), em.rv()
    stored = {
        "name": "ci-admin",
        "namespace": "default",
        "uid": rb_uid,
        "resourceVersion": rb_rv,
        "creationTimestamp": em.clock.sec(story.cursor.t + 70 * SECOND),
    }
    story.request(
        "cluster-admin-rolebinding",
        65,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings?fieldManager=kubectl-create"
        "&fieldValidation=Strict",
        object_ref("rolebindings", "default", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=rb,
        resp_obj={**rb, "metadata": stored},
        obj_meta=("ci-admin", None, None),
    )


def _anonymous_backdoor(story: _Story) -> None:
    """Steps 6 and 7: ``view`` for system:anonymous in kube-system, then used from curl without credentials."""
    em, actor = story.em, story.cursor.actor
    anon_rb = {
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "system:public-view", "namespace": "kube-system", "creationTimestamp": None},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:anonymous"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    }
    stored = {
        "name": "system:public-view",
        "namespace": "kube-system",
        "uid": em.uuid(),
        "resourceVersion": em.rv(),
        "creationTimestamp": em.clock.sec(story.cursor.t + 130 * SECOND),
    }
    story.request(
        "anonymous-access-binding",
        55,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings?fieldManager=kubectl-create"
        "&fieldValidation=Strict",
        object_ref("rolebindings", "kube-system", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=anon_rb,
        resp_obj={**anon_rb, "metadata": stored},
        obj_meta=("system:public-view", None, None),
    )
    anonymous = Actor(
        "system:anonymous",
        ("system:unauthenticated",),
        actor.ip,
        "curl/8.5.0",
        rbac_reason("RoleBinding", "system:public-view/kube-system", "ClusterRole", "view", "User", "system:anonymous"),
    )
    story.request(
        "anonymous-access",
        40,
        "list",
        "/api/v1/namespaces/kube-system/configmaps",
        object_ref("configmaps", "kube-system"),
        actor=anonymous,
    )
