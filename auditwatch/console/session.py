"""Who is using the console: the bearer token kept in a cookie after the login form, the access level it gives
(auditwatch/auth.py decides, as for REST), and the CSRF token every state-changing form must carry.

The token cookie is HttpOnly, SameSite=Strict, and Secure when the console is served over TLS (plain http
only on a loopback or test listener, where a Secure cookie would never come back). CSRF protection is a
double-submit token: a random value in a cookie of its own (HttpOnly, SameSite=Strict) that each form repeats
in a hidden field; a POST whose field does not equal the cookie is refused with 403.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs

from fastapi import Request, Response

from auditwatch.auth import READ_METHODS, Access, AccessPolicy, access_of, client_cert_name
from auditwatch.docs import is_docs_path

TOKEN_COOKIE = "auditwatch_token"
AUTHOR_COOKIE = "auditwatch_author"  # the name last given in a triage form, offered in the next ones
CSRF_COOKIE = "auditwatch_csrf"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024  # a note or an exception's comment; nothing a person types is longer


class ConsoleError(Exception):
    """A request the console refuses: shown as an error page with this status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _encode(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode()


def _decode(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def authorization(request: Request) -> str:
    """The request's bearer credentials: its Authorization header, else the token cookie of the login form."""
    header = request.headers.get("authorization")
    if header:
        return header
    token = _decode(request.cookies.get(TOKEN_COOKIE, ""))
    return f"Bearer {token}" if token else ""


def docs_credentials(request: Request) -> str:
    """The bearer credentials the REST API's access check takes: the Authorization header, and for reading the
    API docs the console links to, the login cookie too (a browser following the link sends no header). Only
    there and only reads: a cookie rides along with requests other sites make, so it never authorizes a REST
    call (the console's own forms carry a CSRF token)."""
    if request.method in READ_METHODS and is_docs_path(request.url.path):
        return authorization(request)
    return request.headers.get("authorization", "")


def access(policy: AccessPolicy, request: Request) -> Access:
    return access_of(policy, authorization(request), client_cert_name(request.scope))


def logged_in(request: Request) -> bool:
    return TOKEN_COOKIE in request.cookies


def _cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")


def keep_token(response: Response, request: Request, token: str) -> None:
    _cookie(response, request, TOKEN_COOKIE, _encode(token))


def forget_token(response: Response, request: Request) -> None:
    response.delete_cookie(
        TOKEN_COOKIE, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )


def remembered_author(request: Request) -> str:
    return _decode(request.cookies.get(AUTHOR_COOKIE, ""))


def keep_author(response: Response, request: Request, author: str) -> None:
    _cookie(response, request, AUTHOR_COOKIE, _encode(author))


def csrf_token(request: Request) -> tuple[str, bool]:
    """The CSRF token the page's forms carry, and whether it is new (then `keep_csrf` must set its cookie)."""
    known = request.cookies.get(CSRF_COOKIE, "")
    if 32 <= len(known) <= 128 and known.isascii():
        return known, False
    return secrets.token_urlsafe(32), True


def keep_csrf(response: Response, request: Request, token: str) -> None:
    _cookie(response, request, CSRF_COOKIE, token)


async def checked_form(request: Request) -> Mapping[str, str]:
    """The POSTed form's fields (the first value of each), after checking its CSRF token: 403 without it."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleError(413, f"form larger than {MAX_FORM_BYTES} bytes")
    try:
        # strict: an escape that is not UTF-8 (%FF) is refused, not stored as U+FFFD in a note or an exception
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=100, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "not a form (application/x-www-form-urlencoded, UTF-8)") from None
    form = {name: values[0] for name, values in fields.items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = form.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise ConsoleError(403, "missing or wrong CSRF token: reload the page and submit the form again")
    return form


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no `//host` or `/\\host`), else the alerts."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"
