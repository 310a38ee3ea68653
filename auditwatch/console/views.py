"""The console's pages: alerts (filtered, counted; newest first and paged, or by priority), one alert, one
principal, the rules, the quarantine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from api.errors import CursorError, StoreError
from api.queries import AlertFilter, has_nul
from api.ranking import MAX_RANKED
from api.routes import STORE_UNAVAILABLE, PageQuery, StoreDep, log_unavailable
from api.rule_exceptions import DEFAULT_FIELDS
from api.triage import ALERT, STATUSES
from auditwatch.console.catalogue import RuleInfo
from auditwatch.console.pages import Renderer
from auditwatch.console.priority import ranked_alerts
from auditwatch.console.session import ConsoleError
from auditwatch.console.summaries import principal_sightings, range_counts, rule_activity
from detectors.exceptions import field_values

PAGE_SIZE = 50
GUIDANCE_KEYS = ("description", "response", "false_positives")  # rule text alerts carry in their details
FILTERS = ("severity", "rule", "user", "namespace", "status", "since", "until", "group")
PRIORITY = "priority"  # `order=priority`: the alerts by priority; without it, newest first
STATUS_CHOICES = (
    ("", "any"),
    ("open,acknowledged", "open or acknowledged"),
    *((s, s.replace("_", " ")) for s in STATUSES),
)


@contextmanager
def store_errors(request: Request) -> Iterator[None]:
    """Store errors as pages: a cursor the store did not make is a 400, a store that does not answer a 503 (its
    cause, which may name the database's host and user, goes to the log, as for REST)."""
    try:
        yield
    except CursorError as exc:
        raise ConsoleError(400, str(exc)) from None
    except StoreError as exc:
        log_unavailable(request, "alert store unavailable (console pages answer 503)", exc)
        raise ConsoleError(503, STORE_UNAVAILABLE) from None


def filter_params(query: Mapping[str, str]) -> dict[str, str | None]:
    """The page's filters and its order, as the URL names them (links and the form keep them)."""
    order = PRIORITY if query.get("order") == PRIORITY else None
    return {**{name: query.get(name) or None for name in FILTERS}, "order": order}


def parse_filter(params: Mapping[str, str | None]) -> AlertFilter:
    """The filter the URL names, checked as the REST API checks it (400 naming the parameter)."""
    try:
        query = PageQuery(
            min_severity=params["severity"], rule=params["rule"], user=params["user"], namespace=params["namespace"],
            since=params["since"], until=params["until"], status=params["status"], assignee=None,
            group=params["group"], limit=PAGE_SIZE, cursor=None,
        )  # fmt: skip
    except HTTPException as exc:
        raise ConsoleError(400, str(exc.detail)) from None
    except RequestValidationError as exc:  # a value that is none of the choices: named, never echoed
        error = exc.errors()[0]
        name = str(error["loc"][-1])
        raise ConsoleError(400, f"{'severity' if name == 'min_severity' else name}: {error['msg']}") from None
    return query.filter


def guidance(alert: Mapping[str, Any], rule: RuleInfo | None) -> dict[str, str]:
    """The rule's description, response advice and known false positives: as the alert carries them (its rule
    as it was then, and in `api`, which loads no rules), else as the loaded rule says."""
    details = alert["details"]
    return {key: str(details.get(key) or getattr(rule, key, "")) for key in GUIDANCE_KEYS}


def exception_fields(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The fields an exception made from this alert's event starts with, and their values, for the form."""
    fields = []
    for path in DEFAULT_FIELDS:
        values = field_values(event, path)
        if values not in ([], [""]):
            fields.append((path, ", ".join(dict.fromkeys(values))))
    return fields


def console_pages(renderer: Renderer, rules: Mapping[str, RuleInfo]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def alerts(request: Request, store: StoreDep, cursor: str | None = None) -> HTMLResponse:
        params = filter_params(request.query_params)
        flt = parse_filter(params)
        by_priority = params["order"] == PRIORITY
        with store_errors(request):
            if by_priority:
                ranked = ranked_alerts(store, flt, PAGE_SIZE)
                items, next_cursor, reasons, cursor = ranked.items, None, ranked.reasons, None
            else:
                items, next_cursor = store.list_alerts(flt, limit=PAGE_SIZE, cursor=cursor)
                reasons = None
            counts = range_counts(store, flt)
        return renderer.page(
            request, "alerts.html", params=params, items=items, counts=counts, cursor=cursor,
            next_cursor=next_cursor, status_choices=STATUS_CHOICES, by_priority=by_priority, reasons=reasons,
            max_ranked=MAX_RANKED,
        )  # fmt: skip

    @router.get("/alerts/{alert_id}")
    def alert(request: Request, store: StoreDep, alert_id: str) -> HTMLResponse:
        with store_errors(request):
            found = store.get_alert(alert_id)
            if found is None:
                raise ConsoleError(404, f"no alert {alert_id!r}")
            group = store.get_group(found["group_id"]) if found["group_id"] else None
            history = store.triage_history(ALERT, alert_id, limit=500)
            made = [e for e in store.list_exceptions(found["rule_id"]) if e["from_alert"] == alert_id]
        rule = rules.get(found["rule_id"])
        fired = {key: value for key, value in found["details"].items() if key not in GUIDANCE_KEYS}
        return renderer.page(
            request, "alert.html", alert=found, group=group, history=history, exceptions=made, rule=rule,
            guidance=guidance(found, rule), fired=fired,
        )  # fmt: skip

    @router.get("/alerts/{alert_id}/false-positive")
    def false_positive_form(request: Request, store: StoreDep, alert_id: str) -> HTMLResponse:
        with store_errors(request):
            found = store.get_alert(alert_id)
        if found is None:
            raise ConsoleError(404, f"no alert {alert_id!r}")
        return renderer.page(
            request, "false_positive.html", alert=found, fields=exception_fields(found["event"]), problem=None,
            form={},
        )  # fmt: skip

    @router.get("/principals/{name:path}")
    def principal(request: Request, store: StoreDep, name: str, cursor: str | None = None) -> HTMLResponse:
        if not name:  # else the alerts filter would have no user, and list everyone's alerts as this page's
            raise ConsoleError(404, "no principal named: the page of a user is /principals/<user name>")
        if has_nul(name):  # no principal has one, and PostgreSQL refuses it in a query (a 503, retried for ever)
            raise ConsoleError(400, "a principal's name must not contain NUL characters")
        with store_errors(request):
            items, next_cursor = store.list_alerts(AlertFilter(user=name), limit=PAGE_SIZE, cursor=cursor)
            seen = principal_sightings(store, name)
        return renderer.page(
            request, "principal.html", name=name, items=items, seen=seen, cursor=cursor, next_cursor=next_cursor
        )

    @router.get("/rules")
    def rule_list(request: Request, store: StoreDep) -> HTMLResponse:
        with store_errors(request):
            activity = rule_activity(store)
            exceptions = store.list_exceptions()
        by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for exception in exceptions:
            by_rule[exception["rule_id"]].append(exception)
        unloaded = sorted(set(activity) - set(rules))  # alerts of rules this process did not load (`api`, old rules)
        return renderer.page(
            request, "rules.html", rules=sorted(rules.values(), key=lambda r: r.id), activity=activity,
            exceptions=by_rule, unloaded=unloaded,
        )  # fmt: skip

    @router.get("/quarantine")
    def quarantine(request: Request, store: StoreDep, cursor: str | None = None) -> HTMLResponse:
        with store_errors(request):
            items, next_cursor = store.list_quarantined(limit=PAGE_SIZE, cursor=cursor)
        return renderer.page(request, "quarantine.html", items=items, cursor=cursor, next_cursor=next_cursor)

    return router
