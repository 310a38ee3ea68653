"""Several worker processes on one listening socket (`ingest --workers N`), for when one process is CPU-bound.

The parent binds the port, then forks the workers; each runs the whole app (its own event loop, Kafka producers
and metrics) on the inherited socket, and the kernel hands each new connection to one of them. Ordering per
principal does not depend on which worker takes a batch: every record is keyed by its principal, so one
principal's events land on one partition whichever worker produced them. The parent only supervises: SIGTERM or
SIGINT is passed on to the workers, and when one worker exits the others are stopped, so a broken worker never
leaves a half-capacity listener behind; the exit status is the first worker's that was not 0 (a worker ended
by SIGTERM or SIGINT counts as 0: it was asked to stop).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

_STOPPING = frozenset({signal.SIGTERM, signal.SIGINT})


def run_workers(count: int, serve: Callable[[], int]) -> int:
    """Run `serve` in `count` forked processes; return when all have exited, with the first failing status."""
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = serve()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children.append(pid)

    def stop(signum: int, _frame: FrameType | None) -> None:
        _signal_all(children, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        while children:
            pid, wait_status = os.wait()
            if pid not in children:
                continue
            children.remove(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if -code in _STOPPING:
                code = 0  # stopped as asked (uvicorn ends by raising the signal it caught again)
            status = status or (code if code >= 0 else 128 - code)
            _signal_all(children, signal.SIGTERM)  # one gone: stop the others (no-op once stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # exited meanwhile; os.wait() collects it
