"""`--notify KIND=URL[,option=value...]`: a notification sink, parsed strictly (one-line errors).

The URL ends at the first comma; options follow, comma-separated (so neither a URL nor a `secret=` may hold
a comma: use `secret_file=`). A sink is named KIND:SCHEME://HOST[:PORT] (no path, query or credentials:
a Slack URL's path is its secret) unless `name=` says otherwise; names are unique, and are all that logs,
REST and the database ever show of a sink.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from api.outbox import OutboxRoute
from detectors.alerts import Alert, Severity
from detectors.patterns import Matcher, PatternError, glob

KINDS = ("alertmanager", "webhook", "falcosidekick", "slack", "mattermost")
COMMON = ("name", "min_severity", "rules", "exclude_rules", "timeout", "backoff", "backoff_max", "max_age",
          "max_pending")  # fmt: skip
OPTIONS = {
    "alertmanager": (*COMMON, "resend"),
    "webhook": (*COMMON, "rate", "secret", "secret_file"),
    "falcosidekick": (*COMMON, "rate"),
    "slack": (*COMMON, "rate"),
    "mattermost": (*COMMON, "rate"),
}
_ALL_OPTIONS = frozenset(name for names in OPTIONS.values() for name in names)
REPEATABLE = frozenset({"rules", "exclude_rules"})
_OPTION_NAME = re.compile(r"[a-z_]{1,32}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
_RATE = re.compile(r"(\d+)/(s|min|h)")
_RATE_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
# a host name or IPv4 address as a resolver takes it (`_` for Docker and Compose service names); IPv6 in brackets
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_.-]{0,252})")
DAY = 86400.0


class SinkSpecError(ValueError):
    """A --notify value that cannot be used; the message names the bad part (never a secret)."""


@dataclass(frozen=True)
class Rate:
    """At most `count` new notifications per `per_s` seconds; the excess is dropped and counted."""

    count: int
    per_s: float
    text: str


@dataclass(frozen=True)
class SinkConfig:
    kind: str
    name: str
    url: str = field(repr=False)  # may hold credentials (a Slack URL is one): never logged or stored
    min_severity: Severity = Severity.INFO
    rules: tuple[str, ...] = ()
    exclude_rules: tuple[str, ...] = ()
    rate: Rate | None = None
    timeout_s: float = 10.0
    backoff_s: float = 5.0  # the first pause after a failure; doubled with each failure in a row
    backoff_max_s: float = 3600.0
    max_age_s: float = DAY  # an undelivered notification is given up (failed) this long after it was queued
    max_pending: int = 10_000  # beyond this, the oldest pending notifications are dropped
    resend_s: float = 60.0  # alertmanager: how often a firing group is sent again
    secret: bytes | None = field(default=None, repr=False)  # webhook: HMAC-SHA256 key
    include: Matcher | None = field(default=None, repr=False, compare=False)
    exclude: Matcher | None = field(default=None, repr=False, compare=False)

    def accepts(self, alert: Alert) -> bool:
        """Whether this sink takes the alert: severity, then the rule globs (on the rule's id or name)."""
        if alert.severity < self.min_severity:
            return False
        if self.include is not None and not (self.include(alert.rule_id) or self.include(alert.rule_name)):
            return False
        return not (self.exclude is not None and (self.exclude(alert.rule_id) or self.exclude(alert.rule_name)))

    def route(self) -> OutboxRoute:
        return OutboxRoute(self.name, self.accepts)

    def secrets(self) -> tuple[str, ...]:
        """Texts that must never appear in an error message, a log line or the database."""
        parts = urlsplit(self.url)
        found = [self.url, parts.password or ""]
        found += [p for p in (parts.path, parts.query) if len(p) >= 8]  # a shorter path is no secret, and common
        if self.secret is not None:
            found.append(self.secret.decode("utf-8", "replace"))
        return tuple(s for s in found if s)


def parse_duration(text: str, what: str, *, low: float, high: float) -> float:
    """`500ms`, `10s`, `5m`, `1h`, `1d`, or seconds."""
    m = _DURATION.fullmatch(text)
    value = float(m.group(1)) * _UNITS[m.group(2) or ""] if m else math.nan
    if not low <= value <= high:  # nan fails too
        raise SinkSpecError(
            f"{what}={text!r}: want a duration such as 500ms, 10s, 5m or 1h, from {low:g}s to {high:g}s"
        )
    return value


def parse_rate(text: str) -> Rate:
    m = _RATE.fullmatch(text)
    if not m or int(m.group(1)) < 1:
        raise SinkSpecError(f"rate={text!r}: want N/s, N/min or N/h with N at least 1, e.g. rate=20/min")
    return Rate(int(m.group(1)), _RATE_UNITS[m.group(2)], text)


def parse_url(kind: str, url: str) -> str:
    """The URL's default sink name: KIND:SCHEME://HOST[:PORT]. The URL itself is never echoed."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        scheme, host, port = "", None, None
    if ";" in url.partition("://")[2].partition("/")[0]:  # two sinks in one --notify, as AUDITWATCH_NOTIFY has them
        raise SinkSpecError(
            "the URL's host holds a ';': give each sink its own --notify"
            " (';' separates sinks only in AUDITWATCH_NOTIFY)"
        )
    if scheme not in ("http", "https") or not host:
        raise SinkSpecError(f"the URL must be http:// or https:// with a host (as in {kind}=https://host/path)")
    if ":" not in host and not _HOST.fullmatch(host):
        raise SinkSpecError("the URL's host is not a host name (letters, digits, '.', '-', '_') or an IP address")
    shown = f"[{host}]" if ":" in host else host
    return f"{kind}:{scheme}://{shown}" + (f":{port}" if port is not None else "")


def _options(kind: str, parts: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    quiet = any(part.strip().startswith("secret=") for part in parts)  # a secret with a comma looks like options
    for number, part in enumerate(parts, start=1):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:  # not echoed: it may be the tail of a secret that held a comma
            raise SinkSpecError(f"option {number} has no '=' (options are option=value, separated by commas)")
        if key not in OPTIONS[kind]:
            named = key in _ALL_OPTIONS or (_OPTION_NAME.fullmatch(key) and not quiet)
            shown = repr(key) if named else f"{number}"
            raise SinkSpecError(f"unknown option {shown} for {kind} (options: {', '.join(OPTIONS[kind])})")
        if not value:
            raise SinkSpecError(f"option {key!r} needs a value ({key}=...)")
        if key in found and key not in REPEATABLE:
            raise SinkSpecError(f"option {key!r} given twice")
        found.setdefault(key, []).append(value)
    return found


def _read_secret(path: str) -> bytes:
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SinkSpecError(f"cannot read secret_file {path}: {exc.strerror or exc}") from None
    if not secret:
        raise SinkSpecError(f"secret_file {path} is empty")
    return secret


def _globs(option: str, values: list[str]) -> Matcher | None:
    if not values:
        return None
    try:
        return glob(values)
    except PatternError as exc:
        raise SinkSpecError(f"{option}: {exc}") from None


def parse_sink(spec: str) -> SinkConfig:
    """One --notify value; SinkSpecError names what is wrong."""
    kind, eq, rest = spec.strip().partition("=")
    if kind not in KINDS:
        shown = f"unknown kind {kind!r}" if _OPTION_NAME.fullmatch(kind) else "no KIND="  # else it may be a URL
        raise SinkSpecError(f"{shown}: want KIND=URL[,option=value...] with KIND one of {', '.join(KINDS)}")
    if not eq or not rest:
        raise SinkSpecError(f"{kind}: no URL (want {kind}=URL[,option=value...])")
    url, *parts = rest.split(",")
    name = parse_url(kind, url.strip())
    opts = _options(kind, parts)
    one = {key: values[0] for key, values in opts.items() if key not in REPEATABLE}
    if "name" in one:
        if not _NAME.fullmatch(one["name"]):
            raise SinkSpecError(f"name={one['name']!r}: letters, digits and . _ : / @ - only, at most 200")
        name = one["name"]
    if "secret" in one and "secret_file" in one:
        raise SinkSpecError("give secret= or secret_file=, not both")
    secret = one["secret"].encode() if "secret" in one else None
    if "secret_file" in one:
        secret = _read_secret(one["secret_file"])
    try:
        severity = Severity.parse(one.get("min_severity", "info"))
    except ValueError as exc:
        raise SinkSpecError(f"min_severity: {exc}") from None
    backoff = parse_duration(one.get("backoff", "5s"), "backoff", low=0.05, high=DAY)
    backoff_max = parse_duration(one.get("backoff_max", "1h"), "backoff_max", low=backoff, high=DAY)
    max_pending = one.get("max_pending", "10000")
    if not (max_pending.isdigit() and 1 <= int(max_pending) <= 10_000_000):
        raise SinkSpecError(f"max_pending={max_pending!r}: want a whole number from 1 to 10000000")
    return SinkConfig(
        kind=kind, name=name, url=url.strip(), min_severity=severity,
        rules=tuple(opts.get("rules", ())), exclude_rules=tuple(opts.get("exclude_rules", ())),
        rate=parse_rate(one["rate"]) if "rate" in one else None,
        timeout_s=parse_duration(one.get("timeout", "10s"), "timeout", low=0.1, high=300),
        backoff_s=backoff, backoff_max_s=backoff_max,
        max_age_s=parse_duration(one.get("max_age", "1d"), "max_age", low=1, high=30 * DAY),
        max_pending=int(max_pending),
        resend_s=parse_duration(one.get("resend", "1m"), "resend", low=1, high=3600),
        secret=secret,
        include=_globs("rules", opts.get("rules", [])), exclude=_globs("exclude_rules", opts.get("exclude_rules", [])),
    )  # fmt: skip


def parse_sinks(specs: Sequence[str]) -> list[SinkConfig]:
    """Every --notify value (numbered from 1 in errors); names must be unique."""
    sinks: list[SinkConfig] = []
    for number, spec in enumerate(specs, start=1):
        try:
            sinks.append(parse_sink(spec))
        except SinkSpecError as exc:
            raise SinkSpecError(f"--notify #{number}: {exc}") from None
    names = [s.name for s in sinks]
    for name in names:
        if names.count(name) > 1:
            raise SinkSpecError(f"--notify: two sinks are named {name!r}: give one a name= option")
    return sinks
