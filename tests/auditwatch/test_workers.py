"""Worker processes on one port (`auditwatch.workers`): connections opened together, as an apiserver opens its
keep-alive connections, are spread over the workers, each accepting with asyncio's accept loop as uvicorn does."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path

from auditwatch.preflight import bind_listener
from auditwatch.workers import run_workers

CONNECTIONS = 32


def serve_counting(sock: socket.socket, reports: Path) -> int:
    """Serve on `sock` as uvicorn does (asyncio's server) until stopped, writing how many connections it has."""
    accepted: list[asyncio.BaseTransport] = []

    class Keep(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.append(transport)

    async def serve() -> None:
        await asyncio.get_running_loop().create_server(Keep, sock=sock)
        while True:
            # written aside then renamed: SIGTERM may end the worker mid-write, and a truncated file would read 0
            partial = reports / f"partial-{os.getpid()}"
            partial.write_text(str(len(accepted)))
            partial.replace(reports / f"accepted-{os.getpid()}")
            await asyncio.sleep(0.05)

    asyncio.run(serve())
    return 0


def accepted(reports: Path) -> list[int]:
    return [int(path.read_text()) for path in reports.glob("accepted-*")]


def test_connections_opened_together_are_spread_over_the_workers(tmp_path: Path) -> None:
    listener = bind_listener("127.0.0.1", 0, shared=True)
    address = listener.getsockname()
    clients: list[socket.socket] = []

    def connect_then_stop() -> None:
        deadline = time.monotonic() + 20
        while len(accepted(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(CONNECTIONS):  # all at once: the kernel completes them before a worker wakes to accept
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(address)
            clients.append(client)
        for client in clients:
            select.select([], [client], [], 10)
        while sum(accepted(tmp_path)) < CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the last counts written
        os.kill(os.getpid(), signal.SIGTERM)  # to run_workers, which stops the workers

    stopping = threading.Thread(target=connect_then_stop)
    stopping.start()
    try:
        status = run_workers(2, listener, lambda sock: serve_counting(sock, tmp_path))
    finally:
        stopping.join()
        for client in clients:
            client.close()
        listener.close()
    assert status == 0
    counts = accepted(tmp_path)
    assert len(counts) == 2 and sum(counts) == CONNECTIONS
    assert min(counts) > 0, counts  # all on one worker: P = 2**-31 when the kernel spreads them
