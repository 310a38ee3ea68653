"""The HTTP app of `auditwatch serve`: webhook + REST over one store, clients owned by the lifespan."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.routes import router as api_router
from api.store import AlertStore
from auditwatch.embedded import EmbeddedSink
from auditwatch.settings import Settings
from detectors.pipeline import Pipeline
from detectors.rules.loader import load_rules
from ingest.webhook import webhook_router

OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # probes stay unauthenticated


def add_token_auth(app: FastAPI, token: str) -> None:
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def require_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path not in OPEN_PATHS:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"error": "missing or wrong bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
        return await call_next(request)


def create_serve_app(settings: Settings, *, pipeline: Pipeline | None = None) -> FastAPI:
    """Rules are loaded here, before the server starts, so a broken rule file fails fast with file:line."""
    pipeline = pipeline or Pipeline(load_rules(settings.rules))
    store = AlertStore(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.migrate()
        app.state.store = store
        yield
        store.close()

    app = FastAPI(
        title="auditwatch",
        summary="Kubernetes audit webhook -> detectors -> alert store -> REST",
        lifespan=lifespan,
    )
    app.include_router(webhook_router(EmbeddedSink(pipeline, store), max_body_bytes=settings.max_body_bytes))
    app.include_router(api_router)
    if settings.api_token is not None:
        add_token_auth(app, settings.api_token.get_secret_value())
    return app
