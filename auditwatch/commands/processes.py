"""The long-running processes: `serve`, `ingest` and `api` (HTTP), `detect` (the Kafka consumer)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from auditwatch.startup import (
    access_settings,
    build_settings,
    listener_settings,
    load_pipeline,
    notify_settings,
    notify_sinks,
    open_store,
    receipt_settings,
    refuse,
    shown_url,
    tune_gc,
)


def _process_logging() -> None:
    """auditwatch's INFO lines (partition hand-overs, clients gone mid-request); AUDITWATCH_DEBUG=1 shows more."""
    logging.getLogger("auditwatch").setLevel(logging.DEBUG if os.environ.get("AUDITWATCH_DEBUG") else logging.INFO)


def cmd_serve(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_serve_app, run_http

    settings = listener_settings(
        args, db_url=args.db, rules=args.rules, max_body_bytes=args.max_body_bytes, rule_matching=args.rule_matching,
        body_read_timeout_s=args.body_read_timeout, **receipt_settings(args), **notify_settings(args),
    )  # fmt: skip
    sinks = notify_sinks(settings)
    pipeline = load_pipeline(settings.rules, settings.rule_matching)
    open_store(settings.db_url).close()  # fail here, in one line, rather than in the server's startup
    app = create_serve_app(settings, pipeline=pipeline, sinks=sinks)
    tune_gc()
    _process_logging()
    base = base_url(settings)
    print(
        f"auditwatch serve: listening on {base}\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  alerts   GET  {base}/api/v1/alerts   (docs: {base}/docs)\n"
        f"  store    {shown_url(settings.db_url)}"
        + (f"\n  receipts GET  {base}/api/v1/receipts" if settings.record_receipts else "")
        + "".join(f"\n  notify   {sink.name}" for sink in sinks),
        flush=True,
    )
    run_http(app, settings)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_ingest_app, run_http

    settings = listener_settings(
        args, kafka_bootstrap=args.kafka, topic=args.topic, max_body_bytes=args.max_body_bytes,
        body_read_timeout_s=args.body_read_timeout,
        drop_request_received=True if args.drop_request_received else None, partitions=args.partitions,
    )  # fmt: skip
    if not settings.kafka_bootstrap:
        refuse("ingest needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)")
    base = base_url(settings)
    print(
        f"auditwatch ingest: listening on {base}\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  kafka    {settings.kafka_bootstrap} topic {settings.topic} (dead letters: {settings.dead_letter_topic})",
        flush=True,
    )
    app = create_ingest_app(settings)
    tune_gc()
    _process_logging()
    run_http(app, settings)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_api_app, run_http

    settings = listener_settings(args, db_url=args.db)
    open_store(settings.db_url).close()  # fail here, in one line, rather than in the server's startup
    base = base_url(settings)
    print(
        f"auditwatch api: listening on {base}\n  alerts   GET  {base}/api/v1/alerts\n"
        f"  store    {shown_url(settings.db_url)}",
        flush=True,
    )
    _process_logging()
    run_http(create_api_app(settings), settings)
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from auditwatch.consumer import Consumer
    from auditwatch.live_exceptions import LiveExceptions
    from auditwatch.metrics import Metrics
    from auditwatch.notify.sender import Sender, rule_descriptions
    from auditwatch.server import base_url, topic_specs
    from auditwatch.settings import check_listener, metrics_listener
    from ingest.kafka import ensure_topics

    settings = build_settings(
        kafka_bootstrap=args.kafka, db_url=args.db, rules=args.rules, topic=args.topic,
        consumer_group=args.group, partitions=args.partitions, rule_matching=args.rule_matching,
        metrics_host=args.metrics_host, metrics_port=args.metrics_port, **access_settings(args),
        **receipt_settings(args), **notify_settings(args),
    )  # fmt: skip
    if not settings.kafka_bootstrap:
        refuse("detect needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)")
    listener = metrics_listener(settings)
    refusal = check_listener(listener) if listener is not None else None
    if refusal:
        refuse(f"metrics listener: {refusal}")
    sinks = notify_sinks(settings)
    pipeline = load_pipeline(settings.rules, settings.rule_matching)
    store = open_store(settings.db_url)
    sender = Sender(
        store.engine, sinks, public_url=settings.public_url, descriptions=rule_descriptions(pipeline.detectors)
    )
    # state keys are counted over the consumer's partition pipelines, as they are when scraped
    metrics = Metrics.for_detection(pipeline, sender, pipelines=lambda: consumer.pipelines(), consumer=True)
    consumer = Consumer(
        bootstrap=settings.kafka_bootstrap, topic=settings.topic, group=settings.consumer_group,
        pipeline=pipeline, store=store, max_records=settings.detect_max_records,
        record_receipts=settings.record_receipts, receipts_retention_hours=settings.receipts_retention_hours,
        exceptions=LiveExceptions(store, refresh_s=settings.exceptions_refresh_s),
        routes=sender.routes(), metrics=metrics,
    )  # fmt: skip
    exporter = _metrics_listener(listener, metrics)
    print(
        f"auditwatch detect: group {settings.consumer_group} on {settings.kafka_bootstrap} topic {settings.topic}, "
        f"{len(pipeline.detectors)} detectors, store {shown_url(settings.db_url)}"
        + "".join(f"\n  notify   {sink.name}" for sink in sinks)
        + (f"\n  metrics  GET  {base_url(listener)}/metrics" if listener is not None else ""),
        flush=True,
    )

    tune_gc()
    _process_logging()  # partition hand-overs and checkpoints are worth seeing; AUDITWATCH_DEBUG=1: every batch

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, consumer.stop)
        await ensure_topics(settings.kafka_bootstrap, topic_specs(settings))
        sender.start()  # beside the consumer: it delivers what the consumer's batches queue
        try:
            stats = await consumer.run()
        finally:
            await sender.stop()
        print(
            f"auditwatch detect: stopped after {stats.records:,} records, {stats.alerts:,} alerts "
            f"({stats.new_alerts:,} new), {stats.rejected:,} rejected",
            file=sys.stderr,
        )

    try:
        if exporter is not None:
            exporter.start()
        asyncio.run(main())
    finally:
        if exporter is not None:
            exporter.stop()
        store.close()
    return 0


def _metrics_listener(listener: Any, metrics: Any) -> Any:
    """detect's metrics listener, its port bound (None when off); a port it cannot bind is a one-line refusal."""
    from auditwatch.metrics_listener import MetricsListener

    if listener is None:
        return None
    try:
        return MetricsListener(listener, metrics)
    except OSError as exc:
        refuse(f"metrics listener: cannot listen on {listener.host}:{listener.port}: {exc.strerror or exc}")
