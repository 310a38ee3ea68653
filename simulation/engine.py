"""Discrete-event engine: simulated processes (generators) scheduled on a heap emit requests at ``now``.

A process is a generator that issues requests through :meth:`Engine.request` and yields the
microseconds to sleep before it resumes. :meth:`Engine.run` interleaves the processes with the
emitter's queue, so events come out in stageTimestamp order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from simulation.clock import SECOND
from simulation.emitter import Actor, Emitter, Event

Process = Iterator[int]  # yields the µs to sleep before it resumes


class Engine:
    def __init__(self, em: Emitter, start_us: int) -> None:
        self.em = em
        self.rng = em.rng
        self.start = start_us
        self.now = start_us
        self._queue: list[tuple[int, int, Process]] = []
        self._seq = 0

    def spawn(self, delay: int, proc: Process) -> None:
        """Start ``proc`` ``delay`` µs from now (processes due at the same time run in spawn order)."""
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, proc))

    def run(self) -> Iterator[tuple[int, Event]]:
        """Yield (stageTimestamp µs, event) forever, in stageTimestamp order."""
        queue, out = self._queue, self.em.out
        pop, push = heapq.heappop, heapq.heappush
        while True:
            t_next = queue[0][0]
            while out and out[0][0] <= t_next:
                ts, _, ev = pop(out)
                yield ts, ev
            t, seq, proc = pop(queue)
            self.now = t
            try:
                delay = next(proc)
            except StopIteration:
                continue
            push(queue, (t + delay, seq, proc))

    def request(self, actor: Actor, verb: str, uri: str, ref: dict[str, str] | None, **kw: Any) -> str:
        """Emit a request that starts now (keywords as :meth:`Emitter.request`); returns its auditID."""
        return self.em.request(self.now, actor, verb, uri, ref, **kw)

    def jitter(self, base_s: float, frac: float) -> int:
        """``base_s`` seconds plus up to ``frac`` of it, in µs."""
        return int(base_s * SECOND * (1 + frac * self.rng.random()))

    def exp_s(self, mean_s: float) -> int:
        """An exponentially distributed pause of mean ``mean_s`` seconds, in µs."""
        return int(self.rng.expovariate(1 / mean_s) * SECOND)
