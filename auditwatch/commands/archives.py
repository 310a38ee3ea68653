"""The archive commands: `replay` (archives -> detection, or -> Kafka), `convert` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import IO, Any

from auditwatch.startup import EXIT_USAGE, build_settings, load_pipeline, tune_gc


def _alert_writer(output: str | None, output_format: str) -> tuple[Callable[[Any], None] | None, IO[bytes] | None]:
    from auditwatch.outputs import render

    if output is None:
        return None, None
    stream: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115

    def emit(alert: Any) -> None:
        stream.write(render(alert, output_format))

    return emit, stream


def _event_filters(args: argparse.Namespace) -> Any:
    from auditwatch.replay import event_filters
    from detectors.policy import PolicyError

    try:
        return event_filters(
            since=args.since, until=args.until, policy_file=args.policy, speed=getattr(args, "speed", None)
        )
    except (ValueError, PolicyError) as exc:
        print(f"auditwatch: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_convert(args: argparse.Namespace) -> int:
    from auditwatch.replay import convert, format_summary

    transform, _pacer = _event_filters(args)
    stats = convert(args.paths, sys.stdout.buffer, fmt=args.format, transform=transform)
    sys.stdout.buffer.flush()
    if not args.quiet:
        print(format_summary(stats, stored=False).replace("replayed", "converted", 1), file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from api.store import AlertStore
    from auditwatch.replay import Progress, format_summary, publish, replay

    progress = Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.quiet)
    transform, pacer = _event_filters(args)
    if args.to_kafka:
        settings = build_settings(kafka_bootstrap=args.to_kafka, topic=args.topic, partitions=args.partitions)
        tune_gc()
        stats = asyncio.run(publish(args.paths, settings, progress=progress))
        if not args.quiet:
            print(format_summary(stats, stored=False, published_to=f"{settings.kafka_bootstrap} {settings.topic}"),
                  file=sys.stderr)  # fmt: skip
        return 0
    settings = build_settings(db_url=args.db, rules=args.rules, rule_matching=args.rule_matching)
    pipeline = load_pipeline(settings.rules, settings.rule_matching)
    # Store when asked to (--db), or when nothing else would keep the alerts (no --output).
    store = None
    if args.db is not None or args.output is None:
        store = AlertStore(settings.db_url)
        store.migrate()
    emit, stream = _alert_writer(args.output, args.output_format)
    tune_gc()
    try:
        stats = replay(
            args.paths, pipeline, store=store, emit=emit, progress=progress, fmt=args.format, transform=transform,
            pacer=pacer,
        )  # fmt: skip
    finally:
        if stream is not None and stream is not sys.stdout.buffer:
            stream.close()
        elif stream is not None:
            stream.flush()
        if store is not None:
            store.close()
    if not args.quiet:
        print(format_summary(stats, stored=store is not None), file=sys.stderr)
        if store is not None:
            print(f"alerts stored in {settings.db_url}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from auditwatch.demo import run_demo

    settings = build_settings(db_url=args.db)
    return run_demo(settings.db_url, load_pipeline(["builtin"]), args.sample)
