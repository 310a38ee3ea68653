"""Fuzzing the REST API's query parameters and path ids, on SQLite and PostgreSQL: times of every shape (years 1 to
9999, offsets, leap seconds, nanoseconds), cursors that decode to anything, text with NULs, invalid UTF-8 and lone
surrogates (percent-encoded), numbers out of range, parameters repeated.

Every request: 200 with a page, or 400/404/422 with a one-line JSON detail; never a 5xx, never a traceback.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.events import event_list, scenario_events
from tests.support.fuzz import budget, case, ran_budget
from tests.support.fuzz_events import timestamps

LISTS = {
    "/api/v1/alerts": ("min_severity", "rule", "user", "namespace", "since", "until", "status", "assignee", "limit",
                       "cursor"),
    "/api/v1/alert-groups": ("min_severity", "rule", "user", "namespace", "since", "until", "status", "assignee",
                             "limit", "cursor"),
    "/api/v1/receipts": ("audit_id", "limit", "cursor"),
    "/api/v1/deliveries": ("status", "sink", "limit", "cursor"),
    "/api/v1/exceptions": ("rule",),
}  # fmt: skip
ITEMS = ("/api/v1/alerts/{}", "/api/v1/alert-groups/{}", "/api/v1/alerts/{}/history", "/api/v1/alert-groups/{}/history",
         "/api/v1/exceptions/{}")  # fmt: skip
ANSWERS = {200, 400, 404, 422}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The scenario's alerts and receipts, in a SQLite file or a PostgreSQL database."""
    cleanup: Iterator[str] | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz-rest') / 'alerts.db'}"
    else:
        from tests.support.services import PG_URL, fresh_database, require

        require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
        cleanup = fresh_database(PG_URL)
        url = next(cleanup)
    with TestClient(create_serve_app(Settings(db_url=url, record_receipts=True)), raise_server_exceptions=False) as c:
        assert c.post("/audit/webhook", content=event_list(scenario_events())).status_code == 200
        c.headers["X-Fuzz-Backend"] = request.param
        yield c
    if cleanup is not None:
        next(cleanup, None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=20), timestamps()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip
cursors = st.one_of(
    st.builds(lambda t, i: _b64(orjson.dumps([t, i])), timestamps(), st.text(max_size=40)),
    st.builds(lambda v: _b64(orjson.dumps(v)), json_values),
    st.builds(_b64, st.binary(max_size=60)),
    st.text(max_size=60),
)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "a\x00b", "é", "😀", "%", "'; drop table alerts; --", "*", "_", "\\", "open,\x00",
                     "x" * 5000, "system:masters", "open,acknowledged,open", "critical", "CRITICAL", " high "]),
)  # fmt: skip
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "1", "500", "501", "5000", "5001", "1e3", "-0", " 1", "0x10", "", "nan"]),
)


def raw_text(draw: st.DrawFn) -> str:
    """A parameter value as it goes on the URL: percent-encoded text, or bytes that are not UTF-8."""
    kind = draw(st.sampled_from(["text", "text", "time", "number", "cursor", "bytes"]))
    if kind == "bytes":
        return "".join(f"%{b:02X}" for b in draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"a\x00",
                                                                  b"\xef\xbb\xbf2026-11-20T09:00:00Z"])))  # fmt: skip
    value = draw({"text": texts, "time": timestamps(), "number": numbers, "cursor": cursors}[kind])
    return quote(value.encode("utf-8", errors="surrogatepass"), safe="")


@st.composite
def list_request(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(sorted(LISTS)))
    names = draw(st.lists(st.sampled_from([*LISTS[path], "bogus"]), max_size=4))
    query = "&".join(f"{name}={raw_text(draw)}" for name in names)
    return f"{path}?{query}" if query else path


@st.composite
def item_request(draw: st.DrawFn) -> str:
    template = draw(st.sampled_from(ITEMS))
    if draw(st.booleans()):
        return template.format(draw(st.sampled_from(["%00", "a%00b", "%ff", "%ed%a0%80", "..", "%2e%2e", "a%2Fb"])))
    return template.format(quote(draw(st.one_of(texts, cursors)).encode("utf-8", "surrogatepass"), safe=""))


def check(client: TestClient, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code in ANSWERS, f"GET {url}: {resp.status_code} {resp.text[:1000]}"
    body = resp.json()
    if resp.status_code == 200:
        assert isinstance(body, dict) and ("items" in body or "id" in body), body
    else:
        detail = body["detail"]
        assert isinstance(detail, (str, list)) and (not isinstance(detail, str) or "\n" not in detail), body


REQUESTS = {name: budget(f"REST parameters ({name})", n) for name, n in (("sqlite", 600), ("postgresql", 200))}


def test_list_parameters(client: TestClient) -> None:
    backend = client.headers["X-Fuzz-Backend"]

    @settings(max_examples=REQUESTS[backend])
    @given(st.lists(list_request(), min_size=1, max_size=3), item_request())
    def requests(urls: list[str], item: str) -> None:
        with case(f"REST parameters ({backend})", inputs=len(urls) + 1):
            for url in [*urls, item]:
                check(client, url)

    with ran_budget(f"REST parameters ({backend})"):
        requests()
