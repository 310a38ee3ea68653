"""Settings, built once in the entry point from flags and AUDITWATCH_* environment variables."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auditwatch.hosts import allowed_host_name
from ingest.webhook import DEFAULT_BODY_READ_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES

DEFAULT_DB_URL = "sqlite:///auditwatch.db"
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")  # Kafka's own check (Topic.validate), but for "." and ".."


class Settings(BaseSettings):
    """Flags win over environment variables, which win over these defaults."""

    model_config = SettingsConfigDict(env_prefix="AUDITWATCH_", extra="ignore", frozen=True)

    # HTTP listeners (serve, ingest, api)
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_read_timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S  # the whole webhook body, else 408
    # webhook bodies read or handled at once, else 503 (default: ingest.webhook.DEFAULT_BODY_BUDGET_FACTOR x max)
    body_budget_bytes: int | None = None
    api_token: SecretStr | None = None  # read-write (the webhook's token)
    api_read_token: SecretStr | None = None  # read-only: GET, HEAD, OPTIONS
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None  # verify client certificates (the apiserver's kubeconfig client cert)
    # client certificates with these common names are read-write, others read-only (empty: all read-write)
    write_client_cns: Annotated[list[str], NoDecode] = []
    insecure: bool = False
    # without a token or client certificates, the Host names taken besides localhost and IP addresses
    # (auditwatch/hosts.py: the defence against DNS rebinding)
    allowed_hosts: Annotated[list[str], NoDecode] = []
    # detection and the alert store
    db_url: str = DEFAULT_DB_URL
    # a file holding db_url, so that its password is in neither the command line nor the environment (a mounted
    # Secret); read once at start (auditwatch/startup.py build_settings)
    db_url_file: str | None = None
    rules: Annotated[list[str], NoDecode] = ["builtin"]
    rule_matching: Literal["first", "all"] = "first"  # Falco rule files: first match only, or every match
    tuning: str | None = None  # site tuning file (detectors/tuning): applied to every rule's alerts
    baseline_learning_days: float = 7.0  # rules with a `baseline:` learn this long (event time) before paging
    # opt-in: one row per received event (auditID, stage, stageTimestamp), kept for the retention, to prove that
    # every event the apiserver sent was received and went through detection (serve, detect)
    record_receipts: bool = False
    receipts_retention_hours: float = 168.0
    exceptions_refresh_s: float = 30.0  # serve and detect reload rule exceptions from the store this often
    # distributed mode
    kafka_bootstrap: str | None = None
    topic: str = "k8s-audit"
    dead_letter_topic: str = "k8s-audit-dlq"
    partitions: int = 6
    replication_factor: int = 1
    consumer_group: str = "auditwatch-detect"
    detect_max_records: int = 5000  # records per detector batch (one store transaction, one commit)
    send_timeout_s: float = 20.0
    kafka_wait_s: float = 60.0  # detect: how long to wait for Kafka at start before giving up
    drop_request_received: bool = False
    # detect's metrics listener (`GET /metrics`; off unless a port is given), with the access rules above
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # notifications (serve, detect): KIND=URL[,option=value...] per sink (auditwatch/notify/config.py);
    # AUDITWATCH_NOTIFY separates several with newlines or semicolons
    notify: Annotated[list[str], NoDecode] = []
    public_url: str | None = None  # where people reach the REST API: links in notifications

    @field_validator("rules", "write_client_cns", "allowed_hosts", mode="before")
    @classmethod
    def _split_rules(cls, value: Any) -> Any:
        # AUDITWATCH_RULES=builtin,/etc/auditwatch/rules
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        return [allowed_host_name(name) for name in value]

    @field_validator("api_token", mode="before")
    @classmethod
    def _strip_token(cls, value: Any) -> Any:
        # as a token file is read: a newline or spaces around it are not part of it (no client could send them)
        return value.strip() if isinstance(value, str) else value

    @field_validator("notify", mode="before")
    @classmethod
    def _split_notify(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in re.split(r"[;\n]", value) if part.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError("must be an http:// or https:// URL, e.g. https://auditwatch.example.com")
        return value.rstrip("/") if value is not None else None

    @field_validator("max_body_bytes")
    @classmethod
    def _min_body(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        return value

    @field_validator("body_budget_bytes")
    @classmethod
    def _budget_fits_a_body(cls, value: int | None, info: ValidationInfo) -> int | None:
        # a smaller budget would refuse a body of the largest accepted size forever (the apiserver retries it)
        largest = info.data.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        if value is not None and value < largest:
            raise ValueError(f"must be at least max_body_bytes ({largest})")
        return value

    @field_validator("body_read_timeout_s")
    @classmethod
    def _read_timeout(cls, value: float) -> float:
        if not 0 < value <= 3600:  # also refuses nan and inf
            raise ValueError("must be more than 0 and at most 3600 seconds")
        return value

    @field_validator("receipts_retention_hours")
    @classmethod
    def _positive_hours(cls, value: float) -> float:
        if not 0 < value <= 876_000:  # also refuses nan and inf
            raise ValueError("must be more than 0 and at most 876000 (100 years)")
        return value

    @field_validator("baseline_learning_days")
    @classmethod
    def _learning_days(cls, value: float) -> float:
        if not 0 <= value <= 365:  # also refuses nan and inf
            raise ValueError("must be between 0 and 365 days")
        return value

    @field_validator("kafka_wait_s")
    @classmethod
    def _kafka_wait(cls, value: float) -> float:
        if not 0 <= value <= 86_400:  # also refuses nan and inf
            raise ValueError("must be between 0 and 86400 seconds")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_ports(cls, value: str | None) -> str | None:
        # the clients take "kafka" alone, then fail every connection with a warning: a usage error instead
        for part in value.split(",") if value else ():
            host, _, port = part.strip().rpartition(":")
            ipv6_bare = ":" in host and not host.startswith("[")
            if not host or ipv6_bare or not port.isdecimal() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{part.strip()!r} is not HOST:PORT (e.g. kafka:9092; several: a comma between)")
        return value

    @field_validator("topic", "dead_letter_topic")
    @classmethod
    def _topic_name(cls, value: str, info: ValidationInfo) -> str:
        # Kafka refuses these when asked to create the topic: refused here, before any broker is reached
        if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):
            raise ValueError(f"{value!r} is not a Kafka topic name: 1 to 249 of ASCII letters, digits, '.', '_' "
                             "and '-', and not '.' or '..'")  # fmt: skip
        audit = info.data.get("topic")  # when checking dead_letter_topic, declared after it
        if info.field_name == "dead_letter_topic" and audit is not None and _collides(value, audit):
            raise ValueError(f"must differ from the audit topic ({audit}), '.' and '_' counting as the same "
                             "character (Kafka's topic name collision)")  # fmt: skip
        return value

    @field_validator("consumer_group")
    @classmethod
    def _group_id(cls, value: str) -> str:
        # Kafka refuses an empty group id only when detect joins, after its banner: refused here instead
        if not value:
            raise ValueError(
                "must not be empty: the consumer group that detect processes share, e.g. auditwatch-detect"
            )
        return value

    @field_validator("exceptions_refresh_s")
    @classmethod
    def _refresh(cls, value: float) -> float:
        if not 0.1 <= value <= 86_400:
            raise ValueError("must be between 0.1 and 86400 seconds")
        return value

    @field_validator("port", "metrics_port")
    @classmethod
    def _tcp_port(cls, value: int | None) -> int | None:  # out of range, bind() raises OverflowError
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("must be a TCP port, 1 to 65535")
        return value

    @field_validator("partitions", "replication_factor", "detect_max_records")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value


# AUDITWATCH_* variables read by something else than Settings: the logs (auditwatch/logs.py), and the scripts,
# tests and benchmarks (scripts/services.sh, scripts/kube-e2e.sh, tests/support), which a shell may export
OTHER_ENV_NAMES = frozenset(
    {
        "AUDITWATCH_LOG_FORMAT", "AUDITWATCH_LOG_LEVEL", "AUDITWATCH_DEBUG", "AUDITWATCH_CACHE", "AUDITWATCH_BIN",
        "AUDITWATCH_KAFKA_VERSION", "AUDITWATCH_KAFKA_PORT", "AUDITWATCH_KAFKA_CONTROLLER_PORT", "AUDITWATCH_PG_PORT",
        "AUDITWATCH_PG_DATA", "AUDITWATCH_KAFKA_LIBS", "AUDITWATCH_FUZZ_SCALE", "AUDITWATCH_DOCS_SCREENSHOTS",
    }
)  # fmt: skip


def unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    """The AUDITWATCH_* variables of `environ` that nothing reads (a typo would otherwise go unnoticed)."""
    prefix = Settings.model_config.get("env_prefix", "")
    known = {f"{prefix}{name}".upper() for name in Settings.model_fields} | OTHER_ENV_NAMES
    return sorted(name for name in environ if name.upper().startswith(prefix) and name.upper() not in known)


def _collides(a: str, b: str) -> bool:
    """Kafka keeps one of two topics whose names differ only by '.' and '_' (metric names mix them up)."""
    return a.replace(".", "_") == b.replace(".", "_")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_listener(settings: Settings) -> Settings | None:
    """detect's metrics listener as a listener's settings (its address as host and port), or None when off."""
    if settings.metrics_port is None:
        return None
    return settings.model_copy(update={"host": settings.metrics_host, "port": settings.metrics_port})


def check_listener(settings: Settings) -> str | None:
    """Why this listener configuration must not start, or None.

    Outside loopback every client must authenticate: with a bearer token or a client certificate
    verified against a CA. TLS without client verification encrypts but authenticates nobody.
    """
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        return "--tls-cert and --tls-key go together"
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        return "--tls-client-ca needs --tls-cert and --tls-key (client certificates need TLS)"
    if settings.api_token is not None and not settings.api_token.get_secret_value():
        # refused everywhere, as an empty token file is: it would pass the check below, then refuse every client
        return "AUDITWATCH_API_TOKEN is empty: set it to the token clients send, or unset it"
    if settings.api_read_token is not None and not settings.api_read_token.get_secret_value():
        return "AUDITWATCH_API_READ_TOKEN is empty: set it to the read-only token clients send, or unset it"
    if settings.write_client_cns and not settings.tls_client_ca_file:
        return "--write-client-cn needs --tls-client-ca (it names client certificates)"
    if settings.api_read_token is not None:
        if settings.api_token is None:
            return "--read-token-file needs --token-file (the read-write token, which the webhook uses)"
        if settings.api_read_token.get_secret_value() == settings.api_token.get_secret_value():
            return "the read-only and the read-write tokens must differ"
    if is_loopback(settings.host) or settings.insecure:
        return None
    if authenticates(settings):
        return None
    return (
        f"refusing to listen on {settings.host} without authentication: set AUDITWATCH_API_TOKEN "
        "(or --token-file), or --tls-client-ca to require client certificates, or pass --insecure if "
        "something in front of auditwatch authenticates clients"
    )


def authenticates(settings: Settings) -> bool:
    """Whether every client of this listener must authenticate: with a token or a verified client certificate."""
    return settings.api_token is not None or bool(settings.tls_client_ca_file)


def open_listener_warning(settings: Settings) -> str | None:
    """The warning for a listener that `--insecure` lets take every client outside loopback, or None. It says
    which Host names the listener answers (auditwatch/hosts.py), as a proxy in front passes on a name of its own."""
    if is_loopback(settings.host) or authenticates(settings):
        return None
    names = ", ".join(settings.allowed_hosts) or "no other name"
    return (
        f"--insecure: {settings.host}:{settings.port} takes requests without authentication: whoever reaches it "
        "can read the alerts and post audit events, unless a proxy in front authenticates them; it answers only "
        f"requests for localhost, an IP address or {names} (others get 421): add the name clients use, e.g. the "
        "one the proxy passes on, with --allowed-host NAME or *.DOMAIN (AUDITWATCH_ALLOWED_HOSTS)"
    )
