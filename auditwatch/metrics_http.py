"""`/metrics` over HTTP: the route every app serves, and the count of the webhook's responses by status class.

The route is a plain one (a Starlette Mount would answer `GET /metrics` with a redirect to `/metrics/`, which
some scrapers do not follow), so it sits behind the app's access control like any GET of the REST API: with
tokens or client certificates configured, a scrape needs read-only or read-write access.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
STATUS_CLASSES = ("2xx", "4xx", "5xx")  # set up at 0; the webhook answers nothing else


def add_metrics_route(app: FastAPI, registry: CollectorRegistry) -> None:
    async def metrics() -> Response:
        # in a thread: some collectors read the store (outbox depths), which must not block the event loop
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], tags=["metrics"], summary="Prometheus metrics")


class ResponseCounter:
    """ASGI middleware counting the responses to some paths by status class. Added after access control, it
    wraps it, so the 401 and 403 of a webhook client without the right token are counted too."""

    def __init__(self, app: ASGIApp, counter: Counter, paths: Iterable[str]) -> None:
        self.app = app
        self.counter = counter
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        started = False

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.counter.labels(code=f"{message['status'] // 100}xx").inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if not started:  # Starlette's outermost handler answers 500 for it
                self.counter.labels(code="5xx").inc()
            raise


def count_webhook_responses(app: FastAPI, registry: CollectorRegistry, paths: Iterable[str]) -> None:
    """`auditwatch_webhook_responses_total{code}` for the webhook's paths (call after access control is added)."""
    counter = Counter(
        "auditwatch_webhook_responses_total", "Responses to audit webhook requests, by status class (2xx, 4xx, 5xx)",
        ["code"], registry=registry,
    )  # fmt: skip
    for code in STATUS_CLASSES:
        counter.labels(code=code)
    options: dict[str, Any] = {"counter": counter, "paths": tuple(paths)}
    app.add_middleware(ResponseCounter, **options)
