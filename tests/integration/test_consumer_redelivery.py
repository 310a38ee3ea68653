"""`detect`'s consumer against the real Kafka and PostgreSQL, with the database dropping the connection in the
middle of a batch's write: retried, or redelivered to the next consumer, the batch is stored exactly once
(and an event that a user's rule type fails on is quarantined, once). Records redelivered after a member died
between storing their alerts and committing their offsets: their alerts are not logged, counted or queued again,
and the alert a rule exception suppressed is not counted again as its hit.

The fault is real: PostgreSQL terminates the consumer's connection when it inserts the batch's alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from prometheus_client import generate_latest
from sqlalchemy import event

from api.outbox import OutboxRoute
from api.rule_exceptions import NewException
from api.store import AlertStore
from auditwatch.consumer import Consumer
from auditwatch.live_exceptions import LiveExceptions
from auditwatch.metrics import Metrics
from detectors.alerts import Alert
from detectors.events import AuditEvent, Rejected
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules import native
from ingest.kafka import TopicSpec, ensure_topics
from tests.support.metrics import parse_samples, total
from tests.support.poison import AppLabelRule, mixed_batch, poisoned_deployment, rules_dir
from tests.support.services import committed, kafka_bootstrap

pytestmark = pytest.mark.integration


@contextmanager
def connection_dropped_on_alert_insert(store: AlertStore, admin: sa.Engine, times: int) -> Iterator[list[int]]:
    """The server terminates the store's connection when it inserts alerts, the first `times` times."""
    dropped: list[int] = []

    def drop(conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO alerts") and len(dropped) < times:
            pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            dropped.append(pid)

    event.listen(store.engine, "before_cursor_execute", drop)
    try:
        yield dropped
    finally:
        event.remove(store.engine, "before_cursor_execute", drop)


def records() -> list[dict[str, Any]]:
    """The serve test's mixed batch (its events), and an event that a user's rule type fails on."""
    return [*(item for item in mixed_batch() if isinstance(item, dict) and "auditID" in item), poisoned_deployment()]


async def publish(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    await ensure_topics(bootstrap, [TopicSpec(topic, 1, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for raw in events:
            await producer.send_and_wait(topic, orjson.dumps(raw), key=raw["user"]["username"].encode())
    finally:
        await producer.stop()


async def consume_until(consumer: Consumer, done: Any, timeout_s: float = 60, *, crash: bool = False) -> None:
    """Run the consumer until `done()`, then stop it; `crash`: end it as `kill -9` would instead, without its
    shutdown checkpoint and offset commit."""
    task = asyncio.create_task(consumer.run())
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.1)
    if crash:
        task.cancel()
    else:
        consumer.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert done(), "timed out"


def raised_alerts(rules: Pipeline, events: list[dict[str, Any]]) -> list[Alert]:
    failures: list[Rejected] = []
    found = rules.fresh().process_all([AuditEvent(e) for e in events], failures)
    assert len(failures) == 1
    return found


def expected_alert_ids(rules: Pipeline, events: list[dict[str, Any]]) -> set[str]:
    return {a.id for a in raised_alerts(rules, events)}


def quarantined_reasons(store: AlertStore) -> list[str]:
    return [q["reason"] for q in store.quarantined()]


def stored_alert_ids(store: AlertStore) -> list[str]:
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT id FROM alerts"))]


def group_total(store: AlertStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT coalesce(sum(count), 0) FROM alert_groups")).scalar() or 0)


@pytest.fixture
def setup(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, AlertStore, sa.Engine, Pipeline]]:
    bootstrap = kafka_bootstrap()
    store = AlertStore(pg_url)
    store.migrate()
    admin = sa.create_engine(pg_url)
    rules = rules_dir(tmp_path)
    monkeypatch.setitem(native.RULE_TYPES, "app-label", AppLabelRule.from_node)
    (rules / "watched-app.yaml").write_text("id: watched-app\ntype: app-label\napps: [web]\n")
    try:
        yield bootstrap, store, admin, Pipeline(load_rules(["builtin", str(rules)]))
    finally:
        admin.dispose()
        store.close()


def test_a_write_that_fails_once_is_retried_with_the_same_results(
    setup: tuple[str, AlertStore, sa.Engine, Pipeline],
) -> None:
    bootstrap, store, admin, rules = setup
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    events = records()
    expected = expected_alert_ids(rules, events)
    assert len(expected) >= 8
    asyncio.run(publish(bootstrap, topic, events))
    consumer = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=rules.fresh(), store=store,
                        record_receipts=True, checkpoint_every_s=0)  # fmt: skip
    with connection_dropped_on_alert_insert(store, admin, times=1) as dropped:
        asyncio.run(consume_until(consumer, lambda: consumer.stats.records == len(events)))
    assert len(dropped) == 1 and consumer.stats.store_retries == 1
    ids = stored_alert_ids(store)
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert group_total(store) == len(expected) and store.count_receipts() == len(events) - 1  # one sent twice
    assert quarantined_reasons(store) == ["detector watched-app raised TypeError: unhashable type: 'list'"]
    position, _ = store.load_state(f"kafka:{group}:{topic}:0") or (None, {})
    assert position == len(events) == asyncio.run(committed(bootstrap, group, topic))


def test_a_batch_given_up_during_the_outage_is_redelivered_and_stored_once(
    setup: tuple[str, AlertStore, sa.Engine, Pipeline],
) -> None:
    bootstrap, store, admin, rules = setup
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    events = records()
    expected = expected_alert_ids(rules, events)
    asyncio.run(publish(bootstrap, topic, events))
    first = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=rules.fresh(), store=store,
                     record_receipts=True, checkpoint_every_s=0)  # fmt: skip
    with connection_dropped_on_alert_insert(store, admin, times=1_000):
        asyncio.run(consume_until(first, lambda: first.stats.store_retries >= 2))  # stopped while still failing
    assert first.stats.records == 0  # nothing counted as processed
    assert stored_alert_ids(store) == [] and store.count_receipts() == 0 and store.quarantined() == []
    assert store.load_state(f"kafka:{group}:{topic}:0") is None  # the shutdown checkpoint had nothing to save
    assert asyncio.run(committed(bootstrap, group, topic)) is None  # nothing acknowledged: Kafka redelivers
    second = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=rules.fresh(), store=store,
                      record_receipts=True, checkpoint_every_s=0)  # fmt: skip
    asyncio.run(consume_until(second, lambda: second.stats.records == len(events)))
    ids = stored_alert_ids(store)
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert group_total(store) == len(expected) and store.count_receipts() == len(events) - 1
    assert len(quarantined_reasons(store)) == 1
    assert asyncio.run(committed(bootstrap, group, topic)) == len(events)


def alerts_counted(metrics: Metrics) -> float:
    return total(parse_samples(generate_latest(metrics.registry).decode()), "auditwatch_alerts_total")


def suppressed_counted(metrics: Metrics) -> float:
    return total(parse_samples(generate_latest(metrics.registry).decode()), "auditwatch_alerts_suppressed_total")


def test_records_redelivered_after_their_alerts_were_stored_are_not_logged_counted_or_queued_again(
    setup: tuple[str, AlertStore, sa.Engine, Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap, store, _admin, rules = setup
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    events = records()
    raised = raised_alerts(rules, events)
    victim = min(raised, key=lambda a: a.id)  # an exception keeps it out of the store: a hit, once
    made = store.create_exception(NewException(author="ann", rule_id=victim.rule_id,
                                               match={"auditID": [victim.audit_id]}))  # fmt: skip
    expected = {a.id for a in raised} - {victim.id}
    assert all(a.audit_id != victim.audit_id for a in raised if a.rule_id == victim.rule_id and a is not victim)
    asyncio.run(publish(bootstrap, topic, events))
    caplog.set_level(logging.WARNING, logger="auditwatch.detect")
    route = OutboxRoute("hook", lambda _alert: True)

    def run_then_crash() -> tuple[Consumer, Metrics, int]:
        """A member that dies once it wrote every record's alerts, before any checkpoint or offset commit."""
        metrics = Metrics.for_detection(rules, None, pipelines=list, consumer=True)
        consumer = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=rules.fresh(), store=store,
                            routes=[route], metrics=metrics, checkpoint_every_s=3600, idle_checkpoint_s=3600,
                            exceptions=LiveExceptions(store))  # fmt: skip
        caplog.clear()
        asyncio.run(consume_until(consumer, lambda: consumer.stats.records == len(events), crash=True))
        assert asyncio.run(committed(bootstrap, group, topic)) is None  # so Kafka redelivers every record
        return consumer, metrics, sum(r.getMessage() == "alert" for r in caplog.records)

    first, first_metrics, first_logged = run_then_crash()
    second, second_metrics, second_logged = run_then_crash()
    assert first.stats.new_alerts == first_logged == alerts_counted(first_metrics) == len(expected)
    assert second.stats.alerts == first.stats.alerts  # raised again by the redelivered records...
    assert second.stats.new_alerts == second_logged == alerts_counted(second_metrics) == 0  # ...but not new
    assert first.stats.suppressed == second.stats.suppressed == 1  # suppressed again...
    assert suppressed_counted(first_metrics) == 1 and suppressed_counted(second_metrics) == 0  # ...counted once
    listed = store.get_exception(made["id"])
    assert listed is not None and listed["hits"] == 1
    ids = stored_alert_ids(store)
    assert sorted(ids) == sorted(expected) and group_total(store) == len(expected)
    with store.engine.connect() as conn:
        queued = [row[0] for row in conn.execute(sa.text("SELECT alert_id FROM notify_outbox"))]
    assert sorted(queued) == sorted(expected)  # each alert notified once
