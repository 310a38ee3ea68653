"""detect's watch on its topic: a topic that is missing (deleted under detect, or not created yet) is waited for
cheaply and said once, and an offset commit for it is given up at once rather than retried.

aiokafka asks the broker for metadata in a loop, with no pause, while a partition it is assigned has no leader (its
topic deleted): about half a core until the group takes the partition away. The group did so only once the
revocation's offset commit, which aiokafka retries for as long as the broker answers that the topic does not exist,
had timed out (15 s). A commit is now given up as soon as the metadata says the topic is gone, and the partitions
go within milliseconds. And aiokafka looks again for a topic it does not have only at its metadata refresh (every 5
minutes by default): detect's refreshes every TOPIC_CHECK_S, so a topic created again is consumed within seconds.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from api.tables import StateCheckpoints

# How often the consumer's metadata (for its one topic: a small request) is refreshed, so how soon a missing topic
# is seen created (Kafka's default is 5 minutes).
TOPIC_CHECK_S = 3.0
# aiokafka retries a commit that fails retriably for ever: one the group's coordinator cannot take (moving, away)
# is given up after this, as a commit that failed (its records are redelivered).
COMMIT_TIMEOUT_S = 15.0
_COMMIT_POLL_S = 0.2  # how often a commit in flight looks whether its topic is still there (in memory)


class TopicGone(Exception):
    """The topic is missing from the consumer's metadata: deleted (or not created yet)."""


class TopicWatch:
    """Whether `topic` is in the consumer's metadata; says once that it is missing, and once that it is back."""

    def __init__(self, topic: str, log: logging.Logger) -> None:
        self.topic = topic
        self.log = log
        self.waiting = False

    def exists(self, consumer: AIOKafkaConsumer) -> bool:
        return consumer.partitions_for_topic(self.topic) is not None

    def check(self, consumer: AIOKafkaConsumer) -> None:
        if not self.exists(consumer):
            if not self.waiting:
                self.waiting = True
                self.log.warning(
                    "topic %s does not exist (deleted, or not created yet): waiting for it (looked for every %g s); "
                    "detection resumes when it is created", self.topic, TOPIC_CHECK_S,
                )  # fmt: skip
        elif self.waiting:
            self.waiting = False
            self.log.info("topic %s exists again: consuming it", self.topic)

    def restarted(self, consumer: AIOKafkaConsumer | None, states: StateCheckpoints) -> StateCheckpoints | None:
        """`states` at offset 0 when the topic is missing, else None. It was deleted: a topic created again under its
        name starts at offset 0, and the detector state goes on there (its offsets, the old topic's, would skip the new
        topic's first records). The group's committed offsets went with the topic."""
        if consumer is None or self.exists(consumer):
            return None
        return {scope: (0, state) for scope, (_, state) in states.items()}

    async def commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """`consumer.commit(offsets)`; TopicGone as soon as the topic is missing, TimeoutError after
        COMMIT_TIMEOUT_S (the commit is then given up)."""
        if not self.exists(consumer):
            raise TopicGone(f"topic {self.topic} does not exist")
        commit = asyncio.ensure_future(consumer.commit(offsets))
        deadline = asyncio.get_running_loop().time() + COMMIT_TIMEOUT_S
        try:
            while not (await asyncio.wait([commit], timeout=_COMMIT_POLL_S))[0]:
                if not self.exists(consumer):
                    raise TopicGone(f"topic {self.topic} does not exist")
                if asyncio.get_running_loop().time() >= deadline:
                    raise TimeoutError(f"offset commit not done in {COMMIT_TIMEOUT_S:g} s")
            commit.result()
        finally:
            commit.cancel()  # nothing once done
