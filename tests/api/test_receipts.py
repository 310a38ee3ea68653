"""Event receipts in the store (opt-in): one per event received, stored with its batch's alerts, paged by key,
pruned after the retention; on SQLite and PostgreSQL. Serving and recording them: tests/auditwatch/test_receipts.py."""

from __future__ import annotations

import base64
import copy
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from api.errors import CursorError, StoreError
from api.queries import encode_cursor
from api.retention import ReceiptRetention
from api.store import AlertStore
from api.tables import Receipt, receipt_of
from detectors.events import AuditEvent
from tests.support.alerts import alerts
from tests.support.events import exec_event, scenario_events
from tests.support.receipts import walk


def scenario_receipts() -> list[Receipt]:
    return [receipt_of(AuditEvent(raw=raw)) for raw in scenario_events()]


def test_receipt_is_the_dedupe_identity_with_the_timestamp_as_received() -> None:
    raw = exec_event()
    raw["stageTimestamp"] = "2026-11-20T10:00:00.123456789Z"  # nanoseconds: kept as text, not parsed
    assert receipt_of(AuditEvent(raw=raw)) == (raw["auditID"], "ResponseStarted", "2026-11-20T10:00:00.123456789Z")
    del raw["stageTimestamp"]
    raw["timestamp"] = "2026-11-20T10:00:00Z"
    assert receipt_of(AuditEvent(raw=raw))[2] == ""


def test_receipts_are_stored_once_and_paged_in_key_order(store: AlertStore) -> None:
    receipts = scenario_receipts()
    assert len(set(receipts)) == len(receipts) == 59
    store.write([], receipts=receipts + receipts[:5])  # duplicates in one batch are one receipt
    seen, pages = walk(store, limit=7)
    assert seen == sorted(receipts) and pages == 9
    assert store.count_receipts() == 59
    three = "ff01cf99-988c-44c9-a1b1-cd2262801c45"  # one request, three stages
    mine, _ = walk(store, limit=1, audit_id=three)
    assert [r[1] for r in mine] == ["RequestReceived", "ResponseComplete", "ResponseStarted"]
    assert store.count_receipts(audit_id=three) == 3
    assert store.list_receipts(audit_id="nobody", limit=10) == ([], None)


def test_rewriting_receipts_is_idempotent_and_keeps_the_first_receipt_time(store: AlertStore) -> None:
    receipts = scenario_receipts()
    store.write([], receipts=receipts)
    first, _ = store.list_receipts(limit=100)
    assert store.write(alerts(3), receipts=receipts).new_alerts == 3  # a redelivered batch, with its alerts
    again, _ = store.list_receipts(limit=100)
    assert again == first and store.count_receipts() == 59 and store.count_alerts() == 3


def test_a_forged_audit_id_does_not_hide_another_request(store: AlertStore) -> None:
    raw = exec_event()
    forged = copy.deepcopy(raw)
    forged["stageTimestamp"] = "2026-11-20T11:11:11.000001Z"
    store.write([], receipts=[receipt_of(AuditEvent(raw=raw)), receipt_of(AuditEvent(raw=forged))])
    assert store.count_receipts(audit_id=raw["auditID"]) == 2


def test_oversized_keys_are_stored_distinct_instead_of_failing_the_batch(store: AlertStore) -> None:
    raws = []
    for i in range(2):
        raw = exec_event()
        raw["auditID"] = "x" * 1000 + str(i)  # client-chosen (Audit-ID header)
        raw["stageTimestamp"] = "2026-11-20T10:00:00." + "1" * 100 + str(i) + "Z"  # Python parses this
        raws.append(raw)
    store.write([], receipts=[receipt_of(AuditEvent(raw=r)) for r in raws])
    items, _ = store.list_receipts(limit=10)
    assert len(items) == 2
    assert all(len(i["audit_id"]) == 255 and len(i["stage_timestamp"]) == 64 for i in items)


def test_receipts_are_in_the_same_transaction_as_the_rest_of_the_batch(store: AlertStore) -> None:
    with pytest.raises(StoreError):  # the detector state cannot be saved: the whole batch is rolled back
        store.write(alerts(2), states={"serve": (None, {"bad": object()})}, receipts=scenario_receipts())
    assert store.count_receipts() == 0 and store.count_alerts() == 0


def test_bad_cursors_are_refused(store: AlertStore) -> None:
    store.write([], receipts=scenario_receipts())
    wrong_shape = base64.urlsafe_b64encode(orjson.dumps({"a": 1})).decode()
    for cursor in ("garbage!", wrong_shape, encode_cursor(datetime.now(UTC), "alert-id")):
        with pytest.raises(CursorError):
            store.list_receipts(limit=10, cursor=cursor)


def test_prune_deletes_receipts_received_before_the_cutoff(store: AlertStore) -> None:
    receipts = scenario_receipts()
    old, new = receipts[:20], receipts[20:]
    store.write([], receipts=old)
    time.sleep(0.01)
    cutoff = datetime.now(UTC)
    time.sleep(0.01)
    store.write([], receipts=new)
    assert store.prune_receipts(cutoff) == 20
    assert sorted(walk(store, limit=100)[0]) == sorted(new)
    assert store.prune_receipts(cutoff) == 0
    # bounded: the oldest batch goes whole, the next one stays for the next round
    store.write([], receipts=old)
    assert store.prune_receipts(datetime.now(UTC) + timedelta(seconds=1), max_rows=1) == len(new)
    assert sorted(walk(store, limit=100)[0]) == sorted(old)


def test_retention_prunes_at_most_every_interval_and_catches_up_when_behind(store: AlertStore) -> None:
    retention = ReceiptRetention(store, 1 / 3600, every_s=300)  # keep one second
    store.write([], receipts=scenario_receipts()[:30])
    time.sleep(1.1)
    store.write([], receipts=scenario_receipts()[30:])
    assert retention.due() and retention.run() == 30 and not retention.due()
    retention.max_rows = 1
    time.sleep(1.1)
    assert retention.due() is False and retention.run() == 29 and retention.due()  # a full round: go on
    assert store.count_receipts() == 0
