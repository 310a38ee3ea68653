"""Alerts carry nothing credential-shaped: columns, messages (native templates, Falco outputs, Sigma's), details
(Falco's output_fields), group keys and the event, for every rule format; detection itself sees the raw event."""

from __future__ import annotations

import orjson
import pytest

from detectors.alerts import Alert, Severity, alert_id, make_alert
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.credential_canaries import CANARIES, KEPT, USER_AGENT, planted_events


def everything(alert: Alert) -> str:
    return orjson.dumps({**alert.summary(), "event": alert.event, "group_key": alert.group_key}).decode()


@pytest.fixture(scope="module")
def alerts() -> list[Alert]:
    pipeline = Pipeline(load_rules(["builtin", "falco", "sigma"], LoadOptions(rule_matching="all")))
    return [a for raw in planted_events() for a in pipeline.process(AuditEvent(raw=raw, origin="test"))]


def test_every_rule_format_fires_on_the_planted_events(alerts: list[Alert]) -> None:
    fired = {a.rule_id for a in alerts}
    assert {"pod-exec-attach", "privileged-container", "configmap-with-credentials", "secret-modified"} <= fired
    assert {"falco:attach-exec-pod", "falco:anonymous-request-allowed", "falco:k8s-secret-created"} <= fired
    assert any(r.startswith("sigma:") for r in fired)


def test_no_alert_holds_a_planted_credential(alerts: list[Alert]) -> None:
    for alert in alerts:
        text = everything(alert)
        assert [name for name, value in CANARIES.items() if value in text] == [], alert.rule_id


def test_rendered_messages_and_outputs_are_redacted_but_useful(alerts: list[Alert]) -> None:
    by_rule = {a.rule_id: a for a in alerts}
    configmap = by_rule["configmap-with-credentials"]  # its template shows {userAgent}
    assert configmap.message.endswith("(kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46 Bearer <redacted>)")
    assert configmap.user_agent == "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46 Bearer <redacted>"
    falco_exec = by_rule["falco:attach-exec-pod"]
    assert 'command=curl -H "Authorization: Bearer <redacted>"' in falco_exec.message
    assert "Bearer <redacted>" in falco_exec.details["output"]
    assert "Bearer <redacted>" in str(falco_exec.details["output_fields"])
    anonymous = by_rule["falco:anonymous-request-allowed"]
    assert "uri=/api/v1/namespaces/shop/pods?access_token=<redacted>" in anonymous.message
    assert "secret=db-credentials" in by_rule["falco:k8s-secret-created"].message  # a Secret's name is kept
    text = "\n".join(everything(a) for a in alerts)
    for value in KEPT:
        assert value in text, value


def test_columns_group_key_and_details_come_from_redacted_values() -> None:
    raw = planted_events()[0]
    raw["user"]["username"] = "ci-bot Bearer CANARY-user"
    raw["objectRef"]["namespace"] = "token=CANARY-ns"
    event = AuditEvent(raw=raw, origin="webhook#items[0]")
    alert = make_alert(
        rule_id="r", rule_name="R", severity=Severity.HIGH, mitre=(), message=f"seen {USER_AGENT}", event=event,
        details={"key": [raw["userAgent"]], "sample": {"header": "X-Api-Key: CANARY-detail"}},
    )  # fmt: skip
    text = everything(alert)
    assert "CANARY" not in text and "7f3a01" not in text
    assert alert.user == "ci-bot Bearer <redacted>" and alert.namespace == "token=<redacted>"
    assert alert.details["sample"] == {"header": "X-Api-Key: <redacted>"}
    assert alert.id == alert_id("r", event)  # the id is the raw event's: redaction does not change it
