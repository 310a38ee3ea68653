"""The webhook next to poison: a valid event's alerts are stored, the poisoned item is quarantined with its
reason, the batch answers 200; rejections are capped per batch; the reply and the errors say what happened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.events import MAX_KEPT_REJECTED
from detectors.limits import MAX_EVENT_DEPTH
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail


def with_field(path: str, value: Any) -> dict[str, Any]:
    event = exec_event()
    event["auditID"] = "00000000-0000-0000-0000-00000000beef"
    *parents, last = path.split(".")
    node = event
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return event


def deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


POISON = {
    "year 1 east of UTC": ("stageTimestamp", "0001-01-01T00:00:00+14:00", "is outside the years"),
    "year 9999 west of UTC": ("stageTimestamp", "9999-12-31T23:59:59-14:00", "is outside the years"),
    "received in year 1": ("requestReceivedTimestamp", "0001-01-01T00:00:00+14:00", "is outside the years"),
    "resource list": ("objectRef.resource", ["pods"], "objectRef.resource must be a string, got list"),
    "resource object": ("objectRef.resource", {"a": 1}, "objectRef.resource must be a string, got object"),
    "stage list": ("stage", ["ResponseComplete"], "stage must be a string, got list"),
    "stage object": ("stage", {"a": 1}, "stage must be a string, got object"),
    "apiVersion list": ("apiVersion", ["audit.k8s.io/v1"], "apiVersion must be a string, got list"),
    "apiVersion object": ("apiVersion", {"a": 1}, "apiVersion must be a string, got object"),
    "username list": ("user.username", ["alice"], "user.username must be a string, got list"),
    "username object": ("user.username", {"a": 1}, "user.username must be a string, got object"),
    "impersonated list": ("impersonatedUser.username", ["bob"], "impersonatedUser.username must be a string, got list"),
    "impersonated object": ("impersonatedUser.username", {"a": 1}, "impersonatedUser.username must be a string"),
    "groups of lists": ("user.groups", [["x"]], "user.groups[0] must be a string, got list"),
    "code string": ("responseStatus.code", "101", "responseStatus.code must be an integer (int32), got string"),
}
DEPTHS = [MAX_EVENT_DEPTH + 1, 500, 600, 1020]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_serve_app(Settings(db_url=db_url, max_body_bytes=16 * 1024 * 1024))) as c:
        yield c


def body_with(poison: bytes) -> bytes:
    """An EventList: a valid exec event, then the poisoned item (given as JSON text: orjson.dumps stops at 254
    levels)."""
    return event_list([exec_event()])[:-2] + b"," + poison + b"]}"


def deep_item_text(depth: int) -> bytes:
    opens = "".join("[" if i % 2 else '{"k":' for i in reversed(range(depth - 1)))
    closes = "".join("]" if i % 2 else "}" for i in range(depth - 1))
    return orjson.dumps(with_field("requestObject", {}))[:-3] + f"{opens}1{closes}}}".encode()


def assert_valid_alerts_and_quarantine(client: TestClient, db_url: str, body: bytes, reason: str) -> None:
    resp = client.post("/audit/webhook", content=body)
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert (reply["accepted"], reply["rejected"], reply["quarantined"], reply["alerts"]) == (1, 1, 1, 3)
    assert reply["rejections"][0]["item"].endswith("#items[1]") and reason in reply["rejections"][0]["reason"]
    alerts = client.get("/api/v1/alerts").json()["items"]
    assert sorted(a["rule_id"] for a in alerts) == [
        "exec-credential-file-access", "exec-shell-command-payload", "pod-exec-attach"]  # fmt: skip
    quarantined = AlertStore(db_url).quarantined()
    assert [q["reason"] for q in quarantined] == [reply["rejections"][0]["reason"]]


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poisoned_field_next_to_a_valid_event(client: TestClient, db_url: str, name: str) -> None:
    path, value, reason = POISON[name]
    poison = with_field(path, value)
    assert_valid_alerts_and_quarantine(client, db_url, body_with(orjson.dumps(poison)), reason)


@pytest.mark.parametrize("depth", DEPTHS)
def test_a_deep_request_object_next_to_a_valid_event(client: TestClient, db_url: str, depth: int) -> None:
    body = body_with(deep_item_text(depth))
    assert_valid_alerts_and_quarantine(client, db_url, body, f"nested deeper than {MAX_EVENT_DEPTH} levels")


def test_junk_items_are_counted_the_first_kept_and_twenty_reasons_listed(client: TestClient, db_url: str) -> None:
    body = body_with(b",".join([b"0"] * 5000))
    reply = client.post("/audit/webhook", content=body).json()
    assert (reply["accepted"], reply["rejected"], reply["quarantined"], reply["alerts"]) == (
        1, 5000, MAX_KEPT_REJECTED, 3)  # fmt: skip
    assert len(reply["rejections"]) == 20
    assert reply["rejections"][0] == {
        "item": reply["rejections"][0]["item"], "reason": "expected an Event object, got number"}  # fmt: skip
    assert len(AlertStore(db_url).quarantined(limit=1000)) == MAX_KEPT_REJECTED


def test_a_clean_batch_says_nothing_of_rejections(client: TestClient) -> None:
    assert client.post("/audit/webhook", content=event_list([exec_event()])).json() == {
        "accepted": 1, "rejected": 0, "alerts": 3, "new_alerts": 3}  # fmt: skip


def test_invalid_utf8_in_an_item_rejects_it_alone_and_elsewhere_is_refused_naming_the_byte(
    client: TestClient,
) -> None:
    item = orjson.dumps(exec_event())
    body = event_list([exec_event()]).replace(b"mallory", b"mall\xffry", 1)
    reply = client.post("/audit/webhook", content=body.replace(b"]}", b"," + item + b"]}")).json()
    assert (reply["accepted"], reply["rejected"], reply["alerts"]) == (1, 1, 3)
    assert reply["rejections"][0]["reason"] == f"invalid UTF-8 at byte {item.index(b'mallory') + 4}"
    body = event_list([exec_event()]).replace(b'"EventList"', b'"EventList","metadata":{"x":"\xff"}', 1)
    resp = client.post("/audit/webhook", content=body)
    where = body.index(b"\xff")
    assert problem_detail(resp, 400) == f"invalid UTF-8 at byte {where}"


def test_odd_whole_documents_are_not_a_500(client: TestClient) -> None:
    for doc in ({"kind": ["EventList"], "items": []}, {"kind": "EventList", "apiVersion": [1], "items": []}):
        resp = client.post("/audit/webhook", content=orjson.dumps(doc))
        assert "must be a string" in problem_detail(resp, 400)
    nested_lists = b"[" * 1000 + b"]" * 1000  # an array of one item, a list 999 deep
    resp = client.post("/audit/webhook", content=nested_lists)
    assert resp.status_code == 200 and resp.json()["rejected"] == 1


def test_a_poisoned_batch_redelivered_keeps_the_valid_alert_once(client: TestClient) -> None:
    poison = with_field("stage", ["ResponseComplete"])
    body = body_with(orjson.dumps(poison))
    for _ in range(2):
        assert client.post("/audit/webhook", content=body).status_code == 200
    assert len(client.get("/api/v1/alerts").json()["items"]) == 3


def test_quarantine_keeps_the_top_of_a_deep_item(client: TestClient, db_url: str) -> None:
    client.post("/audit/webhook", content=body_with(deep_item_text(1020)))
    (row,) = AlertStore(db_url).quarantined()
    payload = row["payload"] if isinstance(row["payload"], str) else orjson.dumps(row["payload"]).decode()
    assert "<cut: nested deeper than" in payload and "00000000-0000-0000-0000-00000000beef" in payload
