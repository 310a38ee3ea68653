"""GKE Cloud Audit Logs LogEntry (`protoPayload`) -> audit.k8s.io/v1 Event.

What the LogEntry does not carry stays absent: user groups, the query string (so exec `command=`
arguments), the stage and level (the stage is inferred: ResponseComplete, or ResponseStarted with 101 for
exec/attach/portforward streams, as Falco's converter does).
"""

from __future__ import annotations

from typing import Any

from ingest.archives.normalise import AUDIT_API_VERSION, micro_time

# gRPC status codes (google.rpc.Code) -> HTTP
GRPC_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400,
    12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip
STREAMING_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
DECISION = "authorization.k8s.io/decision"


def _object_ref(resource_name: str) -> tuple[dict[str, str], str] | None:
    """`<group>/<version>[/namespaces/<ns>]/<resource>[/<name>[/<subresource>]]` -> (objectRef, URI path)."""
    parts = [p for p in resource_name.strip("/").split("/") if p]
    if len(parts) < 3:
        return None
    group, version, rest = parts[0], parts[1], parts[2:]
    ref: dict[str, str] = {}
    if rest[0] == "namespaces" and len(rest) >= 3:
        ref["namespace"] = rest[1]
        rest = rest[2:]
    ref["resource"] = rest[0]
    if len(rest) > 1:
        ref["name"] = rest[1]
        if rest[0] == "namespaces":  # a Namespace object: the apiserver sets namespace to its own name
            ref["namespace"] = rest[1]
    if len(rest) > 2:
        ref["subresource"] = "/".join(rest[2:])
    api_group = "" if group == "core" else group
    if api_group:
        ref["apiGroup"] = api_group
    ref["apiVersion"] = version
    prefix = f"/api/{version}" if not api_group else f"/apis/{api_group}/{version}"
    return ref, prefix + "/" + "/".join(parts[2:])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strip_type(body: Any) -> Any:
    if isinstance(body, dict) and "@type" in body:
        return {k: v for k, v in body.items() if k != "@type"}
    return body


def gke_event(entry: Any) -> dict[str, Any] | str:
    """The Event of one LogEntry, or the reason it is not one."""
    if not isinstance(entry, dict):
        return "a LogEntry must be an object"
    pp = entry.get("protoPayload")
    if not isinstance(pp, dict):
        return "LogEntry without protoPayload"
    method = pp.get("methodName")
    if not isinstance(method, str) or not method.startswith("io.k8s."):
        return f"methodName {method!r} is not a Kubernetes API method (io.k8s.*)"
    audit_id = entry.get("insertId")
    if not isinstance(audit_id, str) or not audit_id:
        return "LogEntry without insertId"
    segments = method.split(".")
    verb = segments[-1]
    raw_name = pp.get("resourceName")
    resource_name: str = raw_name if isinstance(raw_name, str) else ""
    parsed = _object_ref(resource_name) if len(segments) > 3 else None
    event: dict[str, Any] = {"kind": "Event", "apiVersion": AUDIT_API_VERSION, "auditID": audit_id}
    if parsed is None:  # non-resource request (io.k8s.get on /readyz, /api/v1, ...)
        event["requestURI"] = "/" + resource_name.lstrip("/")
        ref: dict[str, str] | None = None
    else:
        ref, event["requestURI"] = parsed
    event["verb"] = verb
    auth = _dict(pp.get("authenticationInfo"))
    principal = auth.get("principalEmail") or auth.get("principalSubject") or auth.get("authoritySelector")
    event["user"] = {"username": principal} if isinstance(principal, str) and principal else {}
    meta = _dict(pp.get("requestMetadata"))
    if isinstance(meta.get("callerIp"), str):
        event["sourceIPs"] = [meta["callerIp"]]
    if isinstance(meta.get("callerSuppliedUserAgent"), str):
        event["userAgent"] = meta["callerSuppliedUserAgent"]
    if ref is not None:
        event["objectRef"] = ref
    status = _dict(pp.get("status"))
    grpc = status.get("code", 0)
    grpc = grpc if isinstance(grpc, int) else 0
    response = pp.get("response")
    streaming = ref is not None and ref.get("subresource") in STREAMING_SUBRESOURCES and grpc == 0
    if streaming:
        code = 101
    elif isinstance(response, dict) and response.get("kind") == "Status" and isinstance(response.get("code"), int):
        code = response["code"]
    elif grpc == 0:
        code = 201 if verb == "create" else 200
    else:
        code = GRPC_TO_HTTP.get(grpc, 500)
    response_status: dict[str, Any] = {"metadata": {}, "code": code}
    if grpc != 0:
        response_status["status"] = "Failure"
        if isinstance(status.get("message"), str):
            response_status["message"] = status["message"]
    event["responseStatus"] = response_status
    if pp.get("request") is not None:
        event["requestObject"] = _strip_type(pp["request"])
    if pp.get("response") is not None and not (isinstance(response, dict) and response.get("kind") == "Status"):
        event["responseObject"] = _strip_type(response)
    received = micro_time(entry.get("timestamp"))
    stage_time = micro_time(entry.get("receiveTimestamp")) or received
    if received:
        event["requestReceivedTimestamp"] = received
    if stage_time:
        event["stageTimestamp"] = stage_time
    event["stage"] = "ResponseStarted" if streaming else "ResponseComplete"
    labels = entry.get("labels")  # a map of strings in a LogEntry; anything else is not kept
    annotations = {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {}
    infos = pp.get("authorizationInfo")
    if DECISION not in annotations and isinstance(infos, list) and infos:
        granted = all(isinstance(i, dict) and i.get("granted") is True for i in infos)
        annotations[DECISION] = "allow" if granted else "forbid"
    if annotations:
        event["annotations"] = annotations
    return event
