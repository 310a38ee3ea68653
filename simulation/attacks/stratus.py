"""Stratus Red Team's Kubernetes techniques, as campaign builders (one :class:`CampaignRun` each)."""

from __future__ import annotations

from simulation.attacks.cursor import CampaignRun, list_all_secrets
from simulation.attacks.pods import attacker_pod_spec, create_pod
from simulation.clock import SECOND
from simulation.emitter import object_ref

_ALPINE = "docker.io/library/alpine:3.20"


def dump_secrets(r: CampaignRun) -> None:
    list_all_secrets(r, 0)


def steal_sa_token(r: CampaignRun) -> None:
    ns, sa = "kube-system", "stratus-red-team-sa"
    name = f"{sa}-token-{r.em.token(5)}"
    r.request(
        0,
        "create",
        "/api/v1/namespaces/kube-system/serviceaccounts?fieldManager=kubectl-create",
        object_ref("serviceaccounts", ns),
        code=201,
        level="Request",
        req_obj={
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {"name": sa, "namespace": ns, "creationTimestamp": None},
        },
        obj_meta=(sa, None, None),
    )
    r.request(
        2,
        "create",
        f"/api/v1/namespaces/{ns}/secrets?fieldManager=kubectl-create",
        object_ref("secrets", ns),
        code=201,
        obj_meta=(name, None, None),
    )
    r.request(3, "get", f"/api/v1/namespaces/{ns}/secrets/{name}", object_ref("secrets", ns, name))


def create_admin_clusterrole(r: CampaignRun) -> None:
    suffix = r.em.token(5)
    sa = role = f"stratus-red-team-{suffix}"
    r.request(
        0,
        "create",
        "/api/v1/namespaces/default/serviceaccounts?fieldManager=kubectl-create",
        object_ref("serviceaccounts", "default"),
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
    r.request(
        2,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles?fieldManager=kubectl-create",
        object_ref("clusterroles", group="rbac.authorization.k8s.io"),
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
    r.request(
        2,
        "create",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create",
        object_ref("clusterrolebindings", group="rbac.authorization.k8s.io"),
        code=201,
        level="RequestResponse",
        req_obj=crb,
        resp_obj={**crb, "metadata": {"name": role, "uid": r.em.uuid(), "resourceVersion": r.em.rv()}},
        obj_meta=(role, None, None),
    )
    _token_request(r, 3, "default", sa)


def _token_request(r: CampaignRun, dt_s: float, ns: str, sa: str) -> None:
    body = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": None, "expirationSeconds": 31536000, "boundObjectRef": None},
        "status": {"token": "", "expirationTimestamp": None},
    }
    r.request(
        dt_s,
        "create",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        object_ref("serviceaccounts", ns, sa, subresource="token"),
        code=201,
        level="Request",
        req_obj=body,
    )


def create_token(r: CampaignRun) -> None:
    _token_request(r, 0, "kube-system", "clusterrole-aggregation-controller")


def client_certificate(r: CampaignRun) -> None:
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
    r.request(
        0,
        "create",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        object_ref("certificatesigningrequests", group=grp),
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
    r.request(
        2,
        "update",
        f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval",
        object_ref("certificatesigningrequests", name=name, group=grp, subresource="approval"),
        level="Request",
        req_obj=approved,
    )
    r.request(
        2,
        "get",
        f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}",
        object_ref("certificatesigningrequests", name=name, group=grp),
    )


def hostpath_volume(r: CampaignRun) -> None:
    create_pod(r, 0, "default", f"stratus-red-team-{r.em.token(5)}", attacker_pod_spec(_ALPINE, host_path="/"))


def privileged_pod(r: CampaignRun) -> None:
    create_pod(r, 0, "default", f"stratus-red-team-{r.em.token(5)}", attacker_pod_spec(_ALPINE, privileged=True))


def nodes_proxy(r: CampaignRun) -> None:
    """The kubelet API through ``nodes/proxy``: long-running for the apiserver, so three stages each."""
    node = r.rng.choice(r.cluster.nodes).name
    for i, path in enumerate(("pods", "runningpods/", "configz")):
        stream = 200_000 + r.rng.randrange(SECOND)
        ref = object_ref("nodes", name=node, subresource="proxy")
        r.request(0 if i == 0 else 2, "get", f"/api/v1/nodes/{node}/proxy/{path}", ref, stream=stream)
