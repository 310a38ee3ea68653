"""The console's unit tests share: storing alerts, posting events, reading a page's CSRF token, submitting its
form."""

from __future__ import annotations

import re
from typing import Any

from httpx import Response

from api.store import AlertStore
from detectors.alerts import Alert
from tests.support.client import TestClient
from tests.support.events import event_list

WRITE_TOKEN = "console-write-token-0123456789"
READ_TOKEN = "console-read-token-0123456789"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def store_alerts(db_url: str, alerts: list[Alert]) -> str:
    """`db_url`, its store created and holding `alerts`."""
    store = AlertStore(db_url)
    store.migrate()
    store.write(alerts)
    store.close()
    return db_url


def post_events(client: TestClient, *events: dict[str, Any], token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = client.post("/audit/webhook", content=event_list(list(events)), headers=headers)
    assert resp.status_code == 200, resp.text


def csrf_of(page: Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text[:2000]
    return found.group(1)


def submit(client: TestClient, page_url: str, action: str, fields: dict[str, str]) -> Response:
    """GET the page holding a form, then POST the form with the page's CSRF token, as a browser does."""
    page = client.get(page_url)
    assert page.status_code == 200, page.text[:2000]
    return client.post(action, data={"csrf_token": csrf_of(page), **fields}, follow_redirects=False)
