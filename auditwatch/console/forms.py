"""The console's forms: login and logout, and triage of an alert (acknowledge, assign, note, resolve, reopen,
false positive with an exception). Every POST carries the CSRF token (auditwatch/console/session.py).

Triage goes through the REST API's own handler (`api.triage_routes.triage_alert`) with the same request model
(`TriagePatch`), so the console validates, stores and records history exactly as PATCH /api/v1/alerts/{id} does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.routes import get_store
from api.schemas import TriagePatch
from api.triage_routes import ANONYMOUS, triage_alert
from auditwatch.auth import Access, AccessPolicy, access_of, client_cert_name
from auditwatch.console.pages import Renderer
from auditwatch.console.session import (
    ConsoleError,
    checked_form,
    forget_token,
    keep_author,
    keep_token,
    remembered_author,
    safe_next,
)
from auditwatch.console.views import exception_fields, store_errors

STATUS_ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "open"}


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if p != "create_exception")
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def author_of(form: Mapping[str, str], request: Request) -> str:
    """The form's author, else the one remembered from an earlier form, else `anonymous`."""
    return form.get("author", "").strip() or remembered_author(request).strip() or ANONYMOUS


def triage_patch(form: Mapping[str, str], author: str) -> dict[str, Any]:
    """The TriagePatch body of a triage form: its `action` (a button's value, or the form's own) says which change."""
    action = form.get("action", "")
    body: dict[str, Any] = {"author": author}
    if action in STATUS_ACTIONS:
        body["status"] = STATUS_ACTIONS[action]
    elif action == "assign":
        body["assignee"] = form.get("assignee", "").strip() or None  # empty unassigns
    elif action == "note":
        body["note"] = form.get("note", "")
    else:
        raise ConsoleError(400, f"unknown triage action {action[:40]!r}")
    return body


def false_positive_patch(form: Mapping[str, str], fields: list[tuple[str, str]], author: str) -> dict[str, Any]:
    """The TriagePatch body of the false-positive form: the ticked fields, each with the alert's value (left
    as shown: the store takes it from the alert, matched literally) or the glob typed instead."""
    match: dict[str, list[str] | None] = {}
    for path, shown in fields:
        if form.get(f"use:{path}"):
            typed = form.get(f"value:{path}", "").strip()
            match[path] = None if typed == shown else [typed]
    if not match:
        raise ConsoleError(422, "tick at least one field: an exception without conditions would silence the rule")
    spec: dict[str, Any] = {"match": match, "comment": form.get("comment", "")}
    if form.get("expires_at"):
        try:
            expires = datetime.fromisoformat(form["expires_at"])
        except ValueError:
            raise ConsoleError(422, "expires: not a date and time") from None
        # the form's field has no offset and means UTC; one that gives an offset means that offset
        spec["expires_at"] = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
    comment = form.get("comment", "").strip()
    return {"status": "false_positive", "author": author, "note": comment or None, "create_exception": spec}


def _remembering(response: Response, request: Request, body: Mapping[str, Any]) -> Response:
    """The response, keeping the author the form named for the next forms (not the default, `anonymous`)."""
    if body["author"] != ANONYMOUS:
        keep_author(response, request, body["author"])
    return response


def _triage(request: Request, alert_id: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        patch = TriagePatch.model_validate({k: v for k, v in body.items() if v is not None or k == "assignee"})
        result: dict[str, Any] = triage_alert(alert_id, patch, get_store(request), None)
    except ValidationError as exc:
        raise ConsoleError(422, validation_message(exc)) from None
    except HTTPException as exc:
        raise ConsoleError(exc.status_code, str(exc.detail)) from None
    return result


def console_forms(renderer: Renderer, policy: AccessPolicy) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        if not policy.checks_tokens:
            return _see_other(safe_next(next))
        return renderer.page(request, "login.html", next=safe_next(next), problem=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await checked_form(request)
        token, target = form.get("token", "").strip(), safe_next(form.get("next"))
        level = access_of(policy, f"Bearer {token}", client_cert_name(request.scope))
        if not policy.checks_tokens or level is Access.NONE:
            problem = "wrong token" if policy.checks_tokens else "this server has no tokens to log in with"
            return renderer.page(request, "login.html", 401, next=target, problem=problem)
        response = _see_other(target)
        keep_token(response, request, token)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        await checked_form(request)
        response = _see_other("/login")
        forget_token(response, request)
        return response

    @router.post("/alerts/{alert_id}/triage")
    async def triage(request: Request, alert_id: str) -> Response:
        form = await checked_form(request)
        body = triage_patch(form, author_of(form, request))
        await run_in_threadpool(_triage, request, alert_id, body)
        return _remembering(_see_other(f"/alerts/{quote(alert_id, safe='')}#triage"), request, body)

    @router.post("/alerts/{alert_id}/false-positive")
    async def false_positive(request: Request, alert_id: str) -> Response:
        form = await checked_form(request)
        with store_errors(request):
            found = await run_in_threadpool(get_store(request).get_alert, alert_id)
        if found is None:
            raise ConsoleError(404, f"no alert {alert_id!r}")
        fields = exception_fields(found["event"])
        try:
            body = false_positive_patch(form, fields, author_of(form, request))
            await run_in_threadpool(_triage, request, alert_id, body)
        except ConsoleError as exc:
            if exc.status != 422:
                raise
            return renderer.page(request, "false_positive.html", 422, alert=found, fields=fields,
                                 problem=exc.detail, form=form)  # fmt: skip
        return _remembering(_see_other(f"/alerts/{quote(alert_id, safe='')}#exceptions"), request, body)

    return router
