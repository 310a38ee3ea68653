"""The alerts page by priority (`/?order=priority`): the REST API's ranking (GET /api/v1/alerts/priority) with the
page's filters, and why each alert ranks there; in process, and in a real browser against an `api` process."""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from tests.support.browser import chromium, require_browser
from tests.support.client import TestClient
from tests.support.console import store_alerts
from tests.support.events import exec_event
from tests.support.processes import Proc, free_port

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FIRST_TIME = {"baseline": {"kind": "exec", "state": "new", "reasons": ["first time"]}}
MALLORY = "mallory@example.com"
ROW = re.compile(r"<tr>\s*<td class=\"time\">(.*?)</tr>", re.S)
ALERT_LINK = re.compile(r'<a href="/alerts/([^"/]+)">')


def stored_alert(minute: int, rule_id: str, user: str, severity: Severity, details: dict[str, Any] | None) -> Alert:
    raw = copy.deepcopy(exec_event())
    raw["auditID"] = f"0d5f7c2e-91aa-4e3b-8c6d-{minute:012d}"
    raw["stageTimestamp"] = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    raw["user"]["username"] = user
    return make_alert(rule_id=rule_id, rule_name=rule_id, severity=severity, mitre=(), message=f"{rule_id} {user}",
                      event=AuditEvent(raw=raw), details=details)  # fmt: skip


def intrusion_then_noise() -> list[Alert]:
    """An intrusion by one identity early in the morning, then routine noise: newest first buries the intrusion."""
    return [
        stored_alert(1, "privileged-container", MALLORY, Severity.HIGH, None),
        stored_alert(2, "secrets-listed-cluster-wide", MALLORY, Severity.MEDIUM, None),
        stored_alert(3, "new-source-ip-for-principal", MALLORY, Severity.MEDIUM, FIRST_TIME),
        stored_alert(4, "pod-exec-attach", "erin@example.com", Severity.MEDIUM, FIRST_TIME),
        stored_alert(5, "auth-failure-burst-by-ip", "frank@example.com", Severity.MEDIUM, None),
        stored_alert(6, "secret-read-by-non-controller", "ci@example.com", Severity.INFO, None),
    ]


PRIORITY = [  # rule ids, most likely attack first (api/ranking.py)
    "privileged-container",  # high, raised to critical: three rules flag mallory
    "secrets-listed-cluster-wide",  # medium raised to high
    "new-source-ip-for-principal",  # raised too, but only first-seen context
    "auth-failure-burst-by-ip",
    "pod-exec-attach",  # first-seen context
    "secret-read-by-non-controller",  # info
]


@pytest.fixture
def stored(db_url: str) -> str:
    return store_alerts(db_url, intrusion_then_noise())


@pytest.fixture
def client(stored: str) -> Iterator[TestClient]:
    with TestClient(create_serve_app(Settings(db_url=stored))) as c:
        yield c


def rows(page: str) -> list[tuple[str, str]]:
    """(alert id, the row's text) of each row of the alerts table, in order."""
    found = []
    for row in ROW.findall(page):
        link = ALERT_LINK.search(row)
        assert link, row
        found.append((link.group(1), html.unescape(re.sub(r"<[^>]+>", "", row))))
    return found


def test_by_priority_the_page_shows_the_api_ranking_and_why(client: TestClient) -> None:
    newest = [alert_id for alert_id, _ in rows(client.get("/").text)]
    page = client.get("/", params={"order": "priority"})
    assert page.status_code == 200
    ranked = rows(page.text)
    api = client.get("/api/v1/alerts/priority").json()["items"]
    assert [alert_id for alert_id, _ in ranked] == [a["id"] for a in api] != newest
    assert [a["rule_id"] for a in api] == PRIORITY
    why = dict(ranked)
    assert f"ranks as critical: 3 rules flag {MALLORY}" in why[api[0]["id"]]
    assert f"ranks as high: 3 rules flag {MALLORY}" in why[api[1]["id"]]
    assert "only first seen" in why[api[2]["id"]] and "only first seen" in why[api[4]["id"]]
    assert "rules flag" not in why[api[3]["id"]] and "first seen" not in why[api[3]["id"]]
    assert 'aria-current="true">By priority</a>' in page.text and "Older alerts" not in page.text
    assert "set From and Until" in page.text  # no period chosen


def test_by_priority_keeps_the_page_filters(client: TestClient) -> None:
    params = {"order": "priority", "severity": "medium", "since": "2026-11-20T09:00:00", "until": "2026-11-20T10:00"}
    page = client.get("/", params=params)
    api = client.get("/api/v1/alerts/priority", params={"min_severity": "medium", "since": params["since"],
                                                        "until": params["until"]}).json()["items"]  # fmt: skip
    assert [alert_id for alert_id, _ in rows(page.text)] == [a["id"] for a in api] and len(api) == 5
    assert '<input type="hidden" name="order" value="priority">' in page.text  # the filter form keeps the order
    assert re.search(r'href="/\?[^"]*order=priority[^"]*">high <strong>', page.text)  # so do the count links
    assert "set From and Until" not in page.text
    newest = client.get("/", params={"severity": "medium"}).text
    assert "order=priority" not in newest.split('aria-label="Filter alerts"')[1]  # newest first stays the default


@pytest.mark.integration
def test_a_browser_switches_to_priority_and_sees_the_top_alert_first(stored: str, tmp_path: Path) -> None:
    require_browser()
    port = free_port()
    server = Proc(["api", "--host", "127.0.0.1", "--port", str(port), "--db", stored], tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    driver = None
    try:
        server.wait_http(f"{base}/readyz")
        driver = chromium(tmp_path)
        driver.get(f"{base}/")
        first = driver.find_element(By.CSS_SELECTOR, "table.alerts tbody a[href^='/alerts/']")
        assert "secret-read-by-non-controller" in first.text  # newest first: the info alert
        driver.find_element(By.LINK_TEXT, "By priority").click()
        WebDriverWait(driver, 15).until(ec.url_contains("order=priority"))
        top = driver.find_element(By.CSS_SELECTOR, "table.alerts tbody tr")
        assert "privileged-container" in top.text and "ranks as critical" in top.text
        current = driver.find_element(By.CSS_SELECTOR, "nav.order a[aria-current='true']")
        assert current.text == "By priority"
    finally:
        if driver is not None:
            driver.quit()
        server.kill9()
