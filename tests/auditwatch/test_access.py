"""Read-only and read-write access: tokens, client certificate common names, and every combination of them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auditwatch.auth import Access, AccessPolicy, certificate_access, common_names, subject_name, token_access
from auditwatch.cli_options import TOKEN_HELP
from auditwatch.metrics import Metrics
from auditwatch.server import create_api_app, create_ingest_app, create_metrics_app, create_serve_app
from auditwatch.settings import Settings, check_listener
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.cli import RunCli
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail

WRITE_TOKEN = "rw-t0ken-8f3a1c2e9d"
READ_TOKEN = "ro-t0ken-5b7e0d4a1f"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRONG = {"Authorization": "Bearer guess"}
BARE = {"Authorization": WRITE_TOKEN}  # the token without its scheme
NONE: dict[str, str] = {}


def with_client_cert(app: Any, name: str | None) -> Any:
    """The app as uvicorn's ClientCertProtocol serves it: the verified certificate's subject in the scope."""
    if name is None:
        return app

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "extensions": {"tls": {"client_cert_name": name}}}, receive, send)

    return asgi


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(load_rules(["builtin"]))


def serve_app(pipeline: Pipeline, **settings: Any) -> Any:
    return create_serve_app(Settings(**settings), pipeline=pipeline.fresh())


@pytest.fixture
def open_client(db_url: str, pipeline: Pipeline) -> Iterator[TestClient]:
    """No gate at all (loopback): everything allowed. Also seeds an alert for the other clients' database."""
    with TestClient(serve_app(pipeline, db_url=db_url)) as c:
        assert c.post("/audit/webhook", content=event_list([exec_event()])).status_code == 200
        yield c


@dataclass(frozen=True)
class Gated:
    """A client of a gated app over the seeded database, and the ids of an alert and its group there."""

    client: TestClient
    alert_id: str
    group_id: str


@contextmanager
def gated(
    db_url: str, open_client: TestClient, pipeline: Pipeline, cert: str | None, **settings: Any
) -> Iterator[Gated]:
    alert = open_client.get("/api/v1/alerts").json()["items"][0]
    app = with_client_cert(serve_app(pipeline, db_url=db_url, **settings), cert)
    with TestClient(app) as client:
        yield Gated(client, alert["id"], alert["group_id"])


def calls(gate: Gated, headers: dict[str, str]) -> dict[str, int]:
    """The status of one call of each kind: reads, the webhook, triage and exceptions."""
    client, alert_id, group_id = gate.client, gate.alert_id, gate.group_id
    created = client.post("/api/v1/exceptions", json={"rule_id": "r", "match": {"verb": "get"}}, headers=headers)
    exception_id = created.json()["id"] if created.status_code == 201 else "none"
    return {
        "GET alerts": client.get("/api/v1/alerts", headers=headers).status_code,
        "GET alert": client.get(f"/api/v1/alerts/{alert_id}", headers=headers).status_code,
        "GET history": client.get(f"/api/v1/alerts/{alert_id}/history", headers=headers).status_code,
        "GET exceptions": client.get("/api/v1/exceptions", headers=headers).status_code,
        "GET docs": client.get("/openapi.json", headers=headers).status_code,
        "HEAD alerts": client.head("/api/v1/alerts", headers=headers).status_code,
        "POST webhook": client.post("/audit/webhook", content=event_list([exec_event()]), headers=headers).status_code,
        "PATCH alert": client.patch(f"/api/v1/alerts/{alert_id}", json={"status": "acknowledged"},
                                    headers=headers).status_code,
        "PATCH group": client.patch(f"/api/v1/alert-groups/{group_id}", json={"note": "n"}, headers=headers).status_code,
        "POST exception": created.status_code,
        "DELETE exception": client.delete(f"/api/v1/exceptions/{exception_id}", headers=headers).status_code,
    }  # fmt: skip


READS = ("GET alerts", "GET alert", "GET history", "GET exceptions", "GET docs", "HEAD alerts")
WRITES = ("POST webhook", "PATCH alert", "PATCH group", "POST exception", "DELETE exception")
ALLOWED = {"GET alerts": 200, "GET alert": 200, "GET history": 200, "GET exceptions": 200, "GET docs": 200,
           "HEAD alerts": 200, "POST webhook": 200, "PATCH alert": 200, "PATCH group": 200, "POST exception": 201,
           "DELETE exception": 204}  # fmt: skip


def expected(level: str) -> dict[str, int]:
    """What each call answers at an access level: none, read or write."""
    if level == "write":
        return dict(ALLOWED)
    if level == "read":
        return {**{k: ALLOWED[k] for k in READS}, **dict.fromkeys(WRITES, 403)}
    return dict.fromkeys(READS + WRITES, 401)


TOKENS: dict[str, Any] = {"api_token": WRITE_TOKEN, "api_read_token": READ_TOKEN}
CNS: dict[str, Any] = {"tls_client_ca_file": "ca.pem", "write_client_cns": ["kube-apiserver", "triage-bot"]}


@pytest.mark.parametrize(
    ("settings", "cert", "headers", "level"),
    [
        ({}, None, NONE, "write"),  # loopback, no gate: as before
        ({"api_token": WRITE_TOKEN}, None, NONE, "none"),
        ({"api_token": WRITE_TOKEN}, None, WRONG, "none"),
        ({"api_token": WRITE_TOKEN}, None, READ, "none"),  # a read token nobody configured
        ({"api_token": WRITE_TOKEN}, None, WRITE, "write"),
        (TOKENS, None, NONE, "none"),
        (TOKENS, None, WRONG, "none"),
        (TOKENS, None, BARE, "none"),
        (TOKENS, None, READ, "read"),
        (TOKENS, None, WRITE, "write"),
        ({"tls_client_ca_file": "ca.pem"}, "CN=anyone,O=corp", NONE, "write"),  # no CN list: every cert writes
        (CNS, "CN=kube-apiserver", NONE, "write"),
        (CNS, "CN=triage-bot,OU=sec,O=corp", NONE, "write"),
        (CNS, "CN=dashboard,O=corp", NONE, "read"),
        (CNS, "CN=kube-apiserver+CN=dashboard", NONE, "read"),  # every CN must be listed
        (CNS, "O=corp", NONE, "read"),  # no CN at all
        (CNS, None, NONE, "none"),
        ({**CNS, **TOKENS}, "CN=kube-apiserver", WRITE, "write"),
        ({**CNS, **TOKENS}, "CN=kube-apiserver", READ, "read"),  # the lower of the two gates
        ({**CNS, **TOKENS}, "CN=dashboard", WRITE, "read"),
        ({**CNS, **TOKENS}, "CN=dashboard", READ, "read"),
        ({**CNS, **TOKENS}, "CN=kube-apiserver", NONE, "none"),
        ({**CNS, **TOKENS}, "CN=dashboard", WRONG, "none"),
    ],
)
def test_every_combination_of_gates(
    db_url: str, open_client: TestClient, pipeline: Pipeline, settings: dict[str, Any], cert: str | None,
    headers: dict[str, str], level: str,
) -> None:  # fmt: skip
    with gated(db_url, open_client, pipeline, cert, **settings) as gate:
        assert calls(gate, headers) == expected(level)
        assert gate.client.get("/healthz").status_code == 200 and gate.client.get("/readyz").status_code == 200


def test_refusals_say_why_without_echoing_the_token(
    db_url: str, open_client: TestClient, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with gated(db_url, open_client, pipeline, None, **TOKENS) as gate:
        client = gate.client
        denied = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {WRITE_TOKEN}x"})
        assert problem_detail(denied, 401) == "missing or wrong bearer token"
        assert denied.headers["WWW-Authenticate"] == "Bearer"
        read_only = client.patch("/api/v1/alerts/x", json={"status": "resolved"}, headers=READ)
        assert "read-only access" in problem_detail(read_only, 403)
        for resp in (denied, read_only):
            assert WRITE_TOKEN not in resp.text and READ_TOKEN not in resp.text
    assert WRITE_TOKEN not in caplog.text and READ_TOKEN not in caplog.text


def test_the_bearer_scheme_is_matched_without_case_and_the_token_with_it() -> None:
    policy = AccessPolicy(f"Bearer {WRITE_TOKEN}".encode(), f"Bearer {READ_TOKEN}".encode(), None)
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert token_access(policy, f"{scheme} {WRITE_TOKEN}") is Access.WRITE
        assert token_access(policy, f"{scheme} {READ_TOKEN}") is Access.READ
    for header in (f"Bearer {WRITE_TOKEN.upper()}", f"Bearer  {WRITE_TOKEN}", f"Basic {WRITE_TOKEN}", WRITE_TOKEN,
                   f"Bearer{WRITE_TOKEN}", f"Bearer {WRITE_TOKEN} ", "bearer", ""):  # fmt: skip
        assert token_access(policy, header) is Access.NONE, header


def test_the_api_process_has_the_same_levels(db_url: str, open_client: TestClient) -> None:
    alert_id = open_client.get("/api/v1/alerts").json()["items"][0]["id"]
    with TestClient(create_api_app(Settings(db_url=db_url, **TOKENS))) as client:
        assert client.get("/api/v1/alerts", headers=READ).status_code == 200
        body = {"status": "resolved"}
        assert client.patch(f"/api/v1/alerts/{alert_id}", json=body, headers=READ).status_code == 403
        assert client.patch(f"/api/v1/alerts/{alert_id}", json=body).status_code == 401
        assert client.patch(f"/api/v1/alerts/{alert_id}", json=body, headers=WRITE).status_code == 200


def test_on_ingest_the_read_only_token_reaches_its_gets_not_the_webhook() -> None:
    """What `ingest --read-token-file` says it gives (auditwatch/cli_options.py)."""
    settings = Settings(kafka_bootstrap="127.0.0.1:1", send_timeout_s=1, **TOKENS)  # no Kafka: no matter here
    with TestClient(create_ingest_app(settings, create_topics=False)) as client:
        for path in ("/metrics", "/version", "/docs", "/openapi.json"):
            assert client.get(path, headers=READ).status_code == 200, path
            assert client.get(path).status_code == 401, path
        assert client.post("/audit/webhook", content=event_list([exec_event()]), headers=READ).status_code == 403
        assert client.get("/api/v1/alerts", headers=READ).status_code == 404  # ingest serves no alerts
        assert client.get("/healthz").status_code == 200


def test_detects_metrics_listener_serves_gets_that_either_token_reaches_and_an_open_healthz() -> None:
    """What `detect --token-file` and `--read-token-file` say (auditwatch/cli_options.py): no /readyz there."""
    with TestClient(create_metrics_app(Settings(**TOKENS), Metrics.for_api())) as client:
        for path in ("/metrics", "/version", "/docs"):
            for token in (READ, WRITE):
                assert client.get(path, headers=token).status_code == 200, path
            assert client.get(path).status_code == 401, path
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz", headers=WRITE).status_code == 404


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ({"api_read_token": READ_TOKEN}, "--read-token-file needs --token-file"),
        ({"api_token": WRITE_TOKEN, "api_read_token": WRITE_TOKEN}, "must differ"),
        ({"write_client_cns": ["kube-apiserver"]}, "--write-client-cn needs --tls-client-ca"),
    ],
)
def test_inconsistent_gates_refuse_to_start(settings: dict[str, Any], refusal: str) -> None:
    reason = check_listener(Settings(**settings))
    assert reason is not None and refusal in reason


def test_write_client_cns_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITWATCH_WRITE_CLIENT_CNS", "kube-apiserver, triage-bot")
    monkeypatch.setenv("AUDITWATCH_API_READ_TOKEN", READ_TOKEN)
    settings = Settings()
    assert settings.write_client_cns == ["kube-apiserver", "triage-bot"]
    assert settings.api_read_token is not None and READ_TOKEN not in repr(settings)


@pytest.mark.parametrize(
    "common_name", ["kube-apiserver", "a,b+c", 'quote"d', "back\\slash", "#hash", " spaced ", "=eq;semi<>", "é"]
)
def test_certificate_subjects_round_trip(common_name: str) -> None:
    peercert = {"subject": ((("countryName", "DE"),), (("organizationName", "x,y"),), (("commonName", common_name),))}
    name = subject_name(peercert)
    assert name is not None and name.endswith(",O=x\\,y,C=DE")
    assert common_names(name) == [common_name]
    policy = AccessPolicy(write_client_cns=frozenset({common_name}))
    assert certificate_access(policy, name) == 2
    assert subject_name({}) is None and subject_name(None) is None


def test_the_flags_refuse_inconsistent_gates(tmp_path: Path, run_cli: RunCli) -> None:
    token = tmp_path / "ro"
    token.write_text(READ_TOKEN + "\n")
    alone = run_cli("serve", "--read-token-file", str(token))
    assert alone.code == 2 and "--read-token-file needs --token-file" in alone.err
    assert READ_TOKEN not in alone.err + alone.out
    no_ca = run_cli("api", "--write-client-cn", "kube-apiserver")
    assert no_ca.code == 2 and "--write-client-cn needs --tls-client-ca" in no_ca.err


def test_on_serve_and_api_the_read_only_token_reaches_what_their_help_says(
    db_url: str, open_client: TestClient, pipeline: Pipeline
) -> None:
    """What `serve --read-token-file` and `api --read-token-file` say they give (auditwatch/cli_options.py)."""
    paths = ["/api/v1/alerts", "/api/v1/alert-groups", "/api/v1/exceptions", "/api/v1/deliveries",
             "/api/v1/quarantine", "/api/v1/receipts", "/metrics", "/docs", "/version"]  # fmt: skip
    # (the console takes the token in its login form: tests/auditwatch/console)
    serve = serve_app(pipeline, db_url=db_url, record_receipts=True, **TOKENS)
    api = create_api_app(Settings(db_url=db_url, record_receipts=True, **TOKENS))
    for app in (serve, api):
        with TestClient(app) as client:
            for path in paths:
                assert client.get(path, headers=READ).status_code == 200, path
                assert client.get(path).status_code == 401, path
    help_text = " ".join(TOKEN_HELP["serve"][1].split())
    for what in ("alerts", "groups", "exceptions", "deliveries", "quarantine", "receipts", "console", "/metrics"):
        assert what in help_text, what
    assert TOKEN_HELP["api"][1] == TOKEN_HELP["serve"][1]
