"""Kubernetes objects of the benign traffic, as they appear in request and response bodies.

Pure builders: every call returns a fresh tree of dicts (no nested object is shared between two
events). Key order matches what the clients and the apiserver serialise, and is part of the output.
The workloads are deliberately unremarkable: non-root, read-only, no privileges, no host access.
"""

from __future__ import annotations

from typing import Any

from simulation.cluster import Deployment, Node, Pod


def app_labels(dep: Deployment) -> dict[str, str]:
    return {"app": dep.name, "app.kubernetes.io/part-of": dep.ns}


def _container(dep: Deployment) -> dict[str, Any]:
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


def _pod_spec(dep: Deployment) -> dict[str, Any]:
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


def pod_template(dep: Deployment, with_hash: bool) -> dict[str, Any]:
    labels = app_labels(dep)
    if with_hash:
        labels["pod-template-hash"] = dep.rs_hash
    meta: dict[str, Any] = {"creationTimestamp": None, "labels": labels}
    if dep.restarted_at:
        meta["annotations"] = {"kubectl.kubernetes.io/restartedAt": dep.restarted_at}
    return {"metadata": meta, "spec": _pod_spec(dep)}


def deployment_manifest(dep: Deployment) -> dict[str, Any]:
    """What ``kubectl apply`` sends: a plain, non-privileged Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": dep.name, "namespace": dep.ns, "labels": app_labels(dep)},
        "spec": {
            "replicas": dep.replicas,
            "selector": {"matchLabels": {"app": dep.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": pod_template(dep, with_hash=False),
        },
    }


def deployment_status_object(dep: Deployment, rv: str, updated: int) -> dict[str, Any]:
    """The Deployment the deployment controller writes to ``deployments/status``."""
    manifest = deployment_manifest(dep)
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            **manifest["metadata"],
            "uid": dep.uid,
            "resourceVersion": rv,
            "generation": dep.generation,
            "annotations": {"deployment.kubernetes.io/revision": str(dep.revision)},
        },
        "spec": manifest["spec"],
        "status": {
            "observedGeneration": dep.generation,
            "replicas": dep.replicas + 1,
            "updatedReplicas": updated,
            "readyReplicas": dep.replicas,
            "availableReplicas": dep.replicas,
        },
    }


def replica_set_object(
    dep: Deployment, replicas: int, rs_hash: str, stored: tuple[str, str, str] | None
) -> dict[str, Any]:
    """A ReplicaSet of ``dep``; ``stored`` is (uid, resourceVersion, creationTimestamp) once it exists."""
    labels = app_labels(dep)
    labels["pod-template-hash"] = rs_hash
    meta: dict[str, Any] = {"name": f"{dep.name}-{rs_hash}", "namespace": dep.ns}
    if stored is not None:
        meta["uid"], meta["resourceVersion"] = stored[0], stored[1]
    meta["creationTimestamp"] = None if stored is None else stored[2]
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
    tpl = pod_template(dep, with_hash=False)
    tpl["metadata"]["labels"]["pod-template-hash"] = rs_hash
    return {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": tpl},
        "status": {"replicas": replicas},
    }


def pod_create_body(dep: Deployment) -> dict[str, Any]:
    """The Pod the ReplicaSet controller creates from ``dep``'s current ReplicaSet."""
    tpl = pod_template(dep, with_hash=True)
    tpl["metadata"] = {
        "generateName": f"{dep.rs_name}-",
        "namespace": dep.ns,
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
    return {"kind": "Pod", "apiVersion": "v1", **tpl, "status": {}}


def pod_status_patch(pod: Pod, dep: Deployment, phase: str, now: str) -> dict[str, Any]:
    """The kubelet's strategic-merge patch of ``pods/status`` (phase Pending, Running or Terminated)."""
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
        cstatus["imageID"] = f"{dep.image_repository}@sha256:{pod.container_id[::-1]}"
    return {
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


def endpoint_slice_object(dep: Deployment, meta: dict[str, Any]) -> dict[str, Any]:
    """``dep``'s EndpointSlice listing its current pods, with the given metadata."""
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


def endpoint_slice_metadata(dep: Deployment, rv: str, created: str) -> dict[str, Any]:
    return {
        "name": dep.slice_name,
        "generateName": f"{dep.name}-",
        "namespace": dep.ns,
        "uid": dep.slice_uid,
        "resourceVersion": rv,
        "generation": dep.revision,
        "creationTimestamp": created,
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


def lease_object(
    ns: str,
    name: str,
    uid: str,
    rv: str,
    created: str,
    manager: str,
    spec: dict[str, Any],
    owner: Node | None,
    touched: str,
) -> dict[str, Any]:
    """A coordination.k8s.io Lease, owned by ``owner`` (a kubelet's node lease) or by nobody (leader election)."""
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


def hpa_object(dep: Deployment, uid: str, rv: str, created: str, utilization: int) -> dict[str, Any]:
    """The HorizontalPodAutoscaler of ``dep`` as its controller writes ``status``."""
    return {
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": "autoscaling/v2",
        "metadata": {
            "name": dep.name,
            "namespace": dep.ns,
            "uid": uid,
            "resourceVersion": rv,
            "creationTimestamp": created,
        },
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": dep.name, "apiVersion": "apps/v1"},
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
                        "current": {"averageValue": f"{utilization + 10}m", "averageUtilization": utilization},
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
