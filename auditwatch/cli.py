"""`auditwatch` command line: the entry point and every command's flags.

Each command's function (`commands/`) builds its Settings once, from flags and
AUDITWATCH_* variables (`startup.build_settings`).

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
import sys
from collections.abc import Sequence
from typing import Any

from auditwatch.cli_options import (
    DB_FILE_HELP,
    DB_HELP,
    DEAD_LETTER_TOPIC_HELP,
    DETECT_DB_HELP,
    KAFKA_HELP,
    LEARNING_HELP,
    MATCHING_HELP,
    PARTITIONS_HELP,
    RULES_HELP,
    TOPIC_HELP,
    TUNING_HELP,
    access_options,
    archive_options,
    listener_options,
    log_options,
    notify_options,
    receipt_options,
    webhook_options,
)
from auditwatch.commands.archives import cmd_convert, cmd_demo, cmd_replay
from auditwatch.commands.processes import cmd_api, cmd_detect, cmd_ingest, cmd_serve
from auditwatch.interrupts import exit_status, signal_of
from auditwatch.logs import configure_logging
from auditwatch.startup import EXIT_FAILURE, EXIT_STATUSES, EXIT_USAGE, package_version
from detectors.errors import DetectorError


class Parser(argparse.ArgumentParser):
    """A parser whose commands report an unknown argument themselves, under their own usage (argparse would
    hand it up to `auditwatch`, which shows its own usage: not the one of the command that was mistyped)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


class _Version(argparse.Action):
    """--version, read from the package metadata only when asked (it costs an import)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"auditwatch {package_version()}")
        parser.exit()


def cmd_rules_test(args: argparse.Namespace) -> int:
    from auditwatch.commands.rules import run_tests

    return run_tests(args.paths, sys.stdout, verbose=args.verbose, tuning=args.tuning)


def cmd_rules_lint(args: argparse.Namespace) -> int:
    from auditwatch.commands.rules import lint

    return lint(args.paths, sys.stdout, tuning=args.tuning)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from auditwatch.commands.policy import run_check

    return run_check(args.policy, args.rules, as_json=args.json, out=sys.stdout)


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of the commands that run something (`serve`, `rules test`...)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.extend(_leaves(sub))
    return found if parser._subparsers is not None else [parser]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="auditwatch",
        description="Streaming detector for Kubernetes audit logs: webhook -> detectors -> alert store -> REST. "
        "Every option can also be set with an AUDITWATCH_* environment variable (e.g. AUDITWATCH_DB_URL).",
        epilog=EXIT_STATUSES,
    )
    parser.add_argument("--version", action=_Version, help="print auditwatch's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _ingest_parser(sub)
    _detect_parser(sub)
    _api_parser(sub)
    _replay_parser(sub)
    _convert_parser(sub)
    _rules_parser(sub)
    _policy_parser(sub)
    _demo_parser(sub)
    for leaf in _leaves(parser):
        log_options(leaf)
    return parser


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="webhook + detectors + REST API in one process (embedded mode)",
        description="Receive kube-apiserver audit webhooks, detect, store alerts and serve them over REST. "
        "A webhook batch is answered 200 only after its alerts are committed.",
    )
    listener_options(serve, 8080, "serve")
    webhook_options(serve)
    serve.add_argument("--db", help=DB_HELP)
    serve.add_argument("--db-url-file", metavar="FILE", help=DB_FILE_HELP)
    serve.add_argument("--rules", action="append", help=RULES_HELP)
    serve.add_argument("--rule-matching", choices=["first", "all"], help=MATCHING_HELP)
    serve.add_argument("--baseline-learning-days", type=float, metavar="DAYS", help=LEARNING_HELP)
    serve.add_argument("--tuning", metavar="FILE", help=TUNING_HELP)
    receipt_options(serve)
    notify_options(serve)
    serve.set_defaults(func=cmd_serve, default_log_level="info")


def _ingest_parser(sub: Any) -> None:
    ingest = sub.add_parser(
        "ingest",
        help="webhook -> Kafka (distributed mode)",
        description="Receive audit webhooks and publish every event to Kafka (acks=all, idempotent producer), "
        "keyed by principal. A batch is answered 200 only once every record is acknowledged; 503 with "
        "Retry-After while Kafka is unreachable. Invalid items go to the dead-letter topic.",
    )
    ingest.add_argument("--kafka", help=KAFKA_HELP)
    ingest.add_argument("--topic", help=TOPIC_HELP)
    ingest.add_argument("--dead-letter-topic", metavar="TOPIC", help=DEAD_LETTER_TOPIC_HELP)
    ingest.add_argument("--partitions", type=int, help=PARTITIONS_HELP)
    ingest.add_argument(
        "--drop-request-received", action="store_true",
        help="drop RequestReceived events whose request has a later stage in the same batch (they add nothing); "
        "default: keep every event. Env: AUDITWATCH_DROP_REQUEST_RECEIVED",
    )  # fmt: skip
    ingest.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port, each with its "
        "own Kafka producers and /metrics (default 1: one process is CPU-bound near one core)",
    )
    listener_options(ingest, 8080, "ingest")
    webhook_options(ingest)
    ingest.set_defaults(func=cmd_ingest, default_log_level="info")


def _detect_parser(sub: Any) -> None:
    detect = sub.add_parser(
        "detect",
        help="Kafka -> detectors -> alert store (distributed mode; a consumer group)",
        description="Consume the audit topic as a member of a consumer group, run the detectors, store each "
        "batch's alerts in one transaction, then commit its offsets. Run several to share the partitions.",
    )
    detect.add_argument("--kafka", help=KAFKA_HELP)
    detect.add_argument("--db", help=DETECT_DB_HELP)
    detect.add_argument("--db-url-file", metavar="FILE", help=DB_FILE_HELP)
    detect.add_argument("--rules", action="append", help=RULES_HELP)
    detect.add_argument("--topic", help=TOPIC_HELP)
    detect.add_argument("--dead-letter-topic", metavar="TOPIC", help=DEAD_LETTER_TOPIC_HELP)
    detect.add_argument("--group", help="consumer group id (default auditwatch-detect). Env: AUDITWATCH_CONSUMER_GROUP")
    detect.add_argument("--partitions", type=int, help=PARTITIONS_HELP)
    detect.add_argument("--rule-matching", choices=["first", "all"], help=MATCHING_HELP)
    detect.add_argument("--baseline-learning-days", type=float, metavar="DAYS", help=LEARNING_HELP)
    detect.add_argument("--tuning", metavar="FILE", help=TUNING_HELP)
    detect.add_argument(
        "--kafka-wait", type=float, metavar="SECONDS", help="at start, wait this long for Kafka to answer, "
        "retrying with backoff (a line per retry), then exit with status 1 (default 60). Env: AUDITWATCH_KAFKA_WAIT_S",
    )  # fmt: skip
    receipt_options(detect)
    notify_options(detect)
    detect.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics at GET /metrics on this port "
        "(default: off). The access flags below apply to it. Env: AUDITWATCH_METRICS_PORT",
    )  # fmt: skip
    detect.add_argument(
        "--metrics-host", metavar="HOST", help="address of the metrics listener (default 127.0.0.1; any other "
        "needs a token or client certificates, or --insecure). Env: AUDITWATCH_METRICS_HOST",
    )  # fmt: skip
    access_options(detect, "detect")
    detect.set_defaults(func=cmd_detect, default_log_level="info")


def _api_parser(sub: Any) -> None:
    api = sub.add_parser(
        "api", help="alert store -> REST API (distributed mode)", description="Serve the alert store over REST."
    )
    listener_options(api, 8080, "api")
    api.add_argument("--db", help=DB_HELP)
    api.add_argument("--db-url-file", metavar="FILE", help=DB_FILE_HELP)
    api.set_defaults(func=cmd_api, default_log_level="info")


def _replay_parser(sub: Any) -> None:
    rep = sub.add_parser(
        "replay",
        help="run archived audit logs through the same detectors (or publish them to Kafka)",
        description="Replay JSON-lines audit logs (plain or .gz, directories in name order, - for stdin) "
        "through the detectors. Alerts are stored in the database when --db is given or when --output is "
        "not; bad lines are reported with file:line and never stop the replay. With --to-kafka the events "
        "are published to the audit topic instead, for `auditwatch detect` to process.",
        epilog=EXIT_STATUSES,
    )
    rep.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    rep.add_argument("--rules", action="append", help=RULES_HELP)
    rep.add_argument("--rule-matching", choices=["first", "all"], help=MATCHING_HELP)
    rep.add_argument("--baseline-learning-days", type=float, metavar="DAYS", help=LEARNING_HELP)
    rep.add_argument("--tuning", metavar="FILE", help=TUNING_HELP)
    rep.add_argument("--output", metavar="-|FILE", help="print one JSON object per alert to stdout (-) or FILE")
    rep.add_argument(
        "--output-format", choices=["auditwatch", "falco"], default="auditwatch",
        help="shape of each --output line: auditwatch's (default) or Falco's JSON alert "
        "(time, rule, priority, source, output, output_fields, tags, hostname), which falcosidekick takes",
    )  # fmt: skip
    rep.add_argument("--db", help=DB_HELP)
    rep.add_argument("--to-kafka", metavar="BOOTSTRAP", help="publish the events to Kafka instead of detecting")
    rep.add_argument("--topic", help=TOPIC_HELP)
    rep.add_argument("--dead-letter-topic", metavar="TOPIC", help=DEAD_LETTER_TOPIC_HELP)
    rep.add_argument("--partitions", type=int, help=PARTITIONS_HELP)
    rep.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")
    archive_options(rep)
    rep.add_argument(
        "--speed", type=float, metavar="N", help="time-faithful replay at N times real time, paced on stageTimestamp "
        "(one pause never exceeds 2 s; default: as fast as possible)",
    )  # fmt: skip
    rep.set_defaults(func=cmd_replay)


def _convert_parser(sub: Any) -> None:
    conv = sub.add_parser(
        "convert",
        help="print archived audit logs of any format as normalised audit.k8s.io/v1 Events (JSON lines)",
        description="Read archives (kube-apiserver JSON lines, EKS CloudWatch exports, GKE Cloud Audit Logs, AKS "
        "diagnostic records, Elastic documents; plain or gzip; directories) and print one normalised Event per "
        "line on stdout, with credentials redacted unless --raw. Unreadable records are reported with file:line "
        "on stderr.",
        epilog=EXIT_STATUSES,
    )
    conv.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    conv.add_argument("--quiet", action="store_true", help="no summary on stderr")
    conv.add_argument(
        "--raw", action="store_true", help="print the events as read, credentials included (to feed another "
        "detector); by default they are redacted as an alert's event is",
    )  # fmt: skip
    archive_options(conv)
    conv.set_defaults(func=cmd_convert)


def _rules_parser(sub: Any) -> None:
    rules = sub.add_parser("rules", help="test and lint rule files", description="Rule file tools.")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    rtest = rules_sub.add_parser(
        "test", help="run the test events that rule files carry",
        description="Load rule files (default: the built-in pack) and run every rule's inline test events "
        "(positive and negative; sequences for stateful rules). Exit status 1 if any case fails.",
    )  # fmt: skip
    rtest.add_argument("paths", nargs="*", metavar="PATH", help="rule file, directory or pack (builtin, falco, sigma)")
    rtest.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    rtest.add_argument(
        "--tuning", metavar="FILE", help="also check this site tuning file, and list the positive cases it would "
        "silence (the cases themselves run untuned)",
    )  # fmt: skip
    rtest.set_defaults(func=cmd_rules_test)
    rlint = rules_sub.add_parser(
        "lint", help="check rule files",
        description="Load rule files strictly (errors with file:line) and check that every rule has positive and "
        "negative test events and false-positive notes; report Sigma rules that can never match as written. "
        "Exit status 1 on any problem.",
    )  # fmt: skip
    rlint.add_argument("paths", nargs="*", metavar="PATH", help="rule file, directory or pack (builtin, falco, sigma)")
    rlint.add_argument(
        "--tuning", metavar="FILE", help="also check this site tuning file and show what it does to each rule "
        "(disabled, severity overridden, exceptions); a rule id it names that is not loaded is a problem",
    )  # fmt: skip
    rlint.set_defaults(func=cmd_rules_lint)


def _policy_parser(sub: Any) -> None:
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


def _demo_parser(sub: Any) -> None:
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


def main(argv: Sequence[str] | None = None) -> int:
    from api.errors import StoreError, StoreURLError

    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level, default_level=getattr(args, "default_log_level", "warning"))
    try:
        result: int = args.func(args)
        return result
    except StoreURLError as exc:
        print(f"auditwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DetectorError, StoreError) as exc:  # the one message of a store failure while running (replay --db)
        print(f"auditwatch: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM where a command made it one (`interrupts`)
        return exit_status(signal_of(stop))
    except BrokenPipeError:  # the reader of the output went away (`| head`): stop quietly, as other tools do
        _discard_stdout()
        return EXIT_FAILURE


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail a second time."""
    import os

    if sys.stdout is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
