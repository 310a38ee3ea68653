"""Running the notification sender in the test's own event loop, with bounded waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from api.store import AlertStore
from auditwatch.notify.config import SinkConfig, parse_sink
from auditwatch.notify.sender import Sender


async def until(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def with_sender(
    store: AlertStore, specs: Sequence[str], body: Callable[[Sender, list[SinkConfig]], Awaitable[None]]
) -> Sender:
    """Start a sender for the sinks of `specs` (fast polls), run `body`, stop the sender; returns it."""
    sinks = [parse_sink(spec) for spec in specs]
    sender = Sender(store.engine, sinks, public_url="https://auditwatch.test", poll_s=0.1, housekeeping_s=0.3)

    async def main() -> None:
        sender.start()
        try:
            await asyncio.wait_for(body(sender, sinks), 120)
        finally:
            await sender.stop()

    asyncio.run(main())
    return sender
