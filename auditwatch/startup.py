"""What every command starts with: settings from flags and env, the rules' pipeline, a tuned GC."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.errors import RuleErrors

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


def build_settings(**overrides: Any) -> Any:
    """Build Settings from env, with the flags the user actually gave taking precedence."""
    from pydantic import ValidationError

    from auditwatch.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"auditwatch: bad setting: {msgs}") from None


def load_pipeline(rules: Sequence[str], rule_matching: str = "first") -> Any:
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


def listener_settings(args: argparse.Namespace, **more: Any) -> Any:
    from auditwatch.settings import check_listener

    settings = build_settings(
        host=args.host, port=args.port, api_token=_read_token(args.token_file),
        tls_cert_file=args.tls_cert, tls_key_file=args.tls_key, tls_client_ca_file=args.tls_client_ca,
        insecure=True if args.insecure else None, **more,
    )  # fmt: skip
    refusal = check_listener(settings)
    if refusal:
        print(f"auditwatch: {refusal}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return settings


def notify_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"notify": args.notify, "public_url": args.public_url}


def notify_sinks(settings: Any) -> list[Any]:
    """The --notify sinks, parsed (secret files read); a bad one is a one-line error and exit status 2."""
    from auditwatch.notify.config import SinkSpecError, parse_sinks

    try:
        return parse_sinks(settings.notify)
    except SinkSpecError as exc:
        print(f"auditwatch: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def receipt_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "record_receipts": True if args.record_receipts else None,
        "receipts_retention_hours": args.receipts_retention_hours,
    }
