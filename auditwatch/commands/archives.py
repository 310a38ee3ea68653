"""The archive commands: `replay` (archives -> detection, or -> Kafka), `convert` and `demo`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from auditwatch.interrupts import exit_status, sigterm_interrupts
from auditwatch.startup import (
    EXIT_FAILURE,
    EXIT_INPUT,
    build_settings,
    load_pipeline,
    open_store,
    refuse,
    shown_url,
    tune_gc,
)


def _alert_writer(output: str | None, output_format: str) -> tuple[Callable[[Any], None] | None, IO[bytes] | None]:
    from auditwatch.outputs import render

    if output is None:
        return None, None
    try:
        stream: IO[bytes] = _stdout() if output == "-" else open(output, "wb")  # noqa: SIM115
    except OSError as exc:
        refuse(f"cannot write --output {output}: {exc.strerror}")

    def emit(alert: Any) -> None:
        with _writing(f"--output {output}"):
            stream.write(render(alert, output_format))

    return emit, stream


def _stdout() -> IO[bytes]:
    if sys.stdout is None:  # started with file descriptor 1 closed
        refuse("cannot write to standard output: it is closed")
    return sys.stdout.buffer


@contextmanager
def _writing(what: str) -> Iterator[None]:
    """A failed write (a full disk) stops the command with one line and exit status 1; a closed pipe (`| head`)
    is left to `main`, which stops quietly."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        refuse(f"cannot write {what}: {exc.strerror}", EXIT_FAILURE)


def _event_filters(args: argparse.Namespace) -> Any:
    from auditwatch.replay import event_filters
    from detectors.policy import PolicyError

    try:
        return event_filters(
            since=args.since, until=args.until, policy_file=args.policy, speed=getattr(args, "speed", None)
        )
    except (ValueError, PolicyError) as exc:
        refuse(str(exc))


_NAMED = 3  # FIFOs, sockets and devices that the warning names


def _check_inputs(paths: list[str]) -> None:
    """Stop before reading anything when an input path is missing or unreadable (exit status 3); a warning line
    for the FIFOs, sockets and devices in input directories, which are not read (the summary counts them)."""
    from ingest.archives import input_problem, passed_over

    problem = input_problem(paths)
    if problem:
        refuse(f"cannot read input {problem}", EXIT_INPUT)
    special = passed_over(paths)
    if special:
        more = f" and {len(special) - _NAMED} more" if len(special) > _NAMED else ""
        print(f"auditwatch: warning: {len(special)} FIFO(s), socket(s) or device(s) in input directories not read "
              f"(give one by name to read it): {', '.join(special[:_NAMED])}{more}", file=sys.stderr)  # fmt: skip


def _check_events_read(stats: Any) -> int:
    """0 when the inputs held at least one audit event; else the reason on stderr and exit status 3."""
    if stats.events:
        return 0
    rejected = f", {stats.rejected:,} rejected" if stats.rejected else ""
    refuse(f"no audit event read from the inputs ({stats.lines:,} lines{rejected})", EXIT_INPUT)


@sigterm_interrupts()
def cmd_convert(args: argparse.Namespace) -> int:
    from auditwatch.convert import convert
    from auditwatch.replay import format_summary

    transform, _pacer = _event_filters(args)
    _check_inputs(args.paths)
    out = _stdout()
    with _writing("to standard output"):
        stats = convert(args.paths, out, fmt=args.format, transform=transform, raw=args.raw)
        out.flush()
    if not args.quiet:
        print(format_summary(stats, stored=False, converted=True), file=sys.stderr)
    return _exit_status(stats)


def _exit_status(stats: Any) -> int:
    """128 + the signal's number when one stopped the command (130 for Ctrl-C, 143 for SIGTERM), else
    `_check_events_read`'s."""
    return exit_status(stats.stop_signal) if stats.interrupted else _check_events_read(stats)


@sigterm_interrupts()
def cmd_replay(args: argparse.Namespace) -> int:
    from auditwatch.replay import Progress, format_summary, replay

    progress = Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.quiet)
    transform, pacer = _event_filters(args)
    if args.to_kafka:
        return _replay_to_kafka(args, progress)
    settings = build_settings(
        db_url=args.db, rules=args.rules, rule_matching=args.rule_matching, tuning=args.tuning,
        baseline_learning_days=args.baseline_learning_days,
    )  # fmt: skip
    pipeline = load_pipeline(settings.rules, settings.rule_matching, settings.tuning, settings.baseline_learning_days)
    _check_inputs(args.paths)
    # Store when asked to (--db), or when nothing else would keep the alerts (no --output).
    store = open_store(settings.db_url) if args.db is not None or args.output is None else None
    emit, stream = _alert_writer(args.output, args.output_format)
    tune_gc()
    try:
        stats = replay(
            args.paths, pipeline, store=store, emit=emit, progress=progress, fmt=args.format, transform=transform,
            pacer=pacer, last_use=True,
        )  # fmt: skip
        if stream is not None:
            with _writing(f"--output {args.output}"):
                stream.flush()
    finally:
        if stream is not None and args.output != "-":
            with suppress(OSError):  # a failed write was reported: closing would try it again
                stream.close()
        if store is not None:
            store.close()
    if not args.quiet:
        print(format_summary(stats, stored=store is not None), file=sys.stderr)
        _print_tuned(pipeline.tuning)
        if store is not None:
            print(f"alerts stored in {shown_url(settings.db_url)}", file=sys.stderr)
    return _exit_status(stats)


def _print_tuned(tuning: Any) -> None:
    """What the tuning file suppressed, per rule and reason (nothing suppressed: one line saying so)."""
    if tuning is None:
        return
    suppressed = tuning.suppressed
    print(f"suppressed by the tuning file {tuning.path}: {suppressed.total():,}", file=sys.stderr)
    for line in suppressed.lines():
        print(f"  {line}", file=sys.stderr)


def _replay_to_kafka(args: argparse.Namespace, progress: Any) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from auditwatch.interrupts import cancelled_by_signals, signal_of
    from auditwatch.publish import publish
    from auditwatch.replay import ReplayStats, format_summary
    from ingest.kafka import TopicRefused
    from ingest.webhook import SinkUnavailable

    settings = build_settings(kafka_bootstrap=args.to_kafka, topic=args.topic,
                              dead_letter_topic=args.dead_letter_topic, partitions=args.partitions)  # fmt: skip
    _check_inputs(args.paths)
    tune_gc()
    stats = ReplayStats()
    try:
        asyncio.run(cancelled_by_signals(publish(args.paths, settings, progress=progress, stats=stats)))
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (`Terminated`)
        if stats.interrupted is None:  # before the first record was read
            raise
        stats.stop_signal = signal_of(stop)
    except TopicRefused as exc:  # a configuration error
        refuse(str(exc))
    except (KafkaError, SinkUnavailable, TimeoutError) as exc:
        refuse(f"cannot publish to Kafka at {settings.kafka_bootstrap}: {exc}", EXIT_FAILURE)
    if not args.quiet:
        print(format_summary(stats, stored=False, published_to=f"{settings.kafka_bootstrap} {settings.topic}"),
              file=sys.stderr)  # fmt: skip
    return _exit_status(stats)


def cmd_demo(args: argparse.Namespace) -> int:
    from auditwatch.demo import TUNING, run_demo

    settings = build_settings(db_url=args.db)
    pipeline = load_pipeline(["builtin"], tuning=str(TUNING))
    open_store(settings.db_url).close()  # one line naming the store when it cannot be used
    return run_demo(settings.db_url, pipeline, args.sample)
