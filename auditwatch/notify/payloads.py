"""What each kind of sink receives: Alertmanager alerts, the REST alert (signed), Falco's alert, a Slack message.

Every text comes from stored alerts, which are redacted before they are stored; nothing here adds a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from api.rows import alert_from_row, iso, row_to_dict, utc
from auditwatch.outputs import falco_json
from detectors.alerts import Severity

SIGNATURE_HEADER = "X-Auditwatch-Signature"
TIMESTAMP_HEADER = "X-Auditwatch-Timestamp"
DELIVERY_HEADER = "X-Auditwatch-Delivery"  # the alert id: receivers can drop a redelivery with it
# Slack attachment colours by severity (Slack takes any hex colour; Mattermost too)
COLOURS = {"critical": "#8b0000", "high": "#d62728", "medium": "#ff7f0e", "low": "#f2c744", "info": "#7f7f7f"}
RESOLVED_ENDS_AFTER = 4  # a firing alert's endsAt is this many re-send intervals ahead (as Prometheus does)


def alert_link(public_url: str | None, alert_id: str) -> str | None:
    """The alert's console page, for the person who follows the link: a browser cannot send the bearer token
    that the REST URL needs, while the console page asks for it once (auditwatch/console)."""
    return f"{public_url.rstrip('/')}/alerts/{alert_id}" if public_url else None


def alertmanager_alert(
    group: Any, *, now: datetime, resend_s: float, resolved_at: datetime | None, description: str | None,
    public_url: str | None, response: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One alert group as one Alertmanager alert. Its labels are its identity and stay the same for the group's
    life (rule, severity, principal, namespace, group id: never a time or an auditID, which would make every
    post a new alert); what changes goes into annotations. Firing: `endsAt` a few re-send intervals ahead;
    resolved: `endsAt` when the group's window closed or triage resolved it."""
    starts = min(utc(group.first_seen), now)
    if resolved_at is None:
        ends = now + timedelta(seconds=RESOLVED_ENDS_AFTER * resend_s)
    else:
        closed = utc(group.last_seen) + timedelta(seconds=group.suppress_s)
        ends = max(starts, min(closed, resolved_at))
    labels = {
        "alertname": group.rule_id, "severity": group.severity, "principal": group.user_name,
        "namespace": group.namespace, "auditwatch_group": group.id,
    }  # fmt: skip
    link = alert_link(public_url, group.last_alert_id)
    annotations = {
        "summary": group.last_message, "description": description or group.rule_name, "rule": group.rule_name,
        "alerts": str(group.count), "first_seen": iso(group.first_seen), "last_seen": iso(group.last_seen),
        "alert_url": link or "", "response": response or "",
    }  # fmt: skip
    alert: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},  # Alertmanager drops empty labels anyway
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": iso(starts),
        "endsAt": iso(ends),
    }
    if link:
        alert["generatorURL"] = link
    return alert


def webhook_alert(row: Any) -> bytes:
    """The alert as the REST API lists it (no event body)."""
    return orjson.dumps(row_to_dict(row, with_event=False))


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY`: the timestamp is signed too, so a receiver that
    refuses old timestamps refuses replays."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def webhook_headers(alert_id: str, body: bytes, secret: bytes | None, now: datetime) -> dict[str, str]:
    headers = {DELIVERY_HEADER: alert_id}
    if secret is not None:
        timestamp = str(int(now.timestamp()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return headers


def falcosidekick_event(row: Any) -> bytes:
    """Falco's JSON alert (`replay --output-format falco`), which falcosidekick's input takes unmodified."""
    return orjson.dumps(falco_json(alert_from_row(row)))


# Line breaks and other control characters: a blank line would end a code span (and start Markdown blocks)
_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


def _slack_plain(text: str) -> str:
    """Text that Slack shows without acting on it: `<`, `>` and `&` escaped (Slack reads `<...>` as links and
    mentions, and needs them escaped in code spans too), on one line, and a zero-width space after every `@`,
    so that `@channel`, `@here`, `@all` or `@someone` notify nobody."""
    text = _BREAKS.sub(" ", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@\u200b")


def _mattermost_plain(text: str) -> str:
    """Text that Mattermost shows without acting on it. Its Markdown takes `&`, `<` and `>` as they are (raw
    HTML is shown, not rendered; an entity inside a code span would show as `&amp;`), so none is escaped. What
    it does act on: before rendering, an incoming webhook's `<!channel>`, `<!here>` and `<!all>` become
    mentions and `<@ID>` a user's name (a zero-width space after `<` or `@` stops both), and `@name` mentions."""
    return _BREAKS.sub(" ", text).replace("<!", "<\u200b!").replace("@", "@\u200b")


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters; a text cut there ends with `…`, so that it does not read as whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code_span(plain: Callable[[str], str]) -> Callable[[str], str]:
    """An event value as an inline code span: neither Slack's mrkdwn nor Mattermost's Markdown formats anything
    in one (no link, image, emphasis, strike, bare URL); a backtick, which would end it, becomes ˋ."""
    return lambda text: f"`{plain(text.replace('`', 'ˋ'))}`"


def slack_message(row: Any, *, link: str | None, descriptions: Mapping[str, str]) -> bytes:
    """A Slack incoming-webhook message (`chat_message`), its texts escaped as Slack needs."""
    return chat_message(row, link=link, descriptions=descriptions, plain=_slack_plain)


def mattermost_message(row: Any, *, link: str | None, descriptions: Mapping[str, str]) -> bytes:
    """A Mattermost incoming-webhook message (`chat_message`), its texts escaped as Mattermost needs."""
    return chat_message(row, link=link, descriptions=descriptions, plain=_mattermost_plain)


def chat_message(row: Any, *, link: str | None, descriptions: Mapping[str, str], plain: Callable[[str], str]) -> bytes:
    """An incoming-webhook message: a `text` fallback and one legacy attachment (Slack and Mattermost render
    both; Mattermost ignores Block Kit). What the event says (the message, principal, request, addresses,
    command) goes in code spans; every text is made inert by `plain`, the chat's own escaping."""
    code = _code_span(plain)
    m = row._mapping
    details = m["details"] or {}
    severity = Severity.parse(m["severity"]).label
    obj = "/".join(p for p in (m["resource"], m["subresource"]) if p)
    where = "/".join(p for p in (m["namespace"], m["name"]) if p)
    from_event = [
        ("Principal", m["impersonated_user"] or m["user_name"]), ("Namespace", m["namespace"]),
        ("Request", f"{m['verb']} {obj} {where}".strip()), ("Source IPs", ", ".join(m["source_ips"] or ())),
        ("Command", _cut(" ".join(details.get("command") or ()), 300)),  # the decoded exec command, redacted
    ]  # fmt: skip
    from_rule = [
        ("MITRE ATT&CK", ", ".join(m["mitre"] or ())),
        ("About the rule", _cut(descriptions.get(m["rule_id"], ""), 300)),
        ("What to do", _cut(str(details.get("response") or ""), 500)),  # the rule's response advice
    ]  # fmt: skip
    fields = [("Severity", severity, severity), *((t, v, code(v)) for t, v in from_event if v),
              *((t, v, plain(v)) for t, v in from_rule if v)]  # fmt: skip
    attachment: dict[str, Any] = {
        "fallback": plain(f"[{severity}] {m['rule_name']}: {m['message']}"),  # notifications: not formatted
        "color": COLOURS.get(severity, COLOURS["info"]),
        "title": plain(m["rule_name"]),
        "text": code(m["message"]),
        "fields": [{"title": t, "value": shown, "short": len(v) < 40} for t, v, shown in fields],
        "footer": plain(f"auditwatch · {m['rule_id']}"),
        "ts": int(utc(m["event_time"]).timestamp()),
        "mrkdwn_in": ["text", "fields"],  # Slack then renders the code spans, as Mattermost always does
    }
    if link:
        attachment["title_link"] = link
    text = plain(f"auditwatch {severity} alert: {m['rule_name']}")
    return orjson.dumps({"text": text, "attachments": [attachment]})
