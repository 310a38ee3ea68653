"""`GET /api/v1/quarantine`: what was accepted but set aside, with its reason and its redacted payload, newest
first and paged, on SQLite and PostgreSQL; read access is enough, none is not."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail

WRITE = {"Authorization": "Bearer rw-t0ken-5e1f"}
READ = {"Authorization": "Bearer ro-t0ken-0b7a"}
SECRET = "hunter2-quarantined-5d0c"


@pytest.fixture
def client(store: AlertStore) -> Iterator[TestClient]:
    settings = Settings(
        db_url=store.url, api_token=SecretStr("rw-t0ken-5e1f"), api_read_token=SecretStr("ro-t0ken-0b7a")
    )
    with TestClient(create_serve_app(settings)) as c:
        yield c


def poison_batch() -> bytes:
    """A good event and three items that are not valid events, one carrying a password in its request."""
    good = exec_event()
    no_id = copy.deepcopy(good)
    del no_id["auditID"]
    bad_stage = copy.deepcopy(good)
    bad_stage["stage"] = "Sometime"
    bad_stage["requestObject"] = {"kind": "Secret", "stringData": {"password": SECRET}}
    return event_list([good, no_id, "junk", bad_stage])


def test_quarantined_items_are_listed_newest_first_with_reasons_and_redacted(client: TestClient) -> None:
    resp = client.post("/audit/webhook", content=poison_batch(), headers=WRITE)
    assert resp.status_code == 200 and resp.json()["quarantined"] == 3
    answer = client.get("/api/v1/quarantine", headers=READ)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [i["reason"] for i in items][::-1] == [r["reason"] for r in resp.json()["rejections"]]
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    assert all(i["origin"].startswith("webhook:/audit/webhook@") for i in items)
    assert items[2]["reason"] == "missing auditID" and items[1]["payload"] == '"junk"'
    assert "Sometime" in items[0]["payload"] and not items[0]["payload_truncated"]
    assert SECRET not in answer.text  # stored redacted
    assert answer.json()["next_cursor"] is None


def test_pages_follow_the_cursor_to_the_end(client: TestClient) -> None:
    for _ in range(2):  # the same batch twice: its items are quarantined twice (six rows)
        assert client.post("/audit/webhook", content=poison_batch(), headers=WRITE).status_code == 200
    seen: list[int] = []
    cursor = None
    for _ in range(10):  # bounded: 3 pages are expected
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/quarantine", params=params, headers=READ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    whole = client.get("/api/v1/quarantine", headers=READ).json()["items"]
    assert seen == [i["id"] for i in whole] and len(seen) == 6


def test_bad_cursor_limit_and_access(client: TestClient) -> None:
    assert problem_detail(client.get("/api/v1/quarantine?cursor=nope", headers=READ), 400).startswith("invalid cursor")
    assert problem_detail(client.get("/api/v1/quarantine?limit=0", headers=READ), 422).startswith("query.limit")
    assert client.get("/api/v1/quarantine").status_code == 401
