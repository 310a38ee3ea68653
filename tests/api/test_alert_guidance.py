"""What the REST API shows of an alert tells what to do: the rule's description and response advice, and the
exec command decoded from the URL-encoded requestURI, with its credentials redacted."""

from __future__ import annotations

from pathlib import Path

from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.registry import load_rules
from tests.support.client import TestClient
from tests.support.events import event_list
from tests.support.exporter_events import exec_token_read, without_annotations

SECRET = "CANARY-exec-password-5e1c"


def test_alert_details_over_rest_carry_guidance_and_the_redacted_command(tmp_path: Path) -> None:
    # an exporter's event (no annotations): the token read, then a database client given a password flag
    raw = without_annotations(exec_token_read(f"&command=%26%26&command=mysql&command=--password&command={SECRET}"))
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'alerts.db'}", rules=["builtin"], rule_matching="all")
    with TestClient(create_serve_app(settings)) as client:
        assert client.post("/audit/webhook", content=event_list([raw])).json()["accepted"] == 1
        listed = client.get("/api/v1/alerts", params={"rule_id": "exec-credential-file-access"}).json()["items"]
        (summary,) = [a for a in listed if a["rule_id"] == "exec-credential-file-access"]
        shown = client.get(f"/api/v1/alerts/{summary['id']}")
    assert shown.status_code == 200 and SECRET not in shown.text
    details = shown.json()["details"]
    (rule,) = [r for r in load_rules(["builtin"]) if r.id == "exec-credential-file-access"]
    assert details["command"] == ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token", "&&", "mysql",
                                  "--password", "<redacted>"]  # fmt: skip
    assert details["description"] == " ".join(rule.description.split())
    assert details["response"] == " ".join(rule.response.split()) and details["response"]
