"""REST over the alert store: list (filtered, newest first, cursor-paginated), get one, deliveries, health."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, TypeAdapter, ValidationError

from api.errors import CursorError, StoreError
from api.outbox import Outbox
from api.problems import problem_response
from api.queries import AlertFilter, bounded_utc, decode_rank_cursor, encode_rank_cursor, has_nul
from api.ranking import MAX_RANKED, by_priority, stored_facts
from api.schemas import (
    AlertDetail,
    AlertGroupPage,
    AlertPage,
    DeliveryPage,
    Health,
    QuarantinePage,
    RankedPage,
    ReceiptPage,
)
from api.store import AlertStore
from api.triage import STATUSES
from detectors.alerts import Severity
from detectors.credentials import redact_message

MAX_PAGE = 500
MAX_RECEIPT_PAGE = 5000


def get_store(request: Request) -> AlertStore:
    store: AlertStore = request.app.state.store
    return store


StoreDep = Annotated[AlertStore, Depends(get_store)]
log = logging.getLogger("auditwatch.store")
router = APIRouter()
_DATETIME = TypeAdapter(datetime)  # parses as the `datetime` parameters did: RFC 3339, a date, Unix time
TIME_HELP = "RFC 3339, between 1970-01-01 and 2200-01-01"


def bad_request(name: str, problem: str) -> HTTPException:
    return HTTPException(status_code=400, detail=f"{name}: {problem}")


def invalid_query(name: str, expected: str) -> RequestValidationError:
    """A 422 as FastAPI's own validation gives it (api/problems.py), naming the parameter and what it takes: never
    the value sent, which may be a credential pasted into the wrong field."""
    return RequestValidationError([{"loc": ("query", name), "msg": expected, "type": "value_error"}])


def time_param(name: str, value: str | None) -> datetime | None:
    """A `since`/`until` value as a UTC time, or 400 naming the parameter and the problem."""
    if value is None:
        return None
    try:
        return bounded_utc(_DATETIME.validate_python(value))
    except ValidationError:
        raise bad_request(name, f"{value[:64]!r} is not a time (RFC 3339, e.g. 2026-11-20T09:00:00Z)") from None
    except ValueError as exc:
        raise bad_request(name, f"{value!r} is {exc}") from None


def text_param(name: str, value: str | None) -> str | None:
    if value is not None and has_nul(value):
        raise bad_request(name, "must not contain NUL characters")
    return value


def _no_nul(value: str) -> str:
    if has_nul(value):
        raise ValueError("must not contain NUL characters")
    return value


# The id in an item's path: PostgreSQL refuses a NUL in a lookup, which would answer 503 (retry later) for ever
ItemId = Annotated[str, Path(), AfterValidator(_no_nul)]


class PageQuery:
    """Filters and pagination shared by the alert and alert-group lists."""

    def __init__(
        self,
        min_severity: Annotated[str | None, Query(description="info, low, medium, high or critical")] = None,
        rule: Annotated[str | None, Query(description="Rule id or rule name")] = None,
        user: Annotated[str | None, Query(description="Alerts: the authenticated user; groups: the principal")] = None,
        namespace: str | None = None,
        since: Annotated[str | None, Query(description=f"At or after this time ({TIME_HELP})")] = None,
        until: Annotated[str | None, Query(description=f"Before this time ({TIME_HELP})")] = None,
        status: Annotated[
            str | None,
            Query(
                description="Triage status: open, acknowledged, resolved, false_positive; "
                "several comma-separated (open,acknowledged)"
            ),
        ] = None,
        assignee: str | None = None,
        group: Annotated[str | None, Query(description="An alert group's id: its alerts; for groups, it")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> None:
        try:
            severity = Severity.parse(min_severity) if min_severity else None
        except ValueError:
            raise invalid_query("min_severity", f"must be one of {', '.join(s.label for s in Severity)}") from None
        statuses = tuple(dict.fromkeys(s.strip() for s in (status or "").split(",") if s.strip()))
        if any(s not in STATUSES for s in statuses):
            raise invalid_query("status", f"each must be one of {', '.join(STATUSES)}")
        self.filter = AlertFilter(
            severity, text_param("rule", rule), text_param("user", user), text_param("namespace", namespace),
            time_param("since", since), time_param("until", until), statuses, text_param("assignee", assignee),
            text_param("group", group),
        )  # fmt: skip
        self.limit = limit
        self.cursor = cursor


PageDep = Annotated[PageQuery, Depends()]


def _page(fetch: Callable[..., tuple[list[dict[str, Any]], str | None]], query: PageQuery) -> dict[str, Any]:
    try:
        items, next_cursor = fetch(query.filter, limit=query.limit, cursor=query.cursor)
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/api/v1/alerts", response_model=AlertPage, tags=["alerts"])
def list_alerts(store: StoreDep, query: PageDep) -> dict[str, Any]:
    """Alerts, newest first (by event time); `since`/`until` apply to the event time."""
    return _page(store.list_alerts, query)


def ranked_period(store: AlertStore, flt: AlertFilter) -> tuple[list[dict[str, Any]], bool]:
    """The alerts priority ranks for a filter: its at most MAX_RANKED newest, and whether that is all of them
    (StoreError if the store fails)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < MAX_RANKED:
        items, cursor = store.list_alerts(flt, limit=min(MAX_PAGE, MAX_RANKED - len(found)), cursor=cursor)
        found.extend(items)
        if cursor is None:  # given only when more alerts follow
            break
    return found, cursor is None


@router.get("/api/v1/alerts/priority", response_model=RankedPage, tags=["alerts"])
def list_alerts_by_priority(store: StoreDep, query: PageDep) -> dict[str, Any]:
    """A period's alerts, most likely attack first (api/ranking.py: severity, raised for a principal that
    several rules flag; what an event does before first-seen context; then the earliest). The filters choose
    the period (`since`/`until`, event time); at most MAX_RANKED of its newest alerts are ranked (`complete`
    says whether that was all). Pages of `limit`: each request ranks the period again, so alerts stored
    meanwhile shift the next page by as many places as rank above it."""
    try:
        start = decode_rank_cursor(query.cursor, MAX_RANKED) if query.cursor else 0
        found, complete = ranked_period(store, query.filter)
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    end = start + query.limit
    return {
        "items": by_priority(found, stored_facts)[start:end],
        "next_cursor": encode_rank_cursor(end) if end < len(found) else None,
        "ranked": len(found),
        "complete": complete,
    }


@router.get("/api/v1/alert-groups", response_model=AlertGroupPage, tags=["alerts"])
def list_alert_groups(store: StoreDep, query: PageDep) -> dict[str, Any]:
    """Alerts of one rule and key, folded while they keep coming within the rule's suppression window; most
    recently active first; `since`/`until` apply to a group's last alert."""
    return _page(store.list_groups, query)


@router.get("/api/v1/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"])
def get_alert(alert_id: ItemId, store: StoreDep) -> dict[str, Any]:
    found = store.get_alert(alert_id)
    if found is not None:
        found["deliveries"] = Outbox(store.engine).deliveries_of(alert_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no alert {alert_id!r}")
    return found


@router.get("/api/v1/deliveries", response_model=DeliveryPage, tags=["notifications"])
def list_deliveries(
    store: StoreDep,
    status: Annotated[Literal["pending", "delivered", "failed", "dropped"] | None, Query()] = None,
    sink: Annotated[str | None, Query(description="A sink's name, as `deliveries` of an alert show it")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Notifications (`--notify`), one per alert and sink, most recently queued first: e.g. `status=failed` for
    those given up, `status=pending` for the backlog of a sink that is down."""
    sink = text_param("sink", sink)
    try:
        items, next_cursor = Outbox(store.engine).list_deliveries(status=status, sink=sink, limit=limit, cursor=cursor)
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/api/v1/quarantine", response_model=QuarantinePage, tags=["quarantine"])
def list_quarantine(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """What was accepted but set aside, newest first: items that are not valid audit events, events a detector
    failed on, alerts the database refused (each with its reason and its redacted payload; the first 100 of a
    batch). In distributed mode `ingest` sends invalid items to the dead-letter topic instead; `detect`
    quarantines here what fails in detection."""
    try:
        items, next_cursor = store.list_quarantined(limit=limit, cursor=cursor)
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/api/v1/receipts", response_model=ReceiptPage, tags=["receipts"])
def list_receipts(
    store: StoreDep,
    audit_id: Annotated[str | None, Query(description="Only the receipts of this auditID (every stage)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RECEIPT_PAGE)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Event receipts (recorded with `--record-receipts`): one per (auditID, stage, stageTimestamp) received and
    run through detection, kept for the retention period; ordered by auditID, stage, stageTimestamp. `total`
    counts every stored receipt, or those of `audit_id` when given. Empty when receipts are not recorded."""
    audit_id = text_param("audit_id", audit_id)
    try:
        items, next_cursor = store.list_receipts(audit_id=audit_id, limit=limit, cursor=cursor)
        total = store.count_receipts(audit_id=audit_id)
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.get("/healthz", response_model=Health, tags=["health"])
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


STORE_UNAVAILABLE = "alert store unavailable: database unreachable"


def log_unavailable(request: Request, what: str, cause: Exception | str, logger: logging.Logger = log) -> None:
    """Log why `what` answers 503: the cause, redacted, once until it changes or /readyz succeeds again (probes
    and clients retrying every few seconds would repeat it), on `logger` (the store's unless the cause is another
    dependency's). Callers answer a fixed text: the cause may name the database's host and user (`connection to
    server at "10.0.0.5" ... for user "auditwatch"`)."""
    detail = redact_message(str(cause))
    logged: dict[str, str] = getattr(request.app.state, "unready_logged", None) or {}
    if logged.get(what) != detail:
        request.app.state.unready_logged = {**logged, what: detail}
        logger.warning("%s: %s", what, detail)


def not_ready(request: Request, reason: str, cause: Exception | str, logger: logging.Logger = log) -> JSONResponse:
    """readyz's 503, with a `reason` that names no address or user (its caller needs no access); the cause is
    logged on `logger`, as in log_unavailable."""
    log_unavailable(request, "not ready (/readyz answers 503)", cause, logger)
    return problem_response(503, reason)


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The 503 of a REST call whose store failed (a StoreError no route turned into a 400). Not the error's
    text: a read-only token holder needs no database host or user; the log has it."""
    log_unavailable(request, "alert store unavailable (REST calls answer 503)", exc)
    return problem_response(503, STORE_UNAVAILABLE, {"Retry-After": "5"})


def answer_store_errors(app: FastAPI) -> None:
    """The app that includes these routes (and api/triage_routes.py's) answers their StoreError with a 503."""
    app.add_exception_handler(StoreError, store_unavailable)


def ready(request: Request) -> dict[str, str]:
    request.app.state.unready_logged = {}
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, tags=["health"])
def readyz(request: Request, store: StoreDep) -> Any:
    """The alert store answers, its schema at the revision this version migrates to, with every table it writes.
    Else 503, as problem details: `alert store unavailable: database unreachable` (the log says why), or what is
    wrong with the schema and the remedy (api/readiness.py)."""
    try:
        problem = store.schema_problem()
    except StoreError as exc:
        return not_ready(request, STORE_UNAVAILABLE, exc)
    if problem is not None:
        return not_ready(request, problem, problem)
    return ready(request)
