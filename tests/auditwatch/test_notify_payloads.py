"""What each kind of sink receives, built from stored alerts: bounded Alertmanager labels, the REST shape signed
with HMAC, a Falco alert falcosidekick takes, a Slack message that no event value can turn into a mention."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from api.outbox import Outbox
from api.queries import AlertFilter
from api.store import AlertStore
from auditwatch.notify.payloads import (
    alertmanager_alert,
    falcosidekick_event,
    mattermost_message,
    signature,
    slack_message,
    webhook_alert,
    webhook_headers,
)
from auditwatch.notify.sender import rule_responses
from detectors.alerts import Severity, make_alert
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.alerts import alerts
from tests.support.events import exec_event
from tests.support.hostile import check_inert_mattermost_message, check_inert_slack_message, hostile_exec_event
from tests.support.receivers import Received, falcosidekick_problems, verify_signature


@pytest.fixture
def sqlite_store(db_url: str) -> Iterator[AlertStore]:
    s = AlertStore(db_url)
    s.migrate()
    yield s
    s.close()


def stored(store: AlertStore, alert_id: str) -> tuple[Any, Any]:
    box = Outbox(store.engine)
    row = box.alerts([alert_id])[alert_id]
    return row, box.groups([row.group_id])[row.group_id]


def test_alertmanager_labels_are_the_groups_identity_and_bounded(sqlite_store: AlertStore) -> None:
    first, second = alerts(6)[1], alerts(6)[5]  # one rule, principal and namespace: one group
    sqlite_store.write([first, second])
    row, group = stored(sqlite_store, second.id)
    now = datetime.now(UTC)
    firing = alertmanager_alert(group, now=now, resend_s=60, resolved_at=None, description="Why it matters.",
                                public_url="https://aw.example")  # fmt: skip
    assert firing["labels"] == {
        "alertname": "pod-exec-attach", "severity": group.severity, "principal": first.user,
        "namespace": "shop", "auditwatch_group": row.group_id,
    }  # fmt: skip
    assert first.audit_id not in orjson.dumps(firing["labels"]).decode()
    assert firing["annotations"]["description"] == "Why it matters." and firing["annotations"]["alerts"] == "2"
    assert firing["annotations"]["summary"] == second.message
    assert firing["generatorURL"] == f"https://aw.example/alerts/{second.id}"  # the console page, for people
    assert firing["startsAt"] == "2026-11-20T10:00:00Z"  # the group's first alert, in the past
    assert datetime.fromisoformat(firing["endsAt"]) == now + timedelta(seconds=240)
    resolved = alertmanager_alert(group, now=now, resend_s=60, resolved_at=now, description=None, public_url=None)
    assert resolved["labels"] == firing["labels"]  # the same alert, now resolved: its window closed long ago
    assert resolved["endsAt"] == "2026-11-20T11:00:02Z" and "generatorURL" not in resolved


def test_webhook_body_is_the_rest_alert_signed(sqlite_store: AlertStore) -> None:
    (alert,) = alerts(1)
    sqlite_store.write([alert])
    row, _ = stored(sqlite_store, alert.id)
    body = webhook_alert(row)
    listed = sqlite_store.list_alerts(AlertFilter(), limit=10)[0]
    assert orjson.loads(body) == listed[0]
    headers = webhook_headers(alert.id, body, b"k3y", datetime.now(UTC))
    request = Received("/", {k.lower(): v for k, v in headers.items()}, body)
    assert verify_signature(request, b"k3y") and not verify_signature(request, b"other")
    assert not verify_signature(Received("/", request.headers, body + b" "), b"k3y")  # body changed
    old = str(int(datetime.now(UTC).timestamp()) - 3600)  # a replay, re-signed with the old timestamp
    replay = dict(
        request.headers, **{"x-auditwatch-timestamp": old, "x-auditwatch-signature": signature(b"k3y", old, body)}
    )
    assert not verify_signature(Received("/", replay, body), b"k3y")
    assert webhook_headers(alert.id, body, None, datetime.now(UTC)) == {"X-Auditwatch-Delivery": alert.id}


def test_falcosidekick_takes_every_alert_native_and_falco(sqlite_store: AlertStore) -> None:
    raw = copy.deepcopy(exec_event())
    event = AuditEvent(raw=raw)
    falco = Pipeline(load_rules(["falco"], LoadOptions())).process(event)
    native = Pipeline(load_rules(["builtin"], LoadOptions())).process(event)
    assert falco and native
    sqlite_store.write([*falco, *native])
    for alert in [*falco, *native]:
        row, _ = stored(sqlite_store, alert.id)
        sent = orjson.loads(falcosidekick_event(row))
        assert falcosidekick_problems(sent) == [], (alert.rule_id, sent)
        assert sent["rule"] == alert.rule_name and sent["source"] == "k8s_audit"


def test_slack_message_escapes_what_the_event_says(sqlite_store: AlertStore) -> None:
    raw = copy.deepcopy(exec_event())
    raw["user"]["username"] = "<!channel> & <https://evil.example|click>"
    alert = make_alert(rule_id="pod-exec-attach", rule_name="Exec or attach into a pod", severity=Severity.HIGH,
                       mitre=("T1609",), message=f"{raw['user']['username']} exec'd", event=AuditEvent(raw=raw))  # fmt: skip
    sqlite_store.write([alert])
    row, _ = stored(sqlite_store, alert.id)
    sent = orjson.loads(
        slack_message(row, link="https://aw.example/api/v1/alerts/x", descriptions={"pod-exec-attach": "D"})
    )
    assert sent["text"] == "auditwatch high alert: Exec or attach into a pod"
    (attachment,) = sent["attachments"]
    assert attachment["color"] == "#d62728" and attachment["title_link"] == "https://aw.example/api/v1/alerts/x"
    text = orjson.dumps(sent).decode()
    assert "<!channel>" not in text and "<https://evil" not in text and "&lt;!channel&gt; &amp; " in text
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Severity"] == "high" and fields["About the rule"] == "D" and fields["MITRE ATT&CK"] == "T1609"


def test_slack_message_makes_markdown_and_mentions_in_event_values_inert(sqlite_store: AlertStore) -> None:
    """Slack's mrkdwn and Mattermost's Markdown: event values (the principal, object name, command, addresses
    and the message built from them) are code spans that nothing ends, and no `@` notifies anyone."""
    raw = hostile_exec_event()
    (alert,) = [
        a for a in Pipeline(load_rules(["builtin"])).process(AuditEvent(raw=raw)) if a.rule_id == "pod-exec-attach"
    ]
    sqlite_store.write([alert])
    row, _ = stored(sqlite_store, alert.id)
    check_inert_slack_message(orjson.loads(slack_message(row, link=None, descriptions={"pod-exec-attach": "D"})))


def test_mattermost_message_shows_event_values_as_they_are_and_inert(sqlite_store: AlertStore) -> None:
    """Mattermost's Markdown needs no HTML entities (inside a code span it would show `&amp;`), but it turns
    `<!channel>` and `<@ID>` into mentions: values read as they are, and still notify nobody."""
    raw = hostile_exec_event()
    raw["user"]["username"] = "R&D <ops> " + raw["user"]["username"]
    (alert,) = [
        a for a in Pipeline(load_rules(["builtin"])).process(AuditEvent(raw=raw)) if a.rule_id == "pod-exec-attach"
    ]
    sqlite_store.write([alert])
    row, _ = stored(sqlite_store, alert.id)
    descriptions = {"pod-exec-attach": "Exec & attach <pods/exec>"}
    sent = orjson.loads(mattermost_message(row, link=None, descriptions=descriptions))
    check_inert_mattermost_message(sent)
    fields = {f["title"]: f["value"] for f in sent["attachments"][0]["fields"]}
    assert fields["Principal"].startswith("`R&D <ops> *boss*") and fields["MITRE ATT&CK"] == "T1609"
    assert fields["About the rule"] == "Exec & attach <pods/exec>"
    assert sent["attachments"][0]["text"].startswith("`R&D <ops> *boss*")
    slack = orjson.loads(slack_message(row, link=None, descriptions=descriptions))  # Slack's needs them escaped
    assert {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]}["Principal"].startswith(
        "`R&amp;D &lt;ops&gt; *boss*"
    )


def test_slack_message_tells_what_to_do_and_the_decoded_command(sqlite_store: AlertStore) -> None:
    (rule,) = [r for r in load_rules(["builtin"]) if r.id == "pod-exec-attach"]
    (alert,) = [a for a in Pipeline([rule]).process(AuditEvent(raw=exec_event())) if a.rule_id == "pod-exec-attach"]
    sqlite_store.write([alert])
    row, _ = stored(sqlite_store, alert.id)
    sent = orjson.loads(slack_message(row, link=None, descriptions={}))
    fields = {f["title"]: f["value"] for f in sent["attachments"][0]["fields"]}
    assert fields["Command"] == f"`{' '.join(alert.details['command'])}`" and alert.details["command"]
    assert fields["What to do"] == alert.details["response"] and fields["What to do"]


def test_slack_message_marks_what_it_cuts(sqlite_store: AlertStore) -> None:
    raw = exec_event()
    raw["requestURI"] = raw["requestURI"].replace("command=sh&", "command=sh&" + "command=x&" * 200)
    (rule,) = [r for r in load_rules(["builtin"]) if r.id == "pod-exec-attach"]
    (alert,) = [a for a in Pipeline([rule]).process(AuditEvent(raw=raw)) if a.rule_id == "pod-exec-attach"]
    sqlite_store.write([alert])
    row, _ = stored(sqlite_store, alert.id)
    sent = orjson.loads(slack_message(row, link=None, descriptions={"pod-exec-attach": "A long story. " * 40}))
    fields = {f["title"]: f["value"] for f in sent["attachments"][0]["fields"]}
    assert len(fields["About the rule"]) == 300 and fields["About the rule"].endswith("A long story. A lon…")
    assert len(fields["Command"]) == 302 and fields["Command"].endswith(" x …`")  # and its two backticks


def test_alertmanager_alert_carries_the_rules_response_advice(sqlite_store: AlertStore) -> None:
    responses = rule_responses(load_rules(["builtin", "falco"]))
    assert responses["pod-exec-attach"].startswith("Check who opened the session") and "falco" not in responses
    alert = alerts(6)[1]
    sqlite_store.write([alert])
    _, group = stored(sqlite_store, alert.id)
    sent = alertmanager_alert(group, now=datetime.now(UTC), resend_s=60, resolved_at=None, description="D",
                              public_url=None, response=responses["pod-exec-attach"])  # fmt: skip
    assert sent["annotations"]["response"] == responses["pod-exec-attach"]
    silent = alertmanager_alert(group, now=datetime.now(UTC), resend_s=60, resolved_at=None, description="D",
                                public_url=None)  # fmt: skip
    assert "response" not in silent["annotations"]
