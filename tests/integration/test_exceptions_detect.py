"""`detect`'s consumer applies the store's rule exceptions: those there at start, and one made while it runs
(within its refresh interval), against the real Kafka and PostgreSQL; suppressed alerts are counted."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from api.queries import AlertFilter
from api.rule_exceptions import NewException
from api.store import AlertStore
from auditwatch.consumer import Consumer
from auditwatch.live_exceptions import LiveExceptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from ingest.kafka import TopicSpec, ensure_topics
from tests.support.events import another_like, exec_event
from tests.support.services import kafka_bootstrap

pytestmark = pytest.mark.integration


async def publish(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for raw in events:
            await producer.send_and_wait(topic, orjson.dumps(raw), key=raw["user"]["username"].encode())
    finally:
        await producer.stop()


async def until(done: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_detect_applies_exceptions_loaded_at_start_and_made_while_running(pg_url: str) -> None:
    bootstrap = kafka_bootstrap()
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    store = AlertStore(pg_url)
    store.migrate()
    at_start = store.create_exception(NewException(author="ann", rule_id="pod-exec-attach",
                                                   match={"user.username": ["mallory@*"]}))  # fmt: skip
    consumer = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=Pipeline(load_rules(["builtin"])),
                        store=store, exceptions=LiveExceptions(store, refresh_s=0.5))  # fmt: skip

    async def scenario() -> None:
        await ensure_topics(bootstrap, [TopicSpec(topic, 1, 1)])
        task = asyncio.create_task(consumer.run())
        try:
            await publish(bootstrap, topic, [exec_event()])
            await until(lambda: consumer.stats.records == 1)
            store.create_exception(NewException(author="ann", rule_id="exec-credential-file-access",
                                                match={"objectRef.namespace": ["shop"]}))  # fmt: skip
            await asyncio.sleep(0.6)  # the refresh interval
            await publish(bootstrap, topic, [another_like(exec_event(), 1)])
            await until(lambda: consumer.stats.records == 2)
        finally:
            consumer.stop()
            await task

    try:
        asyncio.run(scenario())
        rules = sorted(a["rule_id"] for a in store.list_alerts(AlertFilter(), limit=100)[0])
        assert rules == ["exec-credential-file-access", "exec-shell-command-payload", "exec-shell-command-payload"]
        assert consumer.stats.suppressed == 3
        hits = {e["rule_id"]: e["hits"] for e in store.list_exceptions()}
        assert hits == {"pod-exec-attach": 2, "exec-credential-file-access": 1}
        assert at_start["id"] in {e["id"] for e in store.list_exceptions()}
    finally:
        store.close()
