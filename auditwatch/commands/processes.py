"""The long-running processes: `serve`, `ingest` and `api` (HTTP), `detect` (the Kafka consumer)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from auditwatch.startup import (
    EXIT_FAILURE,
    access_settings,
    build_settings,
    listener_settings,
    load_pipeline,
    notify_settings,
    notify_sinks,
    open_store,
    package_version,
    receipt_settings,
    refuse,
    shown_url,
    tune_gc,
)

if TYPE_CHECKING:
    import socket


def _checked_listener(args: argparse.Namespace, **more: Any) -> Any:
    """The listener's settings, its TLS files checked: configuration errors come before anything slower."""
    from auditwatch.preflight import check_tls

    settings = listener_settings(args, **more)
    check_tls(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    return settings


def _listen(settings: Any, *, shared: bool = False) -> socket.socket:
    """The listening socket, bound before the banner says so (the port in use is a one-line refusal); `shared`
    when worker processes will listen on the port too."""
    from auditwatch.preflight import bind_listener

    sock = bind_listener(settings.host, settings.port, shared=shared)
    _warn_if_open(settings)
    return sock


def _warn_if_open(listener: Any) -> None:
    from auditwatch.settings import open_listener_warning

    warning = open_listener_warning(listener)
    if warning:
        print(f"auditwatch: warning: {warning}", file=sys.stderr, flush=True)


def _banner(command: str, lines: str) -> None:
    print(f"auditwatch {package_version()} {command}: {lines}", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_serve_app, run_http

    settings = _checked_listener(
        args, db_url=args.db, db_url_file=args.db_url_file, rules=args.rules, max_body_bytes=args.max_body_bytes,
        rule_matching=args.rule_matching, tuning=args.tuning, body_read_timeout_s=args.body_read_timeout,
        body_budget_bytes=args.body_budget_bytes,
        baseline_learning_days=args.baseline_learning_days, **receipt_settings(args), **notify_settings(args),
    )  # fmt: skip
    sinks = notify_sinks(settings)
    pipeline = load_pipeline(settings.rules, settings.rule_matching, settings.tuning, settings.baseline_learning_days)
    open_store(settings.db_url).close()  # fail here, in one line, rather than in the server's startup
    app = create_serve_app(settings, pipeline=pipeline, sinks=sinks)
    tune_gc()
    sock = _listen(settings)
    base = base_url(settings)
    _banner(
        "serve",
        f"listening on {base}\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  alerts   GET  {base}/api/v1/alerts   (docs: {base}/docs)\n"
        f"  store    {shown_url(settings.db_url)}"
        + (f"\n  receipts GET  {base}/api/v1/receipts" if settings.record_receipts else "")
        + "".join(f"\n  notify   {sink.name}" for sink in sinks),
    )
    return run_http(app, settings, sock)


def _topics_probe(settings: Any) -> Any:
    """One attempt at Kafka: create the topics that are missing (a metadata round trip when none is)."""
    from auditwatch.server import topic_specs
    from ingest.kafka import ensure_topics

    return lambda timeout_s: ensure_topics(settings.kafka_bootstrap, topic_specs(settings), timeout_s=timeout_s)


def cmd_ingest(args: argparse.Namespace) -> int:
    """The webhook in front of Kafka. It starts without Kafka (batches get 503 until it is there; the apiserver
    retries them), and its startup says so in one line; a topic Kafka refuses to create stops it (status 2)."""
    import asyncio

    from auditwatch.preflight import KAFKA_PROBE_TIMEOUT_S, kafka_attempt
    from auditwatch.server import base_url, create_ingest_app, run_http

    settings = _checked_listener(
        args, kafka_bootstrap=args.kafka, topic=args.topic, dead_letter_topic=args.dead_letter_topic,
        max_body_bytes=args.max_body_bytes,
        body_read_timeout_s=args.body_read_timeout, body_budget_bytes=args.body_budget_bytes,
        drop_request_received=True if args.drop_request_received else None, partitions=args.partitions,
    )  # fmt: skip
    if not settings.kafka_bootstrap:
        refuse("ingest needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)")
    if args.workers < 1:
        refuse("--workers must be at least 1")
    # the topics created here, once (not by every worker's startup); Kafka away: KafkaSink.start says so
    asyncio.run(kafka_attempt(_topics_probe(settings), KAFKA_PROBE_TIMEOUT_S))
    app = create_ingest_app(settings, create_topics=False)
    tune_gc()
    workers = args.workers
    sock = _listen(settings, shared=workers > 1)
    base = base_url(settings)
    _banner(
        "ingest",
        f"listening on {base}" + (f" ({workers} worker processes)" if workers > 1 else "") + "\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  kafka    {settings.kafka_bootstrap} topic {settings.topic} (dead letters: {settings.dead_letter_topic})",
    )
    if workers > 1:
        from auditwatch.workers import run_workers

        try:
            return run_workers(workers, sock, lambda listener: run_http(app, settings, listener))
        finally:
            sock.close()
    return run_http(app, settings, sock)


def cmd_api(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_api_app, run_http

    settings = _checked_listener(args, db_url=args.db, db_url_file=args.db_url_file)
    if "db_url" not in settings.model_fields_set:  # legitimate over a replay's file, surprising otherwise
        print(f"auditwatch: warning: no --db (nor --db-url-file): serving the SQLite file {_default_db_file()}",
              file=sys.stderr)  # fmt: skip
    open_store(settings.db_url).close()  # fail here, in one line, rather than in the server's startup
    app = create_api_app(settings)
    sock = _listen(settings)
    base = base_url(settings)
    _banner(
        "api",
        f"listening on {base}\n  alerts   GET  {base}/api/v1/alerts   (docs: {base}/docs)\n"
        f"  store    {shown_url(settings.db_url)}",
    )
    return run_http(app, settings, sock)


def _default_db_file() -> str:
    from pathlib import Path

    from auditwatch.settings import DEFAULT_DB_URL

    return str(Path(DEFAULT_DB_URL.removeprefix("sqlite:///")).resolve())


def cmd_detect(args: argparse.Namespace) -> int:
    import asyncio

    from auditwatch.consumer import Consumer
    from auditwatch.live_exceptions import LiveExceptions
    from auditwatch.metrics import Metrics
    from auditwatch.notify.sender import Sender, rule_descriptions, rule_responses
    from auditwatch.preflight import check_tls, wait_for_kafka
    from auditwatch.server import base_url
    from auditwatch.settings import check_listener, metrics_listener

    settings = build_settings(
        kafka_bootstrap=args.kafka, db_url=args.db, db_url_file=args.db_url_file, rules=args.rules, topic=args.topic,
        dead_letter_topic=args.dead_letter_topic, consumer_group=args.group, partitions=args.partitions,
        rule_matching=args.rule_matching, kafka_wait_s=args.kafka_wait, metrics_host=args.metrics_host,
        metrics_port=args.metrics_port, tuning=args.tuning, baseline_learning_days=args.baseline_learning_days,
        **access_settings(args), **receipt_settings(args), **notify_settings(args),
    )  # fmt: skip
    if not settings.kafka_bootstrap:
        refuse("detect needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)")
    if "db_url" not in settings.model_fields_set:  # the default SQLite file would be one store per replica
        refuse("detect needs --db URL (or --db-url-file, AUDITWATCH_DB_URL): the database that every detect and "
               "api share, e.g. postgresql+psycopg://USER@HOST/DB")  # fmt: skip
    listener = metrics_listener(settings)
    if listener is None:
        _refuse_access_flags(args)
    else:
        refusal = check_listener(listener)
        if refusal:
            refuse(f"metrics listener: {refusal}")
        check_tls(listener.tls_cert_file, listener.tls_key_file, listener.tls_client_ca_file)
    sinks = notify_sinks(settings)
    pipeline = load_pipeline(settings.rules, settings.rule_matching, settings.tuning, settings.baseline_learning_days)
    store = open_store(settings.db_url)
    try:
        sender = Sender(
            store.engine,
            sinks,
            public_url=settings.public_url,
            descriptions=rule_descriptions(pipeline.detectors),
            responses=rule_responses(pipeline.detectors),
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
        exporter = _metrics_listener(listener, metrics)  # its port bound before the banner says so
        asyncio.run(wait_for_kafka(_topics_probe(settings), settings.kafka_bootstrap, settings.kafka_wait_s))
        _banner(
            "detect",
            f"group {settings.consumer_group} on {settings.kafka_bootstrap} topic {settings.topic}, "
            f"{len(pipeline.detectors)} detectors, store {shown_url(settings.db_url)}"
            + "".join(f"\n  notify   {sink.name}" for sink in sinks)
            + (f"\n  metrics  GET  {base_url(listener)}/metrics" if listener is not None else ""),
        )
        tune_gc()
        if exporter is not None:
            exporter.start()
        try:
            _consume(consumer, sender, settings.kafka_bootstrap)
        finally:
            if exporter is not None:
                exporter.stop()
    finally:
        store.close()
    return 0


def _consume(consumer: Any, sender: Any, bootstrap: str) -> None:
    """Run the consumer and the notification sender until SIGINT or SIGTERM; Kafka lost on the way is one line."""
    import asyncio
    import signal

    from aiokafka.errors import KafkaError

    from ingest.kafka import kafka_problem

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, consumer.stop)
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
        asyncio.run(main())
    except KafkaError as exc:
        refuse(f"lost Kafka at {bootstrap} ({kafka_problem(exc, 0)}): check that it runs; "
               "detect resumes from the last committed offsets when restarted", EXIT_FAILURE)  # fmt: skip


_ACCESS_FLAGS = {"token_file": "--token-file", "read_token_file": "--read-token-file", "tls_cert": "--tls-cert",
                 "tls_key": "--tls-key", "tls_client_ca": "--tls-client-ca", "write_client_cn": "--write-client-cn",
                 "insecure": "--insecure", "allowed_host": "--allowed-host"}  # fmt: skip


def _refuse_access_flags(args: argparse.Namespace) -> None:
    """detect's access flags apply to its metrics listener only: given without one, they would be ignored in
    silence (the same AUDITWATCH_* variables are not refused: an environment shared with ingest and api)."""
    given = [flag for dest, flag in _ACCESS_FLAGS.items() if getattr(args, dest)]
    if given:
        refuse(f"{', '.join(given)}: detect's access flags apply to its metrics listener: add --metrics-port PORT "
               "or drop them")  # fmt: skip


def _metrics_listener(listener: Any, metrics: Any) -> Any:
    """detect's metrics listener, its port bound (None when off); a port it cannot bind is a one-line refusal."""
    from auditwatch.metrics_listener import MetricsListener

    if listener is None:
        return None
    try:
        exporter = MetricsListener(listener, metrics)
    except OSError as exc:
        refuse(f"metrics listener: cannot listen on {listener.host}:{listener.port}: {exc.strerror or exc}")
    _warn_if_open(listener)
    return exporter
