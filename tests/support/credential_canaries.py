"""Audit events with credentials planted in every form the redaction handles, each a distinct canary string.

Each event is a full audit Event as the apiserver writes it (from tests/data/scenario.jsonl) that alerts in the
built-in pack (and in Falco's or Sigma's where noted), so its planted values reach the alert, its message and
the alert group. `CANARIES` is every planted secret: none of them may be stored, shown or returned.
`KEPT` are values that look related but are not secrets: they must stay as they are.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson

from tests.support.events import exec_event, find_event


def _jwt(claim: str) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part({'sub': claim})}.c2lnbmF0dXJlLTdmM2E"


BASIC = base64.b64encode(b"admin:CANARY-basic-7f3a").decode()
JWT = _jwt("CANARY-jwt-7f3a")
PEM_BODY = "MIIEowIBAAKCAQEAcanaryPEM7f3aXYZ"
CANARIES = {
    "ua-bearer": "CANARY-ua-bearer-7f3a01",
    "basic": BASIC,
    "jwt": JWT,
    "uri-token": "CANARY-uri-token-7f3a03",
    "uri-access-token": "CANARY-uri-access-7f3a04",
    "uri-signature": "CANARY-uri-sig-7f3a05",
    "exec-env": "CANARY-exec-env-7f3a06",
    "exec-flag": "CANARY-exec-flag-7f3a07",
    "exec-bearer": "CANARY-exec-bearer-7f3a08",
    "header-list": "CANARY-header-list-7f3a09",
    "x-api-key": "CANARY-x-api-key-7f3a10",
    "cookie": "CANARY-cookie-7f3a11",
    "password-object": "CANARY-password-object-7f3a12",
    "number": "7357735773577",
    "env-db-password": "CANARY-env-db-password-7f3a14",
    "env-aws": "CANARY-env-aws-secret-7f3a15",
    "env-github": "CANARY-env-github-token-7f3a16",
    "env-api-key": "CANARY-env-api-key-7f3a17",
    "probe-header": "CANARY-probe-header-7f3a18",
    "last-applied-env": "CANARY-last-applied-env-7f3a19",
    "userinfo": "CANARY-userinfo-7f3a20",
    "pem": PEM_BODY,
    "kubeconfig-token": "CANARY-kubeconfig-token-7f3a22",
    "kubeconfig-key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCkNBTkFSWS1rdWJlY29uZmlnLWtleQ",
    "secret-data": base64.b64encode(b"CANARY-secret-data-7f3a24").decode(),
    "secret-string-data": "CANARY-secret-string-data-7f3a25",
    "token-request": _jwt("CANARY-token-request-7f3a26"),
    "anonymous-uri": "CANARY-anonymous-uri-7f3a27",
    "quarantine-patch": base64.b64encode(b"CANARY-quarantine-patch-7f3a28").decode(),
    "quarantine-line": "CANARY-quarantine-line-7f3a29",
    "quarantine-reason": "CANARY-quarantine-reason-7f3a30",
    "error-400": "CANARY-error-400-7f3a31",
}
KEPT = (
    "db-credentials",  # a secretName, a secretKeyRef name
    "serviceAccountToken",
    "vault-audience",  # the projected token's audience
    "docker.io/library/alpine:3.20",  # an image
    "authorization.k8s.io/decision",
    "LOG_LEVEL",
)
USER_AGENT = f"kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46 Bearer {CANARIES['ua-bearer']}"


def _pod_create() -> dict[str, Any]:
    return find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["stage"] == "ResponseComplete"
    )


def planted_exec() -> dict[str, Any]:
    """pod-exec-attach (and Falco's Attach/Exec Pod): credentials in the command, the query and the user agent."""
    event = exec_event()
    event["userAgent"] = USER_AGENT
    event["requestURI"] = (
        "/api/v1/namespaces/shop/pods/web-7d9f8b6c5d-x2x9k/exec"
        f"?command=curl+-H+%22Authorization%3A+Bearer+{CANARIES['exec-bearer']}%22+https%3A%2F%2Fapi"
        f"&command=env&command=DB_PASSWORD%3D{CANARIES['exec-env']}"
        f"&command=mysql&command=--password&command={CANARIES['exec-flag']}"
        f"&container=web&stdin=true&token={CANARIES['uri-token']}"
        f"&access_token={CANARIES['uri-access-token']}&X-Amz-Signature={CANARIES['uri-signature']}"
    )
    event["annotations"]["note.example.com/forwarded"] = f"Authorization: Basic {BASIC}; id={JWT}"
    event["user"]["extra"] = {"authentication.kubernetes.io/credential-id": ["JTI=1b2c3d4e"]}
    return event


def planted_deployment() -> dict[str, Any]:
    """privileged-container and untrusted-image-registry: env, probe headers, header maps, last-applied."""
    event = _pod_create()
    event["userAgent"] = USER_AGENT
    env = [
        {"name": "DB_PASSWORD", "value": CANARIES["env-db-password"]},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": CANARIES["env-aws"]},
        {"name": "GITHUB_TOKEN", "value": CANARIES["env-github"]},
        {"name": "API_KEY", "value": CANARIES["env-api-key"]},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "username"}}},
    ]
    for body in (event["requestObject"], event["responseObject"]):
        spec = body["spec"]["template"]["spec"]
        container = spec["containers"][0]
        container["env"] = copy.deepcopy(env)
        container["args"] = [f"--db=postgres://app:{CANARIES['userinfo']}@db.shop:5432/orders"]
        container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080, "httpHeaders": [
            {"name": "X-Api-Key", "value": CANARIES["probe-header"]}]}}  # fmt: skip
        container["volumeMounts"] = [{"name": "creds", "mountPath": "/creds"}, {"name": "sa", "mountPath": "/sa"}]
        spec["volumes"] = [
            {"name": "creds", "secret": {"secretName": "db-credentials"}},
            {"name": "sa", "projected": {"sources": [{"serviceAccountToken": {
                "audience": "vault-audience", "expirationSeconds": 3600, "path": "token"}}]}},
        ]  # fmt: skip
    event["requestObject"]["headers"] = {
        "Authorization": [f"Basic {CANARIES['header-list']}"],
        "X-Api-Key": CANARIES["x-api-key"],
        "Cookie": f"session={CANARIES['cookie']}; theme=dark",
        "password": {"value": CANARIES["password-object"]},
        "api_key": int(CANARIES["number"]),
    }
    last_applied = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "agent", "env": [{"name": "DB_PASSWORD", "value": CANARIES["last-applied-env"]}]}]}}}}  # fmt: skip
    event["requestObject"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": orjson.dumps(last_applied).decode() + "\n"
    }
    return event


def planted_configmap() -> dict[str, Any]:
    """configmap-with-credentials (its message shows the user agent): a PEM key and a kubeconfig as text."""
    event = _pod_create()
    kubeconfig = (
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
        f"    client-key-data: {CANARIES['kubeconfig-key']}\n    token: {CANARIES['kubeconfig-token']}\n"
    )
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "shop"},
            "data": {"private_key": f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n",
                     "kubeconfig": kubeconfig}}  # fmt: skip
    event.update(
        auditID="5a1d0c3e-7f3a-4c1e-9a55-0c0f1e2d3c4b", userAgent=USER_AGENT, level="Request",
        requestURI="/api/v1/namespaces/shop/configmaps?fieldManager=kubectl-create",
        objectRef={"resource": "configmaps", "namespace": "shop", "name": "app-config", "apiVersion": "v1"},
        requestObject=body,
    )  # fmt: skip
    event.pop("responseObject", None)
    return event


def planted_secret() -> dict[str, Any]:
    """secret-modified: Secret data, stringData and the last-applied annotation repeating them."""
    event = planted_configmap()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "db-credentials", "namespace": "shop", "annotations": {
                  "kubectl.kubernetes.io/last-applied-configuration": orjson.dumps(
                      {"data": {"password": CANARIES["secret-data"]}}).decode()}},
              "data": {"password": CANARIES["secret-data"]},
              "stringData": {"note": CANARIES["secret-string-data"]}}  # fmt: skip
    event.update(
        auditID="6b2e1d4f-7f3a-4d2f-8b66-1d1f2e3d4c5d", level="RequestResponse",
        requestURI="/api/v1/namespaces/shop/secrets?fieldManager=kubectl-client-side-apply",
        objectRef={"resource": "secrets", "namespace": "shop", "name": "db-credentials", "apiVersion": "v1"},
        requestObject=secret, responseObject=copy.deepcopy(secret),
    )  # fmt: skip
    return event


def planted_token_request() -> dict[str, Any]:
    """serviceaccount-token-minted: the TokenRequest's token in the response."""
    event = planted_configmap()
    event.update(
        auditID="7c3f2e5a-7f3a-4e3a-9c77-2e2f3f4e5d6e", level="RequestResponse",
        requestURI="/api/v1/namespaces/shop/serviceaccounts/web/token",
        objectRef={"resource": "serviceaccounts", "subresource": "token", "namespace": "shop", "name": "web",
                   "apiVersion": "v1"},
        requestObject={"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                       "spec": {"audiences": ["vault-audience"], "expirationSeconds": 3600}},
        responseObject={"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                        "status": {"token": CANARIES["token-request"], "expirationTimestamp": "2026-11-20T11:00:00Z"}},
    )  # fmt: skip
    return event


def planted_anonymous() -> dict[str, Any]:
    """anonymous-request-allowed (and Falco's, whose output shows the URI): a token in the query."""
    event = planted_configmap()
    event.update(
        auditID="8d4a3f6b-7f3a-4f4b-8d88-3f3a4a5f6e7f", verb="list", level="Metadata",
        requestURI=f"/api/v1/namespaces/shop/pods?access_token={CANARIES['anonymous-uri']}",
        user={"username": "system:anonymous", "groups": ["system:unauthenticated"]},
        objectRef={"resource": "pods", "namespace": "shop", "apiVersion": "v1"},
        responseStatus={"metadata": {}, "code": 200},
    )  # fmt: skip
    event.pop("requestObject", None)
    return event


def planted_events() -> list[dict[str, Any]]:
    return [planted_exec(), planted_deployment(), planted_configmap(), planted_secret(), planted_token_request(),
            planted_anonymous()]  # fmt: skip


def quarantined_items() -> list[Any]:
    """Items the webhook rejects, each holding a credential: a Secret merge patch with a bad time, a truncated
    line with a password (as a string item), and a value the rejection reason quotes."""
    patch = planted_secret()
    patch.update(verb="patch", stageTimestamp="yesterday", requestObject={"data": {"k": CANARIES["quarantine-patch"]}})
    line = orjson.dumps(planted_configmap()).decode()
    truncated = line[:200] + f'"password": "{CANARIES["quarantine-line"]}", "user": "bob'
    bad_stage = exec_event()
    bad_stage["stage"] = f"Bearer {CANARIES['quarantine-reason']}"
    return [patch, truncated, bad_stage]
