"""Who gets into the console: with a token configured, nothing without logging in; the login form's cookie
(HttpOnly, SameSite=Strict, Secure over TLS); read-only tokens see no triage controls and may not POST; every
POST without the CSRF token is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from httpx import Response

from auditwatch.server import create_api_app, create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.console import READ_TOKEN, WRITE_TOKEN, csrf_of, post_events, submit
from tests.support.events import exec_event
from tests.support.problems import problem_detail

API = {"Authorization": f"Bearer {WRITE_TOKEN}"}


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(db_url=db_url, api_token=WRITE_TOKEN, api_read_token=READ_TOKEN)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_serve_app(settings)) as c:
        yield c


def login(client: TestClient, token: str) -> None:
    resp = submit(client, "/login", "/login", {"token": token, "next": "/rules"})
    assert resp.status_code == 303 and resp.headers["location"] == "/rules", resp.text


@pytest.mark.parametrize(
    "path", ["/", "/rules", "/quarantine", "/principals/alice", "/alerts/x", "/alerts/x/false-positive"]
)
def test_pages_send_who_has_not_logged_in_to_the_login_form(client: TestClient, path: str) -> None:
    resp = client.get(path, params={"severity": "high"} if path == "/" else None, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/login?next=")
    page = client.get(resp.headers["location"])
    assert page.status_code == 200 and 'name="token"' in page.text


def test_a_wrong_token_does_not_log_in(client: TestClient) -> None:
    resp = submit(client, "/login", "/login", {"token": "wrong", "next": "/"})
    assert resp.status_code == 401 and "wrong token" in resp.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_login_cookie_is_httponly_and_samesite_strict(settings: Settings) -> None:
    for base, secure in (("http://127.0.0.1", False), ("https://console.example", True)):
        with TestClient(create_serve_app(settings), base_url=base) as client:
            page = client.get("/login")
            resp = client.post("/login", data={"csrf_token": csrf_of(page), "token": WRITE_TOKEN, "next": "/"},
                               follow_redirects=False)  # fmt: skip
            assert resp.status_code == 303
            cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("auditwatch_token="))
            attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
            assert {"httponly", "samesite", "path"} <= attributes and "samesite=strict" in cookie.lower()
            assert ("secure" in attributes) is secure
            assert WRITE_TOKEN not in cookie  # not in clear text (base64), though the cookie is the credential
            assert client.get("/").status_code == 200


def test_logged_in_with_the_write_token_shows_and_allows_triage(client: TestClient) -> None:
    post_events(client, exec_event(), token=WRITE_TOKEN)
    login(client, WRITE_TOKEN)
    (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach", headers=API).json()["items"]
    page = client.get(f"/alerts/{alert['id']}")
    assert page.status_code == 200 and 'value="acknowledge"' in page.text
    resp = client.post(f"/alerts/{alert['id']}/triage", data={"csrf_token": csrf_of(page), "action": "acknowledge"},
                       follow_redirects=False)  # fmt: skip
    assert resp.status_code == 303
    assert client.get(f"/api/v1/alerts/{alert['id']}", headers=API).json()["status"] == "acknowledged"


def test_the_read_only_token_sees_pages_but_no_triage(client: TestClient) -> None:
    post_events(client, exec_event(), token=WRITE_TOKEN)
    login(client, READ_TOKEN)
    (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach", headers=API).json()["items"]
    page = client.get(f"/alerts/{alert['id']}")
    assert page.status_code == 200 and 'value="acknowledge"' not in page.text and "Read-only access" in page.text
    resp = client.post(f"/alerts/{alert['id']}/triage", data={"csrf_token": csrf_of(page), "action": "acknowledge"})
    assert resp.status_code == 403
    assert client.get(f"/api/v1/alerts/{alert['id']}", headers=API).json()["status"] == "open"
    form = client.get(f"/alerts/{alert['id']}/false-positive")  # the page says why, and offers no form to fail
    assert form.status_code == 200 and "Read-only access" in form.text
    assert "/false-positive" not in form.text.split("<main", 1)[1] and "create the exception</button>" not in form.text


def test_a_post_without_the_csrf_token_is_refused(client: TestClient) -> None:
    post_events(client, exec_event(), token=WRITE_TOKEN)
    login(client, WRITE_TOKEN)
    (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach", headers=API).json()["items"]
    url = f"/alerts/{alert['id']}/triage"
    page = client.get(f"/alerts/{alert['id']}")
    for data in ({"action": "acknowledge"}, {"action": "acknowledge", "csrf_token": "x" * 43},
                 {"action": "acknowledge", "csrf_token": ""}):  # fmt: skip
        resp = client.post(url, data=data)
        assert resp.status_code == 403 and "CSRF" in resp.text
    client.cookies.delete("auditwatch_csrf")  # the token without its cookie: refused too
    resp = client.post(url, data={"action": "acknowledge", "csrf_token": csrf_of(page)})
    assert resp.status_code == 403
    fp = client.post(f"/alerts/{alert['id']}/false-positive", data={"use:verb": "1"})
    assert fp.status_code == 403
    assert client.get(f"/api/v1/alerts/{alert['id']}", headers=API).json()["status"] == "open"
    assert client.get("/api/v1/exceptions", headers=API).json()["items"] == []


def test_login_without_csrf_is_refused(client: TestClient) -> None:
    client.get("/login")
    resp = client.post("/login", data={"token": WRITE_TOKEN, "next": "/"}, follow_redirects=False)
    assert resp.status_code == 403 and "auditwatch_token" not in resp.headers.get("set-cookie", "")


def test_logout_forgets_the_token(client: TestClient) -> None:
    login(client, WRITE_TOKEN)
    page = client.get("/")
    assert page.status_code == 200
    resp = client.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_goes_back_only_to_this_site(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        resp = submit(client, "/login", "/login", {"token": WRITE_TOKEN, "next": target})
        assert resp.status_code == 303 and resp.headers["location"] == "/"


def test_the_rest_api_does_not_take_the_cookie(client: TestClient) -> None:
    login(client, WRITE_TOKEN)
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/alerts").status_code == 401  # REST needs the header: no cookie-borne CSRF there


def test_without_tokens_the_console_is_open_but_still_checks_csrf(db_url: str) -> None:
    with TestClient(create_api_app(Settings(db_url=db_url))) as client:
        assert client.get("/login", follow_redirects=False).headers["location"] == "/"
        assert client.get("/").status_code == 200
        assert client.post("/alerts/x/triage", data={"action": "acknowledge"}).status_code == 403
        assert "Content-Security-Policy" in client.get("/rules").headers


HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what browsers send


def is_console_404(resp: Response) -> bool:
    return resp.status_code == 404 and resp.headers["content-type"].startswith("text/html") and (
        "no such page: /nope" in resp.text and "Content-Security-Policy" in resp.headers
    )  # fmt: skip


def test_a_logged_in_browser_gets_the_console_s_404_page_for_an_unknown_path(client: TestClient) -> None:
    anonymous = client.get("/nope", headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Fnope"
    login(client, READ_TOKEN)
    assert is_console_404(client.get("/nope", headers=HTML))
    assert client.head("/nope", headers=HTML).status_code == 404
    # REST clients (no text/html), paths under the API's prefixes and other methods: problem details as before
    assert problem_detail(client.get("/nope", headers=API), 404) == "no such path: /nope"
    assert problem_detail(client.get("/api/v1/nope", headers={**HTML, **API}), 404) == "no such path: /api/v1/nope"
    assert client.get("/nope").headers["content-type"] == "application/problem+json"
    assert client.post("/nope", headers=HTML).headers["content-type"] == "application/problem+json"


def test_without_tokens_a_browser_gets_the_404_page_and_curl_problem_details(db_url: str) -> None:
    for app in (create_serve_app(Settings(db_url=db_url)), create_api_app(Settings(db_url=db_url))):
        with TestClient(app) as c:
            assert is_console_404(c.get("/nope", headers=HTML))
            assert problem_detail(c.get("/nope", headers={"Accept": "*/*"}), 404) == "no such path: /nope"
            assert c.get("/api/v1/alerts", headers=HTML).status_code == 200  # routed paths are untouched
