"""HEAD wherever GET is served: the probes, `/metrics`, the REST API's reads, `/docs` and the console.

FastAPI registers a GET route for GET alone, so HEAD got 405. This ASGI middleware answers a HEAD request as
the app answers the GET of the same URL, headers included (Content-Length too), without the body (RFC 9110
9.3.2). Access control treats both as reads (auditwatch/auth.py READ_METHODS), so it gives HEAD what it gives
GET. The server's own scope is not changed: uvicorn goes on knowing that the request is a HEAD.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # a streamed body's middle parts: only its end is passed on, empty
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
