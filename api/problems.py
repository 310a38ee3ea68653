"""The one body of every HTTP error: RFC 9457 problem details, `application/problem+json`.

    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no alert 'x'"}

`type` is always `about:blank`: the status code says what kind of problem it is, `title` is its reason phrase
and `detail` says what went wrong, in one line. A 422 adds `errors`, one `{"loc", "msg", "type"}` per invalid
field (never the value that was sent: it may be a credential). Every app installs these handlers
(`use_problem_details`), so neither FastAPI's `{"detail": ...}` nor Starlette's plain-text 404/405 reach
a client; routes raise `HTTPException` and middleware answers with `problem_response`.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from detectors.credentials import redact_message

PROBLEM_JSON = "application/problem+json"
MAX_ECHOED_PATH = 200  # a path named in a 404 or 405 detail, cut


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: the part of the request, then the field, e.g. [query, limit]")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error response."""

    type: str = Field("about:blank", description="Always about:blank: the status says what kind of problem")
    title: str = Field(description="The status code's reason phrase, e.g. Not Found")
    status: int = Field(description="The HTTP status code, as in the response")
    detail: str = Field(description="What went wrong, in one line")
    errors: list[FieldError] | None = Field(None, description="422 only: each invalid field")


def problem_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extensions: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": _title(status), "status": status, "detail": detail, **extensions}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    path = request.url.path[:MAX_ECHOED_PATH]
    if exc.status_code == 404 and detail == _title(404):  # the router's: no route has this path
        detail = f"no such path: {path}"
    elif exc.status_code == 405 and detail == _title(405):
        detail = f"{request.method} is not allowed on {path}"
    # a detail may quote what was sent (`since: 'Bearer ...' is not a time`, `no alert '...'`): it may be a credential
    return problem_response(exc.status_code, redact_message(detail), exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3])
    if len(errors) > 3:
        detail += f"; and {len(errors) - 3} more"
    return problem_response(422, detail or "invalid request", errors=errors)


async def _server_error(_request: Request, _exc: Exception) -> JSONResponse:
    # the traceback goes to the log (Starlette re-raises the exception to the server); the client gets no internals
    return problem_response(500, "internal error: the server's log has the cause")


def use_problem_details(app: FastAPI) -> None:
    """Every error of `app` answered, and documented in its OpenAPI, as problem details."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every error response as a Problem (FastAPI describes 422s as its own shape)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schemas["Problem"].pop("$defs", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = problem
            responses.setdefault("default", {"description": "An error (RFC 9457 problem details)", "content": problem})
    return openapi
