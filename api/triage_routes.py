"""REST for triage (status, assignee, notes and history of alerts and alert groups) and rule exceptions.

Requests are validated by the pydantic models of `api.schemas` (422 says what is wrong). Who may call the
state-changing ones (PATCH, POST, DELETE) is decided before a request gets here (auditwatch/auth.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, HTTPException, Query, Response
from pydantic import TypeAdapter, ValidationError

from api.routes import ItemId, StoreDep, text_param
from api.rule_exceptions import AlertNotFound, NewException
from api.schemas import (
    AlertGroupDetail,
    ExceptionCreate,
    ExceptionSpec,
    GroupTriagePatch,
    History,
    Label,
    RuleException,
    RuleExceptionList,
    TriagedAlert,
    TriagedGroup,
    TriagePatch,
)
from api.store import AlertStore
from api.triage import ALERT, GROUP, UNSET, TriageChange
from detectors.exceptions import ExceptionError

AUTHOR_HEADER = "X-Auditwatch-User"
ANONYMOUS = "anonymous"
MAX_HISTORY = 5000
router = APIRouter()
T = TypeVar("T")
_LABEL = TypeAdapter(Label)

AuthorHeader = Annotated[
    str | None,
    Header(alias=AUTHOR_HEADER, description="Who makes the change: a label shown in the history, not an identity"),
]


@contextmanager
def _answers() -> Iterator[None]:
    """Exception errors as HTTP answers (a StoreError is the app's 503: api/routes.py, `store_unavailable`)."""
    try:
        yield
    except (ExceptionError, AlertNotFound) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


def _header_text(value: str) -> str:
    """A header's text: HTTP hands its bytes over as Latin-1, but a client that sends a name in UTF-8 (curl -H
    'X-Auditwatch-User: zoë') means that name, not 'zoÃ«'; bytes that are not UTF-8 stay Latin-1."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _author(given: str | None, header: str | None) -> str:
    if given is not None:
        return given
    if header is None:
        return ANONYMOUS
    try:
        return _LABEL.validate_python(_header_text(header))
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=f"{AUTHOR_HEADER}: {exc.errors()[0]['msg']}") from None


def _change(body: GroupTriagePatch, header: str | None) -> TriageChange:
    return TriageChange(
        author=_author(body.author, header),
        status=body.status,
        assignee=body.assignee if "assignee" in body.model_fields_set else UNSET,
        note=body.note,
    )


def _found(item: T | None, what: str) -> T:
    """The item, or a 404 that names what was asked for."""
    if item is None:
        raise HTTPException(status_code=404, detail=f"no {what}")
    return item


def _history(store: AlertStore, kind: str, item_id: str, limit: int, what: str) -> dict[str, Any]:
    """Triage history of an alert or a group; 404 when the item itself does not exist."""
    with _answers():
        items = store.triage_history(kind, item_id, limit=limit)
        if not items:
            lookup = store.get_alert if kind == ALERT else store.get_group
            _found(lookup(item_id), what)
    return {"items": items}


def _new_exception(spec: ExceptionSpec, author: str, **more: Any) -> NewException:
    return NewException(author=author, comment=spec.comment, match=spec.match, expires_at=spec.expires_at, **more)


@router.patch("/api/v1/alerts/{alert_id}", response_model=TriagedAlert, tags=["triage"])
def triage_alert(alert_id: ItemId, body: TriagePatch, store: StoreDep, user: AuthorHeader = None) -> dict[str, Any]:
    """Set an alert's status or assignee, or append a note; every change goes into its history. With
    `status: false_positive`, `create_exception` also creates an exception from this alert (same transaction)."""
    change = _change(body, user)
    new = None
    if body.create_exception is not None:
        new = _new_exception(body.create_exception, change.author, from_alert=alert_id)
    with _answers():
        alert, created = store.triage_alert(alert_id, change, new)
    return {**_found(alert, f"alert {alert_id!r}"), "exception": created}


@router.get("/api/v1/alerts/{alert_id}/history", response_model=History, tags=["triage"])
def alert_history(
    alert_id: ItemId, store: StoreDep, limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 1000
) -> dict[str, Any]:
    """Every triage change of the alert (status, assignee, notes): who, when, from what to what."""
    return _history(store, ALERT, alert_id, limit, f"alert {alert_id!r}")


@router.get("/api/v1/alert-groups/{group_id}", response_model=AlertGroupDetail, tags=["triage"])
def get_group(group_id: ItemId, store: StoreDep) -> dict[str, Any]:
    with _answers():
        group = store.get_group(group_id)
    return _found(group, f"alert group {group_id!r}")


@router.patch("/api/v1/alert-groups/{group_id}", response_model=TriagedGroup, tags=["triage"])
def triage_group(
    group_id: ItemId, body: GroupTriagePatch, store: StoreDep, user: AuthorHeader = None
) -> dict[str, Any]:
    """Set the status or assignee of a group and of every alert in it, or append a note to the group."""
    with _answers():
        group, changed = store.triage_group(group_id, _change(body, user))
    return {**_found(group, f"alert group {group_id!r}"), "alerts_changed": changed}


@router.get("/api/v1/alert-groups/{group_id}/history", response_model=History, tags=["triage"])
def group_history(
    group_id: ItemId, store: StoreDep, limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 1000
) -> dict[str, Any]:
    """Every triage change of the group: who, when, from what to what."""
    return _history(store, GROUP, group_id, limit, f"alert group {group_id!r}")


@router.post("/api/v1/exceptions", response_model=RuleException, status_code=201, tags=["exceptions"])
def create_exception(body: ExceptionCreate, store: StoreDep, user: AuthorHeader = None) -> dict[str, Any]:
    """Create a rule exception: from then on, alerts of the rule whose event matches are not stored, in
    `serve` at once, in `detect` and `replay` within their refresh interval."""
    new = _new_exception(body, _author(body.author, user), rule_id=body.rule_id, from_alert=body.from_alert)
    with _answers():
        return store.create_exception(new)


@router.get("/api/v1/exceptions", response_model=RuleExceptionList, tags=["exceptions"])
def list_exceptions(
    store: StoreDep, rule: Annotated[str | None, Query(description="Only this rule's exceptions")] = None
) -> dict[str, Any]:
    """Every exception, newest first; expired ones have `active: false`."""
    with _answers():
        return {"items": store.list_exceptions(text_param("rule", rule))}


@router.get("/api/v1/exceptions/{exception_id}", response_model=RuleException, tags=["exceptions"])
def get_exception(exception_id: ItemId, store: StoreDep) -> dict[str, Any]:
    with _answers():
        found = store.get_exception(exception_id)
    return _found(found, f"exception {exception_id!r}")


@router.delete("/api/v1/exceptions/{exception_id}", status_code=204, tags=["exceptions"])
def delete_exception(exception_id: ItemId, store: StoreDep) -> Response:
    with _answers():
        deleted = store.delete_exception(exception_id)
    if not deleted:
        raise HTTPException(status_code=404, detail=f"no exception {exception_id!r}")
    return Response(status_code=204)
