"""HEAD is answered wherever GET is (probes, /metrics, the REST API's reads, /docs, the console), as the GET
with no body, under the same access rules; detect's metrics listener too, over a real socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from auditwatch.metrics import Metrics
from auditwatch.metrics_listener import MetricsListener
from auditwatch.server import create_api_app, create_ingest_app, create_serve_app
from auditwatch.settings import Settings
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from ingest.webhook import SinkResult
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event

WRITE_TOKEN = "rw-t0ken-4e1b9c"
READ_TOKEN = "ro-t0ken-0d7a35"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(load_rules(["builtin"]))


@pytest.fixture
def serve(db_url: str, pipeline: Pipeline) -> Iterator[TestClient]:
    with TestClient(create_serve_app(Settings(db_url=db_url), pipeline=pipeline.fresh())) as client:
        assert client.post("/audit/webhook", content=event_list([exec_event()])).status_code == 200
        yield client


def same_as_get(client: TestClient, path: str, **headers: str) -> httpx.Response:
    """HEAD `path`, checked against its GET: the same status and headers, no body."""
    got = client.get(path, headers=headers, follow_redirects=False)
    head = client.head(path, headers=headers, follow_redirects=False)
    assert (head.status_code, head.content) == (got.status_code, b""), (path, head.status_code, got.status_code)
    assert head.headers.get("content-type") == got.headers.get("content-type"), path
    if path != "/metrics":  # a scrape changes what the next one says
        assert head.headers.get("content-length") == got.headers.get("content-length"), path
    return head


def test_head_answers_every_get_of_serve_without_a_body(serve: TestClient) -> None:
    alert_id = serve.get("/api/v1/alerts").json()["items"][0]["id"]
    paths = ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/api/v1/alerts", "/api/v1/alert-groups",
             "/api/v1/alerts/priority", f"/api/v1/alerts/{alert_id}", f"/api/v1/alerts/{alert_id}/history",
             "/api/v1/exceptions", "/api/v1/receipts", "/api/v1/deliveries", "/", "/rules", f"/alerts/{alert_id}",
             "/api/v1/alerts/nope", "/nowhere"]  # fmt: skip
    for path in paths:
        assert same_as_get(serve, path).status_code == (404 if "nope" in path or path == "/nowhere" else 200), path
    # HEAD is no way around a route's methods: the webhook takes POST alone
    assert serve.head("/audit/webhook").status_code == 405


def test_head_answers_the_api_and_ingest_apps(db_url: str) -> None:
    with TestClient(create_api_app(Settings(db_url=db_url))) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1/alerts"):
            assert same_as_get(client, path).status_code == 200

    class ReadySink:
        async def accept(self, *_: Any) -> SinkResult:
            return SinkResult()

        async def ready(self) -> None:
            return None

    app = create_ingest_app(Settings(kafka_bootstrap="127.0.0.1:1"), sink=ReadySink())  # type: ignore[arg-type]
    client = TestClient(app)  # without its lifespan: no Kafka to start
    for path in ("/healthz", "/readyz", "/metrics"):
        assert same_as_get(client, path).status_code == 200


def test_head_needs_the_access_get_needs(db_url: str, pipeline: Pipeline) -> None:
    settings = Settings(db_url=db_url, api_token=WRITE_TOKEN, api_read_token=READ_TOKEN)
    with TestClient(create_serve_app(settings, pipeline=pipeline.fresh())) as client:
        for token, status in ((None, 401), ("guess", 401), (READ_TOKEN, 200), (WRITE_TOKEN, 200)):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for path in ("/api/v1/alerts", "/metrics", "/docs"):
                assert same_as_get(client, path, **headers).status_code == status, (path, token)
        for path in ("/healthz", "/readyz"):  # the probes stay open
            assert same_as_get(client, path).status_code == 200
        login = same_as_get(client, "/")  # the console sends a person without access to its login form
        assert login.status_code == 303 and login.headers["location"].startswith("/login")
        read = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert client.head("/audit/webhook", headers=read).status_code == 405  # a read, of a route with no GET


def test_detects_metrics_listener_answers_head(db_url: str, pipeline: Pipeline) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    listener = MetricsListener(Settings(host="127.0.0.1", port=port), Metrics.for_detection(pipeline.fresh(), None))
    listener.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):
            try:
                head = httpx.head(url, timeout=5)
                break
            except httpx.ConnectError:
                listener.thread.join(0.05)
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        assert head.headers["content-type"].startswith("text/plain")
        assert httpx.get(url, timeout=5).text.startswith("# HELP")
    finally:
        listener.stop()
