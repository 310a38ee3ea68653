"""The test session leaves the shared Kafka as it found it: topics created meanwhile are deleted at the end, those
that were there before and the benchmarks' are kept (tests/support/services.py, used by tests/conftest.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ingest.kafka import TopicSpec, ensure_topics
from tests.support.services import delete_topics, kafka_bootstrap, new_topics_deleted, topics_listed

pytestmark = pytest.mark.integration


def test_topics_created_meanwhile_are_deleted_and_the_others_kept() -> None:
    bootstrap = kafka_bootstrap()
    older, newer, bench = (f"{prefix}-{uuid.uuid4().hex[:8]}" for prefix in ("kept", "housekeeping", "bench-kept"))
    asyncio.run(ensure_topics(bootstrap, [TopicSpec(older, 1, 1)]))

    with new_topics_deleted(bootstrap):
        asyncio.run(ensure_topics(bootstrap, [TopicSpec(newer, 1, 1), TopicSpec(bench, 1, 1)]))
        assert {older, newer, bench} <= topics_listed(bootstrap, {older, newer, bench})

    left = topics_listed(bootstrap, {older, bench}, absent=frozenset({newer}))
    delete_topics(bootstrap, [older, bench])
    assert newer not in left
    assert {older, bench} <= left
