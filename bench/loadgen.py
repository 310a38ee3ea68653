"""A lean HTTP/1.1 load generator for `bench.ingest`, run as its own process so its CPU is its own and reported.

    python -m bench.loadgen URL BODIES_FILE --clients 8 --seconds 20

Each request is built once (head and body) before the clock starts; each client keeps one connection alive and
sends the requests in turn, one at a time, reading each answer (status line, headers, Content-Length body) with
asyncio streams: no HTTP library on the path. BODIES_FILE holds the bodies, each prefixed by its length as
8 bytes big-endian. The last line of output is a JSON object: requests and failures per status, seconds,
latencies (p50/p99 ms) and the generator's own CPU seconds (user + system, from `resource`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.arguments import at_least, more_than


def read_bodies(path: Path) -> list[bytes]:
    data = path.read_bytes()
    bodies, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 8], "big")
        bodies.append(data[at + 8 : at + 8 + size])
        at += 8 + size
    return bodies


def write_bodies(path: Path, bodies: list[bytes]) -> None:
    path.write_bytes(b"".join(len(body).to_bytes(8, "big") + body for body in bodies))


def requests_for(url: str, bodies: list[bytes]) -> list[bytes]:
    """Whole requests, head and body, ready to write."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return [
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def load(url: str, requests: list[bytes], clients: int, seconds: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        j = i
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(requests[j % len(requests)])
                status = await _answer(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                j += clients
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else 0.0

    return {"statuses": {str(k): v for k, v in statuses.items()}, "seconds": elapsed, "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "requests": len(latencies)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("url")
    parser.add_argument("bodies", type=Path)
    parser.add_argument("--clients", type=at_least(1), default=8)
    parser.add_argument("--seconds", type=more_than(0), default=20.0)
    args = parser.parse_args()
    requests = requests_for(args.url, read_bodies(args.bodies))
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(load(args.url, requests, args.clients, args.seconds))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
