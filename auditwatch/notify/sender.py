"""The sender: drains the outbox to the notification sinks, in the background of `serve` and `detect`.

One asyncio task per sink, so a slow or unreachable sink delays no other, and never the webhook or the
consumer (they only queue rows; a sink that is down only makes its outbox grow, up to `max_pending`).
Each task loops: claim due rows, deliver them in order, settle each one right after its delivery. When a
delivery fails for a reason that may pass, the sink pauses (exponential backoff with jitter, from `backoff`
up to `backoff_max`, or the sink's Retry-After): the failed row and the rest of the claim are due again after
the pause, and the first success makes every waiting row due at once. State lives in the tables, so a restart
resumes where the last one stopped.

Alertmanager sinks get one alert per alert group (api/resends.py): posted when the group's alerts are
delivered, re-sent every `resend` while the group fires, and resolved (then re-sent for 5 minutes) when its
suppression window closes or triage resolves it.

Counts for monitoring are plain attributes: `Sender.stats[sink]` (SinkStats), `Sender.depths()`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from api.outbox import Claimed, Outbox, OutboxRoute
from api.resends import FIRING, RESOLVED, Resend, Resends
from api.rows import utc
from auditwatch.notify.config import SinkConfig
from auditwatch.notify.payloads import (
    alert_link,
    alertmanager_alert,
    falcosidekick_event,
    mattermost_message,
    slack_message,
    webhook_alert,
    webhook_headers,
)
from auditwatch.notify.transport import DeliveryError, TokenBucket, post
from detectors.base import Described, Detector

log = logging.getLogger("auditwatch.notify")
RESOLVED_RESEND = timedelta(minutes=5)  # Alertmanager keeps no state across a crash: re-send a resolution this long


def utcnow() -> datetime:
    return datetime.now(UTC)


def rule_descriptions(detectors: Sequence[Detector]) -> dict[str, str]:
    """Rule id -> description, for the rules that have one (native and Sigma rules)."""
    return {d.id: " ".join(d.description.split()) for d in detectors if isinstance(d, Described) and d.description}


def rule_responses(detectors: Sequence[Detector]) -> dict[str, str]:
    """Rule id -> response advice (what to check, how to contain), for the rules that give one."""
    return {d.id: " ".join(d.response.split()) for d in detectors if isinstance(d, Described) and d.response}


@dataclass
class SinkStats:
    """What a sink's task did since the process started (for metrics)."""

    delivered: int = 0  # notifications delivered (Alertmanager: alerts whose group was posted)
    failed: int = 0  # given up: refused by the sink, or not delivered within max_age
    dropped: int = 0  # over the rate limit, or beyond max_pending
    requests: int = 0  # HTTP requests made
    errors: int = 0  # requests that failed
    resends: int = 0  # Alertmanager: firing groups re-sent
    resolved: int = 0  # Alertmanager: groups resolved


class SinkWorker:
    """The task of one sink (see the module docstring)."""

    def __init__(
        self, config: SinkConfig, outbox: Outbox, resends: Resends, stopping: asyncio.Event, *,
        public_url: str | None, descriptions: Mapping[str, str], poll_s: float, housekeeping_s: float,
        responses: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.name = config.name
        self.outbox = outbox
        self.resends = resends
        self.stopping = stopping
        self.public_url = public_url
        self.descriptions = descriptions
        self.responses = responses or {}
        self.poll_s = poll_s
        self.housekeeping_s = housekeeping_s
        self.stats = SinkStats()
        self.secrets = config.secrets()
        self.grouped = config.kind == "alertmanager"
        self.batch = 100 if self.grouped else 10  # Alertmanager takes one array per claim; others one POST a row
        self.lease_s = config.timeout_s * (1 if self.grouped else self.batch) + 30  # past the claim's deliveries
        self.bucket = TokenBucket(config.rate) if config.rate else None
        self.failures = 0  # failed deliveries in a row
        self.paused_until = 0.0  # monotonic

    @property
    def url(self) -> str:
        if self.grouped and not self.config.url.rstrip("/").endswith("/api/v2/alerts"):
            return self.config.url.rstrip("/") + "/api/v2/alerts"
        return self.config.url

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.config.timeout_s, follow_redirects=False) as client:
            next_housekeeping = 0.0
            error_pause = 1.0
            while not self.stopping.is_set():
                busy = False
                try:
                    if time.monotonic() >= next_housekeeping:
                        next_housekeeping = time.monotonic() + self.housekeeping_s
                        await self._housekeep()
                    if time.monotonic() >= self.paused_until:
                        busy = await self._deliver_due(client)
                    if self.grouped and time.monotonic() >= self.paused_until:
                        busy = await self._resend_due(client) or busy
                    error_pause = 1.0
                except Exception as exc:  # the store is down, or a bug: the sender must outlive it
                    log.warning("notify %s: %s; trying again in %.0fs", self.name, exc, error_pause)
                    await self._sleep(error_pause)
                    error_pause = min(60.0, error_pause * 2)
                    continue
                if not busy:
                    await self._sleep(self.poll_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass

    def _pause(self, exc: DeliveryError) -> datetime:
        """A failure that may pass: pause the sink; returns when its rows are due again."""
        cfg = self.config
        self.failures += 1
        base = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** min(self.failures - 1, 40))
        delay = base / 2 + random.uniform(0, base / 2)  # jitter: senders that failed together retry apart
        if exc.retry_after_s is not None:
            delay = max(delay, min(exc.retry_after_s, cfg.backoff_max_s))
        self.paused_until = time.monotonic() + delay
        log.warning("notify %s: delivery failed (%s); next try in %.1fs", self.name, exc, delay)
        return utcnow() + timedelta(seconds=delay)

    async def _recovered(self) -> None:
        if self.failures:
            log.warning("notify %s: delivering again after %d failed tries", self.name, self.failures)
            self.failures = 0
            await asyncio.to_thread(self.outbox.expedite, self.name, utcnow())

    async def _post(self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.stats.requests += 1
        try:
            await post(client, url, body, headers, self.secrets)
        except DeliveryError:
            self.stats.errors += 1
            raise

    async def _deliver_due(self, client: httpx.AsyncClient) -> bool:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.lease_s)
        claimed = await asyncio.to_thread(self.outbox.claim, self.name, now, limit=self.batch, lease_until=lease_until)
        if not claimed:
            return False
        if self.grouped:
            await self._deliver_groups(client, claimed)
        else:
            await self._deliver_alerts(client, claimed)
        return True

    def _render(self, row: Any) -> tuple[bytes, dict[str, str]]:
        kind = self.config.kind
        if kind == "webhook":
            body = webhook_alert(row)
            return body, webhook_headers(row.id, body, self.config.secret, utcnow())
        if kind == "falcosidekick":
            return falcosidekick_event(row), {}
        link = alert_link(self.public_url, row.id)
        message = mattermost_message if kind == "mattermost" else slack_message
        return message(row, link=link, descriptions=self.descriptions), {}

    async def _deliver_alerts(self, client: httpx.AsyncClient, claimed: list[Claimed]) -> None:
        """One POST per row, in order; a failure that may pass pauses the sink and puts the rest back."""
        rows = await asyncio.to_thread(self.outbox.alerts, [c.alert_id for c in claimed])
        for i, item in enumerate(claimed):
            if self.stopping.is_set():
                await asyncio.to_thread(self.outbox.release, self.name, [c.alert_id for c in claimed[i:]], utcnow())
                return
            row = rows.get(item.alert_id)
            if row is None:
                await self._give_up([item.alert_id], "the alert is not in the store", tried=False)
                continue
            if item.attempts == 0 and self.bucket is not None and not self.bucket.take():
                await asyncio.to_thread(self.outbox.drop, self.name, [item.alert_id], f"over rate={self.bucket.text}")
                self.stats.dropped += 1
                continue
            try:
                await self._post(client, self.url, *self._render(row))
            except DeliveryError as exc:
                if exc.permanent:
                    await self._give_up([item.alert_id], str(exc))
                    continue
                at = self._pause(exc)
                await asyncio.to_thread(self.outbox.retry, self.name, [item.alert_id], at, str(exc))
                await asyncio.to_thread(self.outbox.release, self.name, [c.alert_id for c in claimed[i + 1 :]], at)
                return
            await asyncio.to_thread(self.outbox.delivered, self.name, [item.alert_id], utcnow())
            self.stats.delivered += 1
            await self._recovered()

    async def _give_up(self, ids: list[str], error: str, *, tried: bool = True) -> None:
        log.warning("notify %s: giving up %d notification(s): %s", self.name, len(ids), error)
        await asyncio.to_thread(self.outbox.fail, self.name, ids, error, tried=tried)
        self.stats.failed += len(ids)

    def _am_alert(self, group: Any, now: datetime, resolved_at: datetime | None) -> dict[str, Any]:
        return alertmanager_alert(
            group, now=now, resend_s=self.config.resend_s, resolved_at=resolved_at,
            description=self.descriptions.get(group.rule_id), public_url=self.public_url,
            response=self.responses.get(group.rule_id),
        )  # fmt: skip

    async def _deliver_groups(self, client: httpx.AsyncClient, claimed: list[Claimed]) -> None:
        """Alertmanager: the groups of the claimed alerts, in one POST; then each group is re-sent on schedule."""
        group_ids = list(dict.fromkeys(c.group_id for c in claimed if c.group_id))
        groups = await asyncio.to_thread(self.outbox.groups, group_ids)
        orphans = [c.alert_id for c in claimed if c.group_id not in groups]
        if orphans:
            await self._give_up(orphans, "the alert has no alert group", tried=False)
        ids = [c.alert_id for c in claimed if c.group_id in groups]
        if not ids:
            return
        now = utcnow()
        body = orjson.dumps([self._am_alert(groups[g], now, None) for g in group_ids if g in groups])
        try:
            await self._post(client, self.url, body, {})
        except DeliveryError as exc:
            if exc.permanent:
                await self._give_up(ids, str(exc))
            else:
                await asyncio.to_thread(self.outbox.retry, self.name, ids, self._pause(exc), str(exc))
            return
        # the schedule first: a crash before the rows are settled re-posts them, which Alertmanager absorbs
        resend_at = now + timedelta(seconds=self.config.resend_s)
        await asyncio.to_thread(self.resends.firing, self.name, [g for g in group_ids if g in groups], resend_at)
        await asyncio.to_thread(self.outbox.delivered, self.name, ids, utcnow())
        self.stats.delivered += len(ids)
        await self._recovered()

    async def _resend_due(self, client: httpx.AsyncClient) -> bool:
        """Alertmanager: send the groups that are due again, firing or resolved."""
        now = utcnow()
        lease_until = now + timedelta(seconds=self.config.timeout_s + 30)
        claimed = await asyncio.to_thread(self.resends.claim, self.name, now, limit=100, lease_until=lease_until)
        if not claimed:
            return False
        groups = await asyncio.to_thread(self.outbox.groups, [r.group_id for r in claimed])
        alerts: list[dict[str, Any]] = []
        sent: list[Resend] = []
        finished = [r.group_id for r in claimed if r.group_id not in groups]
        newly_resolved = 0
        for r in claimed:
            group = groups.get(r.group_id)
            if group is None:
                continue
            state, resolved_at = r.state, r.resolved_at
            if state == FIRING and utc(group.last_seen) + timedelta(seconds=group.suppress_s) <= now:
                state, resolved_at = RESOLVED, now  # the suppression window closed
                newly_resolved += 1
            if state == RESOLVED and resolved_at is not None and now - resolved_at >= RESOLVED_RESEND:
                finished.append(r.group_id)
                continue
            alerts.append(self._am_alert(group, now, resolved_at if state == RESOLVED else None))
            sent.append(Resend(r.group_id, state, resolved_at, now + timedelta(seconds=self.config.resend_s)))
        if finished:
            await asyncio.to_thread(self.resends.finish, self.name, finished)
        if not alerts:
            return True
        try:
            await self._post(client, self.url, orjson.dumps(alerts), {})
        except DeliveryError as exc:
            at = now + timedelta(seconds=self.config.resend_s) if exc.permanent else self._pause(exc)
            await asyncio.to_thread(self.resends.retry, self.name, [s.group_id for s in sent], at, str(exc))
            return True
        await asyncio.to_thread(self.resends.settle, self.name, sent)
        self.stats.resends += sum(1 for s in sent if s.state == FIRING)
        self.stats.resolved += newly_resolved
        await self._recovered()
        return True

    async def _housekeep(self) -> None:
        """Give up rows older than max_age; drop the oldest beyond max_pending."""
        cfg = self.config
        now = utcnow()
        expired = await asyncio.to_thread(
            self.outbox.expire, self.name, now - timedelta(seconds=cfg.max_age_s), now,
            f"not delivered within max_age ({cfg.max_age_s:g}s)",
        )  # fmt: skip
        dropped = await asyncio.to_thread(
            self.outbox.bound, self.name, cfg.max_pending, now, f"outbox full: more than max_pending={cfg.max_pending}"
        )
        if expired or dropped:
            log.warning("notify %s: %d notification(s) expired, %d dropped (outbox full)", self.name, expired, dropped)
        self.stats.failed += expired
        self.stats.dropped += dropped


class Sender:
    """The sinks' tasks, started and stopped with the process (serve: the app's lifespan; detect: beside the
    consumer)."""

    def __init__(
        self, engine: Engine, sinks: Sequence[SinkConfig], *, public_url: str | None = None,
        descriptions: Mapping[str, str] | None = None, poll_s: float = 1.0, housekeeping_s: float = 30.0,
        responses: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.sinks = tuple(sinks)
        self.outbox = Outbox(engine)
        self.public_url = public_url
        self.descriptions = dict(descriptions or {})
        self.responses = dict(responses or {})
        self.poll_s = poll_s
        self.housekeeping_s = housekeeping_s
        self.workers: dict[str, SinkWorker] = {}
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resends = Resends(engine)

    def routes(self) -> list[OutboxRoute]:
        """What the batch writer queues for (every sink, with its filters)."""
        return [sink.route() for sink in self.sinks]

    @property
    def stats(self) -> dict[str, SinkStats]:
        return {name: worker.stats for name, worker in self.workers.items()}

    def depths(self) -> dict[str, int]:
        """Pending notifications per configured sink (a database query: call it from a thread)."""
        found = self.outbox.depths()
        return {sink.name: found.get(sink.name, 0) for sink in self.sinks}

    def start(self) -> None:
        """Start one task per sink on the running loop."""
        self._stopping = asyncio.Event()
        for sink in self.sinks:
            worker = SinkWorker(
                sink, self.outbox, self._resends, self._stopping, public_url=self.public_url,
                descriptions=self.descriptions, poll_s=self.poll_s, housekeeping_s=self.housekeeping_s,
                responses=self.responses,
            )  # fmt: skip
            self.workers[sink.name] = worker
            self._tasks.append(asyncio.create_task(worker.run(), name=f"notify {sink.name}"))

    async def stop(self) -> None:
        """Stop the tasks: a delivery in flight finishes (bounded by its timeout); rows not yet tried are put back."""
        if self._stopping is None:
            return
        self._stopping.set()
        if self._tasks:
            limit = max(sink.timeout_s for sink in self.sinks) * 2 + 10
            _done, late = await asyncio.wait(self._tasks, timeout=limit)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._tasks.clear()
