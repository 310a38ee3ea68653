"""What every command starts with: settings from flags and env, the rules' pipeline, a tuned GC; and how a
command that cannot go on stops: one line on stderr and a documented exit status (`EXIT_STATUSES`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from detectors.errors import RuleErrors

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_STATUSES = (
    "exit status: 0 done; 1 failure while running (alert store, database or Kafka error), at startup (the port "
    "in use, the database or Kafka unreachable) or a failed check (rules test, rules lint, policy check); 2 usage "
    "or configuration error (a flag, setting, time, token, TLS file, policy, rule or tuning file, database URL); "
    "3 input problem (replay, convert: an input path missing or unreadable, or no event read from the inputs); "
    "130 stopped by Ctrl-C, 143 by SIGTERM (128 + the signal, as a shell reports it; replay and convert print "
    "their summary first; a server asked to stop exits 0)"
)


def refuse(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Stop the command: `message` on one line of stderr, and `status`."""
    print(f"auditwatch: {message}", file=sys.stderr)
    raise SystemExit(status)


def package_version() -> str:
    """auditwatch's version, from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("auditwatch")
    except PackageNotFoundError:
        return "unknown (not installed)"


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
    """Build Settings from env, with the flags the user actually gave taking precedence; a warning line names the
    AUDITWATCH_* variables that nothing reads."""
    from pydantic import ValidationError

    from auditwatch.settings import Settings, unknown_env_names

    unknown = unknown_env_names(os.environ)
    if unknown:  # names only: a value may be a secret
        print(f"auditwatch: warning: ignoring {', '.join(unknown)}: no setting has this name (a typo?)",
              file=sys.stderr)  # fmt: skip
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        refuse(f"bad setting: {msgs}")
    if settings.db_url_file is None:
        return settings
    if "db_url" in settings.model_fields_set:  # given as a flag or a variable: which one was meant is unclear
        refuse("--db (AUDITWATCH_DB_URL) and --db-url-file (AUDITWATCH_DB_URL_FILE) are both set: set one of them")
    return settings.model_copy(update={"db_url": _read_secret(settings.db_url_file, "database URL file")})


def load_pipeline(
    rules: Sequence[str], rule_matching: str = "first", tuning: str | None = None, baseline_learning_days: float = 7.0
) -> Any:
    """The pipeline of these rules, tuned by the `tuning` file if given; rules with a baseline learn for
    `baseline_learning_days`. A rule or tuning file that does not load stops the command (exit status 2) with one
    line per error; load warnings go to stderr."""
    from detectors.base import Warns
    from detectors.loading.formats import LoadOptions
    from detectors.pipeline import Pipeline
    from detectors.registry import load_rules

    try:
        options = LoadOptions(rule_matching=rule_matching, baseline_learning_s=baseline_learning_days * 86400)
        detectors = load_rules(rules, options)
        for detector in detectors:  # rules that load but can never fire as written (Sigma)
            if isinstance(detector, Warns):
                for warning in detector.warnings:
                    print(f"auditwatch: warning: {warning}", file=sys.stderr)
    except RuleErrors as exc:
        if len(exc.errors) == 1:
            refuse(f"cannot load rules: {exc.errors[0]}")
        refuse(f"cannot load rules ({len(exc.errors)} errors):\n" + "\n".join(f"  {e}" for e in exc.errors))
    return Pipeline(detectors, load_site_tuning(tuning, detectors) if tuning else None)


def load_site_tuning(path: str, detectors: Sequence[Any]) -> Any:
    """The tuning file compiled for these detectors; a malformed one stops the command (exit status 2), with a
    `file:line: message` line per error."""
    from detectors.tuning.tuning import load_tuning

    try:
        tuning = load_tuning(path, detectors)
    except RuleErrors as exc:
        for error in exc.errors:
            print(f"auditwatch: {error}", file=sys.stderr)
        refuse(f"cannot load the tuning file {path} ({len(exc.errors)} error(s))")
    for warning in tuning.warnings:
        print(f"auditwatch: warning: {warning}", file=sys.stderr)
    return tuning


# libpq options that hold a secret although their name does not say so to `is_credential_name`
_URL_SECRETS = frozenset({"password", "sslpassword"})


def shown_url(url: str) -> str:
    """A database URL as messages show it: its password masked, in the user part and in the query string
    (`?password=...`, libpq's other secrets, any parameter named like a credential)."""
    from urllib.parse import quote_plus

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from detectors.credentials import is_credential_name

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(unparsable URL)"
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    params = [
        f"{quote_plus(name)}={'***' if name.lower() in _URL_SECRETS or is_credential_name(name) else quote_plus(v)}"
        for name, values in parsed.query.items()
        for v in ((values,) if isinstance(values, str) else values)
    ]
    return shown + ("?" + "&".join(params) if params else "")


def open_store(url: str) -> Any:
    """The alert store at `url` with its schema current; a one-line refusal when it cannot be used or reached."""
    from api.errors import StoreError, StoreURLError
    from api.store import AlertStore

    store = AlertStore(url)  # a URL it cannot use raises StoreURLError: a usage error, see cli.main
    try:
        store.migrate()
    except StoreURLError as exc:  # an option the driver refuses: the URL is to fix, not the database
        store.close()
        refuse(f"cannot open the alert store {shown_url(url)}: {exc}")
    except StoreError as exc:
        store.close()
        refuse(f"cannot open the alert store {shown_url(url)}: {exc}", EXIT_FAILURE)
    return store


def _read_token(path: str | None) -> str | None:
    return None if path is None else _read_secret(path, "token file", "write the token clients send in it")


def _read_secret(path: str, what: str, fill: str = "write the value in it") -> str:
    """The text of a file holding a secret, spaces and newlines around it dropped; never shown in an error."""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        refuse(f"cannot read {what} {path}: {exc.strerror}")
    except UnicodeDecodeError:
        refuse(f"cannot read {what} {path}: not UTF-8 text")
    if not value:
        refuse(f"{what} {path} is empty: {fill}")
    return value


def access_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The access flags of a listener: tokens, TLS, client certificates."""
    return {
        "api_token": _read_token(args.token_file), "api_read_token": _read_token(args.read_token_file),
        "write_client_cns": args.write_client_cn, "tls_cert_file": args.tls_cert, "tls_key_file": args.tls_key,
        "tls_client_ca_file": args.tls_client_ca, "insecure": True if args.insecure else None,
        "allowed_hosts": args.allowed_host,
    }  # fmt: skip


def listener_settings(args: argparse.Namespace, **more: Any) -> Any:
    from auditwatch.settings import check_listener

    settings = build_settings(host=args.host, port=args.port, **access_settings(args), **more)
    refusal = check_listener(settings)
    if refusal:
        refuse(refusal)
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
