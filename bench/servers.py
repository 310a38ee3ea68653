"""The shared Kafka and PostgreSQL for a benchmark: their addresses, and topics and databases that it throws away.

The servers are the ones `scripts/services.sh up` runs; nothing here starts or stops them.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from api.store import AlertStore
from api.tables import alerts_table
from ingest.kafka import TopicSpec, ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6


def services_env() -> dict[str, str]:
    """The shared servers' addresses (`scripts/services.sh env`; the servers are not started here)."""
    out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "env"], check=True, capture_output=True,
                         text=True, timeout=60).stdout  # fmt: skip
    found = dict(re.findall(r"export (\w+)=['\"]?([^'\"\n]*)", out))
    return {name: os.environ.get(name) or value for name, value in found.items()}


async def _create_topic(bootstrap: str, topic: str) -> None:
    await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS, 1)])


async def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if gone := [t for t in topics if t in existing]:
            await admin.delete_topics(gone)
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str) -> list[int]:
    """Records in each partition of the topic (their end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return [int(ends[TopicPartition(topic, p)]) for p in range(PARTITIONS)]
    finally:
        await consumer.stop()


@contextmanager
def topic(bootstrap: str, prefix: str) -> Iterator[str]:
    """A fresh topic of PARTITIONS partitions, deleted afterwards with its dead-letter topic."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_topic(bootstrap, name))
    try:
        yield name
    finally:
        asyncio.run(_delete_topics(bootstrap, [name, f"{name}-dlq"]))


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database with the alert store's schema, dropped afterwards."""
    name = f"aw_scale_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        store = AlertStore(url)  # migrated once here, so two detect processes never race to create the schema
        store.migrate()
        store.close()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def alert_ids(db_url: str) -> tuple[str, ...]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return tuple(sorted(conn.execute(sa.select(alerts_table.c.id)).scalars()))
    finally:
        engine.dispose()
