"""Distributed-mode throughput: webhook -> Kafka, against Kafka's own ProducerPerformance, in one run.

    .venv/bin/python -m bench.ingest [--seconds 20] [--clients 8] [--workers 1] [--runs 3]

Starts what it needs (`scripts/services.sh up`: Kafka and PostgreSQL on 127.0.0.1), warms up for 8 s, then,
`--runs` times:
  ingest:   `auditwatch ingest [--workers N]` as its own process; `bench.loadgen`, a lean raw-HTTP sender in a
            process of its own, POSTs pre-built 400-event EventLists of realistic events (the simulation package,
            ~1.4 KB each) over `--clients` keep-alive connections like apiservers do; events/s, POST latency
            p50/p99 (a POST returns once every record is acknowledged, acks=all), and the CPU the generator and
            the ingest processes used (share of one core; the machine's load average beside it);
  baseline: org.apache.kafka.tools.ProducerPerformance on the same broker, same record size and
            payloads (the same events), acks=all, lz4, the same record count, right after, into a fresh topic of
            the same 6 partitions;
then once consume: `detect`'s consumer loop (built-in rules, alerts into PostgreSQL) over the ingested topic.
Every topic it creates is deleted at the end (ProducerPerformance's after each run).
The last line gives the medians over the runs: `ingest_events_per_s=<n> producer_perf_events_per_s=<n>
ratio=<r> p99_ms=<n> generator_cpu=<share of a core> ingest_workers=<N> ingest_cpu=<share of a core, all workers>`:
with `--workers N` the figure is one `ingest` command running N worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from api.store import AlertStore
from auditwatch.consumer import Consumer
from bench.arguments import at_least, more_than
from bench.loadgen import write_bodies
from bench.machine import describe
from bench.servers import topic as throwaway_topic
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


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc (the ingest workers included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def load(url: str, bodies_file: Path, clients: int, seconds: float) -> dict[str, Any]:
    """Run `bench.loadgen` in its own process; its JSON result."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", url, str(bodies_file), "--clients", str(clients),
         "--seconds", str(seconds)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=seconds + 300,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def producer_perf(env: dict[str, str], records: int, payloads: list[bytes], workdir: Path) -> float:
    """ProducerPerformance's records/s into a fresh topic of as many partitions as ingest's (deleted after)."""
    payload_file = workdir / "payloads.txt"
    payload_file.write_bytes(b"\n".join(payloads[:20000]) + b"\n")
    mean = sum(len(p) for p in payloads) // len(payloads)
    with throwaway_topic(env["AUDITWATCH_KAFKA_BOOTSTRAP"], "bench-pp") as topic:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts/services.sh"), "kafka-class", "org.apache.kafka.tools.ProducerPerformance",
             "--topic", topic, "--num-records", str(records), "--throughput", "-1", "--payload-file",
             str(payload_file), "--producer-props", f"bootstrap.servers={env['AUDITWATCH_KAFKA_BOOTSTRAP']}",
             "acks=all", "enable.idempotence=true", "compression.type=lz4", "linger.ms=5", "batch.size=1048576"],
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


def start_ingest(env: dict[str, str], topic: str, port: int, workers: int, log: Any) -> subprocess.Popen[bytes]:
    ingest = subprocess.Popen(
        [sys.executable, "-m", "auditwatch.cli", "ingest", "--kafka", env["AUDITWATCH_KAFKA_BOOTSTRAP"],
         "--topic", topic, "--port", str(port), *(["--workers", str(workers)] if workers > 1 else [])],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return ingest
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or ingest.poll() is not None:
            ingest.kill()
            raise SystemExit("ingest did not become ready")
        time.sleep(0.2)


def measured_load(url: str, bodies_file: Path, args: argparse.Namespace, ingest_pid: int) -> dict[str, Any]:
    """One load: events/s, latencies, and the CPU shares (of one core) of the generator and the ingest processes."""
    cpu_before = tree_cpu_s(ingest_pid)
    result = load(url, bodies_file, args.clients, args.seconds)
    ingest_cpu = tree_cpu_s(ingest_pid) - cpu_before
    acknowledged = int(result["statuses"].get("200", 0)) * BATCH
    failed = sum(n for status, n in result["statuses"].items() if status != "200")
    if failed:
        print(f"warning: {failed} POSTs were not answered 200: {result['statuses']}", file=sys.stderr)
    return result | {"events": acknowledged, "rate": acknowledged / result["seconds"],
                     "generator_share": result["cpu_s"] / result["seconds"],
                     "ingest_share": ingest_cpu / result["seconds"], "load": load_average()}  # fmt: skip


def measured_command(workers: int) -> str:
    """What the figures measure: one process, or one `ingest` command whose workers share the port."""
    return f"one `ingest` command with {workers} workers" if workers > 1 else "one `ingest` process"


def summary(runs: list[dict[str, Any]], workers: int) -> str:
    """The last line: medians over the runs, the ingest CPU being that of all its workers together."""
    return (
        f"ingest_events_per_s={median([r['rate'] for r in runs]):.0f} "
        f"producer_perf_events_per_s={median([r['baseline'] for r in runs]):.0f} "
        f"ratio={median([r['rate'] / r['baseline'] for r in runs]):.3f} "
        f"p99_ms={median([r['p99_ms'] for r in runs]):.0f} "
        f"generator_cpu={median([r['generator_share'] for r in runs]):.2f} "
        f"ingest_workers={workers} ingest_cpu={median([r['ingest_share'] for r in runs]):.2f}"
    )


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=more_than(0), default=20.0, help="length of each webhook load (default 20)")
    parser.add_argument("--clients", type=at_least(1), default=8, help="concurrent webhook connections (default 8)")
    parser.add_argument("--workers", type=at_least(1), default=1, help="`auditwatch ingest --workers` (default 1)")
    parser.add_argument(
        "--runs", type=at_least(1), default=3, help="load + ProducerPerformance pairs; medians (default 3)"
    )
    args = parser.parse_args()
    # the consumer's one WARNING line per alert would otherwise reach stderr through logging's last resort
    logging.getLogger("auditwatch.detect").setLevel(logging.ERROR)

    env = services_env()
    bodies, payloads = make_bodies(40_000)
    mean = sum(len(p) for p in payloads) / len(payloads)
    port = free_port()
    command = measured_command(args.workers)
    print(describe())
    print(f"events: mean {mean:,.0f} B, {BATCH} per POST, {args.clients} connections, {command}, "
          f"{os.cpu_count()} cores; load average before: {load_average()}")  # fmt: skip
    # the topics are deleted after: a broker whose log grew by tens of GB over earlier runs measures slower
    bootstrap = env["AUDITWATCH_KAFKA_BOOTSTRAP"]
    with (
        tempfile.TemporaryDirectory(prefix="auditwatch-bench-") as tmp,
        throwaway_topic(bootstrap, "bench-ingest") as topic,
    ):
        env = env | {"AUDITWATCH_DEAD_LETTER_TOPIC": f"{topic}-dlq"}  # deleted with the topic
        workdir = Path(tmp)
        bodies_file = workdir / "bodies.bin"
        write_bodies(bodies_file, bodies)
        url = f"http://127.0.0.1:{port}/audit/webhook?timeout=30s"
        runs: list[dict[str, Any]] = []
        with (workdir / "ingest.log").open("wb") as log:
            ingest = start_ingest(env, topic, port, args.workers, log)
            try:
                # connections, producers, topic metadata, and the broker's JIT: after 2 s with 2 connections, the
                # first run took ~12 % fewer events/s than the next two in two rounds of three (2026-12-01)
                warm_up = load(url, bodies_file, args.clients, 8.0)
                total = int(warm_up["statuses"].get("200", 0)) * BATCH
                for i in range(args.runs):
                    run = measured_load(url, bodies_file, args, ingest.pid)
                    total += run["events"]
                    run["baseline"] = producer_perf(env, run["events"], payloads, workdir)
                    print(f"run {i + 1}: {command}: {run['events']:,} events acknowledged in {run['seconds']:.1f} s, "
                          f"{run['rate']:,.0f} events/s, POST p50 {run['p50_ms']:.0f} ms, p99 {run['p99_ms']:.0f} ms; "
                          f"CPU (share of one core): generator {run['generator_share']:.2f}, {command} "
                          f"{run['ingest_share']:.2f}; load average {run['load']}; ratio to ProducerPerformance "
                          f"{run['rate'] / run['baseline']:.3f}")  # fmt: skip
                    runs.append(run)
            finally:
                ingest.terminate()
                ingest.wait(timeout=30)
        consume_report(env, topic, total)
        print(summary(runs, args.workers))


def consume_report(env: dict[str, str], topic: str, total: int) -> None:
    records, secs, alerts = asyncio.run(consume(env, topic, total, env["AUDITWATCH_DB_URL"]))
    detect_rate = records / max(secs, 1e-9)
    print(f"detect: {records:,} records -> {alerts} alerts in PostgreSQL, {detect_rate:,.0f} events/s")
    # The same topic again, from the start in a new group, with a receipt per event in the same transactions.
    records, secs, _ = asyncio.run(consume(env, topic, total, env["AUDITWATCH_DB_URL"], record_receipts=True))
    receipts_rate = records / max(secs, 1e-9)
    print(f"detect --record-receipts: {records:,} records, {receipts_rate:,.0f} events/s, "
          f"ratio to detect without receipts {receipts_rate / detect_rate:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
