"""Remove credentials from events before they are stored or shown.

What goes: Secret `data`/`stringData` (and the last-applied annotation that repeats them), values of JSON
patches sent to secrets, TokenRequest/TokenReview tokens, values of credential-named keys, bearer tokens,
JWTs and URL passwords anywhere in a string. Key names stay, so an analyst still sees *which* key changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_KEYS = frozenset(
    k.lower()
    for k in (
        "token",
        "idToken",
        "id-token",
        "id_token",
        "accessToken",
        "access_token",
        "refreshToken",
        "refresh_token",
        "bearerToken",
        "password",
        "passwd",
        "client-key-data",
        "client_key_data",
        "authorization",
        "x-auth-token",
        "secretAccessKey",
        "aws_secret_access_key",
    )
)
_STRING_PATTERNS = (
    (re.compile(r"(?i)(bearer)(\s+|%20|\+)[^\s&\"',;]+"), r"\1\2" + REDACTED),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1" + REDACTED + "@"),
)


def redact_string(text: str) -> str:
    if len(text) < 8:
        return text
    for pattern, repl in _STRING_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _redact_values(obj: Any) -> Any:
    """Keep the shape of a Secret's data map, drop the values."""
    if isinstance(obj, dict):
        return dict.fromkeys(obj, REDACTED)
    return REDACTED


def _scrub_secret_object(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for key in ("data", "stringData"):
        if key in out:
            out[key] = _redact_values(out[key])
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) and _LAST_APPLIED in meta["annotations"]:
        annotations = dict(meta["annotations"])
        annotations[_LAST_APPLIED] = REDACTED
        out["metadata"] = {**meta, "annotations": annotations}
    return out


def _walk(obj: Any, secret_context: bool) -> Any:
    if isinstance(obj, dict):
        if secret_context or obj.get("kind") == "Secret":
            obj = _scrub_secret_object(obj)
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and key.lower() in _SECRET_KEYS and isinstance(value, str) and value:
                out[key] = REDACTED
            elif key == "items" and secret_context and isinstance(value, list):
                out[key] = [_walk(v, True) for v in value]  # SecretList items carry no kind
            else:
                out[key] = _walk(value, False)
        return out
    if isinstance(obj, list):
        return [_walk(v, secret_context) for v in obj]
    if isinstance(obj, str):
        return redact_string(obj)
    return obj


def _redact_patch(ops: list[Any]) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        if isinstance(op, dict) and "value" in op:
            op = {**op, "value": REDACTED}
        out.append(_walk(op, False))
    return out


def redact_event(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A redacted deep copy of an audit event (the input is not modified)."""
    ref = raw.get("objectRef")
    resource = ref.get("resource") if isinstance(ref, dict) else None
    is_secret = resource == "secrets"
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("requestObject", "responseObject") and is_secret:
            out[key] = _redact_patch(value) if isinstance(value, list) else _walk(value, True)
        else:
            out[key] = _walk(value, False)
    return out


def redact_payload(payload: Any) -> Any:
    """Best-effort redaction of something that did not validate as an event (quarantine)."""
    if isinstance(payload, dict):
        return redact_event(payload)
    return _walk(payload, False)
