"""A web page cannot post audit events: headless Chromium opens a page served from another loopback origin whose
script POSTs an EventList (`mode: "no-cors"`, a typeless blob: what any site may send anywhere) to a real `serve`
without a token, and nothing is stored. Without the webhook's Origin check, the page's forged events alert."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import chromium, require_browser
from tests.support.events import event_list, exec_event
from tests.support.metrics import parse_samples, total
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration
PAGE = """<!doctype html><title>loading</title><script>
fetch("{target}", {{method: "POST", mode: "no-cors", body: new Blob([{body}])}})
  .then(() => {{ document.title = "sent"; }}, (error) => {{ document.title = "failed " + error; }});
</script>"""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    require_browser()
    port = free_port()
    proc = Proc(["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'alerts.db'}"], tmp_path / "serve.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill9()


@pytest.fixture
def site(tmp_path: Path, serve: str) -> Iterator[str]:
    """Another origin on loopback, serving the page."""
    root = tmp_path / "site"
    root.mkdir()
    body = event_list([exec_event()]).decode()
    (root / "index.html").write_text(PAGE.format(target=f"{serve}/audit/webhook", body=repr(body)))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_page_on_another_origin_cannot_post_audit_events(tmp_path: Path, serve: str, site: str) -> None:
    (tmp_path / "chromium").mkdir()
    driver = chromium(tmp_path / "chromium")
    try:
        driver.get(f"{site}/index.html")
        WebDriverWait(driver, 15).until(lambda d: d.title != "loading")
        assert driver.title == "sent"  # the browser sent it (no-cors: the page cannot read the answer)
    finally:
        driver.quit()
    deadline = time.monotonic() + 5
    samples = parse_samples(httpx.get(f"{serve}/metrics", timeout=5).text)
    while total(samples, "auditwatch_webhook_responses_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        samples = parse_samples(httpx.get(f"{serve}/metrics", timeout=5).text)
    assert total(samples, "auditwatch_webhook_responses_total", code="4xx") == 1  # the page's POST, refused
    assert total(samples, "auditwatch_events_received_total") == 0
    assert httpx.get(f"{serve}/api/v1/alerts", timeout=5).json()["items"] == []
