"""event -> detectors -> alerts. The same synchronous core serves the webhook, replay and the consumer.

Two guarantees for the callers that store what it finds:

- Per-event isolation: with a `failures` list, an exception while one event is processed (a detector's
  `detect`, the alert it builds, its redaction) does not stop the batch: the event is quarantined (a
  `Rejected` naming the detector and the error) and the other detectors' alerts for it are kept. What the
  failing detector changed in its state before raising stays, like any other change of the batch.
- Batches: between `begin()` and `commit()`, the memory of seen events and the state of every stateful
  detector change tentatively; `rollback()` restores exactly the state `begin()` saw. A caller commits
  once the batch's alerts are stored, so that an event counts as seen (and moves detector state) only
  then, and a batch redelivered after a failed write gives the alerts of the first attempt. Outside a
  batch (replay) nothing is journaled.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detectors.alerts import Alert
from detectors.base import Detector, Stateful, StatefulDetector, Transactional
from detectors.errors import describe_error
from detectors.events import STAGES, AuditEvent, Rejected, copy_key
from detectors.scope import RESOURCE, STAGE, RouteKey, Scope, route_key, scope_of
from detectors.streamclock import Slot, StreamClock

if TYPE_CHECKING:
    from detectors.tuning.tuning import Tuning

DEDUPE_WINDOW = 200_000  # events remembered to drop exact duplicates
MAX_ROUTES = 4096  # routing keys remembered (a few hundred in a real cluster; unknown resources can add more)

SeenKey = str  # `copy_key`
Route = tuple[tuple[Detector, ...], tuple[Slot, ...]]  # an event's detectors, and the clock slots it moves


@dataclass
class _Batch:
    """What the open batch changed outside the detectors' own journals."""

    remembered: int  # seen events remembered when the batch began
    forgotten: list[SeenKey] = field(default_factory=list)  # of those, the ones the batch pushed out, oldest first
    snapshots: list[tuple[StatefulDetector, dict[str, Any]]] = field(default_factory=list)  # non-Transactional


class Pipeline:
    """Runs every detector that can apply to an event, in load order.

    Detectors declare their scope (`detectors.scope`): the stages and resources they look at, and native
    rules a condition over the event's routing key (stage, verb, resource, subresource, response code). The
    pipeline routes each event to the detectors whose scope admits it, the route of each key computed once,
    so that the common case (a lease update, a watch) touches only the few detectors that could fire on it.
    With `routing="declared"` it routes by stages and resources alone (the reference the tests compare the
    routes with). With a site `tuning`, disabled rules do not run and every alert goes through it
    (`detectors.tuning.tuning`).
    """

    def __init__(self, detectors: Sequence[Detector], tuning: Tuning | None = None, *, routing: str = "scoped") -> None:
        if routing not in ("scoped", "declared"):
            raise ValueError(f"routing must be 'scoped' or 'declared', not {routing!r}")
        self.tuning = tuning
        self.routing = routing
        self.detectors = tuple(detectors if tuning is None else tuning.enabled(detectors))
        self._scopes: tuple[tuple[Detector, Scope], ...] = tuple((d, scope_of(d)) for d in self.detectors)
        self._routes: dict[RouteKey, Route] | None = {} if routing == "scoped" else None
        self._index: dict[str, tuple[dict[str, tuple[Detector, ...]], tuple[Detector, ...]]] = {}
        for stage in STAGES:
            applicable = [d for d in self.detectors if d.stages is None or stage in d.stages]
            wildcard = tuple(d for d in applicable if d.resources is None)
            resources = {r for d in applicable if d.resources is not None for r in d.resources}
            by_resource = {
                r: tuple(d for d in applicable if d.resources is None or r in d.resources) for r in resources
            }
            self._index[stage] = (by_resource, wildcard)
        self._stateful: tuple[StatefulDetector, ...] = tuple(d for d in self.detectors if isinstance(d, Stateful))
        self._transactional = tuple(d for d in self._stateful if isinstance(d, Transactional))
        self._journal_less = tuple(d for d in self._stateful if not isinstance(d, Transactional))
        # recently seen event identities, oldest first; only stateful detectors need it
        self._seen: set[SeenKey] | None = set() if self._stateful else None
        self._seen_order: deque[SeenKey] = deque()
        self._batch: _Batch | None = None
        self._clock = StreamClock(self.detectors)

    def _duplicate(self, event: AuditEvent) -> bool:
        """An event seen recently (a retried webhook batch, a record produced twice) must not count twice
        in stateful detectors. Identity is (auditID, stage, stageTimestamp): auditID alone is client-chosen."""
        assert self._seen is not None
        key = copy_key(event.raw)
        if key in self._seen:
            return True
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > DEDUPE_WINDOW:
            # O(1): a deque of arrival order (deleting from the front of a dict would make iteration O(n))
            oldest = self._seen_order.popleft()
            self._seen.discard(oldest)
            batch = self._batch
            if batch is not None and len(batch.forgotten) < batch.remembered:
                batch.forgotten.append(oldest)
        return False

    def candidates(self, event: AuditEvent) -> tuple[Detector, ...]:
        """The detectors whose scope admits the event, in load order."""
        return self._routed(event)[0]

    def _routed(self, event: AuditEvent) -> tuple[tuple[Detector, ...], tuple[Slot, ...] | None]:
        """The event's detectors, and the stream clock's slots it moves (None: the clock reads the event)."""
        routes = self._routes
        if routes is not None:
            key = event.route
            if key is None:
                key = route_key(event.raw)
            if key is not None:
                route = routes.get(key)
                if route is None:
                    route = self._route(key, routes)
                return route
        return self._declared_candidates(event), None

    def _route(self, key: RouteKey, routes: dict[RouteKey, Route]) -> Route:
        if len(routes) >= MAX_ROUTES:
            routes.clear()
        stage, resource = key[STAGE], key[RESOURCE]
        if stage not in STAGES:
            route: Route = ((), ())
        else:
            detectors = tuple(d for d, scope in self._scopes if scope.admits(key))
            route = (detectors, self._clock.slots(stage, resource))
        routes[key] = route
        return route

    def _declared_candidates(self, event: AuditEvent) -> tuple[Detector, ...]:
        entry = self._index.get(event.stage)
        if entry is None:
            return ()
        by_resource, wildcard = entry
        ref = event.raw.get("objectRef")
        resource = ref.get("resource") if isinstance(ref, dict) else None
        if resource is None:
            return wildcard
        return by_resource.get(resource, wildcard)

    @property
    def remembers_events(self) -> bool:
        """Whether the memory of seen events holds any (a pipeline that processed none does not)."""
        return bool(self._seen_order)

    def process(self, event: AuditEvent, failures: list[Rejected] | None = None) -> list[Alert]:
        """The alerts of one event. With `failures`, an exception quarantines the event there (see the module
        docstring) and the other detectors still run; without, it propagates (rule tests want to see it)."""
        if self._seen is not None:
            try:
                if self._duplicate(event):
                    return []
            except Exception as exc:
                if failures is None:
                    raise
                failures.append(_unprocessable(event, exc))
                return []
        return self.process_unique(event, failures)

    def process_unique(self, event: AuditEvent, failures: list[Rejected] | None = None) -> list[Alert]:
        """`process` for an event that the caller knows is no copy of one the pipeline saw in its dedupe window:
        the memory of seen events is neither read nor written (replay, whose reader drops copies already)."""
        try:
            routes, key = self._routes, event.route
            route = routes.get(key) if routes is not None and key is not None else None  # `_routed`'s usual case
            candidates, slots = route if route is not None else self._routed(event)
            if slots is None:
                self._clock.see(event)
            elif slots:
                self._clock.see_in(event, slots)
        except Exception as exc:
            if failures is None:
                raise
            failures.append(_unprocessable(event, exc))
            return []
        alerts: list[Alert] = []
        errors: list[str] | None = None
        for detector in candidates:
            try:
                found = detector.detect(event)
            except Exception as exc:
                if failures is None:
                    raise
                errors = [*(errors or ()), f"detector {detector.id} raised {describe_error(exc)}"]
                continue
            if found:
                alerts.extend(found)
        if errors and failures is not None:
            failures.append(Rejected(event.origin, "; ".join(errors), event.raw))
        if alerts and self.tuning is not None:
            return self.tuning.apply(alerts)
        return alerts

    def begin(self) -> None:
        """Open a batch: from here, changes are tentative until `commit()` or `rollback()`."""
        if self._batch is not None:
            raise RuntimeError("a batch is already open")
        # detectors without a journal of their own: a snapshot, restored on rollback
        self._batch = _Batch(len(self._seen_order), snapshots=[(d, d.snapshot()) for d in self._journal_less])
        for detector in self._transactional:
            detector.begin()
        self._clock.begin()

    def commit(self) -> None:
        """Keep what the open batch changed."""
        for detector in self._transactional:
            detector.commit()
        self._clock.commit()
        self._batch = None

    def rollback(self) -> None:
        """Restore exactly the state the open batch began with."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        for detector in self._transactional:
            detector.rollback()
        self._clock.rollback()
        for journal_less, state in batch.snapshots:
            journal_less.restore(state)
        if self._seen is not None:
            order, seen = self._seen_order, self._seen
            still_remembered = batch.remembered - len(batch.forgotten)
            for _ in range(len(order) - still_remembered):  # the batch's events, newest first
                seen.discard(order.pop())
            for key in reversed(batch.forgotten):
                order.appendleft(key)
                seen.add(key)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """`begin()`; `commit()` when the block ends normally, `rollback()` when it raises."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    @property
    def stateful(self) -> list[StatefulDetector]:
        """Detectors that keep state between events (they have snapshot/restore)."""
        return list(self._stateful)

    def snapshot(self) -> dict[str, Any]:
        """The state of every stateful detector, JSON-ready, keyed by detector id."""
        return {d.id: d.snapshot() for d in self.stateful}

    def restore(self, states: dict[str, Any]) -> None:
        """Load a snapshot; detectors absent from it (new rules) start empty, unknown ids are ignored."""
        if self._batch is not None:
            raise RuntimeError("restore() with a batch open")
        for detector in self.stateful:
            detector.restore(states.get(detector.id, {}))
        self._clock.clear()  # what came before the snapshot no longer counts

    def fresh(self) -> Pipeline:
        """A pipeline with the same detectors and state of its own (one per Kafka partition)."""
        detectors = [copy.deepcopy(d) if isinstance(d, Stateful) else d for d in self.detectors]
        return Pipeline(detectors, self.tuning, routing=self.routing)

    def process_all(self, events: Iterable[AuditEvent], failures: list[Rejected] | None = None) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self.process(event, failures))
        return alerts


def _unprocessable(event: AuditEvent, exc: Exception) -> Rejected:
    return Rejected(event.origin, f"event could not be processed: {describe_error(exc)}", event.raw)
