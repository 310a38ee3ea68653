"""No secret reaches the store: Secret data, tokens, credential-named keys and env vars, bearer and basic
credentials, JWTs, URL passwords and secret query parameters, private keys; references and look-alikes stay."""

from __future__ import annotations

import base64
import copy
import time
from typing import Any

import orjson
import pytest

from detectors.credentials import REDACTED, is_credential_name
from detectors.errors import EventError
from detectors.events import Rejected, split_document
from detectors.redact import (
    TRUNCATED,
    redact_event,
    redact_payload,
    redact_string,
    redact_text_in,
    redacted_json,
)
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


# ---- credential-shaped text in any string --------------------------------------------------------------

TEXT_CASES = [
    ("kubectl/v1.31.2 Bearer CANARY-1", "kubectl/v1.31.2 Bearer <redacted>"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "curl -H 'Authorization: Basic <redacted>'"),
    ("Authorization: Basic CANARY-2", "Authorization: Basic <redacted>"),
    ("X-Api-Key: CANARY-3", "X-Api-Key: <redacted>"),
    ("Cookie: session=CANARY-4; theme=dark", "Cookie: <redacted>"),
    ("/api/v1/pods?watch=true&token=CANARY-5&limit=5", "/api/v1/pods?watch=true&token=<redacted>&limit=5"),
    ("/x?access_token=CANARY-6", "/x?access_token=<redacted>"),
    ("https://b.s3.amazonaws.com/o?X-Amz-Signature=CANARY-7&X-Amz-Date=1",
     "https://b.s3.amazonaws.com/o?X-Amz-Signature=<redacted>&X-Amz-Date=1"),
    ("https://api.example.com/v1?key=CANARY-8&sig=CANARY-9", "https://api.example.com/v1?key=<redacted>&sig=<redacted>"),
    ("env DB_PASSWORD=CANARY-10 ./run", "env DB_PASSWORD=<redacted> ./run"),
    ("mysql --password CANARY-11 -h db", "mysql --password <redacted> -h db"),
    ("exec?command=mysql&command=--password&command=CANARY-12&command=-h",
     "exec?command=mysql&command=--password&command=<redacted>&command=-h"),
    ("exec?command=export+GITHUB_TOKEN%3DCANARY-13", "exec?command=export+GITHUB_TOKEN%3D<redacted>"),
    # in a URL-encoded command the value ends at an encoded space: the rest of the command stays readable
    ("command=TOKEN%3D%24%28cat%20/var/run/secrets/token%29", "command=TOKEN%3D<redacted>%20/var/run/secrets/token%29"),
    ("/login?password=p%40ss+word&next=%2F", "/login?password=<redacted>&next=%2F"),  # a query value runs to `&`
    ("users:\n- user:\n    client-key-data: LS0tCANARY14\n    token: CANARY-15\n",
     "users:\n- user:\n    client-key-data: <redacted>\n    token: <redacted>\n"),
    ('{"password": "CANARY-16", "user": "bob", "data": {"x": "y', '{"password": "<redacted>", "user": "bob", "data": {"x": "y'),
    ('{"password": {"value": "CANARY-17", "a": [1]}, "b": 2', '{"password": <redacted>, "b": 2'),
    ('{\\"password\\":\\"CANARY-18\\",\\"user\\":\\"bob\\"}', '{\\"password\\":\\"<redacted>\\",\\"user\\":\\"bob\\"}'),
    ("-----BEGIN RSA PRIVATE KEY-----\nCANARY19\n-----END RSA PRIVATE KEY-----",
     "-----BEGIN RSA PRIVATE KEY-----<redacted>-----END RSA PRIVATE KEY-----"),
    ("-----BEGIN PRIVATE KEY-----\nCANARY20 (cut)", "-----BEGIN PRIVATE KEY-----<redacted>"),
    ("key: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=", "key: <redacted>"),
    ("postgres://admin:CANARY-21@db:5432/x", "postgres://admin:<redacted>@db:5432/x"),
    ("clone https://ghp_CANARY22abcdefghijklmnopqrstuv@github.com/o/r", "clone https://<redacted>@github.com/o/r"),
    (f"id={JWT}", "id=<redacted>"),
    # name/value pairs as text: a Falco output renders a list of objects (fuzzing found the env pair in clear)
    ('subjects=({"kind":"User","name":"bob"},{"name":"DB_PASSWORD","value":"CANARY-23"}) role=edit',
     'subjects=({"kind":"User","name":"bob"},{"name":"DB_PASSWORD","value":"<redacted>"}) role=edit'),
    ('{\\"name\\": \\"X-Api-Key\\", \\"value\\": \\"CANARY-24\\"}',
     '{\\"name\\": \\"X-Api-Key\\", \\"value\\": \\"<redacted>\\"}'),
    ("env:\n- name: GITHUB_TOKEN\n  value: CANARY-25\n- name: LOG_LEVEL\n  value: debug\n",
     "env:\n- name: GITHUB_TOKEN\n  value: <redacted>\n- name: LOG_LEVEL\n  value: debug\n"),
    ('{\\"name\\":\\"DB_PASSWORD\\",value:\\"CANARY-26\\"}',  # a JSON line read as CSV lost some quotes
     '{\\"name\\":\\"DB_PASSWORD\\",value:\\"<redacted>\\"}'),
    # after a newline or tab escaped in JSON text (fuzzing found `\nCookie: ...` kept: the key read as `nCookie`)
    ("GET / HTTP/1.1\\r\\nCookie: session=CANARY-27", "GET / HTTP/1.1\\r\\nCookie: <redacted>"),
    ("user=bob\\tpassword=CANARY-28\\tshell=sh", "user=bob\\tpassword=<redacted>\\tshell=sh"),
    ("--password CANARY-31\\nCookie: session=CANARY-32", "--password <redacted>\\nCookie: <redacted>"),
    ("run\\n--password CANARY-29", "run\\n--password <redacted>"),
    # a flag before the secret's flag (`mysql -A --password x`): the first must not take the second for its value
    ("mysql -A --password CANARY-33 -h db", "mysql -A --password <redacted> -h db"),
    # a URL's password in a text cut short before the `@` (a truncated log line); a port number stays
    ("dsn=postgres://app:CANARY-35", "dsn=postgres://app:<redacted>"),
    ("see http://example.com:8443", "see http://example.com:8443"),
    ("exec?command=mysql&command=-A&command=--password&command=CANARY-34",
     "exec?command=mysql&command=-A&command=--password&command=<redacted>"),
    ("GET\\nAuthorization: Bearer CANARY-30", "GET\\nAuthorization: Bearer <redacted>"),
    (f"a\\t{JWT}", "a\\t<redacted>"),
    # quotes doubled in a CSV field: a CloudWatch Insights export read as lines (fuzzing found these kept)
    ('2026-11-20 09:12:03.151,"{""X-Api-Key"":""CANARY-33"",""verb"":""get""}"',
     '2026-11-20 09:12:03.151,"{""X-Api-Key"":""<redacted>"",""verb"":""get""}"'),
    ('"{""name"":""DB_PASSWORD"",""value"":""CANARY-34""}"', '"{""name"":""DB_PASSWORD"",""value"":""<redacted>""}"'),
]  # fmt: skip
KEPT_TEXT = [
    "Basic authentication failed",
    "secretName: db-credentials",
    "serviceAccountToken: true\nautomountServiceAccountToken: false",
    "system:serviceaccount:kube-system:token-cleaner",
    "/api/v1/namespaces/shop/serviceaccounts/web/token",
    "K8s Secret Created (user=bob secret=db-credentials ns=shop)",  # Falco names a Secret `secret=`
    'RBAC: allowed by ClusterRoleBinding "system:auth-delegator" of ClusterRole "system:auth-delegator"',
    "password_min_length: 12",
    "TOKEN_TTL=3600",
    "https://registry.example.com/v2/",
    "docker.io/library/alpine:3.20",
    "/exec?command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken",
    '[{"name": "LOG_LEVEL", "value": "debug"}, {"name": "TOKEN_TTL", "value": "3600"}]',
    '{"token": "", "user": "bob"}',
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
def test_credential_shaped_text_is_redacted(text: str, expected: str) -> None:
    assert redact_string(text) == expected


@pytest.mark.parametrize("text", KEPT_TEXT)
def test_text_that_only_looks_related_is_kept(text: str) -> None:
    assert redact_string(text) == text


@pytest.mark.parametrize(
    "name", ["password", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "API_KEY", "apiKey", "X-Api-Key",
             "Authorization", "proxy-authorization", "Set-Cookie", "client_secret", "private_key", "secret_key",
             "access_key", "credentials", "SECRET_KEY_BASE", "client-key-data", "idToken",
             "example.com/authorization", "proxy.example.com/Proxy-Authorization", "example.com/auth"],
)  # fmt: skip
def test_credential_names(name: str) -> None:
    assert is_credential_name(name) and is_credential_name(name.upper()) and is_credential_name(name.lower())


@pytest.mark.parametrize(
    "name", ["secretName", "secretRef", "secretKeyRef", "serviceAccountToken", "automountServiceAccountToken",
             "tokenRequests", "imagePullSecrets", "secrets", "TOKEN_TTL", "passwordFile", "LOG_LEVEL", "PWD",
             "authorization.k8s.io/decision", "authorization.k8s.io/reason",
             "authentication.kubernetes.io/credential-id", "kind", "key", "example.com/authorization-mode"],
)  # fmt: skip
def test_names_that_are_not_credentials(name: str) -> None:
    assert not is_credential_name(name)


# ---- structure -------------------------------------------------------------------------------------------


def test_credential_named_keys_lose_their_values_whatever_their_type() -> None:
    body = {
        "Authorization": ["Basic Q0FOQVJZ", "Bearer x"], "PASSWORD": {"value": "CANARY", "enabled": True},
        "x-api-key": 12345, "api_key": 1.5, "token": "", "Set-Cookie": None, "cookie": ["a=1"],
        "auth": {"nested": [{"deep": "CANARY"}]}, "note": "ok",
    }  # fmt: skip
    assert redact_payload(body) == {
        "Authorization": [REDACTED, REDACTED], "PASSWORD": {"value": REDACTED, "enabled": True},
        "x-api-key": REDACTED, "api_key": REDACTED, "token": "", "Set-Cookie": None, "cookie": [REDACTED],
        "auth": {"nested": [{"deep": REDACTED}]}, "note": "ok",
    }  # fmt: skip


def test_env_and_header_pairs_named_like_credentials_lose_their_value() -> None:
    env = [
        {"name": "DB_PASSWORD", "value": "CANARY-a"}, {"name": "AWS_SECRET_ACCESS_KEY", "value": "CANARY-b"},
        {"name": "GITHUB_TOKEN", "value": "CANARY-c"}, {"name": "API_KEY", "value": "CANARY-d"},
        {"name": "LOG_LEVEL", "value": "debug"}, {"name": "PWD", "value": "/srv"},
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}},
    ]  # fmt: skip
    out = redact_payload({"env": env, "httpHeaders": [{"name": "X-Api-Key", "value": "CANARY-e"}]})
    assert [e.get("value") for e in out["env"]] == [REDACTED] * 4 + ["debug", "/srv", None]
    assert out["env"][-1] == env[-1]
    assert out["httpHeaders"] == [{"name": "X-Api-Key", "value": REDACTED}]
    patch = [
        {"op": "replace", "path": "/data/DB_PASSWORD", "value": "CANARY-f"},
        {"op": "add", "path": "/x", "value": 1},
    ]
    assert [op["value"] for op in redact_payload(patch)] == [REDACTED, 1]


def test_a_flag_and_its_value_as_two_elements_of_a_list_lose_the_value() -> None:
    args = ["--db-password", "CANARY-g", "--user", "bob", "--token", "--verbose", "--api-key", "CANARY-h",
            "-p", "8080", "--secret", "true", "--password=CANARY-i"]  # fmt: skip
    pod = {
        "kind": "Pod",
        "spec": {"containers": [{"name": "app", "image": "app:1", "command": ["/app"], "args": args}]},
    }
    out = redact_payload(pod)["spec"]["containers"][0]
    assert out["args"] == ["--db-password", REDACTED, "--user", "bob", "--token", "--verbose", "--api-key", REDACTED,
                           "-p", "8080", "--secret", "true", f"--password={REDACTED}"]  # fmt: skip
    assert out["command"] == ["/app"]
    assert redact_event({**exec_event(), "requestObject": pod})["requestObject"]["spec"]["containers"][0] == out


def test_references_and_token_ish_fields_are_kept() -> None:
    spec = {
        "volumes": [
            {"name": "creds", "secret": {"secretName": "db-credentials", "items": [{"key": "password", "path": "p"}]}},
            {"name": "sa", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 3600, "path": "token"}},
                {"secret": {"name": "tls", "optional": True}}]}},
        ],
        "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "regcred"}],
        "containers": [{"image": "registry.example.com/shop/web:1.4.2", "envFrom": [{"secretRef": {"name": "app"}}]}],
        "endpoints": [{"authorization": {"credentials": {"name": "prom", "key": "token"}}}],
        "user": {"extra": {"authentication.kubernetes.io/credential-id": ["JTI=1b2c"]}},
        "kind": "TokenReview",
    }  # fmt: skip
    out = redact_payload(spec)
    assert out == spec


def test_json_inside_a_string_is_redacted_as_json_and_clean_json_is_left_alone() -> None:
    applied = {"kind": "Deployment", "spec": {"containers": [{"env": [{"name": "DB_PASSWORD", "value": "CANARY"}]}]}}
    event = exec_event()
    event["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = orjson.dumps(applied).decode() + "\n"
    out = redact_event(event)["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert orjson.loads(out)["spec"]["containers"][0]["env"] == [{"name": "DB_PASSWORD", "value": REDACTED}]
    clean = '{"kind": "Deployment",\n "spec": {}}\n'
    assert redact_string(clean) == clean  # nothing to hide: not even reformatted


def test_configmap_with_a_kubeconfig_and_a_private_key() -> None:
    kubeconfig = "users:\n- name: admin\n  user:\n    client-key-data: LS0tLS1CRUdJTg==\n    token: CANARY-t\n"
    pem = "-----BEGIN EC PRIVATE KEY-----\nCANARYPEM\n-----END EC PRIVATE KEY-----\n"
    cm = {
        "kind": "ConfigMap",
        "data": {"kubeconfig": kubeconfig, "tls.key": pem, "ca.crt": "-----BEGIN CERTIFICATE-----"},
    }
    out = orjson.dumps(redact_payload(cm))
    assert b"CANARY" not in out and b"LS0tLS1CRUdJTg" not in out and b"BEGIN CERTIFICATE" in out


def test_dict_keys_are_redacted_too() -> None:
    state = {"agents": {"curl/8 Bearer CANARY-k": 1.0, "kubectl/v1.31": 2.0}}
    assert redact_payload(state) == {"agents": {"curl/8 Bearer <redacted>": 1.0, "kubectl/v1.31": 2.0}}


def test_detector_state_and_details_get_the_text_patterns_but_their_own_key_names_stay() -> None:
    state = {"token-request-then-use-from-new-ip": {"first_event": 1.5, "last_seen": [[["ci", "10.0.0.1"], 2.0]]},
             "agents": {"curl/8 Bearer CANARY-k": 1.0}, "usual_actions": {"create:serviceaccounts/token": 3.0}}  # fmt: skip
    assert redact_text_in(state) == state | {"agents": {"curl/8 Bearer <redacted>": 1.0}}


def test_an_opaque_base64_blob_is_kept() -> None:
    blob = base64.b64encode(bytes(range(256)) * 8).decode()
    assert redact_text_in({"models_pickle_b64": blob}) == {"models_pickle_b64": blob}


# ---- cost ------------------------------------------------------------------------------------------------


def test_any_nesting_depth_without_recursion() -> None:
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(100_000):
        cur["a"] = {}
        cur = cur["a"]
    cur["token"] = "CANARY"
    out = redact_event({"requestObject": deep})["requestObject"]
    for _ in range(100_000):
        out = out["a"]
    assert out == {"token": REDACTED}
    nested: list[Any] = []
    for _ in range(1_000):
        nested = [nested]
    text, cut = redacted_json({"kind": "Event", "requestObject": nested}, 16 * 1024)
    assert not cut and text.endswith("]]]]}") and TRUNCATED in text  # deeper than 100: "<truncated>"


ADVERSARIAL = [
    "password: " * 30_000, 'password: "' * 30_000, "password: [" * 30_000, "Bearer " * 40_000, "Basic " * 40_000,
    "eyJ" * 100_000, ("\\" * 30_000 + "'") * 3 + " password: x", "://a:" * 60_000, "a-" * 150_000 + "token: x",
    "X-Api-Key: " * 30_000, "--password " * 30_000, "LS0tLS1CRUdJTi" * 20_000, '\\"password\\":' * 20_000,
    '"name":"password","value":' * 20_000, "\\" * 60_000 + '"name', '{"name":"token","value":"' * 20_000,
]  # fmt: skip


@pytest.mark.parametrize("text", ADVERSARIAL, ids=[t[:12] for t in ADVERSARIAL])
def test_cost_is_linear_on_adversarial_strings(text: str) -> None:
    started = time.perf_counter()
    redact_string(text)
    redacted_json(text, 16 * 1024)
    assert time.perf_counter() - started < 5.0  # quadratic behaviour would take minutes at this size


# ---- quarantine, dead letters, reasons and errors ------------------------------------------------------


def test_quarantined_payloads_are_redacted_and_capped() -> None:
    merge = {"kind": "Event", "objectRef": {"resource": ["secrets"]}, "requestObject": {"data": {"k": "Q0FOQVJZ"}}}
    text, cut = redacted_json(merge, 16 * 1024)
    assert not cut and "Q0FOQVJZ" not in text and orjson.loads(text)["requestObject"]["data"] == {"k": REDACTED}
    line = '{"kind":"Event","requestURI":"/api/v1/namespaces/a/secrets/b","requestObject":{"data":{"k":"Q0FO'
    text, cut = redacted_json(line, 16 * 1024)
    assert "Q0FO" not in text and not cut
    text, cut = redacted_json('{"user": "bob", "password": "CANARY-line', 16 * 1024)
    assert "CANARY" not in text
    text, cut = redacted_json({"n": 10**30, "password": "CANARY"}, 1024)  # beyond orjson's 64-bit integers
    assert orjson.loads(text) == {"n": 1e30, "password": REDACTED} and not cut
    big = {"items": [{"password": "CANARY", "n": "x" * 100} for _ in range(10_000)]}
    text, cut = redacted_json(big, 16 * 1024)
    assert cut and len(text) == 16 * 1024 + len(TRUNCATED) and text.endswith(TRUNCATED) and "CANARY" not in text


def test_rejection_reasons_and_event_errors_never_echo_a_credential() -> None:
    item = exec_event()
    item["stage"] = "Bearer CANARY-stage"
    _, rejections = split_document([item])
    (rejected,) = rejections.kept
    assert "CANARY" not in rejected.reason and "Bearer <redacted>" in rejected.reason
    long = Rejected("x", "stageTimestamp '" + "9" * 10_000 + "' is not an RFC 3339 time", None)
    assert len(long.reason) <= 500
    with pytest.raises(EventError) as err:
        split_document({"kind": "password=CANARY-kind"})
    assert "CANARY" not in str(err.value)
