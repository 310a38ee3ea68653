"""The console's pages over a store with alerts: filters in the URL, counts for the filtered range, cursor paging,
an alert's page, a principal's page, the rules page."""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterator

import pytest

from auditwatch.server import create_api_app, create_serve_app
from auditwatch.settings import Settings
from tests.support.alerts import alerts
from tests.support.client import TestClient
from tests.support.console import post_events, store_alerts, submit
from tests.support.credential_canaries import CANARIES, planted_events
from tests.support.events import another_like, event_list, exec_event

ROW = re.compile(r'<a href="/alerts/([^"/]+)">')
OLDER = re.compile(r'<a href="(/\?[^"]*cursor=[^"]+)" rel="next">')


@pytest.fixture
def stored(db_url: str) -> str:
    return store_alerts(db_url, alerts(120))  # medium/high, pod-exec-attach/other-rule, shop/payments, 10:00-10:01


@pytest.fixture
def client(stored: str) -> Iterator[TestClient]:
    with TestClient(create_serve_app(Settings(db_url=stored))) as c:
        yield c


def rows(html: str) -> list[str]:
    return ROW.findall(html)


def count_of(html: str, severity: str) -> int:
    found = re.search(rf'class="sev sev-{severity}" href="[^"]*">{severity} <strong>(\d+)</strong>', html)
    assert found, html[:3000]
    return int(found.group(1))


def test_the_list_is_newest_first_with_counts_per_severity_and_rule(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "120 alerts in this range" in page.text
    assert count_of(page.text, "high") == 30 and count_of(page.text, "medium") == 90
    assert re.search(r'rule=pod-exec-attach">Exec</a> <strong>80</strong>', page.text)
    assert re.search(r'rule=other-rule">Exec</a> <strong>40</strong>', page.text)
    times = re.findall(r'<time datetime="([^"]+)"', page.text)
    assert len(rows(page.text)) == 50 and times == sorted(times, reverse=True)


def test_filters_come_from_the_url_and_narrow_list_and_counts(client: TestClient) -> None:
    page = client.get("/", params={"severity": "high", "namespace": "payments", "rule": "other-rule"})
    assert page.status_code == 200
    ids = rows(page.text)
    api = client.get("/api/v1/alerts", params={"min_severity": "high", "namespace": "payments", "rule": "other-rule"})
    assert ids == [a["id"] for a in api.json()["items"]] and ids
    assert f"{len(ids)} alerts in this range" in page.text and count_of(page.text, "medium") == 0
    assert 'option value="high" selected' in page.text and 'value="payments"' in page.text  # the form shows them
    window = client.get("/", params={"since": "2026-11-20T10:00:10", "until": "2026-11-20T10:00:20"})
    assert "20 alerts in this range" in window.text  # two alerts a second, `until` excluded
    assert 'value="2026-11-20T10:00:10"' in window.text


def test_status_and_user_filters(client: TestClient) -> None:
    first = rows(client.get("/").text)[0]
    client.patch(f"/api/v1/alerts/{first}", json={"status": "resolved"})
    assert rows(client.get("/", params={"status": "resolved"}).text) == [first]
    assert first not in rows(client.get("/", params={"status": "open,acknowledged"}).text)
    assert "120 alerts" in client.get("/", params={"user": "mallory@example.com"}).text
    assert "No alerts." in client.get("/", params={"user": "nobody"}).text


def test_its_alerts_are_the_group_s_also_when_its_principal_is_impersonated(db_url: str) -> None:
    """A group's principal is the impersonated user, an alert's user the one who acted: "Its alerts" lists the
    group by its id (a link by user listed none of them)."""
    acting = exec_event()
    acting["impersonatedUser"] = {"username": "system:admin", "groups": ["system:masters"]}
    with TestClient(create_serve_app(Settings(db_url=db_url))) as client:
        post_events(client, *(another_like(acting, n) for n in range(3)), exec_event())
        mine = client.get("/api/v1/alerts", params={"rule": "pod-exec-attach"}).json()["items"]
        alert = next(a for a in mine if a["impersonated_user"] == "system:admin")
        group = client.get(f"/api/v1/alert-groups/{alert['group_id']}").json()
        assert group["user"] == "system:admin" and group["user"] != alert["user"] and group["count"] == 3
        found = re.search(r'<a href="([^"]+)">Its alerts</a>', client.get(f"/alerts/{alert['id']}").text)
        assert found, "no link to the group's alerts"
        listed = client.get(html.unescape(found.group(1)))
        rest = client.get("/api/v1/alerts", params={"group": alert["group_id"]}).json()["items"]
        groups = client.get("/api/v1/alert-groups", params={"group": alert["group_id"]}).json()["items"]
    assert [g["id"] for g in groups] == [alert["group_id"]]
    assert listed.status_code == 200 and "3 alerts in this range" in listed.text
    assert (
        sorted(rows(listed.text))
        == sorted(a["id"] for a in rest)
        == sorted(a["id"] for a in mine if a["group_id"] == alert["group_id"])
    )
    assert f'name="group" value="{alert["group_id"]}"' in listed.text  # the form keeps it


@pytest.mark.integration
def test_a_nul_in_a_page_s_path_is_not_found_not_a_store_outage(pg_url: str) -> None:
    """PostgreSQL refuses a NUL in a query, which the console took for a store that does not answer: a 503,
    retried for ever. No id or principal holds one."""
    with TestClient(create_serve_app(Settings(db_url=pg_url))) as client:
        post_events(client, exec_event())
        answers = {
            path: client.get(path).status_code
            for path in (
                "/alerts/%00",
                "/alerts/a%00b",
                "/alerts/%00/false-positive",
                "/principals/%00",
                "/principals/a%00",
            )
        }
        (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]
        triaged = submit(client, f"/alerts/{alert['id']}", "/alerts/%00/triage", {"action": "acknowledge"})
        assert client.get("/").status_code == 200  # the store answers
    assert answers == {"/alerts/%00": 404, "/alerts/a%00b": 404, "/alerts/%00/false-positive": 404,
                       "/principals/%00": 400, "/principals/a%00": 400}  # fmt: skip
    assert triaged.status_code == 404


def test_a_bad_filter_is_a_400_page_naming_it(client: TestClient) -> None:
    for params, words in (({"severity": "urgent"}, "severity: must be one of"), ({"since": "yesterday"}, "since"),
                          ({"status": "closed"}, "status: each must be one of"),
                          ({"cursor": "garbage"}, "cursor")):  # fmt: skip
        page = client.get("/", params=params)
        assert page.status_code == 400 and words in page.text and "<html" in page.text
        assert "urgent" not in page.text and "closed" not in page.text  # a value is named, never echoed


def test_cursor_paging_keeps_the_filter(client: TestClient) -> None:
    seen: list[str] = []
    url = "/?namespace=shop"
    while url:
        page = client.get(url.replace("&amp;", "&"))
        assert page.status_code == 200 and "60 alerts in this range" in page.text
        seen += rows(page.text)
        older = OLDER.search(page.text)
        url = older.group(1) if older else ""
        if url:
            assert "namespace=shop" in url
    assert len(seen) == len(set(seen)) == 60


def test_the_alert_page(db_url: str) -> None:
    with TestClient(create_serve_app(Settings(db_url=db_url))) as client:
        post_events(client, exec_event())
        (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]
        page = client.get(f"/alerts/{alert['id']}")
    assert page.status_code == 200
    text = page.text
    assert html.escape(alert["message"]) in text
    assert "Known false positives" in text and 'id="rule-response"' in text  # the rule's documentation
    assert alert["details"]["response"] in html.unescape(text)
    assert '"false_positives"' not in html.unescape(text)  # the rule's text is not shown again as alert details
    assert 'href="https://attack.mitre.org/techniques/T1609/"' in text
    assert 'href="/principals/mallory%40example.com"' in text and "198.51.100.23" in text
    assert "&#34;auditID&#34;:" in text or '"auditID":' in text  # the event, pretty-printed
    assert "1 alert of this rule for" in text  # its group
    assert 'name="csrf_token"' in text and 'value="acknowledge"' in text and "/false-positive" in text


def test_a_principal_link_is_one_path_segment_that_leads_to_its_page(db_url: str) -> None:
    event = exec_event()
    event["user"]["username"] = "ops/../../rules"  # the browser would resolve the dots of a kept `/`
    with TestClient(create_serve_app(Settings(db_url=db_url))) as client:
        post_events(client, event)
        listing = client.get("/").text
        links = set(re.findall(r'href="(/principals/[^"]+)"', listing))
        assert links == {"/principals/ops%2F..%2F..%2Frules"}, links
        page = client.get(links.pop())
    assert page.status_code == 200 and "ops/../../rules" in page.text and len(rows(page.text)) >= 1


def test_the_principal_page(client: TestClient) -> None:
    page = client.get("/principals/mallory@example.com")
    assert page.status_code == 200
    assert "120 alerts" in page.text and "198.51.100.23" in page.text and "kubectl/v1.31.2" in page.text
    assert len(rows(page.text)) == 50 and "Older alerts" in page.text
    assert "No alerts." in client.get("/principals/nobody").text
    nameless = client.get("/principals/")  # not everyone's alerts under an empty name
    assert nameless.status_code == 404 and len(rows(nameless.text)) == 0 and "no principal named" in nameless.text


def test_the_rules_page_lists_loaded_rules_with_counts_and_exceptions(client: TestClient) -> None:
    client.post("/api/v1/exceptions", json={"rule_id": "pod-exec-attach", "match": {"verb": "create"}})
    page = client.get("/rules")
    assert page.status_code == 200
    row = re.search(r'<tr id="rule-pod-exec-attach">(.*?)</tr>', page.text, re.S)
    assert row and ">80</a>" in row.group(1) and "<code>verb</code>=<code>create</code>" in row.group(1)
    assert 'class="sev sev-' in row.group(1)
    other = re.search(r'<tr id="rule-other-rule">(.*?)</tr>', page.text, re.S)
    assert other and "not loaded by this process" in other.group(1)


def test_api_shows_the_guidance_the_alert_carries(db_url: str) -> None:
    with TestClient(create_serve_app(Settings(db_url=db_url))) as client:
        post_events(client, exec_event())
    with TestClient(create_api_app(Settings(db_url=db_url))) as client:  # loads no rules
        (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]
        text = client.get(f"/alerts/{alert['id']}").text
    assert alert["details"]["description"] in html.unescape(text) and 'id="rule-response"' in text


def test_api_serves_the_console_without_rules(stored: str) -> None:
    with TestClient(create_api_app(Settings(db_url=stored))) as client:
        assert "120 alerts in this range" in client.get("/").text
        rules = client.get("/rules").text
        assert "loads no rules" in rules and 'id="rule-other-rule"' in rules


def test_assets_ship_in_the_package(client: TestClient) -> None:
    css = client.get("/console/assets/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/console/assets/console.js").status_code == 200
    assert client.get("/console/assets/other.js").status_code == 404
    icon = client.get("/console/assets/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    page = client.get("/").text
    assert '<link rel="icon" href="/console/assets/favicon.svg"' in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere


def test_no_planted_credential_reaches_a_page(db_url: str) -> None:
    with TestClient(create_serve_app(Settings(db_url=db_url))) as client:
        post_events(client, *planted_events())
        listing = client.get("/").text
        pages = [listing, client.get("/rules").text]
        for alert_id in dict.fromkeys(rows(listing)):
            pages.append(client.get(f"/alerts/{alert_id}").text)
            pages.append(client.get(f"/alerts/{alert_id}/false-positive").text)
        for user in dict.fromkeys(re.findall(r'href="(/principals/[^"]+)"', listing)):
            pages.append(client.get(user).text)
    assert len(pages) > 4
    text = html.unescape("\n".join(pages))
    assert [name for name, value in CANARIES.items() if value in text] == []


def test_the_quarantine_page_lists_set_aside_items_redacted_and_paged(db_url: str) -> None:
    good = exec_event()
    bad = {**copy.deepcopy(good), "stage": "Sometime", "requestObject": {"stringData": {"password": "q-s3cret-77e1"}}}
    with TestClient(create_serve_app(Settings(db_url=db_url))) as c:
        for n in range(30):  # 60 items: two pages of 50 and 10
            items = [another_like(bad, n), f"junk <b>{n}</b>"]
            assert c.post("/audit/webhook", content=event_list(items)).json()["quarantined"] == 2
        page = c.get("/quarantine")
        assert page.status_code == 200 and 'aria-current="page">Quarantine</a>' in page.text
        assert page.text.count('<tr id="quarantined-') == 50
        assert "expected an Event object, got string" in page.text and "stage &#39;Sometime&#39;" in page.text
        assert "&#34;junk &lt;b&gt;29&lt;/b&gt;&#34;" in page.text and "<b>29</b>" not in page.text  # escaped
        assert "q-s3cret-77e1" not in page.text
        older = re.search(r'<a href="(/quarantine\?cursor=[^"]+)" rel="next">', page.text)
        assert older, page.text[-2000:]
        rest = c.get(html.unescape(older.group(1)))
        assert rest.text.count('<tr id="quarantined-') == 10 and 'rel="next"' not in rest.text
        assert c.get("/quarantine?cursor=nope").status_code == 400


def test_a_quarantined_payload_s_size_is_singular_or_plural(db_url: str) -> None:
    with TestClient(create_serve_app(Settings(db_url=db_url))) as c:
        assert c.post("/audit/webhook", content=event_list([7, 42])).json()["quarantined"] == 2
        page = c.get("/quarantine")
    sizes = re.findall(r"<summary>(\d+ characters?)", page.text)
    assert sorted(sizes) == ["1 character", "2 characters"], page.text[-3000:]
