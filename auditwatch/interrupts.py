"""Stopping an archive command from outside: SIGTERM (`kill`, systemd, Kubernetes, `timeout`) taken as Ctrl-C is.

SIGINT raises KeyboardInterrupt where the main thread is; within `sigterm_interrupts`, SIGTERM raises `Terminated`,
a KeyboardInterrupt, so that what handles Ctrl-C (replay stores what it found and says where it stopped) handles
both. The commands install it around their run and the previous handler comes back after: `replay()` called as
a library (bench/) leaves signals to its caller. A coroutine run by `asyncio.run` is cancelled instead by either
(`cancelled_by_signals`), as asyncio.run cancels it on Ctrl-C, but also when the signal comes while the coroutine
waits outside an await (a read of a pipe). `held_signals` holds both back while a line is written, so
that output stopped by either ends with a whole line. The exit status is 128 + the signal's number, as a shell
reports a process that a signal ended: 130 for Ctrl-C, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
_STOPPING = frozenset({signal.SIGINT, signal.SIGTERM})


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is (as Ctrl-C raises KeyboardInterrupt)."""

    signum = signal.SIGTERM


def signal_of(stop: BaseException) -> signal.Signals:
    """The signal that a KeyboardInterrupt stands for: SIGTERM for `Terminated`, else SIGINT (Ctrl-C)."""
    return getattr(stop, "signum", signal.SIGINT)


def exit_status(signum: int) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + signum


def stopped_by(signum: int) -> str:
    """How a summary names what stopped the command."""
    return "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises `Terminated` within the block (a decorator too); the previous handler is put back after."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def cancelled_by_signals(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` in the task that asyncio.run runs: Ctrl-C or SIGTERM cancels it (a second signal raises where
    the main thread is), and it ends with KeyboardInterrupt (`Terminated` for SIGTERM), as asyncio.run cancels its
    task on Ctrl-C and then raises KeyboardInterrupt. A signal that comes while the task runs its own code (it
    reads archives between its awaits, and a pipe's read waits for the writer) raises CancelledError there, as an
    await would: asyncio.run's own Ctrl-C handler would only ask for a cancellation, which waits for that read to
    end, and a second Ctrl-C would be needed. Ctrl-C is taken over only from a Python handler (asyncio.run's, or
    Python's default): ignored (as in a shell's background jobs), it stays ignored. The previous handlers are put
    back after."""
    import asyncio  # not at import: `auditwatch --help` stays quick

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stopped_by: int | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopped_by
        if stopped_by is not None or task.done():
            raise _interrupt(signum)
        stopped_by = signum
        if asyncio.current_task(loop) is task:  # in its own code, which may wait (a read of a pipe): cancelled here
            raise asyncio.CancelledError
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # wake the loop up if it waits in select()

    taken = [signal.SIGTERM]
    if callable(signal.getsignal(signal.SIGINT)):
        taken.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, on_signal) for signum in taken}
    try:
        return await coro
    except asyncio.CancelledError:
        if stopped_by is not None:
            raise _interrupt(stopped_by) from None
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def held_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back within the block (their handlers run at its end): what it writes is written
    whole. One that came before raises at its start."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # the mask as it is; a signal already come raises here
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
