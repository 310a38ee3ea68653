"""The `auditwatch` command line's shared flags: option groups several commands take, and their help texts."""

from __future__ import annotations

import argparse

from auditwatch.logs import LOG_FORMATS, LOG_LEVELS

RULES_HELP = (
    "rule file, directory or pack (repeatable); the packs are 'builtin' (auditwatch's own), 'falco' (Falco's "
    "k8s_audit rules) and 'sigma' (SigmaHQ's Kubernetes rules); a pack name wins over a same-named path "
    "(write ./falco); default: builtin only. Env: AUDITWATCH_RULES=builtin,falco,/path"
)
DB_HELP = (
    "SQLAlchemy URL of the alert store (default sqlite:///auditwatch.db; PostgreSQL: "
    "postgresql+psycopg://user@host/db). Env: AUDITWATCH_DB_URL"
)
DB_FILE_HELP = (
    "file holding the alert store's URL (instead of --db), so that its password is in neither the command line "
    "nor the environment, e.g. a mounted Secret or a compose secret. Env: AUDITWATCH_DB_URL_FILE"
)
DETECT_DB_HELP = (
    "SQLAlchemy URL of the alert store that every detect and api share (required, or --db-url-file: "
    "postgresql+psycopg://user@host/db). Env: AUDITWATCH_DB_URL"
)
KAFKA_HELP = "Kafka bootstrap server HOST:PORT (several: a comma between). Env: AUDITWATCH_KAFKA_BOOTSTRAP"
TOPIC_HELP = "audit topic (default k8s-audit; created if missing). Env: AUDITWATCH_TOPIC"
DEAD_LETTER_TOPIC_HELP = (
    "dead-letter topic: invalid items and events too large for a record, with their reason and origin (default "
    "k8s-audit-dlq; created if missing; must differ from --topic). Env: AUDITWATCH_DEAD_LETTER_TOPIC"
)
PARTITIONS_HELP = "partitions of the audit topic when it is created (default 6). Env: AUDITWATCH_PARTITIONS"
LEARNING_HELP = (
    "rules with a baseline (docs/baselines.md) learn what is routine for this many days of event time, from the "
    "first event they see, holding their alerts at info; then a habit is info and what is new pages (default 7; "
    "0: page from the start). Env: AUDITWATCH_BASELINE_LEARNING_DAYS"
)
TUNING_HELP = (
    "site tuning file (YAML): trusted registries, known deployers, rule exceptions, severity overrides, disabled "
    "rules, applied to every rule format; see docs/tuning.md. Env: AUDITWATCH_TUNING"
)
MATCHING_HELP = (
    "Falco rule files: stop at the first matching rule (first, Falco's default) or report every match (all). "
    "Env: AUDITWATCH_RULE_MATCHING"
)


_WEBHOOK_TOKEN_HELP = (
    "file holding a bearer token every request must carry (the webhook kubeconfig's `token`); it gives read-write "
    "access; or set AUDITWATCH_API_TOKEN. /healthz and /readyz stay open"
)
_STORE_READ_TOKEN_HELP = (
    "file holding a second bearer token, for read-only access: every GET of the REST API (alerts, groups, exceptions, "
    "deliveries, quarantine, receipts), the console without its triage controls, /metrics, /docs and /version; not "
    "the webhook, triage or changes to exceptions; needs --token-file. Env: AUDITWATCH_API_READ_TOKEN"
)
# What --token-file and --read-token-file reach on each command's listener: the routes of its app
# (auditwatch/server.py); read-only access allows GET and HEAD (auditwatch/auth.py).
TOKEN_HELP: dict[str, tuple[str, str]] = {
    "serve": (_WEBHOOK_TOKEN_HELP, _STORE_READ_TOKEN_HELP),
    "ingest": (
        _WEBHOOK_TOKEN_HELP,
        "file holding a second bearer token, for read-only access: GET /metrics (e.g. for Prometheus), /version and "
        "/docs, not the webhook; needs --token-file. Env: AUDITWATCH_API_READ_TOKEN",
    ),
    "api": (
        "file holding a bearer token every request must carry; it gives read-write access (triage, exceptions); or "
        "set AUDITWATCH_API_TOKEN. /healthz and /readyz stay open",
        _STORE_READ_TOKEN_HELP,
    ),
    "detect": (
        "file holding a bearer token every request to the metrics listener must carry (GET /metrics, /version, "
        "/docs); or set AUDITWATCH_API_TOKEN. /healthz stays open, for probes",
        "file holding a second bearer token, which reaches what --token-file's does: the metrics listener serves "
        "only GETs, which read-only access allows; needs --token-file. Env: AUDITWATCH_API_READ_TOKEN",
    ),
}


def listener_options(p: argparse.ArgumentParser, port: int, command: str) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1). Env: AUDITWATCH_HOST")
    p.add_argument("--port", type=int, help=f"port to listen on (default {port}). Env: AUDITWATCH_PORT")
    access_options(p, command)


def access_options(p: argparse.ArgumentParser, command: str) -> None:
    """The access flags of `command`'s listener (a key of TOKEN_HELP)."""
    token_help, read_token_help = TOKEN_HELP[command]
    p.add_argument("--token-file", help=token_help)
    p.add_argument("--read-token-file", help=read_token_help)
    p.add_argument("--tls-cert", help="server certificate (PEM) to serve HTTPS. Env: AUDITWATCH_TLS_CERT_FILE")
    p.add_argument("--tls-key", help="private key (PEM) of --tls-cert. Env: AUDITWATCH_TLS_KEY_FILE")
    p.add_argument(
        "--tls-client-ca", help="CA (PEM) that client certificates must chain to; clients without one are refused "
        "(the kubeconfig's client-certificate). Env: AUDITWATCH_TLS_CLIENT_CA_FILE",
    )  # fmt: skip
    p.add_argument(
        "--write-client-cn", action="append", metavar="CN",
        help="(repeatable) common name of a client certificate that gets read-write access; other verified "
        "certificates get read-only access. Default: every verified certificate is read-write. "
        "Env: AUDITWATCH_WRITE_CLIENT_CNS=kube-apiserver,triage-bot",
    )  # fmt: skip
    p.add_argument(
        "--allowed-host", action="append", metavar="NAME",
        help="(repeatable) a host name clients may use to reach a listener without a token or client certificates, "
        "besides localhost and IP addresses, or *.DOMAIN for every name under DOMAIN: other names are refused with "
        "421, as DNS rebinding would use them (e.g. the name a proxy in front passes on). "
        "Env: AUDITWATCH_ALLOWED_HOSTS=auditwatch.lan,*.proxy.lan",
    )  # fmt: skip
    p.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback address without a token or client certificates (only behind an "
        "authenticating proxy). Without it, such a listener refuses to start",
    )  # fmt: skip


def webhook_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-body-bytes", type=int, help="largest webhook body accepted, else 413 (default 128 MiB). "
        "Env: AUDITWATCH_MAX_BODY_BYTES",
    )  # fmt: skip
    p.add_argument(
        "--body-read-timeout", type=float, metavar="SECONDS", help="time a client has to send a whole webhook "
        "body, else 408 (default 60; the apiserver's own client gives up after 30). Env: "
        "AUDITWATCH_BODY_READ_TIMEOUT_S",
    )  # fmt: skip
    p.add_argument(
        "--body-budget-bytes", type=int, metavar="BYTES", help="webhook bodies this process reads and handles at "
        "once, in bytes (each counts its Content-Length); a request beyond it gets 503 with Retry-After before its "
        "body is read, and the apiserver retries (default 4 x --max-body-bytes; at least --max-body-bytes). Env: "
        "AUDITWATCH_BODY_BUDGET_BYTES",
    )  # fmt: skip


def receipt_options(p: argparse.ArgumentParser) -> None:
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


def notify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--notify", action="append", metavar="KIND=URL[,option=value...]",
        help="push each new alert to a sink (repeatable). KIND: alertmanager, webhook (signed with secret_file=), "
        "falcosidekick, slack or mattermost. Options: name, min_severity, rules, exclude_rules (rule ids or "
        "names, globs; repeatable), rate (e.g. 20/min; excess dropped and counted), timeout, backoff, backoff_max, "
        "max_age, max_pending, resend (alertmanager), secret / secret_file (webhook). Delivered from an outbox in "
        "the database, at least once, with retries: see README 'Notifications'. Env: AUDITWATCH_NOTIFY (several "
        "separated by newlines or ';')",
    )  # fmt: skip
    p.add_argument(
        "--public-url", metavar="URL",
        help="the REST API's address as people reach it, for the links in notifications (serve: default its own "
        "listener). Env: AUDITWATCH_PUBLIC_URL",
    )  # fmt: skip


def archive_options(p: argparse.ArgumentParser) -> None:
    from ingest.archives import FORMATS

    p.add_argument("--format", choices=FORMATS, help="archive format of every input (default: detected per file)")
    p.add_argument("--since", metavar="TIME", help="only events whose stageTimestamp is at or after TIME (RFC 3339)")
    p.add_argument("--until", metavar="TIME", help="only events whose stageTimestamp is before TIME (RFC 3339)")
    p.add_argument(
        "--policy", metavar="FILE", help="keep only what this audit policy would have recorded, at its level "
        "(level None and omitted stages dropped, bodies stripped below Request/RequestResponse)",
    )  # fmt: skip


def log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format", choices=LOG_FORMATS, help="log lines on stderr as text (default) or one JSON object each "
        "(ts, level, logger, msg and the line's fields), for log shippers. Env: AUDITWATCH_LOG_FORMAT",
    )  # fmt: skip
    p.add_argument(
        "--log-level", choices=LOG_LEVELS, help="auditwatch's log lines from this level (default: info for "
        "serve, ingest, detect and api: a line per batch, a warning per alert; warning for the others). "
        "Env: AUDITWATCH_LOG_LEVEL",
    )  # fmt: skip
