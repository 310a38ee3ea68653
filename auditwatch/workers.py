"""Several worker processes on one port (`ingest --workers N`), for when one process is CPU-bound.

The parent binds the port (with SO_REUSEPORT), then forks the workers; each runs the whole app (its own event
loop, Kafka producers and metrics) on a listening socket of its own on that port: the first on the parent's, the
others on one each bound after the fork. The kernel spreads new connections over the workers' sockets (by a hash of
the connection's addresses). On one shared socket it would not: the worker that wakes first accepts every
connection then waiting, and an apiserver's keep-alive connections, opened together, would all stay with that one
worker while the others idle. Ordering per principal does not depend on which worker takes a batch: every record
is keyed by its principal, so one principal's events land on one partition whichever worker produced them. The
parent only supervises: SIGTERM or SIGINT is passed on to the workers, and when one worker exits the others are
stopped, so a broken worker never leaves a half-capacity listener behind; the exit status is the first worker's
that was not 0 (a worker ended by SIGTERM or SIGINT counts as 0: it was asked to stop). A parent killed
without a chance to pass anything on (SIGKILL, the OOM killer) takes its workers with it: the kernel sends each
SIGTERM (Linux's PR_SET_PDEATHSIG), so that none keeps serving the port beside a restarted instance.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

_STOPPING = frozenset({signal.SIGTERM, signal.SIGINT})


def run_workers(count: int, listener: socket.socket, serve: Callable[[socket.socket], int]) -> int:
    """Run `serve` in `count` forked processes, each on a listening socket of its own on the address of `listener`
    (bound with SO_REUSEPORT); return when all have exited, with the first failing status."""
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[int] = []
    parent = os.getpid()
    for worker in range(count):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                _die_with(parent)
                sock = listener if worker == 0 else same_port(listener)
            except OSError as exc:
                print(f"auditwatch worker {worker + 1}: cannot listen: {exc}", file=sys.stderr)
            else:
                status = serve(sock)
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


def same_port(listener: socket.socket) -> socket.socket:
    """A new listening socket on the address of `listener`, which was bound with SO_REUSEPORT."""
    sock = socket.socket(listener.family, listener.type, listener.proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(listener.getsockname())
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when `parent` dies (Linux); exit now if it died already (before
    the request was made, when the process was handed to another parent)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # exited meanwhile; os.wait() collects it
