"""Rendering console pages: the Jinja2 environment over the package's templates, the helpers templates use,
and the headers every page gets (a strict Content-Security-Policy: the console loads nothing from elsewhere)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from auditwatch.auth import Access, AccessPolicy
from auditwatch.console.session import CSRF_FIELD, access, csrf_token, keep_csrf, logged_in, remembered_author
from auditwatch.startup import package_version
from detectors.alerts import Severity
from detectors.redact import redact_text_in

SEVERITIES = tuple(s.label for s in sorted(Severity, reverse=True))  # critical first
ASSETS_PATH = "/console/assets"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def mitre_url(technique: str) -> str:
    """The ATT&CK page of a technique id (T1609) or sub-technique id (T1552.007)."""
    return "https://attack.mitre.org/techniques/" + technique.replace(".", "/") + "/"


def pretty_json(value: Any) -> str:
    """An event or the details of an alert, indented, with any credential left in a string redacted."""
    return json.dumps(redact_text_in(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)


def segment(value: str) -> str:
    """`value` as one path segment: Jinja's `urlencode` keeps `/`, so a user `ops/../../rules` would link to
    /rules (the browser resolves the dots) instead of to that user's page."""
    return quote(value, safe="")


def query_url(path: str, params: dict[str, str | None], **changes: str | None) -> str:
    """`path` with the query `params` updated by `changes` (None or "" drops a parameter)."""
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v})
    return f"{path}?{query}" if query else path


_ENV = Environment(
    loader=PackageLoader("auditwatch.console", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["segment"] = segment
_ENV.globals.update(
    mitre_url=mitre_url, pretty_json=pretty_json, query_url=query_url, SEVERITIES=SEVERITIES,
    ASSETS=ASSETS_PATH, CSRF_FIELD=CSRF_FIELD, VERSION=package_version(),
)  # fmt: skip


@dataclass(frozen=True)
class Renderer:
    """Renders pages for one app: knows its access policy, to show triage controls only to who may use them."""

    policy: AccessPolicy

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        token, new = csrf_token(request)
        level = access(self.policy, request)
        html = _ENV.get_template(template).render(
            request=request, csrf=token, can_write=level >= Access.WRITE, logged_in=logged_in(request),
            uses_login=self.policy.checks_tokens, author=remembered_author(request), **context,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if new:
            keep_csrf(response, request, token)
        return response

    def error(self, request: Request, status: int, detail: str) -> HTMLResponse:
        return self.page(request, "error.html", status, status_code=status, detail=detail)
