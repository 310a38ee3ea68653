"""`bench.loadgen`, the ingest benchmark's sender: its bodies file round-trips, and against a server it sends each
request whole on kept-alive connections, reads every answer and counts statuses."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.loadgen import load, read_bodies, requests_for, write_bodies


def test_bodies_round_trip(tmp_path: Path) -> None:
    bodies = [b'{"kind":"EventList","items":[]}', b"", b"x" * 70_000]
    write_bodies(tmp_path / "bodies.bin", bodies)
    assert read_bodies(tmp_path / "bodies.bin") == bodies


def test_it_sends_every_body_whole_and_reads_every_answer() -> None:
    received: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                received.append(await reader.readexactly(length))
                status = b"200 OK" if len(received) % 2 else b"503 Service Unavailable"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()  # the client closed its connection

    async def run() -> dict[str, object]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/audit/webhook?timeout=30s"
        try:
            return await load(url, requests_for(url, [b"a" * 100, b"b" * 200_000]), 2, 0.3)
        finally:
            server.close()

    result = asyncio.run(run())
    assert connections == 2
    assert set(received) == {b"a" * 100, b"b" * 200_000}
    statuses = result["statuses"]
    assert isinstance(statuses, dict) and sum(statuses.values()) == len(received) == result["requests"]
    assert set(statuses) == {"200", "503"}
