"""The API's documentation, served from the package (Swagger UI at /docs, OpenAPI at /openapi.json), and
auditwatch's version (/version).

Swagger UI's files are vendored in `auditwatch/static/swagger/` (swagger-ui-dist, Apache-2.0: see its
LICENSE, NOTICE and SOURCE there), so /docs works in a cluster without Internet access; the page names no
other host (Swagger UI's online validator badge is off). Access is the REST API's (auditwatch/auth.py): these
are GETs, so the read-only token is enough; where the console is served, its login session is enough too (its
"API" link opens /docs in a browser, which sends no Authorization header). ReDoc is not served.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from auditwatch.startup import package_version

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
OPENAPI_PATH = "/openapi.json"  # FastAPI's default, which the apps keep
ASSETS = {  # file -> content type
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def is_docs_path(path: str) -> bool:
    """/docs, its assets and the OpenAPI document it loads."""
    return path in (DOCS_PATH, OPENAPI_PATH) or path.startswith(ASSETS_PATH + "/")


@cache
def _asset(name: str) -> bytes:
    return (files("auditwatch") / "static" / "swagger" / name).read_bytes()


def docs_router(app: FastAPI) -> APIRouter:
    """/docs and its assets for `app` (created with docs_url=None and redoc_url=None), and /version."""
    router = APIRouter()

    @router.get("/version", tags=["health"])
    async def version() -> dict[str, str]:
        """auditwatch's version, as `auditwatch --version` prints it."""
        return {"version": package_version()}

    @router.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or OPENAPI_PATH,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # else a badge is fetched from validator.swagger.io
        )

    @router.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no such file: {DOCS_PATH}/assets/{name[:100]}")
        return Response(_asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    return router
