"""REST list endpoints on bad query parameters, on SQLite and PostgreSQL: a time out of range or malformed, a
cursor that decodes to garbage, a NUL in a text filter get 400 naming the parameter; `limit` out of range
gets 422 everywhere; never a 500 (or a 503 from the database refusing the value)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.events import event_list, scenario_events
from tests.support.problems import problem_detail

LISTS = ("/api/v1/alerts", "/api/v1/alert-groups", "/api/v1/receipts")
TIMED_LISTS = ("/api/v1/alerts", "/api/v1/alert-groups")


@pytest.fixture
def client(store: AlertStore) -> Iterator[TestClient]:
    """The scenario's alerts and receipts in the `store` fixture's database (SQLite, then PostgreSQL)."""
    settings = Settings(db_url=store.url, record_receipts=True)
    with TestClient(create_serve_app(settings), raise_server_exceptions=False) as c:
        assert c.post("/audit/webhook", content=event_list(scenario_events())).status_code == 200
        yield c


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def refused(client: TestClient, path: str, **params: str) -> str:
    return problem_detail(client.get(path, params=params), 400)


BAD_TIMES = {
    "0001-01-01T00:00:00+14:00": "out of range",  # before year 1 once in UTC: it overflowed (500) before
    "9999-12-31T23:59:59-14:00": "out of range",  # after year 9999 once in UTC
    "0001-01-01T00:00:00Z": "out of range",
    "1969-12-31T23:59:59Z": "out of range",
    "2200-01-01T00:00:00Z": "out of range",
    "yesterday": "is not a time",
    "2026-13-01T00:00:00Z": "is not a time",
    "2026-11-20T09:00:00+25:00": "is not a time",
    "1" * 400: "is not a time",
}
BAD_CURSORS = [
    "garbage",
    "%%%",
    cursor_of(["0001-01-01T00:00:00+14:00", "x"]),
    cursor_of(["9999-12-31T23:59:59-14:00", "x"]),
    cursor_of(["2026-11-20T10:00:00Z", "a\x00b"]),
    cursor_of(["2026-11-20T10:00:00Z", 7]),
    cursor_of(["2026-11-20T10:00:00Z", "a", "b\x00"]),
    cursor_of(["a\x00", "b", "c"]),
    cursor_of({"a": 1, "b": 2}),
    cursor_of([[1], "x"]),
    cursor_of(None),
    cursor_of("x"),
    base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(),
    cursor_of([[[[[[[[[[]]]]]]]]]]) * 50,
]


def test_times_out_of_range_or_malformed_get_400(client: TestClient) -> None:
    for value, problem in BAD_TIMES.items():
        for path in TIMED_LISTS:
            for name in ("since", "until"):
                detail = refused(client, path, **{name: value})
                assert detail.startswith(f"{name}: ") and problem in detail


def test_times_in_range_still_filter(client: TestClient) -> None:
    everything = client.get("/api/v1/alerts").json()["items"]
    assert everything
    for path in TIMED_LISTS:
        assert client.get(path, params={"since": "1970-01-01T00:00:00Z"}).json()["items"]
        assert client.get(path, params={"until": "2199-12-31T23:59:59+14:00"}).json()["items"]
        assert client.get(path, params={"since": "2199-12-31T00:00:00Z"}).json()["items"] == []
        assert client.get(path, params={"since": "2026-11-20"}).status_code == 200  # a date: its midnight UTC
    first = min(a["time"] for a in everything)
    later = client.get("/api/v1/alerts", params={"since": first.replace("Z", "+00:00")}).json()["items"]
    assert len(later) == len(everything)


def test_cursors_that_decode_to_garbage_get_400(client: TestClient) -> None:
    for path in LISTS:
        for cursor in BAD_CURSORS:
            assert refused(client, path, cursor=cursor).startswith("invalid cursor: pass the next_cursor")
        assert client.get(path, params={"cursor": ""}).status_code == 200  # no cursor: the first page


def test_real_cursors_still_page_through_every_list(client: TestClient) -> None:
    for path in LISTS:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = client.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            seen += [orjson.dumps(item).decode() for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == len(client.get(path, params={"limit": 500}).json()["items"])


def test_nul_in_a_text_filter_gets_400_not_a_database_error(client: TestClient) -> None:
    for path in TIMED_LISTS:
        for name in ("rule", "user", "namespace"):
            assert refused(client, path, **{name: "a\x00b"}) == f"{name}: must not contain NUL characters"
    assert refused(client, "/api/v1/receipts", audit_id="x\x00") == "audit_id: must not contain NUL characters"
    assert refused(client, "/api/v1/deliveries", sink="s\x00") == "sink: must not contain NUL characters"
    assert refused(client, "/api/v1/exceptions", rule="r\x00") == "rule: must not contain NUL characters"


@pytest.mark.parametrize("path", ["/api/v1/alerts/{}", "/api/v1/alerts/{}/history", "/api/v1/alert-groups/{}",
                                  "/api/v1/alert-groups/{}/history", "/api/v1/exceptions/{}"])  # fmt: skip
def test_nul_in_a_path_id_gets_422_not_a_database_error(client: TestClient, path: str) -> None:
    """Found by fuzzing: PostgreSQL refused the lookup, and the API answered 503 (retry later) for ever."""
    resp = client.get(path.format("a%00b"))
    assert resp.status_code == 422 and "must not contain NUL characters" in resp.text, resp.text
    for method in ("PATCH", "DELETE"):
        if method == "PATCH" and "exceptions" not in path and "history" not in path:
            answer = client.request(method, path.format("a%00b"), json={"status": "acknowledged"})
        elif method == "DELETE" and path.endswith("exceptions/{}"):
            answer = client.request(method, path.format("a%00b"))
        else:
            continue
        assert answer.status_code == 422, answer.text


CREDENTIALS = ("Bearer abcdef123456", "password=hunter2xyz", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")


def test_a_credential_sent_as_a_parameter_is_not_echoed_in_the_problem(client: TestClient) -> None:
    for credential in CREDENTIALS:
        secret = credential.rpartition("=")[2].rpartition(" ")[2]
        answers = [client.get("/api/v1/alerts", params={name: credential}) for name in ("since", "until")]
        answers += [client.get(f"/api/v1/alerts/{credential}"), client.get(f"/api/v1/nowhere/{credential}")]
        for answer in answers:
            assert answer.status_code in (400, 404), answer.text
            assert "<redacted>" in answer.json()["detail"] and secret not in answer.text


# each filter's refusal: the parameter and what it takes, and nothing of the value sent
ENUM_FILTERS = {
    "min_severity": "query.min_severity: must be one of info, low, medium, high, critical",
    "status": "query.status: each must be one of open, acknowledged, resolved, false_positive",
}


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/alerts/priority", "/api/v1/alert-groups"])
def test_a_422_names_the_parameter_and_what_it_takes_never_the_value(client: TestClient, path: str) -> None:
    for name, detail in ENUM_FILTERS.items():
        for sent in ("s3cret-value", "open,s3cret-value", "Bearer abcdef123456"):
            resp = client.get(path, params={name: sent})
            assert problem_detail(resp, 422) == detail, resp.text
            assert resp.json()["errors"] == [{"loc": ["query", name], "msg": detail.partition(": ")[2],
                                              "type": "value_error"}]  # fmt: skip
            assert "s3cret" not in resp.text and "abcdef" not in resp.text
    resp = client.get("/api/v1/deliveries", params={"status": "s3cret-value"})
    assert problem_detail(resp, 422).startswith("query.status: ") and "s3cret" not in resp.text


def test_limit_out_of_range_gets_422_on_every_list(client: TestClient) -> None:
    for path, largest in zip(LISTS, (500, 500, 5000), strict=True):
        for limit in ("0", "-1", str(largest + 1), "10" * 30, "ten", "1.5"):
            resp = client.get(path, params={"limit": limit})
            assert problem_detail(resp, 422).startswith("query.limit: "), (limit, resp.text)
            assert resp.json()["errors"][0]["loc"] == ["query", "limit"]
            assert limit not in resp.text or limit.isdigit()  # the value sent is not echoed (it may be a secret)
        assert client.get(path, params={"limit": str(largest)}).status_code == 200
