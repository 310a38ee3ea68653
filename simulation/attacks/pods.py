"""Pods and exec sessions of the catalogue techniques (the attacker's own workloads)."""

from __future__ import annotations

from typing import Any

from simulation.attacks.cursor import CampaignRun
from simulation.clock import SECOND
from simulation.emitter import exec_uri, object_ref


def attacker_pod_spec(
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


def create_pod(r: CampaignRun, dt_s: float, ns: str, name: str, spec: dict[str, Any]) -> None:
    """``kubectl run``: a bare Pod."""
    body = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": None, "labels": {"run": name}},
        "spec": spec,
        "status": {},
    }
    r.request(
        dt_s,
        "create",
        f"/api/v1/namespaces/{ns}/pods?fieldManager=kubectl-run",
        object_ref("pods", ns),
        code=201,
        level="Request",
        req_obj=body,
        obj_meta=(name, None, None),
    )


def exec_in_pod(r: CampaignRun, dt_s: float, ns: str, pod: str, command: list[str]) -> None:
    """``kubectl exec -it`` of ``command`` in the pod's ``app`` container (a session of 2-22 s)."""
    stream = (2 + r.rng.randrange(20)) * SECOND
    uri, ref = exec_uri(ns, pod, command), object_ref("pods", ns, pod, subresource="exec")
    r.request(dt_s, r.exec_verb(), uri, ref, code=101, stream=stream)
