"""One POST to a sink, and what its failure means: retry later (the sink may come back) or give up.

Error texts are built here, bounded and scrubbed of the sink's secrets (its URL, path, query, password,
HMAC key), because they end up in logs and in the outbox's `last_error`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx

from auditwatch.notify.config import Rate

MAX_BODY_SHOWN = 200  # characters of a refusing sink's answer kept in the error
_READ_LIMIT = 4096  # bytes of an answer read (a small one lets the connection be reused)
_RETRYABLE = frozenset({408, 425, 429})  # client errors that pass with time


class DeliveryError(Exception):
    """A delivery that failed. `permanent`: the sink refused it and would refuse it again (a 4xx other than
    408/425/429, or a redirect, which is not followed); else it is tried again after a pause."""

    def __init__(self, message: str, *, permanent: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return text


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare from webhooks: ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], secrets: Sequence[str]
) -> None:
    """POST a JSON body; DeliveryError unless the sink answers 2xx."""
    try:
        async with client.stream(
            "POST", url, content=body, headers={"Content-Type": "application/json", **headers}
        ) as resp:
            answer = b""
            async for chunk in resp.aiter_bytes():
                answer += chunk
                if len(answer) >= _READ_LIMIT:
                    break
    except httpx.HTTPError as exc:
        raise DeliveryError(scrub(f"{type(exc).__name__}: {exc}"[:300], secrets), permanent=False) from None
    status = resp.status_code
    if status < 300:
        return
    shown = answer.decode("utf-8", "replace").strip()[:MAX_BODY_SHOWN]
    message = scrub(f"HTTP {status}" + (f": {shown}" if shown else ""), secrets)
    if 300 <= status < 400:
        raise DeliveryError(f"{message} (redirects are not followed: give the final URL)", permanent=True)
    permanent = 400 <= status < 500 and status not in _RETRYABLE
    raise DeliveryError(message, permanent=permanent, retry_after_s=_retry_after(resp.headers.get("retry-after")))


class TokenBucket:
    """At most `rate.count` takes per `rate.per_s` seconds, in bursts of up to `rate.count`."""

    def __init__(self, rate: Rate) -> None:
        self.text = rate.text
        self.capacity = float(rate.count)
        self.per_token_s = rate.per_s / rate.count
        self.tokens = self.capacity
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) / self.per_token_s)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
