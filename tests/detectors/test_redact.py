"""No secret reaches the store: Secret data, tokens, bearer headers, JWTs, URL passwords."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from detectors.redact import REDACTED, redact_event, redact_payload
from tests.support.events import exec_event

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkRfZk5pIn0.eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzIl19.c2lnbmF0dXJlLXBhcnQ"


def secret_event(verb: str, request: Any, response: Any = None) -> dict[str, Any]:
    event = exec_event()
    event.update(
        verb=verb,
        level="RequestResponse",
        requestURI="/api/v1/namespaces/shop/secrets/db-creds",
        objectRef={"resource": "secrets", "namespace": "shop", "name": "db-creds", "apiVersion": "v1"},
        requestObject=request,
    )
    if response is not None:
        event["responseObject"] = response
    return event


def test_secret_data_and_last_applied_are_redacted_but_keys_stay() -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db-creds", "namespace": "shop", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}'}},
        "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}, "stringData": {"token": "plain"},
    }  # fmt: skip
    raw = secret_event("create", secret, copy.deepcopy(secret))
    before = copy.deepcopy(raw)
    out = redact_event(raw)
    assert raw == before  # the input is untouched
    for body in (out["requestObject"], out["responseObject"]):
        assert body["data"] == {"password": REDACTED, "user": REDACTED}
        assert body["stringData"] == {"token": REDACTED}
        assert body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == REDACTED
    assert b"aHVudGVyMg" not in orjson.dumps(out)


def test_secret_list_items_and_patches_are_redacted() -> None:
    lst = {"kind": "SecretList", "apiVersion": "v1", "items": [{"metadata": {"name": "a"}, "data": {"k": "c2VjcmV0"}}]}
    out = redact_event(secret_event("list", None, lst))
    assert out["responseObject"]["items"][0]["data"] == {"k": REDACTED}
    patch = [{"op": "replace", "path": "/data/password", "value": "bmV3LXNlY3JldA=="}]
    out = redact_event(secret_event("patch", patch))
    assert out["requestObject"] == [{"op": "replace", "path": "/data/password", "value": REDACTED}]
    merge = {"data": {"password": "bmV3LXNlY3JldA=="}}
    assert redact_event(secret_event("patch", merge))["requestObject"]["data"] == {"password": REDACTED}


def test_token_request_and_token_review_tokens() -> None:
    event = exec_event()
    event.update(
        objectRef={"resource": "serviceaccounts", "subresource": "token", "namespace": "shop", "name": "web"},
        responseObject={"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                        "status": {"token": JWT, "expirationTimestamp": "2026-11-20T11:00:00Z"}},
    )  # fmt: skip
    out = redact_event(event)
    assert out["responseObject"]["status"] == {"token": REDACTED, "expirationTimestamp": "2026-11-20T11:00:00Z"}
    review = {"kind": "TokenReview", "spec": {"token": "opaque-token-value"}}
    assert redact_payload(review)["spec"]["token"] == REDACTED


def test_bearer_tokens_jwts_and_url_passwords_in_any_string() -> None:
    event = exec_event()
    event["requestURI"] = (
        "/api/v1/namespaces/shop/pods/web/exec?command=curl&command=-H&command=Authorization%3A+Bearer%20abc.def-123"
        "&command=https%3A%2F%2Fkubernetes"
    )
    event["annotations"]["note"] = f"token was {JWT}"
    event["requestObject"] = {"spec": {"url": "https://admin:hunter2@registry.example.com/v2/"}}
    out = orjson.dumps(redact_event(event))
    assert b"abc.def-123" not in out and b"Bearer%20<redacted>" in out
    assert JWT.encode() not in out
    assert b"hunter2" not in out and b"https://admin:<redacted>@registry.example.com" in out


def test_ordinary_events_are_unchanged() -> None:
    event = exec_event()
    assert redact_event(event) == event
