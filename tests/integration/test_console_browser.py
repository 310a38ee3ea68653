"""The console in a real browser (headless Chromium) against a real `serve` process with a token: log in, find
an attack by filtering, open it, acknowledge it, mark another a false positive and see its exception silence a
replay. A screenshot of each page goes to the test's temporary directory (and, with
AUDITWATCH_DOCS_SCREENSHOTS=1, the README's three to docs/img/)."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.browser import chromium, require_browser
from tests.support.events import another_like, batch_of_400, event_list
from tests.support.paths import ROOT
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration
TOKEN = "browser-test-token-0123456789abcdef"
API = {"Authorization": f"Bearer {TOKEN}"}
DOCS_IMAGES = ROOT / "docs" / "img"
DOCS_SHOTS = ("console-alerts", "console-alert", "console-priority")  # the README's


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()  # before starting anything
    work = tmp_path_factory.mktemp("console-serve")
    (work / "token").write_text(TOKEN)
    port = free_port()
    proc = Proc(["serve", "--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{work / 'alerts.db'}",
                 "--token-file", str(work / "token")], work / "serve.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/readyz")
        resp = httpx.post(f"{base}/audit/webhook", content=event_list(batch_of_400()), headers=API, timeout=30)
        assert resp.status_code == 200 and resp.json()["alerts"] >= 2, resp.text
        yield base
    finally:
        proc.kill9()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[WebDriver]:
    driver = chromium(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, shots: Path, name: str) -> None:
    driver.save_screenshot(str(shots / f"{name}.png"))
    if os.environ.get("AUDITWATCH_DOCS_SCREENSHOTS") and name in DOCS_SHOTS:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(DOCS_IMAGES / f"{name}.png"))


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, 15)


def log_in(driver: WebDriver, base: str, token: str) -> None:
    driver.get(f"{base}/login")
    field = wait(driver).until(ec.presence_of_element_located((By.ID, "token")))
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()


def api(base: str, path: str, **params: str) -> Any:
    resp = httpx.get(f"{base}{path}", params=params, headers=API, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_token_login(browser: WebDriver, server: str, shots: Path) -> None:
    browser.delete_all_cookies()
    browser.get(f"{server}/?rule=pod-exec-attach")
    wait(browser).until(ec.url_contains("/login"))
    assert "next=" in browser.current_url
    assert browser.switch_to.active_element.get_attribute("id") == "token"  # keyboard users start typing
    screenshot(browser, shots, "console-login")
    log_in(browser, server, "not-the-token")
    problem = wait(browser).until(ec.presence_of_element_located((By.ID, "login-problem")))
    assert "wrong token" in problem.text
    log_in(browser, server, TOKEN)
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.alerts")))
    assert urlsplit(browser.current_url).path == "/"
    cookie = browser.get_cookie("auditwatch_token")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait(browser).until(ec.url_contains("/login"))
    browser.get(f"{server}/rules")
    wait(browser).until(ec.url_contains("/login"))


def open_filtered(driver: WebDriver, base: str, rule: str) -> None:
    """Filter the list with the form, as a person does, and check the URL keeps the filter."""
    driver.get(f"{base}/")
    if "/login" in driver.current_url:
        log_in(driver, base, TOKEN)
        wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "form.filters")))
    rule_field = driver.find_element(By.ID, "f-rule")
    rule_field.clear()
    rule_field.send_keys(rule)
    Select(driver.find_element(By.ID, "f-status")).select_by_value("open,acknowledged")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait(driver).until(ec.url_contains(f"rule={rule}"))
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query["rule"] == [rule] and query["status"] == ["open,acknowledged"]


def alert_links(driver: WebDriver) -> list[str]:
    """The alert links' URLs, read in one script: live refresh may replace the table between two WebDriver calls."""
    links: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll(\"table.alerts tbody a[href^='/alerts/']\"), a => a.href)"
    )
    return links


def test_find_acknowledge_and_mark_a_false_positive(browser: WebDriver, server: str, shots: Path) -> None:
    expected = [a["id"] for a in api(server, "/api/v1/alerts", rule="pod-exec-attach")["items"]]
    assert expected
    browser.get(f"{server}/")
    if "/login" in browser.current_url:
        log_in(browser, server, TOKEN)
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.alerts")))
    assert len(alert_links(browser)) == len(api(server, "/api/v1/alerts")["items"])
    screenshot(browser, shots, "console-alerts")
    open_filtered(browser, server, "pod-exec-attach")
    screenshot(browser, shots, "console-alerts-filtered")
    links = alert_links(browser)
    assert [link.rsplit("/", 1)[1] for link in links] == expected
    assert browser.find_element(By.ID, "live").is_displayed()

    browser.find_element(By.CSS_SELECTOR, "table.alerts tbody a[href^='/alerts/']").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "triage")))
    alert_id = urlsplit(browser.current_url).path.rsplit("/", 1)[1]
    assert alert_id == expected[0]
    assert browser.find_element(By.CSS_SELECTOR, "a[href^='https://attack.mitre.org/techniques/']")
    screenshot(browser, shots, "console-alert")
    browser.find_element(By.ID, "t-author").send_keys("ann")
    browser.find_element(By.CSS_SELECTOR, "button[value=acknowledge]").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "alert-status"), "acknowledged"))
    assert api(server, f"/api/v1/alerts/{alert_id}")["status"] == "acknowledged"
    assert "ann: status open" in browser.find_element(By.CSS_SELECTOR, "ol.history").text
    assignee = browser.find_element(By.ID, "t-assignee")
    assignee.send_keys("bob@example.com", Keys.ENTER)  # Enter submits the form it is in: Assign
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "alert-assignee"), "bob@example.com"))
    assert api(server, f"/api/v1/alerts/{alert_id}")["status"] == "acknowledged"

    # another attack: a false positive, with an exception that keeps its kind out from now on
    (other,) = api(server, "/api/v1/alerts", rule="cluster-admin-binding")["items"][:1]
    open_filtered(browser, server, "cluster-admin-binding")
    browser.find_element(By.CSS_SELECTOR, f"a[href='/alerts/{other['id']}']").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "triage")))
    browser.find_element(By.LINK_TEXT, "False positive...").click()
    comment = wait(browser).until(ec.presence_of_element_located((By.ID, "fp-comment")))
    screenshot(browser, shots, "console-false-positive")
    comment.send_keys("break-glass binding, approved in CHG-1234")
    browser.find_element(By.CSS_SELECTOR, "form.exception-form button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "exceptions")))
    assert "false positive" in browser.find_element(By.ID, "alert-status").text

    exceptions = api(server, "/api/v1/exceptions")["items"]
    assert [(e["rule_id"], e["from_alert"]) for e in exceptions] == [("cluster-admin-binding", other["id"])]
    (event,) = [e for e in batch_of_400() if e["auditID"] == other["audit_id"] and e["stage"] == other["stage"]]
    replay = another_like(copy.deepcopy(event), 11)
    resp = httpx.post(f"{server}/audit/webhook", content=event_list([replay]), headers=API, timeout=30)
    assert resp.status_code == 200
    assert [a["id"] for a in api(server, "/api/v1/alerts", rule="cluster-admin-binding")["items"]] == [other["id"]]
    assert api(server, f"/api/v1/exceptions/{exceptions[0]['id']}")["hits"] == 1


def test_principal_and_rules_pages(browser: WebDriver, server: str, shots: Path) -> None:
    open_filtered(browser, server, "pod-exec-attach")
    browser.find_element(By.CSS_SELECTOR, "table.alerts tbody a[href^='/principals/']").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "ips-title")))
    assert "Principal" in browser.find_element(By.TAG_NAME, "h1").text
    screenshot(browser, shots, "console-principal")
    browser.find_element(By.LINK_TEXT, "Rules").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.rules")))
    row = browser.find_element(By.ID, "rule-cluster-admin-binding")
    (exception,) = row.find_elements(By.CSS_SELECTOR, "ul.exceptions li")
    assert "user.username=mallory@example.com" in exception.text and "1 hit" in exception.text
    screenshot(browser, shots, "console-rules")
    assert {p.name for p in shots.iterdir()} >= {"console-alerts.png", "console-alert.png", "console-rules.png"}


def test_by_priority_shows_the_rest_apis_order(browser: WebDriver, server: str, shots: Path) -> None:
    browser.get(f"{server}/?status=open,acknowledged")
    if "/login" in browser.current_url:
        log_in(browser, server, TOKEN)
        browser.get(f"{server}/?status=open,acknowledged")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.alerts")))
    browser.find_element(By.LINK_TEXT, "By priority").click()
    wait(browser).until(ec.url_contains("order=priority"))
    ranked = api(server, "/api/v1/alerts/priority", status="open,acknowledged", limit="50")["items"]
    assert len(ranked) >= 2
    assert [link.rsplit("/", 1)[1] for link in alert_links(browser)] == [a["id"] for a in ranked]
    current = browser.find_element(By.CSS_SELECTOR, "[aria-current=true]")
    assert current.text == "By priority"
    screenshot(browser, shots, "console-priority")


def test_live_refresh_keeps_the_filter_and_the_keyboard_works(browser: WebDriver, server: str) -> None:
    open_filtered(browser, server, "pod-exec-attach")
    before = alert_links(browser)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the first stop skips to the content
    assert browser.switch_to.active_element.text == "Skip to content"
    live = browser.find_element(By.ID, "live")
    live.send_keys(Keys.SPACE)  # a checkbox, ticked from the keyboard
    assert live.is_selected()

    (exec_alert,) = api(server, "/api/v1/alerts", rule="pod-exec-attach")["items"][-1:]
    (event,) = [
        e for e in batch_of_400() if e["auditID"] == exec_alert["audit_id"] and e["stage"] == exec_alert["stage"]
    ]
    resp = httpx.post(f"{server}/audit/webhook", content=event_list([another_like(event, 13)]), headers=API, timeout=30)
    assert resp.status_code == 200
    WebDriverWait(browser, 30).until(lambda d: len(alert_links(d)) == len(before) + 1)
    assert "rule=pod-exec-attach" in browser.current_url
    assert browser.find_element(By.ID, "f-rule").get_attribute("value") == "pod-exec-attach"
    assert "Updated" in browser.find_element(By.ID, "live-status").text
    rules = {row.text for row in browser.find_elements(By.CSS_SELECTOR, "table.alerts tbody td:nth-child(3)")}
    assert rules == {"Exec or attach into a pod"}  # the refreshed results are still filtered


def test_no_page_fails_to_load_anything(browser: WebDriver, server: str) -> None:
    """Every page loads all it asks for (a favicon too: without one, browsers ask /favicon.ico, which is not the
    console's and answers 401), and its script raises nothing."""
    browser.get(f"{server}/")
    if "/login" in browser.current_url:
        log_in(browser, server, TOKEN)
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.alerts")))
    alert = alert_links(browser)[0]
    browser.get_log("browser")  # what came before, the login included
    for url in (f"{server}/", alert, f"{server}/rules", f"{server}/quarantine", f"{server}/?order=priority"):
        browser.get(url)
        wait(browser).until(ec.presence_of_element_located((By.ID, "main")))
    time.sleep(0.5)  # the favicon is fetched after the page loads
    assert [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
