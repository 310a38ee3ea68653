"""`replay --to-kafka`: archives published to the audit topic, as `ingest` would have, for `auditwatch detect`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from auditwatch.replay import Progress, ReplayStats, progress_of
from auditwatch.settings import Settings
from detectors.events import AuditEvent, Rejections
from ingest.archives import read_archives

PUBLISH_BATCH = 2000  # events per Kafka batch when publishing an archive


async def publish(
    paths: Sequence[str], settings: Settings, *, progress: Progress | None = None, stats: ReplayStats | None = None
) -> ReplayStats:
    """Archives -> the audit topic (what `ingest` would have produced), for `auditwatch detect`.

    Cancelled (Ctrl-C or SIGTERM: `interrupts.cancelled_by_signals`), `stats` counts what Kafka had
    acknowledged (the batch in flight may have reached it too) and says after which line (`interrupted`)."""
    from auditwatch.server import kafka_sink, topic_specs
    from ingest.kafka import ensure_topics

    assert settings.kafka_bootstrap is not None
    stats = ReplayStats() if stats is None else stats
    started = time.perf_counter()
    await ensure_topics(settings.kafka_bootstrap, topic_specs(settings))
    sink = kafka_sink(settings)
    events: list[AuditEvent] = []
    rejects = Rejections()  # the first MAX_KEPT_REJECTED of each batch go to the dead-letter topic, all counted
    taken = (0, 0, 0, 0, "before the first record")  # lines, events, rejected, examples shown: acknowledged
    try:
        for line_events, line_rejects in read_archives(paths, stats, progress=progress_of(progress, stats)):
            events.extend(line_events)
            rejects.merge(line_rejects)
            if len(events) + rejects.total >= PUBLISH_BATCH:
                await sink.accept(events, rejects.kept)
                taken = (stats.lines, stats.events, stats.rejected, len(stats.rejected_examples), stats.position)
                events, rejects = [], Rejections()
        if events or rejects:
            await sink.accept(events, rejects.kept)
    except asyncio.CancelledError:
        stats.lines, stats.events, stats.rejected, shown, where = taken
        del stats.rejected_examples[shown:]
        stats.interrupted = f"after {where}" if stats.lines else where
        raise
    finally:
        await sink.close()
        stats.seconds = time.perf_counter() - started
        if progress is not None:
            progress.done()
    return stats
