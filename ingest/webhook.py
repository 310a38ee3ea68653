"""The audit webhook: what kube-apiserver POSTs to. Validate, hand the batch to a sink, answer.

200 only once the sink says every event of the batch is durable; 400 for a body that is not audit data
(the apiserver retries it, and will fail again, but we say why); 408 for a body not received within the
read timeout; 413 over the size limit; 503 with Retry-After when the sink is unavailable (the apiserver
retries). Items that fail validation are counted and reported, the first MAX_KEPT_REJECTED of them kept by
the sink (quarantine); the rest of the batch goes on. A request from a web page (an Origin header) gets 403, a
body in a content coding (gzip, ...) 415, before any of it is read, and so does a 503 when the bodies being read
or handled at once would exceed the process's BodyBudget. The reply:
`{"accepted": n, "rejected": total, "alerts": n, "new_alerts": n}`, plus `"quarantined": kept` and the first 20 reasons
(`"rejections": [{"item": origin, "reason": ...}]`) when items were rejected. A `BatchObserver` (metrics)
hears what became of each batch's items, by reason class.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, Rejections, parse_body
from ingest.body import ReceivedEvent, parse_received

WEBHOOK_PATHS = ("/audit/webhook", "/k8s-audit")  # the second is Falco's, so existing kubeconfigs work
DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024  # one POST can carry 400 events of 100 KiB, or more untruncated
# The whole body must arrive within this, so a slow client cannot hold a request (and its buffer) open: the
# apiserver's own webhook client gives up after 30 s, so a sender that is slower is not the apiserver.
DEFAULT_BODY_READ_TIMEOUT_S = 60.0
# Bodies read or handled at once, in bytes, default this many times the largest one: a parsed body holds ~3.6x
# its size (a 118 MiB POST peaked at 451 MB RSS), so unbounded concurrency would outgrow any memory limit.
DEFAULT_BODY_BUDGET_FACTOR = 4
BUDGET_RETRY_AFTER_S = 2
# Parse bigger bodies in a thread, so that the event loop keeps serving between the GIL's switches (every 5 ms)
# rather than waiting for the whole body; up to this (~5 ms of parsing) the hand-over would cost more than it
# saves: the usual 400-event body of the apiserver, ~0.5 MB, parses inline.
_INLINE_PARSE_BYTES = 1024 * 1024
_REPORTED_REJECTIONS = 20
log = logging.getLogger("auditwatch.webhook")


class IngestError(Exception):
    """Root of ingest errors."""


SINK_UNAVAILABLE = "events not stored, retry later: the alert store or Kafka is unavailable (the log has the cause)"


class SinkUnavailable(IngestError):
    """The sink cannot make events durable right now; the client should retry."""


@dataclass(frozen=True, slots=True)
class SinkResult:
    alerts: int = 0  # the batch's alerts, stored
    new_alerts: int = 0  # those the store did not have (a batch sent again has none)
    rejected: tuple[Rejected, ...] = ()  # events the sink quarantined because a detector failed on them
    refused: tuple[Rejected, ...] = ()  # events the sink quarantined because the store refused their alert


# Why an item of a batch was not accepted: a bounded set, for metrics (the reasons' texts are free).
REJECT_REASONS = ("invalid", "detector_error", "store_refused")


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What became of one batch's items: each one received is accepted or rejected for one reason."""

    accepted: int
    invalid: int = 0  # not a valid audit event (its fields, the per-item limits)
    detector_error: int = 0  # a detector failed on the event
    store_refused: int = 0  # the store refused an alert of the event
    seconds: float = 0.0  # from the batch's arrival until it was handled

    def rejections(self) -> dict[str, int]:
        """Reason class (REJECT_REASONS) -> items."""
        return {"invalid": self.invalid, "detector_error": self.detector_error, "store_refused": self.store_refused}

    @property
    def received(self) -> int:
        return self.accepted + self.invalid + self.detector_error + self.store_refused


class BatchObserver(Protocol):
    def batch_done(self, report: BatchReport) -> None:
        """A batch was handled (answered 200). Cheap, and never raises."""
        ...


class BatchSink(Protocol):
    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        """Return only when the batch is durable; raise SinkUnavailable otherwise."""
        ...


@runtime_checkable
class ReceivedSink(Protocol):
    """A sink that takes events as received, their JSON text kept (Kafka): the webhook then decodes of each
    event only what validation and the record key need (`ingest.body`)."""

    async def accept_received(self, events: list[ReceivedEvent], rejected: list[Rejected]) -> SinkResult:
        """As BatchSink.accept."""
        ...


_Parse = Callable[[bytes, str], tuple[Sequence[Any], Rejections]]
_Accept = Callable[[Any, list[Rejected]], Awaitable[SinkResult]]


def _reading(sink: BatchSink) -> tuple[_Parse, _Accept]:
    """How the webhook reads bodies for `sink`, and hands it their events."""
    if isinstance(sink, ReceivedSink):
        return (lambda body, origin: parse_received(body, origin=origin)), sink.accept_received
    return (lambda body, origin: parse_body(body, origin=origin)), sink.accept


class BodyTooLarge(IngestError):
    pass


class ClientGone(IngestError):
    """The client disconnected before its body was read (the apiserver gave up, or a proxy reset)."""

    def __init__(self, bytes_read: int) -> None:
        super().__init__(f"client disconnected after {bytes_read} bytes of the body")
        self.bytes_read = bytes_read


class BodyBudget:
    """The bytes of webhook bodies a process reads, parses and hands on at once. A request reserves its declared
    Content-Length (the limit when it declares none) before any of its body is read, and gives it back when
    answered; one that does not fit is refused rather than queued, so a burst costs no memory. Single event loop:
    no lock is needed between the check and the update."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.total:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


def declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def read_body(request: Request, limit: int, timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S) -> bytes:
    """The request body; BodyTooLarge over `limit` bytes, TimeoutError when it takes over `timeout_s` in all,
    ClientGone when the client disconnects first."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout_s):  # asyncio's own: anyio's cancel scope costs more per request
        async for chunk in _body_chunks(request):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a client that disconnects first raises ClientGone with the bytes it sent."""
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            yield chunk
    except ClientDisconnect:
        raise ClientGone(size) from None


def _client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    """An error to raise: the app answers it in its one error shape (problem details, api/problems.py)."""
    return HTTPException(status, message, headers)


MAX_SHOWN_ENCODING = 40


def refuse_encoded(request: Request) -> None:
    """415 for a body in any content coding but identity, before any of it is read: it would otherwise be
    parsed compressed, and refused as invalid UTF-8 or JSON (the apiserver sends plain JSON)."""
    header = request.headers.get("content-encoding", "")
    codings = [c.strip() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]
    if codings:
        named = ", ".join(codings)
        named = named if len(named) <= MAX_SHOWN_ENCODING else named[: MAX_SHOWN_ENCODING - 3] + "..."
        message = f"Content-Encoding {named} is not supported: send the body uncompressed"
        raise _error(415, message, {"Accept-Encoding": "identity"})


def refuse_browsers(request: Request) -> None:
    """403 for a request a web page made: browsers send `Origin` with every cross-origin POST (and the
    apiserver, curl and log shippers never do). Without it, any site open in a browser on the machine could
    post forged audit events to a listener without a token (a loopback `serve`, say): alerts, or seeding the
    first-seen rules' baselines so that a later attack looks familiar."""
    if "origin" in request.headers:
        raise _error(403, "audit events are not taken from web pages (the request has an Origin header)")


def webhook_router(
    sink: BatchSink,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_read_timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S,
    body_budget_bytes: int | None = None,
    observer: BatchObserver | None = None,
) -> APIRouter:
    """`body_budget_bytes`: the BodyBudget of these routes (default DEFAULT_BODY_BUDGET_FACTOR x max_body_bytes);
    at least max_body_bytes, else a body of the largest size could never be accepted."""
    budget = BodyBudget(body_budget_bytes or DEFAULT_BODY_BUDGET_FACTOR * max_body_bytes)
    if budget.total < max_body_bytes:
        raise ValueError("the body budget must be at least max_body_bytes")
    router = APIRouter(tags=["webhook"])
    parse, accept = _reading(sink)

    async def receive(request: Request) -> Response:
        refuse_browsers(request)
        refuse_encoded(request)
        declared = declared_length(request)
        if declared is not None and declared > max_body_bytes:
            raise _error(413, f"request body is larger than the limit of {max_body_bytes} bytes")
        size = max_body_bytes if declared is None else declared
        if not budget.take(size):
            log.warning("batch of %d bytes refused (503, the sender retries): %d of the %d bytes of the body "
                        "budget in use", size, budget.used, budget.total)  # fmt: skip
            message = "too many webhook bodies being handled at once: retry later"
            raise _error(503, message, {"Retry-After": str(BUDGET_RETRY_AFTER_S)})
        try:
            return await _receive(request)
        finally:
            budget.give(size)

    async def _receive(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await read_body(request, max_body_bytes, body_read_timeout_s)
        except BodyTooLarge:
            raise _error(413, f"request body is larger than the limit of {max_body_bytes} bytes") from None
        except TimeoutError:
            message = f"request body not received within {body_read_timeout_s:g} s"
            raise _error(408, message, {"Connection": "close"}) from None
        except ClientGone as gone:
            # nothing to answer and nothing went wrong here: the sender retries what it did not get a 200 for
            log.info("%s %s from %s: %s", request.method, request.url.path, _client_of(request), gone)
            return Response(status_code=400)  # never delivered: the client is gone
        client = _client_of(request)
        origin = f"webhook:{request.url.path}@{client}"
        try:
            if len(body) > _INLINE_PARSE_BYTES:
                events, rejected = await anyio.to_thread.run_sync(parse, body, origin)
            else:
                events, rejected = parse(body, origin)
        except EventError as exc:
            raise _error(400, str(exc)) from None
        try:
            result = await accept(events, rejected.kept)
        except SinkUnavailable as exc:
            log.warning("batch of %d events not stored (answered 503, the sender retries): %s", len(events), exc)
            # not the cause's text: it may name the database's host and user, or the brokers; the log has it
            raise _error(503, SINK_UNAVAILABLE, {"Retry-After": "5"}) from None
        failed = [*result.rejected, *result.refused]  # events the sink quarantined
        detector_failed = {r.origin for r in result.rejected}  # an event may have several entries
        refused = {r.origin for r in result.refused} - detector_failed
        accepted = len(events) - len(detector_failed) - len(refused)
        total = rejected.total + len(failed)
        if observer is not None:
            observer.batch_done(BatchReport(
                accepted, rejected.total, len(detector_failed), len(refused), time.perf_counter() - started
            ))  # fmt: skip
        payload: dict[str, Any] = {
            "accepted": accepted,
            "rejected": total,
            "alerts": result.alerts,
            "new_alerts": result.new_alerts,
        }
        if total:
            kept = [*rejected.kept, *failed]
            payload["quarantined"] = len(kept)
            payload["rejections"] = [{"item": r.origin, "reason": r.reason} for r in kept[:_REPORTED_REJECTIONS]]
        ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("batch", extra={
            "events": len(events), "rejected": total, "alerts": result.alerts, "new_alerts": result.new_alerts, "ms": ms
        })  # fmt: skip
        return _json(payload)

    for path in WEBHOOK_PATHS:
        router.add_api_route(path, receive, methods=["POST"], summary="Receive an audit EventList")
    return router
