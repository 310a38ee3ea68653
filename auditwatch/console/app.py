"""The console on an app: its pages and forms, its assets, its error pages, and its access check.

The console's paths are left out of the REST API's access middleware (auditwatch/auth.py answers 401 with
problem details there) and checked here with the same policy and the same tokens, also read from the login
cookie: without access a person is sent to the login form; with read-only access, pages show no triage
controls and POSTs are refused with 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from importlib.resources import files
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from starlette.routing import Match

from api.problems import MAX_ECHOED_PATH
from auditwatch.auth import READ_METHODS, Access, AccessPolicy
from auditwatch.console.catalogue import catalogue
from auditwatch.console.forms import console_forms
from auditwatch.console.pages import ASSETS_PATH, Renderer
from auditwatch.console.session import ConsoleError, access
from auditwatch.console.views import console_pages
from detectors.base import Detector

PAGE_PREFIXES = ("/alerts/", "/principals/")
REST = ("/api/", "/audit/", "/k8s-audit/", "/docs/", "/metrics/")  # under these, a path is the REST API's
PAGES = frozenset({"/", "/rules", "/quarantine"})
OPEN = frozenset({"/login", "/logout"})  # reachable without access: logging in, and out of an ended session
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",  # linked by every page, so that browsers do not ask for /favicon.ico (a 401)
}


def is_console_path(path: str) -> bool:
    return path in PAGES or path in OPEN or path.startswith((*PAGE_PREFIXES, ASSETS_PATH + "/"))


def _browser_lost(app: FastAPI, request: Request) -> bool:
    """A browser's GET of a path no route serves, outside the REST API's prefixes: the console's 404 page answers
    it, not the REST API's access check (a 401 in JSON to a person who is logged in). Other clients (no
    `text/html` in Accept: curl, the apiserver, Prometheus) keep getting problem details."""
    path = request.url.path
    if request.method != "GET" or "text/html" not in request.headers.get("accept", "") or path.startswith(REST):
        return False
    return all(route.matches(request.scope)[0] is Match.NONE for route in app.router.routes)


@cache
def _asset(name: str) -> bytes:
    return (files("auditwatch.console") / "static" / name).read_bytes()


def _assets() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no such file: {ASSETS_PATH}/{name[:100]}")
        return Response(_asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})

    return router


def _refusal(renderer: Renderer, policy: AccessPolicy, request: Request, level: Access) -> Response:
    if level is Access.NONE and policy.checks_tokens:
        if request.method in READ_METHODS:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return renderer.error(request, 401, "log in first: your session has ended or the token was changed")
    if level is Access.NONE:
        return renderer.error(request, 401, "no verified client certificate")
    return renderer.error(request, 403, "read-only access: triage needs the read-write token")


def mount_console(app: FastAPI, policy: AccessPolicy, detectors: Sequence[Detector]) -> None:
    """Serve the console at `/` on `app`; `detectors` are the rules the process loaded (none for `api`)."""
    renderer = Renderer(policy)
    app.include_router(_assets())
    app.include_router(console_forms(renderer, policy))
    app.include_router(console_pages(renderer, catalogue(detectors)))

    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError) -> Response:
        return renderer.error(request, exc.status, exc.detail)

    @app.middleware("http")
    async def console_access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        lost = _browser_lost(app, request)
        if lost or (is_console_path(path) and path not in OPEN and not path.startswith(ASSETS_PATH + "/")):
            level = access(policy, request)
            needed = Access.READ if request.method in READ_METHODS else Access.WRITE
            if level < needed:
                return _refusal(renderer, policy, request, level)
        if lost:
            return renderer.error(request, 404, f"no such page: {path[:MAX_ECHOED_PATH]}")
        return await call_next(request)
