"""`/readyz`, which needs no access, and every REST call: when the store does not answer, a 503 that says so and
nothing of the database (its host, its user), which the log has instead, once until it changes; on SQLite and
PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, make_url

from api.store import AlertStore
from auditwatch.server import create_api_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.problems import problem_detail

TOKEN = "rw-t0ken-93be51"  # access control on: /readyz stays open all the same
UNREADY = "alert store unavailable: database unreachable"


@pytest.fixture
def client(store: AlertStore) -> Iterator[TestClient]:
    with TestClient(create_api_app(Settings(db_url=store.url, api_token=SecretStr(TOKEN)))) as c:
        yield c


def broken_urls(url: str) -> list[tuple[str, list[str]]]:
    """URLs of a database that does not answer, and what of them the cause names."""
    if url.startswith("sqlite"):
        return [("sqlite:////nonexistent-dir-5c1e/alerts.db", ["unable to open database file"])]
    given = make_url(url)
    return [
        (given.set(port=1).render_as_string(hide_password=False), ["127.0.0.1", "port 1"]),  # nothing listens
        (given.set(username="nosuch_user_4d2f").render_as_string(hide_password=False), ["nosuch_user_4d2f"]),
    ]


def test_an_unready_store_is_a_generic_503_and_the_cause_is_logged_once(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
    working = store.engine
    caplog.set_level(logging.WARNING, logger="auditwatch.store")
    for url, named in broken_urls(store.url):
        store.engine = create_engine(url)
        caplog.clear()
        for _ in range(3):  # a probe every few seconds
            resp = client.get("/readyz")
            assert problem_detail(resp, 503) == UNREADY
            assert not any(part in resp.text for part in named), resp.text
        logged = [r.getMessage() for r in caplog.records if "/readyz" in r.getMessage()]
        assert len(logged) == 1 and all(part in logged[0] for part in named), logged
        store.engine.dispose()
        store.engine = working
        assert client.get("/readyz").json()["status"] == "ok"


REST_CALLS = [
    ("GET", "/api/v1/alerts"), ("GET", "/api/v1/alerts/priority"), ("GET", "/api/v1/alert-groups"),
    ("GET", "/api/v1/alerts/a-1"), ("GET", "/api/v1/alerts/a-1/history"), ("GET", "/api/v1/alert-groups/g-1"),
    ("GET", "/api/v1/deliveries"), ("GET", "/api/v1/receipts"), ("GET", "/api/v1/quarantine"), ("GET", "/api/v1/exceptions"),
    ("GET", "/api/v1/exceptions/e-1"), ("PATCH", "/api/v1/alerts/a-1"), ("DELETE", "/api/v1/exceptions/e-1"),
]  # fmt: skip


def test_rest_calls_on_a_store_that_does_not_answer_are_generic_503s_and_the_cause_is_logged_once(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
    working = store.engine
    caplog.set_level(logging.WARNING, logger="auditwatch.store")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for url, named in broken_urls(store.url):
        store.engine = create_engine(url)
        caplog.clear()
        for method, path in REST_CALLS:
            body = {"status": "acknowledged"} if method == "PATCH" else None
            resp = client.request(method, path, headers=auth, json=body)
            assert problem_detail(resp, 503) == UNREADY, (method, path)
            assert resp.headers["Retry-After"] == "5"
            assert not any(part in resp.text for part in named), resp.text
        logged = [r.getMessage() for r in caplog.records if "REST" in r.getMessage()]
        assert len(logged) == 1 and all(part in logged[0] for part in named), logged
        store.engine.dispose()
        store.engine = working
        assert client.get("/api/v1/alerts", headers=auth).status_code == 200
