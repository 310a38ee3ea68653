"""`auditwatch` command line: serve, replay, demo. Settings are built here, once, from flags and env."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from detectors.errors import DetectorError, RuleErrors

EXIT_USAGE = 2


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


def _load_pipeline(rules: Sequence[str]) -> Any:
    from detectors.pipeline import Pipeline
    from detectors.rules.loader import load_rules

    try:
        return Pipeline(load_rules(rules))
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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from auditwatch.server import create_serve_app
    from auditwatch.settings import check_exposure

    settings = _settings(
        host=args.host, port=args.port, db_url=args.db, rules=args.rules, max_body_bytes=args.max_body_bytes,
        api_token=_read_token(args.token_file), insecure=True if args.insecure else None,
    )  # fmt: skip
    refusal = check_exposure(settings)
    if refusal:
        print(f"auditwatch: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    app = create_serve_app(settings, pipeline=_load_pipeline(settings.rules))
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"auditwatch serve: listening on {base}\n"
        f"  webhook  POST {base}/audit/webhook  (also /k8s-audit)\n"
        f"  alerts   GET  {base}/api/v1/alerts   (docs: {base}/docs)\n"
        f"  store    {settings.db_url}",
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    return 0


def _alert_writer(output: str | None) -> tuple[Callable[[Any], None] | None, IO[bytes] | None]:
    if output is None:
        return None, None
    stream: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115

    def emit(alert: Any) -> None:
        stream.write(orjson.dumps(alert.summary()) + b"\n")

    return emit, stream


def cmd_replay(args: argparse.Namespace) -> int:
    from api.store import AlertStore
    from auditwatch.replay import Progress, format_summary, replay

    settings = _settings(db_url=args.db, rules=args.rules)
    pipeline = _load_pipeline(settings.rules)
    # Store when asked to (--db), or when nothing else would keep the alerts (no --output).
    store = None
    if args.db is not None or args.output is None:
        store = AlertStore(settings.db_url)
        store.migrate()
    emit, stream = _alert_writer(args.output)
    progress = Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.quiet)
    try:
        stats = replay(args.paths, pipeline, store=store, emit=emit, progress=progress)
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
    return run_demo(settings.db_url, _load_pipeline(["builtin"]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditwatch",
        description="Streaming detector for Kubernetes audit logs: webhook -> detectors -> alert store -> REST. "
        "Every option can also be set with an AUDITWATCH_* environment variable (e.g. AUDITWATCH_DB_URL).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rules_help = (
        "rule file or directory (repeatable); the word 'builtin' names the built-in pack; "
        "default: builtin only. Env: AUDITWATCH_RULES=builtin,/path"
    )
    db_help = "SQLAlchemy database URL of the alert store (default sqlite:///auditwatch.db). Env: AUDITWATCH_DB_URL"

    serve = sub.add_parser(
        "serve",
        help="webhook + detectors + REST API in one process (embedded mode)",
        description="Receive kube-apiserver audit webhooks, detect, store alerts and serve them over REST. "
        "A webhook batch is answered 200 only after its alerts are committed.",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1). Env: AUDITWATCH_HOST")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080). Env: AUDITWATCH_PORT")
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--rules", action="append", help=rules_help)
    serve.add_argument(
        "--max-body-bytes", type=int, help="largest webhook body accepted, else 413 (default 128 MiB). "
        "Env: AUDITWATCH_MAX_BODY_BYTES",
    )  # fmt: skip
    serve.add_argument(
        "--token-file", help="file holding a bearer token every request must carry (webhook kubeconfig `token`); "
        "or set AUDITWATCH_API_TOKEN. Required to listen on a non-loopback address",
    )  # fmt: skip
    serve.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback address without authentication (only behind an authenticating proxy)",
    )  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    rep = sub.add_parser(
        "replay",
        help="run archived audit logs through the same detectors",
        description="Replay JSON-lines audit logs (plain or .gz, directories in name order, - for stdin) "
        "through the detectors. Alerts are stored in the database when --db is given or when --output is "
        "not; bad lines are reported with file:line and never stop the replay.",
    )
    rep.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    rep.add_argument("--rules", action="append", help=rules_help)
    rep.add_argument("--output", metavar="-|FILE", help="print one JSON object per alert to stdout (-) or FILE")
    rep.add_argument("--db", help=db_help)
    rep.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")
    rep.set_defaults(func=cmd_replay)

    demo = sub.add_parser(
        "demo",
        help="replay a bundled sample of cluster activity and show the alerts",
        description="Replay a bundled sample (controllers, kubelets, humans and a few attacks) into the "
        "alert store, print the alerts as a table and show how to query them over REST.",
    )
    demo.add_argument("--db", help=db_help)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from api.store import StoreError

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
