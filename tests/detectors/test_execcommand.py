"""Exec commands decoded from every place an audit event carries them (`$exec`), `kubectl cp` in both
directions, the decision a response code proves, and the redaction of a decoded argv."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.decision import ALLOW, FORBID, decision_for_code, decision_of
from detectors.events import AuditEvent
from detectors.execcommand import copy_of, exec_argv
from detectors.redact import REDACTED, redact_argv

POD = {"resource": "pods", "namespace": "shop", "name": "web-1", "apiVersion": "v1"}


def exec_raw(uri_query: str, request: Any = None, subresource: str = "exec") -> dict[str, Any]:
    raw: dict[str, Any] = {
        "requestURI": f"/api/v1/namespaces/shop/pods/web-1/{subresource}{uri_query}",
        "objectRef": dict(POD, subresource=subresource),
    }
    if request is not None:
        raw["requestObject"] = request
    return raw


@pytest.mark.parametrize(
    "query",
    [
        "?command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&stdout=true",  # kubectl
        "?command=cat&command=%2fvar%2frun%2fsecrets%2fkubernetes.io%2fserviceaccount%2ftoken",  # lower-case hex
        "?stdout=true&command=cat&command=/var/run/secrets/kubernetes.io/serviceaccount/token",  # raw slashes
    ],
)
def test_url_encoded_command_parameters_decode_to_the_argv(query: str) -> None:
    assert exec_argv(exec_raw(query), None) == (("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
                                                "requestURI")  # fmt: skip


def test_plus_and_percent_20_are_spaces() -> None:
    argv, _ = exec_argv(exec_raw("?command=sh&command=-c&command=cat+%2Fetc%2Fshadow%20%7C%20head"), None) or ((), "")
    assert argv == ("sh", "-c", "cat /etc/shadow | head")


def test_request_object_command_when_the_uri_has_none() -> None:
    body = {"kind": "PodExecOptions", "apiVersion": "v1", "stdout": True, "command": ["id", "-u"]}
    assert exec_argv(exec_raw("?container=app&stdout=true", body), body) == (("id", "-u"), "requestObject")
    assert exec_argv(exec_raw("", {"command": "whoami"}), {"command": "whoami"}) == (("whoami",), "requestObject")


def test_ephemeral_container_command_and_args() -> None:
    body = {"spec": {"ephemeralContainers": [
        {"name": "old", "image": "busybox", "command": ["sleep", "1"]},
        {"name": "debugger-x", "image": "busybox:1.36", "command": ["sh"], "args": ["-c", "cat /etc/shadow"]},
    ]}}  # fmt: skip
    raw = exec_raw("", body, subresource="ephemeralcontainers")
    assert exec_argv(raw, body) == (("sh", "-c", "cat /etc/shadow"), "ephemeralContainers")
    entrypoint = {"spec": {"ephemeralContainers": [{"name": "debugger-y", "image": "nicolaka/netshoot"}]}}
    assert exec_argv(raw, entrypoint) is None


def test_kubelet_exec_through_nodes_proxy() -> None:
    raw = {"requestURI": "/api/v1/nodes/node-1/proxy/exec/shop/web-1/app?command=id&output=1",
           "objectRef": {"resource": "nodes", "name": "node-1", "subresource": "proxy", "apiVersion": "v1"}}  # fmt: skip
    assert exec_argv(raw, None) == (("id",), "requestURI")
    raw["requestURI"] = (
        "/api/v1/nodes/node-1/proxy/run/kube-system/kube-proxy-x/kube-proxy?cmd=cat+%2Fvar%2Flib%2Fkube-proxy%2Fkubeconfig.conf"
    )
    assert exec_argv(raw, None) == (("cat", "/var/lib/kube-proxy/kubeconfig.conf"), "requestURI")
    raw["requestURI"] = "/api/v1/nodes/node-1/proxy/metrics?command=id"
    assert exec_argv(raw, None) is None


def test_attach_and_other_requests_carry_no_command() -> None:
    assert exec_argv(exec_raw("?container=app&stdin=true", subresource="attach"), None) is None
    assert exec_argv({"requestURI": "/api/v1/pods?command=x", "objectRef": {"resource": "pods"}}, None) is None


@pytest.mark.parametrize(
    ("argv", "copy"),
    [
        (["tar", "cf", "-", "/var/lib/data"], {"direction": "out", "paths": ["/var/lib/data"]}),
        (["sh", "-c", "tar cf - /etc/ssl | tail -c+1"], {"direction": "out", "paths": ["/etc/ssl"]}),  # --retries
        (["tar", "-xmf", "-", "-C", "/tmp"], {"direction": "in", "paths": ["/tmp"]}),
        (["tar", "xf", "-", "-C", "/usr/local/bin"], {"direction": "in", "paths": ["/usr/local/bin"]}),  # old kubectl
        (["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-"], {"direction": "in", "paths": []}),
        (["tar", "-c", "-f", "-", "/srv/a", "/srv/b"], {"direction": "out", "paths": ["/srv/a", "/srv/b"]}),
        (["/bin/tar", "--create", "--file=-", "/root"], {"direction": "out", "paths": ["/root"]}),
        (["tar", "--extract", "--file", "-", "--directory", "/opt"], {"direction": "in", "paths": ["/opt"]}),
        (["tar", "czf", "/tmp/backup.tgz", "/data"], None),  # to a file in the pod: not a copy
        (["tar", "tf", "-"], None),  # listing
        (["cat", "/etc/hosts"], None),
    ],
)
def test_kubectl_cp_direction_and_paths(argv: list[str], copy: dict[str, Any] | None) -> None:
    assert copy_of(argv) == copy


def test_exec_root_of_an_event() -> None:
    event = AuditEvent(raw=dict(exec_raw("?command=tar&command=cf&command=-&command=%2Froot"), verb="create"))
    assert event.get("$exec.commandLine") == "tar cf - /root"
    assert event.get("$exec.copy.direction") == "out" and event.get("$exec.source") == "requestURI"
    assert AuditEvent(raw={"verb": "get", "objectRef": POD}).get("$exec") is None


@pytest.mark.parametrize(
    ("code", "decision"),
    [(101, ALLOW), (200, ALLOW), (201, ALLOW), (304, ALLOW), (404, ALLOW), (409, ALLOW), (422, ALLOW),
     (403, FORBID), (401, None), (429, None), (500, None), (504, None)],
)  # fmt: skip
def test_decision_a_response_code_proves(code: int, decision: str | None) -> None:
    assert decision_for_code(code) == decision


def test_the_annotation_wins_over_the_response_code() -> None:
    webhook_denied = {"responseStatus": {"code": 403}, "annotations": {"authorization.k8s.io/decision": "allow"}}
    assert decision_of(webhook_denied) == ALLOW
    assert decision_of({"responseStatus": {"code": 403}, "annotations": {}}) == FORBID
    assert decision_of({"stage": "RequestReceived"}) is None
    assert decision_of({"responseStatus": {"code": "201"}}) is None  # not an integer: proves nothing


def test_redacted_argv_hides_values_of_credential_flags() -> None:
    argv = ["mysql", "--password", "s3cret-1", "--user", "bob", "--token=s3cret-2", "env", "DB_PASSWORD=s3cret-3",
            "--password", "--verbose"]  # fmt: skip
    assert redact_argv(argv) == ["mysql", "--password", REDACTED, "--user", "bob", f"--token={REDACTED}", "env",
                                 f"DB_PASSWORD={REDACTED}", "--password", "--verbose"]  # fmt: skip
