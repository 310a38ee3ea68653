"""Distributed-mode throughput: webhook -> Kafka, against Kafka's own ProducerPerformance, in one run.

    .venv/bin/python -m bench.ingest [--seconds 20] [--clients 8]

Starts what it needs (`scripts/services.sh up`: Kafka and PostgreSQL on 127.0.0.1), then:
  ingest:   `auditwatch ingest` as its own process; concurrent clients POST 400-event EventLists of
            realistic events (the simulation package, ~1.4 KB each) like apiservers do; events/s and POST
            latency p50/p99 (a POST returns once every record is acknowledged, acks=all);
  baseline: org.apache.kafka.tools.ProducerPerformance on the same broker, same record size and
            payloads (the same events), acks=all, lz4, the same record count;
  consume:  `detect`'s consumer loop (built-in rules, alerts into PostgreSQL) over the ingested topic.
The last line is `ingest_events_per_s=<n> producer_perf_events_per_s=<n> ratio=<r> p99_ms=<n>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

from api.store import AlertStore
from auditwatch.consumer import Consumer
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import ClusterProfile, benign_events

ROOT = Path(__file__).resolve().parent.parent
BATCH = 400


def services_env() -> dict[str, str]:
    subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "up"], check=True, timeout=900)
    out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "env"], check=True, capture_output=True,
                         text=True, timeout=60).stdout  # fmt: skip
    env = {}
    for line in out.splitlines():
        m = re.match(r"export (\w+)=(.*)", line)
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_bodies(count: int) -> tuple[list[bytes], list[bytes]]:
    """EventList bodies of BATCH events, and the individual event payloads (for ProducerPerformance)."""
    events = [orjson.dumps(e) for e in benign_events(ClusterProfile(nodes=50, seed=9), count=count)]
    bodies = [
        b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
        + b",".join(events[i : i + BATCH])
        + b"]}"
        for i in range(0, len(events) - BATCH + 1, BATCH)
    ]
    return bodies, events


async def load(url: str, bodies: list[bytes], clients: int, seconds: float) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    sent = 0
    failures = 0
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal sent, failures
        async with httpx.AsyncClient(timeout=60) as http:
            j = i
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                resp = await http.post(
                    url, content=bodies[j % len(bodies)], headers={"Content-Type": "application/json"}
                )
                latencies.append(time.perf_counter() - started)
                if resp.status_code == 200:
                    sent += BATCH
                else:
                    failures += 1
                j += clients

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    if failures:
        print(f"warning: {failures} POSTs were not answered 200", file=sys.stderr)
    return sent, latencies, elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def producer_perf(env: dict[str, str], topic: str, records: int, payloads: list[bytes], workdir: Path) -> float:
    payload_file = workdir / "payloads.txt"
    payload_file.write_bytes(b"\n".join(payloads[:20000]) + b"\n")
    mean = sum(len(p) for p in payloads) // len(payloads)
    create = ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server", env["AUDITWATCH_KAFKA_BOOTSTRAP"],
              "--create", "--topic", topic, "--partitions", "6", "--replication-factor", "1"]  # fmt: skip
    subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "kafka-class", *create], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/services.sh"), "kafka-class", "org.apache.kafka.tools.ProducerPerformance",
         "--topic", topic, "--num-records", str(records), "--throughput", "-1", "--payload-file", str(payload_file),
         "--producer-props", f"bootstrap.servers={env['AUDITWATCH_KAFKA_BOOTSTRAP']}", "acks=all",
         "enable.idempotence=true", "compression.type=lz4", "linger.ms=5", "batch.size=1048576"],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout  # fmt: skip
    final = [line for line in out.splitlines() if "records sent" in line][-1]
    rate = float(re.search(r"([\d.]+) records/sec", final).group(1))  # type: ignore[union-attr]
    print(f"ProducerPerformance ({records:,} records of the same events, mean {mean} B): {final.strip()}")
    return rate


async def consume(
    env: dict[str, str], topic: str, total: int, db_url: str, *, record_receipts: bool = False
) -> tuple[int, float, int]:
    store = AlertStore(db_url)
    store.migrate()
    detector = Consumer(bootstrap=env["AUDITWATCH_KAFKA_BOOTSTRAP"], topic=topic, group=f"bench-{uuid.uuid4().hex[:6]}",
                        pipeline=Pipeline(load_rules(["builtin"])), store=store,
                        record_receipts=record_receipts)  # fmt: skip
    started: float | None = None

    async def watch() -> None:
        nonlocal started
        deadline = time.perf_counter() + 300
        while detector.stats.records < total and time.perf_counter() < deadline:
            if started is None and detector.stats.records:
                started = time.perf_counter()
            await asyncio.sleep(0.01)
        detector.stop()

    watcher = asyncio.create_task(watch())
    stats = await detector.run()
    await watcher
    elapsed = time.perf_counter() - (started or time.perf_counter())
    store.close()
    return stats.records, elapsed, stats.alerts


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the webhook load (default 20)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent webhook clients (default 8)")
    args = parser.parse_args()

    env = services_env()
    bodies, payloads = make_bodies(40_000)
    mean = sum(len(p) for p in payloads) / len(payloads)
    topic = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="auditwatch-bench-") as tmp:
        workdir = Path(tmp)
        log = (workdir / "ingest.log").open("wb")
        ingest = subprocess.Popen(
            [sys.executable, "-m", "auditwatch.cli", "ingest", "--kafka", env["AUDITWATCH_KAFKA_BOOTSTRAP"],
             "--topic", topic, "--port", str(port)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("ingest did not become ready")
                time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/audit/webhook?timeout=30s"
            asyncio.run(load(url, bodies[:4], 2, 2.0))  # warm-up: connections, producer, topic metadata
            sent, latencies, elapsed = asyncio.run(load(url, bodies, args.clients, args.seconds))
        finally:
            ingest.terminate()
            ingest.wait(timeout=30)
            log.close()
        ingest_rate = sent / elapsed
        print(f"events: mean {mean:,.0f} B, {BATCH} per POST, {args.clients} concurrent clients, {elapsed:.1f}s")
        print(f"ingest: {sent:,} events acknowledged, {ingest_rate:,.0f} events/s, "
              f"POST p50 {pct(latencies, 0.5):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms")  # fmt: skip
        baseline = producer_perf(env, f"bench-pp-{uuid.uuid4().hex[:6]}", sent, payloads, workdir)
        total = sent + 4 * BATCH  # the warm-up batches are in the topic too
        records, secs, alerts = asyncio.run(consume(env, topic, total, env["AUDITWATCH_DB_URL"]))
        detect_rate = records / max(secs, 1e-9)
        print(f"detect: {records:,} records -> {alerts} alerts in PostgreSQL, {detect_rate:,.0f} events/s")
        # The same topic again, from the start in a new group, with a receipt per event in the same transactions.
        records, secs, _ = asyncio.run(consume(env, topic, total, env["AUDITWATCH_DB_URL"], record_receipts=True))
        receipts_rate = records / max(secs, 1e-9)
        print(f"detect --record-receipts: {records:,} records, {receipts_rate:,.0f} events/s, "
              f"ratio to detect without receipts {receipts_rate / detect_rate:.2f}")  # fmt: skip
        print(
            f"ingest_events_per_s={ingest_rate:.0f} producer_perf_events_per_s={baseline:.0f} "
            f"ratio={ingest_rate / baseline:.3f} p99_ms={pct(latencies, 0.99):.0f}"
        )


if __name__ == "__main__":
    main()
