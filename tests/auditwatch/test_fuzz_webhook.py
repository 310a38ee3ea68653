"""Fuzzing `serve`'s webhook in process (FastAPI's TestClient against `create_serve_app`), on a SQLite file and on
PostgreSQL: batches that mix real events with poison (types swapped at any field path, extreme timestamps, deep
nesting, huge strings, text damage), and whole bodies damaged (encodings, truncation, shapes, depth).

Every case: the answer is 200 with the rejections counted, or 400/413 for a body that is bad as a whole; never
a 5xx or a traceback; within the deadline. The alerts stored are exactly those a reference pipeline finds in the
items that are valid on their own (run alone, in the same order, through a pipeline that saw exactly the same
valid items before), each once, and a redelivery of the same body changes nothing; no built-in, Falco or Sigma
detector fails on a valid event; no planted credential is stored or answered.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.errors import EventError
from detectors.events import AuditEvent, parse_body
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules import native
from tests.support.client import TestClient
from tests.support.fuzz import budget, case, ran_budget
from tests.support.fuzz_events import (
    TEXT_DAMAGE,
    Item,
    batch_item,
    damaged_text,
    event_list_of,
    offset,
    real_event,
    real_event_count,
    unique,
)
from tests.support.fuzz_store import StoreWatch, leaks, reference_alerts
from tests.support.poison import AppLabelRule, rules_dir

MAX_BODY = 16 * 1024 * 1024  # smaller than the default, so that bodies of huge items also meet the limit
USER_RULE = "watched-app"  # the user's rule type that raises on a poisoned label: the only detector allowed to fail


def serve_rules(tmp: Path) -> list[str]:
    user = tmp / "user-rules"
    user.mkdir()
    (user / "watched-app.yaml").write_text(f"id: {USER_RULE}\ntype: app-label\napps: [web]\n")
    return ["builtin", "falco", "sigma", str(rules_dir(tmp)), str(user)]


@dataclass
class Served:
    """The app under test, its store, and the reference pipeline that sees the same valid events."""

    client: TestClient
    watch: StoreWatch
    reference: Pipeline
    name: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    cleanup: Iterator[str] | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'alerts.db'}"
    else:
        from tests.support.services import PG_URL, fresh_database, require

        require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
        cleanup = fresh_database(PG_URL)
        url = next(cleanup)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(native.RULE_TYPES, "app-label", AppLabelRule.from_node)
        pipeline = Pipeline(load_rules(serve_rules(tmp)))
    reference = pipeline.fresh()
    settings_ = Settings(db_url=url, record_receipts=True, max_body_bytes=MAX_BODY)
    app = create_serve_app(settings_, pipeline=pipeline)
    with TestClient(app, raise_server_exceptions=False) as client:
        store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
        yield Served(client, StoreWatch(store), reference, request.param)
    if cleanup is not None:
        next(cleanup, None)


@dataclass
class Expected:
    """What the oracle says of a body: the status, the events valid on their own (in order), the rejections."""

    status: int
    events: list[AuditEvent] = field(default_factory=list)
    rejected: int = 0


def oracle_of_items(items: list[Item]) -> Expected:
    """Each item judged alone, as the only item of an EventList."""
    body_len = len(event_list_of([i.text for i in items]))
    if body_len > MAX_BODY:
        return Expected(413)
    expected = Expected(200)
    for item in items:
        try:
            events, rejections = parse_body(event_list_of([item.text]))
        except EventError:
            return Expected(400)  # this item alone makes the body bad as a whole
        if item.valid is True:
            assert events and not rejections, f"a valid {item.kind} item was rejected: {rejections.kept}"
        if item.valid is False:
            assert not events, f"a {item.kind} item was accepted"
        expected.events += events
        expected.rejected += rejections.total
    return expected


def oracle_of_body(body: bytes) -> Expected:
    if len(body) > MAX_BODY:
        return Expected(413)
    try:
        events, rejections = parse_body(body)
    except EventError:
        return Expected(400)
    return Expected(200, events, rejections.total)


def check(served: Served, body: bytes, expected: Expected) -> None:
    """Post the body twice (a redelivery) and check every invariant of the module docstring."""
    watch = served.watch
    before = watch.totals()
    resp = served.client.post("/audit/webhook", content=body)
    assert resp.status_code < 500, f"{resp.status_code}: {resp.text[:2000]}"
    assert resp.status_code == expected.status, f"{resp.status_code}: {resp.text[:2000]}"
    assert not leaks(resp.content), f"canaries {leaks(resp.content)} in the answer {resp.text[:2000]}"
    if expected.status != 200:
        assert watch.totals() == before
        assert resp.headers["content-type"] == "application/problem+json" and resp.json()["detail"], resp.text
        return
    alerts, failed_events = reference_alerts(served.reference, expected.events, may_fail=USER_RULE)
    answer = resp.json()
    assert answer["accepted"] == len(expected.events) - failed_events, answer
    assert answer["rejected"] == expected.rejected + failed_events, answer
    assert answer["alerts"] == len(alerts), (answer, sorted(a.rule_id for a in alerts))
    ids = {a.id for a in alerts}
    after = watch.check_stored(ids, before)
    redelivered = served.client.post("/audit/webhook", content=body)
    assert redelivered.status_code == 200, redelivered.text[:2000]
    again = redelivered.json()
    assert (again["accepted"], again["alerts"]) == (answer["accepted"] + failed_events, 0), again
    assert watch.totals() == after, "a redelivery changed the alerts, their groups or the receipts"
    watch.scan_new(ids)
    if ids:
        detail = served.client.get(f"/api/v1/alerts/{min(ids)}")
        assert detail.status_code == 200 and not leaks(detail.content), leaks(detail.content)


BATCHES = {name: budget(f"webhook batches ({name})", n) for name, n in (("sqlite", 200), ("postgresql", 60))}
BODIES = {name: budget(f"webhook bodies ({name})", n) for name, n in (("sqlite", 1500), ("postgresql", 150))}


def test_batches_of_valid_and_poison_items(served: Served) -> None:
    @settings(max_examples=BATCHES[served.name])
    @given(st.lists(batch_item(), min_size=1, max_size=8))
    def batches(items: list[Item]) -> None:
        with case(f"webhook batches ({served.name})", inputs=len(items)):
            check(served, event_list_of([i.text for i in items]), oracle_of_items(items))

    with ran_budget(f"webhook batches ({served.name})"):
        batches()


@st.composite
def damaged_body(draw: st.DrawFn) -> bytes:
    """A batch of valid events, then damaged or reshaped as a whole."""
    events = [unique(real_event(draw(st.integers(0, real_event_count() - 1)))) for _ in range(draw(st.integers(1, 4)))]
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events})
    how = draw(st.sampled_from(["utf16", "utf16-bom", "bom", "cut", "gzip", "array", "single", "nested-lists",
                                "too-deep", "scalar", "empty", "whitespace", "nul", "api-version", "items-type",
                                "text-damage", "wrapped-utf8-bom"]))  # fmt: skip
    if how in ("utf16", "utf16-bom"):
        return body.decode().encode(
            "utf-16" if how == "utf16-bom" else draw(st.sampled_from(["utf-16-le", "utf-16-be"]))
        )
    if how in ("bom", "wrapped-utf8-bom"):
        return b"\xef\xbb\xbf" + body if how == "bom" else b" \xef\xbb\xbf" + body
    if how == "cut":
        return body[: offset(draw, len(body) - 1)]
    if how == "gzip":
        return gzip.compress(body)
    if how == "array":
        return orjson.dumps(events)
    if how == "single":
        return orjson.dumps(events[0])
    if how == "nested-lists":
        doc: Any = {"kind": "EventList", "items": events}
        for _ in range(draw(st.integers(1, 6))):
            doc = [{"kind": "EventList", "items": [events[0]]}, doc] if draw(st.booleans()) else [doc]
        return orjson.dumps(doc)
    if how == "too-deep":
        depth = draw(st.integers(1000, 1100))
        return b"[" * depth + body + b"]" * depth
    if how == "scalar":
        return draw(st.sampled_from([b"0", b'"x"', b"null", b"true", b"[]", b"{}", b"1e400"]))
    if how == "empty":
        return b""
    if how == "whitespace":
        return b" \n\t" + body + b"\r\n "
    if how == "nul":
        at = offset(draw, len(body))
        return body[:at] + b"\x00" + body[at:]
    if how == "api-version":
        return body.replace(b'"audit.k8s.io/v1"', orjson.dumps(draw(st.sampled_from(["v1", 1, None, ["x"], ""]))), 1)
    if how == "items-type":
        return orjson.dumps({"kind": "EventList", "items": draw(st.sampled_from([0, "x", {"a": events[0]}, None]))})
    return draw(damaged_text(body, draw(st.sampled_from(TEXT_DAMAGE))))


def test_bodies_damaged_as_a_whole(served: Served) -> None:
    @settings(max_examples=BODIES[served.name])
    @given(damaged_body())
    def bodies(body: bytes) -> None:
        with case(f"webhook bodies ({served.name})"):
            check(served, body, oracle_of_body(body))

    with ran_budget(f"webhook bodies ({served.name})"):
        bodies()


def test_nothing_credential_shaped_is_stored_or_listed(served: Served) -> None:
    """After the cases above: no canary anywhere in the database (the SQLite files themselves), nor in the lists."""
    served.watch.scan_all()
    for path in ("/api/v1/alerts?limit=500", "/api/v1/alert-groups?limit=500", "/api/v1/receipts?limit=5000"):
        resp = served.client.get(path)
        assert resp.status_code == 200 and not leaks(resp.content), (path, leaks(resp.content))
