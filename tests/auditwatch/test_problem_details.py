"""Every HTTP error has one body, everywhere: RFC 9457 problem details (webhook, REST, access control, the
router's 404 and 405, validation's 422, a 500), and the OpenAPI document says so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine

from api.store import AlertStore
from auditwatch.server import create_api_app, create_ingest_app, create_serve_app
from auditwatch.settings import Settings
from ingest.webhook import SINK_UNAVAILABLE, SinkResult, SinkUnavailable
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail

TOKEN = {"api_token": "rw-t0ken-71c2", "api_read_token": "ro-t0ken-93d0"}
READ = {"Authorization": "Bearer ro-t0ken-93d0"}


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    app = create_serve_app(Settings(db_url=db_url, max_body_bytes=4096))

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug, with an internal detail: /var/lib/secret-path")

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/audit/webhook", content=event_list([exec_event()])).status_code == 200
        yield c


def test_the_router_and_the_routes_answer_404_and_405_alike(client: TestClient) -> None:
    assert problem_detail(client.get("/nope/x"), 404) == "no such path: /nope/x"
    assert problem_detail(client.get("/api/v1/alerts/does-not-exist"), 404) == "no alert 'does-not-exist'"
    resp = client.put("/api/v1/alerts")
    assert problem_detail(resp, 405) == "PUT is not allowed on /api/v1/alerts" and resp.headers["Allow"] == "GET"
    assert problem_detail(client.get("/audit/webhook"), 405) == "GET is not allowed on /audit/webhook"
    assert problem_detail(client.get("/k8s-audit"), 405) == "GET is not allowed on /k8s-audit"


def test_the_webhook_answers_400_and_413_as_problems(client: TestClient) -> None:
    assert problem_detail(client.post("/audit/webhook", content=b"{"), 400).startswith("malformed JSON: ")
    big = client.post("/audit/webhook", content=event_list([exec_event()] * 10))
    assert problem_detail(big, 413) == "request body is larger than the limit of 4096 bytes"


def test_validation_errors_are_422_problems_that_list_fields_without_echoing_values(client: TestClient) -> None:
    resp = client.get("/api/v1/alerts", params={"limit": "s3cret-value"})
    assert (
        problem_detail(resp, 422)
        == "query.limit: Input should be a valid integer, unable to parse string as an integer"
    )
    assert resp.json()["errors"] == [
        {"loc": ["query", "limit"], "msg": "Input should be a valid integer, unable to parse string as an integer",
         "type": "int_parsing"}
    ]  # fmt: skip
    assert "s3cret-value" not in resp.text
    alert_id = client.get("/api/v1/alerts").json()["items"][0]["id"]
    patched = client.patch(f"/api/v1/alerts/{alert_id}", json={"status": "s3cret-status", "bogus": 1})
    detail = problem_detail(patched, 422)
    assert detail.startswith("body.status: ") and "s3cret-status" not in patched.text
    assert [e["loc"] for e in patched.json()["errors"]][0] == ["body", "status"]
    # a route's own 422 (a bad severity): the same shape, `errors` included
    urgent = client.get("/api/v1/alerts?min_severity=urgent")
    assert problem_detail(urgent, 422).startswith("query.min_severity: must be one of info, ")
    assert urgent.json()["errors"][0]["loc"] == ["query", "min_severity"] and "urgent" not in urgent.text


def test_a_bug_is_a_500_problem_that_tells_nothing_internal(client: TestClient) -> None:
    resp = client.get("/boom")
    assert problem_detail(resp, 500) == "internal error: the server's log has the cause"
    assert "secret-path" not in resp.text


def test_store_down_is_a_503_problem_with_retry_after(client: TestClient) -> None:
    store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
    store.engine.dispose()
    store.engine = create_engine("sqlite:////nonexistent-dir/x.db")  # the database went away
    resp = client.post("/audit/webhook", content=event_list([{**exec_event(), "auditID": "another-request"}]))
    assert problem_detail(resp, 503) == SINK_UNAVAILABLE and resp.headers["Retry-After"]
    assert problem_detail(client.get("/api/v1/alerts"), 503)
    assert problem_detail(client.get("/readyz"), 503) == "alert store unavailable: database unreachable"
    page = client.get("/")  # the console: a 503 page, as plain about its cause
    assert page.status_code == 503 and "alert store unavailable: database unreachable" in page.text
    for answer in (resp, page):  # the store's error names the database's path (a PostgreSQL one, host and user)
        assert "nonexistent-dir" not in answer.text


def test_access_refusals_are_problems(db_url: str) -> None:
    with TestClient(create_api_app(Settings(db_url=db_url, **TOKEN))) as c:
        resp = c.get("/api/v1/alerts")
        assert problem_detail(resp, 401) == "missing or wrong bearer token" and resp.headers["WWW-Authenticate"]
        assert problem_detail(c.get("/nope", headers=READ), 404)  # past the gate: the router's 404
        assert problem_detail(c.post("/api/v1/exceptions", json={}, headers=READ), 403).startswith("read-only access")


class DownSink:
    """Kafka away: what the ingest app's KafkaSink says then."""

    bootstrap = "127.0.0.1:1"

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> None:
        raise SinkUnavailable("Kafka at 127.0.0.1:1 is unreachable: no broker answered")

    async def accept(self, *_: Any) -> SinkResult:
        raise SinkUnavailable("Kafka did not acknowledge the batch")


def test_the_ingest_app_answers_in_the_same_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    import auditwatch.server

    async def no_topics(*_: Any, **__: Any) -> None:
        raise OSError("Kafka is away")

    monkeypatch.setattr(auditwatch.server, "ensure_topics", no_topics)
    app = create_ingest_app(Settings(kafka_bootstrap="127.0.0.1:1"), sink=DownSink())  # type: ignore[arg-type]
    with TestClient(app) as c:
        resp = c.post("/audit/webhook", content=event_list([exec_event()]))
        assert "retry later" in problem_detail(resp, 503) and resp.headers["Retry-After"] == "5"
        assert problem_detail(c.get("/readyz"), 503) == "Kafka unavailable: unreachable"
        assert problem_detail(c.post("/audit/webhook", content=b"[1"), 400).startswith("malformed JSON")
        assert problem_detail(c.get("/api/v1/alerts"), 404)  # no REST here


def test_openapi_documents_every_error_as_a_problem(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["Problem"]["required"]) == {"title", "status", "detail"}
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "problem+json" in spec["info"]["description"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            for status, response in responses.items():
                if status == "default" or status.startswith(("4", "5")):
                    assert response["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (method, path, status)
