"""The batch writer against a real SQLite file and a real PostgreSQL database: a failed write keeps nothing.

A write is made to fail for real: a table it needs is renamed away under it (as a DBA's migration gone
wrong would), then put back. That is the store's fault, not an item's: the batch is refused whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from api.errors import StoreError
from api.queries import AlertFilter
from api.store import AlertStore
from api.tables import Receipt, receipt_of, receipts_table
from auditwatch.batches import BatchResults, BatchWriter
from detectors.alerts import Alert
from detectors.events import AuditEvent, Rejected
from tests.support.alerts import alerts


@contextmanager
def table_gone(store: AlertStore, table: str) -> Iterator[None]:
    """`table` is missing while inside: every write that touches it fails in the database."""
    with store.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def receipts_of(found: list[Alert]) -> list[Receipt]:
    return [receipt_of(AuditEvent(raw=dict(alert.event))) for alert in found]


def stored_receipts(store: AlertStore) -> list[Receipt]:
    items, _ = store.list_receipts(limit=1000)
    return sorted((r["audit_id"], r["stage"], r["stage_timestamp"]) for r in items)


def test_a_failed_write_stores_nothing_and_its_retry_stores_the_batch_once(store: AlertStore) -> None:
    writer = BatchWriter(store, record_receipts=True)
    found = alerts(6)
    rejected = [Rejected("webhook:1", "not an Event", {"kind": "Pod"})]
    batch = BatchResults(found, rejected, receipts_of(found))
    for table in ("alerts", "event_receipts", "quarantine"):
        with table_gone(store, table), pytest.raises(StoreError):
            writer.write(batch)
        assert store.count_alerts() == 0 and store.count_receipts() == 0 and store.quarantined() == []
    # The caller writes the batch again (the consumer retries its results, serve its redelivered batch).
    written = writer.write(batch)
    assert (written.alerts, written.new_alerts, written.refused) == (6, 6, ())
    assert store.count_alerts() == 6
    assert stored_receipts(store) == sorted(set(receipts_of(found)))
    assert len(store.quarantined()) == 1
    assert writer.write(BatchResults()).new_alerts == 0  # nothing left over to write twice
    assert store.count_alerts() == 6


def test_retrying_the_same_batch_stores_it_once(store: AlertStore) -> None:
    """The consumer retries a failed batch as it is, as often as it takes."""
    writer = BatchWriter(store, record_receipts=True)
    found = alerts(5)
    batch = BatchResults(found, [], receipts_of(found))
    with table_gone(store, "alerts"):
        for _ in range(3):
            with pytest.raises(StoreError):
                writer.write(batch)
    written = writer.write(batch)
    assert written.alerts == 5 and written.new_alerts == 5
    assert writer.write(batch).new_alerts == 0  # a redelivery after success
    assert store.count_alerts() == 5 and stored_receipts(store) == sorted(set(receipts_of(found)))
    groups, _ = store.list_groups(AlertFilter(), limit=100)
    assert sum(g["count"] for g in groups) == 5


def test_state_is_checkpointed_when_due_and_again_after_a_failed_checkpoint(store: AlertStore) -> None:
    writer = BatchWriter(store, checkpoint_every_s=3600)
    assert not writer.checkpoint_due("serve")  # nothing changed
    writer.mark_changed("serve")
    assert writer.checkpoint_due("serve")  # never checkpointed: due at once
    with table_gone(store, "detector_state"), pytest.raises(StoreError):
        writer.write(BatchResults(states={"serve": (None, {"d": 1})}))
    assert writer.changed("serve") and not writer.checkpoint_due("serve")  # tried: the next try is an interval away
    assert writer.checkpoint_due("serve", force=True)
    writer.write(BatchResults(states={"serve": (7, {"d": 2})}))
    assert store.load_state("serve") == (7, {"d": 2}) and not writer.changed("serve")
    writer.mark_changed("serve")
    writer.forget("serve")  # a revoked partition: its state is the next owner's now
    assert not writer.changed("serve")
    writer.restored("kafka:g:t:0")
    writer.mark_changed("kafka:g:t:0")
    assert not writer.checkpoint_due("kafka:g:t:0")  # just restored: a full interval away


def test_old_receipts_are_pruned_after_a_write_not_after_a_failed_one(store: AlertStore) -> None:
    writer = BatchWriter(store, record_receipts=True, receipts_retention_hours=1 / 3600)
    assert writer.retention is not None
    found = alerts(3)
    writer.write(BatchResults(found[:1], [], receipts_of(found[:1])))  # the first prune (due at once) finds none
    writer.retention.every_s = 0
    with store.engine.begin() as conn:  # received long ago: older than the retention
        conn.execute(receipts_table.update().values(received_at=datetime(2000, 1, 1, tzinfo=UTC)))
    batch = BatchResults(found[1:], [], receipts_of(found[1:]))
    with table_gone(store, "alerts"), pytest.raises(StoreError):
        writer.write(batch)
    assert store.count_receipts() == 1  # a failed write prunes nothing
    writer.write(batch)
    assert stored_receipts(store) == sorted(receipts_of(found[1:]))  # the old one pruned, the batch's stored
