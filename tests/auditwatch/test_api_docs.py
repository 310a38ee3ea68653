"""/docs works without Internet access: Swagger UI's files come from the package, under the REST API's access."""

from __future__ import annotations

import base64
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from auditwatch.console.session import TOKEN_COOKIE
from auditwatch.metrics import Metrics
from auditwatch.server import create_api_app, create_metrics_app, create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.console import READ_TOKEN, WRITE_TOKEN, submit
from tests.support.paths import ROOT
from tests.support.problems import problem_detail

SWAGGER = ROOT / "auditwatch" / "static" / "swagger"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
READ = {"Authorization": "Bearer ro-t0ken-5d1e"}
DOCS = ["/docs", "/openapi.json", *(f"/docs/assets/{name}" for name in ASSETS)]


def test_the_docs_page_names_no_other_host_and_its_assets_are_served(db_url: str) -> None:
    with TestClient(create_serve_app(Settings(db_url=db_url))) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "://" not in html  # no http(s) URL at all: everything below comes from this server
        links = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sorted(links) == sorted(f"/docs/assets/{name}" for name in ASSETS)
        assert "url: '/openapi.json'" in html and '"validatorUrl": null' in html  # no badge from swagger.io
        for name, content_type in ASSETS.items():
            asset = client.get(f"/docs/assets/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"] == content_type
            assert asset.content == (SWAGGER / name).read_bytes()
        assert problem_detail(client.get("/docs/assets/LICENSE.js"), 404)
        assert client.get("/openapi.json").json()["info"]["version"] == version("auditwatch")
        assert client.get("/version").json() == {"version": version("auditwatch")}
        assert problem_detail(client.get("/redoc"), 404)  # not served: it would load from a CDN


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/docs/assets/swagger-ui.css", "/version"])
def test_the_docs_need_read_access_like_the_rest_api(path: str, db_url: str) -> None:
    settings = Settings(db_url=db_url, api_token=SecretStr("rw-t0ken-0c9b"), api_read_token=SecretStr("ro-t0ken-5d1e"))
    with TestClient(create_api_app(settings)) as client:
        assert problem_detail(client.get(path), 401) == "missing or wrong bearer token"
        assert client.get(path, headers=READ).status_code == 200


def test_the_vendored_swagger_ui_keeps_its_licence_and_notice() -> None:
    assert "Apache License" in (SWAGGER / "LICENSE").read_text()
    assert "Version 2.0" in (SWAGGER / "LICENSE").read_text()
    assert "SmartBear" in (SWAGGER / "NOTICE").read_text()
    assert "swagger-ui-dist 5." in (SWAGGER / "SOURCE").read_text()
    assert (SWAGGER / "swagger-ui-bundle.js.LICENSE.txt").stat().st_size > 0
    assert 'auditwatch = ["data/*", "static/swagger/*"]' in (ROOT / "pyproject.toml").read_text()  # package data
    assert not list(Path(SWAGGER).glob("*.map"))


@pytest.mark.parametrize("create", [create_serve_app, create_api_app])
def test_the_consoles_login_session_opens_the_docs_it_links_to(create: Any, db_url: str) -> None:
    """The console's "API" link opens /docs in a browser, which sends the login cookie and no Authorization
    header: the session reads the docs, their assets and /openapi.json, not the REST API itself."""
    settings = Settings(db_url=db_url, api_token=SecretStr(WRITE_TOKEN), api_read_token=SecretStr(READ_TOKEN))
    with TestClient(create(settings)) as client:
        for path in DOCS:
            assert problem_detail(client.get(path), 401) == "missing or wrong bearer token"
        assert 'href="/docs"' in client.get("/login").text  # the link, on every console page
        resp = submit(client, "/login", "/login", {"token": READ_TOKEN, "next": "/"})
        assert resp.status_code == 303 and TOKEN_COOKIE in client.cookies
        for path in DOCS:
            assert client.get(path).status_code == 200, path
            assert client.head(path).status_code == 200, path
        assert client.get("/openapi.json").json()["info"]["title"].startswith("auditwatch")
        assert problem_detail(client.get("/api/v1/alerts"), 401)  # REST still needs the header
        assert problem_detail(client.post("/docs"), 401)  # the cookie never authorizes anything but reads
        client.cookies.clear()
        for path in DOCS:
            assert problem_detail(client.get(path), 401) == "missing or wrong bearer token"
            assert client.get(path, headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 200
        client.cookies.set(TOKEN_COOKIE, "d3Jvbmc=")  # base64 of a wrong token
        assert problem_detail(client.get("/docs"), 401)


def test_without_the_console_the_docs_take_no_cookie() -> None:
    """detect's metrics listener (like ingest) serves no console, so no login session: its /docs needs the header."""
    settings = Settings(api_token=SecretStr(WRITE_TOKEN), api_read_token=SecretStr(READ_TOKEN))
    with TestClient(create_metrics_app(settings, Metrics.for_api())) as client:
        client.cookies.set(TOKEN_COOKIE, base64.urlsafe_b64encode(READ_TOKEN.encode()).decode())
        assert problem_detail(client.get("/docs"), 401)
        assert client.get("/docs", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 200
