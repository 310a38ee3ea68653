"""`auditwatch` command line. Settings are built here, once, from flags and AUDITWATCH_* variables.

    serve    webhook + detectors + REST in one process (embedded mode, SQLite by default)
    ingest   webhook -> Kafka                       \
    detect   Kafka -> detectors -> alert store       } distributed mode
    api      alert store -> REST                    /
    replay   archived logs -> detectors (or -> Kafka)
    convert  archived logs of any format -> normalised audit Events (JSON lines)
    rules    test and lint rule files
    policy   audit policy check: validation, lints, rules it blinds
    demo     a bundled sample, replayed and shown
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from detectors.errors import DetectorError, RuleErrors

EXIT_USAGE = 2


def tune_gc() -> None:
    """Keep the garbage collector off the hot path.

    A 400-event webhook body allocates ~10^4 containers, which triggers young collections that also walk
    every object of the process. Freezing what startup allocated (modules, rules, the app) and making young
    collections rarer triples parse throughput (bench/replay.py, bench/ingest.py); memory stays bounded
    because events are freed by reference counting, not by the cycle collector.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _settings(**overrides: Any) -> Any:
    """Build Settings from env, with the flags the user actually gave taking precedence."""
    from pydantic import ValidationError

    from auditwatch.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"auditwatch: bad setting: {msgs}") from None


def _load_pipeline(rules: Sequence[str], rule_matching: str = "first") -> Any:
    from detectors.base import Warns
    from detectors.loading.formats import LoadOptions
    from detectors.pipeline import Pipeline
    from detectors.registry import load_rules

    try:
        detectors = load_rules(rules, LoadOptions(rule_matching=rule_matching))
        for detector in detectors:  # rules that load but can never fire as written (Sigma)
            if isinstance(detector, Warns):
                for warning in detector.warnings:
                    print(f"auditwatch: warning: {warning}", file=sys.stderr)
        return Pipeline(detectors)
    except RuleErrors as exc:
        raise SystemExit("auditwatch: cannot load rules:\n" + "\n".join(f"  {e}" for e in exc.errors)) from None


def _read_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise SystemExit(f"auditwatch: cannot read token file: {exc}") from None
    if not token:
        raise SystemExit(f"auditwatch: token file {path} is empty")
    return token


def _listener_settings(args: argparse.Namespace, **more: Any) -> Any:
    from auditwatch.settings import check_listener

    settings = _settings(
        host=args.host, port=args.port, api_token=_read_token(args.token_file),
        tls_cert_file=args.tls_cert, tls_key_file=args.tls_key, tls_client_ca_file=args.tls_client_ca,
        insecure=True if args.insecure else None, **more,
    )  # fmt: skip
    refusal = check_listener(settings)
    if refusal:
        print(f"auditwatch: {refusal}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return settings


def _receipt_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "record_receipts": True if args.record_receipts else None,
        "receipts_retention_hours": args.receipts_retention_hours,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_serve_app, run_http

    settings = _listener_settings(
        args, db_url=args.db, rules=args.rules, max_body_bytes=args.max_body_bytes, rule_matching=args.rule_matching,
        **_receipt_settings(args),
    )  # fmt: skip
    app = create_serve_app(settings, pipeline=_load_pipeline(settings.rules, settings.rule_matching))
    tune_gc()
    base = base_url(settings)
    print(
        f"auditwatch serve: listening on {base}\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  alerts   GET  {base}/api/v1/alerts   (docs: {base}/docs)\n"
        f"  store    {settings.db_url}"
        + (f"\n  receipts GET  {base}/api/v1/receipts" if settings.record_receipts else ""),
        flush=True,
    )
    run_http(app, settings)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_ingest_app, run_http

    settings = _listener_settings(
        args, kafka_bootstrap=args.kafka, topic=args.topic, max_body_bytes=args.max_body_bytes,
        drop_request_received=True if args.drop_request_received else None, partitions=args.partitions,
    )  # fmt: skip
    if not settings.kafka_bootstrap:
        raise SystemExit("auditwatch: ingest needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)")
    base = base_url(settings)
    print(
        f"auditwatch ingest: listening on {base}\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  kafka    {settings.kafka_bootstrap} topic {settings.topic} (dead letters: {settings.dead_letter_topic})",
        flush=True,
    )
    app = create_ingest_app(settings)
    tune_gc()
    run_http(app, settings)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from auditwatch.server import base_url, create_api_app, run_http

    settings = _listener_settings(args, db_url=args.db)
    base = base_url(settings)
    print(
        f"auditwatch api: listening on {base}\n  alerts   GET  {base}/api/v1/alerts\n  store    {settings.db_url}",
        flush=True,
    )
    run_http(create_api_app(settings), settings)
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from api.store import AlertStore
    from auditwatch.detect import Detector
    from auditwatch.server import topic_specs
    from ingest.kafka import ensure_topics

    settings = _settings(
        kafka_bootstrap=args.kafka, db_url=args.db, rules=args.rules, topic=args.topic,
        consumer_group=args.group, partitions=args.partitions, rule_matching=args.rule_matching,
        **_receipt_settings(args),
    )  # fmt: skip
    if not settings.kafka_bootstrap:
        raise SystemExit("auditwatch: detect needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)")
    pipeline = _load_pipeline(settings.rules, settings.rule_matching)
    store = AlertStore(settings.db_url)
    store.migrate()
    detector = Detector(
        bootstrap=settings.kafka_bootstrap, topic=settings.topic, group=settings.consumer_group,
        pipeline=pipeline, store=store, max_records=settings.detect_max_records,
        record_receipts=settings.record_receipts, receipts_retention_hours=settings.receipts_retention_hours,
    )  # fmt: skip
    print(
        f"auditwatch detect: group {settings.consumer_group} on {settings.kafka_bootstrap} topic {settings.topic}, "
        f"{len(pipeline.detectors)} detectors, store {settings.db_url}",
        flush=True,
    )

    tune_gc()
    # partition hand-overs and checkpoints are worth seeing; AUDITWATCH_DEBUG=1 shows every batch
    logging.getLogger("auditwatch").setLevel(logging.DEBUG if os.environ.get("AUDITWATCH_DEBUG") else logging.INFO)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, detector.stop)
        await ensure_topics(settings.kafka_bootstrap, topic_specs(settings))
        stats = await detector.run()
        print(
            f"auditwatch detect: stopped after {stats.records:,} records, {stats.alerts:,} alerts "
            f"({stats.new_alerts:,} new), {stats.rejected:,} rejected",
            file=sys.stderr,
        )

    try:
        asyncio.run(main())
    finally:
        store.close()
    return 0


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


def cmd_rules_test(args: argparse.Namespace) -> int:
    from auditwatch.rulescmd import run_tests

    return run_tests(args.paths, sys.stdout, verbose=args.verbose)


def cmd_rules_lint(args: argparse.Namespace) -> int:
    from auditwatch.rulescmd import lint

    return lint(args.paths, sys.stdout)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from auditwatch.policycheck import run_check

    return run_check(args.policy, args.rules, as_json=args.json, out=sys.stdout)


def cmd_replay(args: argparse.Namespace) -> int:
    from api.store import AlertStore
    from auditwatch.replay import Progress, format_summary, publish, replay

    progress = Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.quiet)
    transform, pacer = _event_filters(args)
    if args.to_kafka:
        settings = _settings(kafka_bootstrap=args.to_kafka, topic=args.topic, partitions=args.partitions)
        tune_gc()
        stats = asyncio.run(publish(args.paths, settings, progress=progress))
        if not args.quiet:
            print(format_summary(stats, stored=False, published_to=f"{settings.kafka_bootstrap} {settings.topic}"),
                  file=sys.stderr)  # fmt: skip
        return 0
    settings = _settings(db_url=args.db, rules=args.rules, rule_matching=args.rule_matching)
    pipeline = _load_pipeline(settings.rules, settings.rule_matching)
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

    settings = _settings(db_url=args.db)
    return run_demo(settings.db_url, _load_pipeline(["builtin"]), args.sample)


RULES_HELP = (
    "rule file, directory or pack (repeatable); the packs are 'builtin' (auditwatch's own), 'falco' (Falco's "
    "k8s_audit rules) and 'sigma' (SigmaHQ's Kubernetes rules); a pack name wins over a same-named path "
    "(write ./falco); default: builtin only. Env: AUDITWATCH_RULES=builtin,falco,/path"
)
DB_HELP = (
    "SQLAlchemy URL of the alert store (default sqlite:///auditwatch.db; PostgreSQL: "
    "postgresql+psycopg://user@host/db). Env: AUDITWATCH_DB_URL"
)
KAFKA_HELP = "Kafka bootstrap server HOST:PORT. Env: AUDITWATCH_KAFKA_BOOTSTRAP"
TOPIC_HELP = "audit topic (default k8s-audit; dead letters go to k8s-audit-dlq). Env: AUDITWATCH_TOPIC"
PARTITIONS_HELP = "partitions of the audit topic when it is created (default 6). Env: AUDITWATCH_PARTITIONS"
MATCHING_HELP = (
    "Falco rule files: stop at the first matching rule (first, Falco's default) or report every match (all). "
    "Env: AUDITWATCH_RULE_MATCHING"
)


def _listener_options(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1). Env: AUDITWATCH_HOST")
    p.add_argument("--port", type=int, help=f"port to listen on (default {port}). Env: AUDITWATCH_PORT")
    p.add_argument(
        "--token-file", help="file holding a bearer token every request must carry (the webhook kubeconfig's "
        "`token`); or set AUDITWATCH_API_TOKEN. /healthz and /readyz stay open",
    )  # fmt: skip
    p.add_argument("--tls-cert", help="server certificate (PEM) to serve HTTPS. Env: AUDITWATCH_TLS_CERT_FILE")
    p.add_argument("--tls-key", help="private key (PEM) of --tls-cert. Env: AUDITWATCH_TLS_KEY_FILE")
    p.add_argument(
        "--tls-client-ca", help="CA (PEM) that client certificates must chain to; clients without one are refused "
        "(the kubeconfig's client-certificate). Env: AUDITWATCH_TLS_CLIENT_CA_FILE",
    )  # fmt: skip
    p.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback address without a token or client certificates (only behind an "
        "authenticating proxy). Without it, such a listener refuses to start",
    )  # fmt: skip


def _webhook_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-body-bytes", type=int, help="largest webhook body accepted, else 413 (default 128 MiB). "
        "Env: AUDITWATCH_MAX_BODY_BYTES",
    )  # fmt: skip


def _receipt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--record-receipts", action="store_true",
        help="store a receipt (auditID, stage, stageTimestamp, received_at) for every event received, in the same "
        "transaction as its batch's alerts, and serve them at GET /api/v1/receipts: proof that every event the "
        "apiserver sent was received and went through detection (compare with its --audit-log-path file). "
        "Costs one database row per event, kept for --receipts-retention-hours. Off by default. "
        "Env: AUDITWATCH_RECORD_RECEIPTS",
    )  # fmt: skip
    p.add_argument(
        "--receipts-retention-hours", type=float, metavar="HOURS",
        help="delete receipts older than this (default 168, one week; pruned every few minutes). "
        "Env: AUDITWATCH_RECEIPTS_RETENTION_HOURS",
    )  # fmt: skip


def _archive_options(p: argparse.ArgumentParser) -> None:
    from ingest.archives import FORMATS

    p.add_argument("--format", choices=FORMATS, help="archive format of every input (default: detected per file)")
    p.add_argument("--since", metavar="TIME", help="only events whose stageTimestamp is at or after TIME (RFC 3339)")
    p.add_argument("--until", metavar="TIME", help="only events whose stageTimestamp is before TIME (RFC 3339)")
    p.add_argument(
        "--policy", metavar="FILE", help="keep only what this audit policy would have recorded, at its level "
        "(level None and omitted stages dropped, bodies stripped below Request/RequestResponse)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditwatch",
        description="Streaming detector for Kubernetes audit logs: webhook -> detectors -> alert store -> REST. "
        "Every option can also be set with an AUDITWATCH_* environment variable (e.g. AUDITWATCH_DB_URL).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="webhook + detectors + REST API in one process (embedded mode)",
        description="Receive kube-apiserver audit webhooks, detect, store alerts and serve them over REST. "
        "A webhook batch is answered 200 only after its alerts are committed.",
    )
    _listener_options(serve, 8080)
    _webhook_options(serve)
    serve.add_argument("--db", help=DB_HELP)
    serve.add_argument("--rules", action="append", help=RULES_HELP)
    serve.add_argument("--rule-matching", choices=["first", "all"], help=MATCHING_HELP)
    _receipt_options(serve)
    serve.set_defaults(func=cmd_serve)

    ingest = sub.add_parser(
        "ingest",
        help="webhook -> Kafka (distributed mode)",
        description="Receive audit webhooks and publish every event to Kafka (acks=all, idempotent producer), "
        "keyed by principal. A batch is answered 200 only once every record is acknowledged; 503 with "
        "Retry-After while Kafka is unreachable. Invalid items go to the dead-letter topic.",
    )
    ingest.add_argument("--kafka", help=KAFKA_HELP)
    ingest.add_argument("--topic", help=TOPIC_HELP)
    ingest.add_argument("--partitions", type=int, help=PARTITIONS_HELP)
    ingest.add_argument(
        "--drop-request-received", action="store_true",
        help="drop RequestReceived events whose request has a later stage in the same batch (they add nothing); "
        "default: keep every event. Env: AUDITWATCH_DROP_REQUEST_RECEIVED",
    )  # fmt: skip
    _listener_options(ingest, 8080)
    _webhook_options(ingest)
    ingest.set_defaults(func=cmd_ingest)

    detect = sub.add_parser(
        "detect",
        help="Kafka -> detectors -> alert store (distributed mode; a consumer group)",
        description="Consume the audit topic as a member of a consumer group, run the detectors, store each "
        "batch's alerts in one transaction, then commit its offsets. Run several to share the partitions.",
    )
    detect.add_argument("--kafka", help=KAFKA_HELP)
    detect.add_argument("--db", help=DB_HELP)
    detect.add_argument("--rules", action="append", help=RULES_HELP)
    detect.add_argument("--topic", help=TOPIC_HELP)
    detect.add_argument("--group", help="consumer group id (default auditwatch-detect). Env: AUDITWATCH_CONSUMER_GROUP")
    detect.add_argument("--partitions", type=int, help=PARTITIONS_HELP)
    detect.add_argument("--rule-matching", choices=["first", "all"], help=MATCHING_HELP)
    _receipt_options(detect)
    detect.set_defaults(func=cmd_detect)

    api = sub.add_parser(
        "api", help="alert store -> REST API (distributed mode)", description="Serve the alert store over REST."
    )
    _listener_options(api, 8080)
    api.add_argument("--db", help=DB_HELP)
    api.set_defaults(func=cmd_api)

    rep = sub.add_parser(
        "replay",
        help="run archived audit logs through the same detectors (or publish them to Kafka)",
        description="Replay JSON-lines audit logs (plain or .gz, directories in name order, - for stdin) "
        "through the detectors. Alerts are stored in the database when --db is given or when --output is "
        "not; bad lines are reported with file:line and never stop the replay. With --to-kafka the events "
        "are published to the audit topic instead, for `auditwatch detect` to process.",
    )
    rep.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    rep.add_argument("--rules", action="append", help=RULES_HELP)
    rep.add_argument("--rule-matching", choices=["first", "all"], help=MATCHING_HELP)
    rep.add_argument("--output", metavar="-|FILE", help="print one JSON object per alert to stdout (-) or FILE")
    rep.add_argument(
        "--output-format", choices=["auditwatch", "falco"], default="auditwatch",
        help="shape of each --output line: auditwatch's (default) or Falco's JSON alert "
        "(time, rule, priority, source, output, output_fields, tags, hostname), which falcosidekick takes",
    )  # fmt: skip
    rep.add_argument("--db", help=DB_HELP)
    rep.add_argument("--to-kafka", metavar="BOOTSTRAP", help="publish the events to Kafka instead of detecting")
    rep.add_argument("--topic", help=TOPIC_HELP)
    rep.add_argument("--partitions", type=int, help=PARTITIONS_HELP)
    rep.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")
    _archive_options(rep)
    rep.add_argument(
        "--speed", type=float, metavar="N", help="time-faithful replay at N times real time, paced on stageTimestamp "
        "(one pause never exceeds 2 s; default: as fast as possible)",
    )  # fmt: skip
    rep.set_defaults(func=cmd_replay)

    conv = sub.add_parser(
        "convert",
        help="print archived audit logs of any format as normalised audit.k8s.io/v1 Events (JSON lines)",
        description="Read archives (kube-apiserver JSON lines, EKS CloudWatch exports, GKE Cloud Audit Logs, AKS "
        "diagnostic records, Elastic documents; plain or gzip; directories) and print one normalised Event per "
        "line on stdout. Unreadable records are reported with file:line on stderr.",
    )
    conv.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    conv.add_argument("--quiet", action="store_true", help="no summary on stderr")
    _archive_options(conv)
    conv.set_defaults(func=cmd_convert)

    rules = sub.add_parser("rules", help="test and lint rule files", description="Rule file tools.")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    rtest = rules_sub.add_parser(
        "test", help="run the test events that rule files carry",
        description="Load rule files (default: the built-in pack) and run every rule's inline test events "
        "(positive and negative; sequences for stateful rules). Exit status 1 if any case fails.",
    )  # fmt: skip
    rtest.add_argument("paths", nargs="*", metavar="PATH", help="rule file, directory or pack (builtin, falco, sigma)")
    rtest.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    rtest.set_defaults(func=cmd_rules_test)
    rlint = rules_sub.add_parser(
        "lint", help="check rule files",
        description="Load rule files strictly (errors with file:line) and check that every rule has positive and "
        "negative test events and false-positive notes; report Sigma rules that can never match as written. "
        "Exit status 1 on any problem.",
    )  # fmt: skip
    rlint.add_argument("paths", nargs="*", metavar="PATH", help="rule file, directory or pack (builtin, falco, sigma)")
    rlint.set_defaults(func=cmd_rules_lint)

    pol = sub.add_parser("policy", help="audit policy tools", description="Audit policy tools.")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    check = pol_sub.add_parser(
        "check",
        help="validate an audit policy, lint it, and list the rules it leaves blind",
        description="Validate an audit policy as the kube-apiserver would, lint it (credentials logged, exec "
        "without ResponseStarted, no catch-all, shadowed rules, broken groups) and list every enabled rule that "
        "can never fire under it, with the reason. Exit 1 on validation errors.",
    )
    check.add_argument("policy", metavar="POLICY", help="audit policy file (audit.k8s.io/v1 Policy)")
    check.add_argument("--rules", action="append", help=RULES_HELP)
    check.add_argument("--json", action="store_true", help="print one JSON object: errors, warnings, blind_rules")
    check.set_defaults(func=cmd_policy_check)

    demo = sub.add_parser(
        "demo",
        help="replay a bundled sample of cluster activity and show the alerts",
        description="Replay a bundled sample (controllers, kubelets, humans and a few attacks) into the "
        "alert store, print the alerts as a table and show how to query them over REST.",
    )
    demo.add_argument("--db", help=DB_HELP)
    demo.add_argument(
        "--sample", choices=["kube", "synthetic"], default="kube",
        help="kube (default): a real kube-apiserver's audit log captured by the end-to-end test; "
        "synthetic: 20 minutes of a generated 10-node cluster",
    )  # fmt: skip
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from api.store import StoreError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (DetectorError, StoreError) as exc:
        print(f"auditwatch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
