"""/docs works without Internet access: Swagger UI's files come from the package, under the REST API's access."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auditwatch.server import create_api_app, create_serve_app
from auditwatch.settings import Settings
from tests.support.paths import ROOT
from tests.support.problems import problem_detail

SWAGGER = ROOT / "auditwatch" / "static" / "swagger"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
READ = {"Authorization": "Bearer ro-t0ken-5d1e"}
TOKENS = {"api_token": "rw-t0ken-0c9b", "api_read_token": "ro-t0ken-5d1e"}


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
    with TestClient(create_api_app(Settings(db_url=db_url, **TOKENS))) as client:
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
