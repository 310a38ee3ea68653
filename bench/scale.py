"""Scale-out through the Kafka consumer group: 1 vs 2 `detect` consumers and 1 vs 2 `ingest` processes, one run.

    .venv/bin/python -m bench.scale [--events 300000] [--seconds 15] [--clients 8] [--skip-ingest] [--repeat 1]
                                    [--logs DIR]

Uses the running Kafka and PostgreSQL (`eval "$(scripts/services.sh env)"`; it never starts or stops them):
  detect:  a fresh 6-partition topic filled with --events realistic events (the simulation package's noisy
           cluster, published by `auditwatch replay --to-kafka`, keyed by principal as ingest keys them); then
           1, then 2 `auditwatch detect` processes, each run with a consumer group and a PostgreSQL database of
           its own, until the group's committed offsets reach the end of the topic. Events/s are counted from
           the moment the group is stable with all its members (so start-up and the first rebalance are not in
           the figure; the wall time from launch is reported beside it). It says whether every detect run
           stored the same alert ids (deterministic ids: they must be), and where each process's time went
           (bench/consumer_time.py: waiting for records, detecting, writing, committing, waiting for a core).
  ingest:  1, then 2 `auditwatch ingest` processes (a port each) in front of a fresh 6-partition topic, driven
           for --seconds by bench.ingest's load generator in a process of its own, its clients split evenly.
For each run: events/s, CPU of each auditwatch process, of the generator, of the Kafka broker and of the PostgreSQL
server (as cores busy over the measured interval, from /proc), the whole machine's busy share and load average.
--repeat runs everything again, 1 and 2 in turn, and reports medians. The topics and databases it creates are
deleted at the end (the consumer groups' offsets expire with the broker's offsets retention). The last line is
`detect_1=<n> detect_2=<n> detect_scaling=<r> ingest_1=<n> ingest_2=<n> ingest_scaling=<r>`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from bench.arguments import at_least, more_than
from bench.consumer_time import ConsumerClock, ConsumerTime
from bench.ingest import BATCH, free_port, make_bodies
from bench.loadgen import load, requests_for
from bench.machine import describe
from bench.proc_cpu import CpuMeter, just, load_average, shared_servers
from bench.servers import PARTITIONS, ROOT, alert_ids, database, end_offsets, services_env, topic
from simulation import ClusterProfile, benign_events, write_jsonl

POLL_S = 0.2


@dataclass(frozen=True)
class Run:
    """One measured run of `processes` detect or ingest processes."""

    role: str
    processes: int
    events: int  # counted in the measured interval
    seconds: float  # the measured interval
    wall_s: float  # from launching the processes to the end (start-up, joins and rebalances included)
    cpu: dict[str, float]  # cores busy over the interval: "detect-1", "broker", "postgres", "generator", ...
    machine_busy: float  # share of all cores busy over the interval (every process on the machine)
    load_average: float  # 1-minute, at the end
    consumed: int  # detect: records committed by the group at the end; ingest: records in the topic (warm-up too)
    alert_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    consumers: dict[str, ConsumerTime] = field(default_factory=dict)  # detect: where each process's time went

    @property
    def rate(self) -> float:
        return self.events / max(self.seconds, 1e-9)

    @property
    def per_cpu_second(self) -> float:
        """Events per CPU-second of the measured auditwatch processes: their cost per event, whatever their share."""
        own = sum(cores for name, cores in self.cpu.items() if name.startswith(self.role))
        return self.rate / own if own > 0 else 0.0

    @property
    def others(self) -> float:
        """Cores busy with everything else on the machine (other users of a shared machine, the kernel)."""
        return max(0.0, self.machine_busy * (os.cpu_count() or 1) - sum(self.cpu.values()))

    def line(self) -> str:
        cores = ", ".join(f"{name} {used:.2f}" for name, used in self.cpu.items())
        return (
            f"{self.role} x{self.processes}: {self.events:,} events in {self.seconds:.1f}s = {self.rate:,.0f} events/s "
            f"(wall {self.wall_s:.1f}s), {self.per_cpu_second:,.0f} per {self.role} CPU-second; cores busy: {cores}, "
            f"other processes {self.others:.2f}; machine {self.machine_busy:.0%} busy of {os.cpu_count()} cores, "
            f"load average {self.load_average:.1f}"
            + "".join(f"; {note}" for note in self.notes)
            + "".join(f"\n    {times.line(name)}" for name, times in self.consumers.items())
        )


def topic_env(env: dict[str, str], name: str) -> dict[str, str]:
    """The servers' environment, with the topic's own dead-letter topic (deleted with it) instead of the shared one,
    and text logs at INFO (bench.consumer_time reads detect's line per batch)."""
    return {**env, "AUDITWATCH_DEAD_LETTER_TOPIC": f"{name}-dlq", "AUDITWATCH_LOG_FORMAT": "text",
            "AUDITWATCH_LOG_LEVEL": "info"}  # fmt: skip


def auditwatch(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "auditwatch.cli", *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **env})  # fmt: skip


def log_tails(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> str:
    """The last lines of the processes' logs, for an error message (the logs go with the temporary directory)."""
    return "".join(f"\n--- {log.name} (exit {proc.poll()}):\n" + "\n".join(log.read_text(errors="replace")
                   .splitlines()[-15:]) for proc, log in zip(procs, logs, strict=True))  # fmt: skip


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def fill(env: dict[str, str], name: str, events: int, workdir: Path) -> list[int]:
    """Publish `events` realistic events (noisy cluster: some alerts) to the topic as ingest would key them."""
    path = workdir / "events.jsonl"
    write_jsonl(benign_events(ClusterProfile(nodes=50, seed=9, realism="noisy"), count=events), path)
    subprocess.run([sys.executable, "-m", "auditwatch.cli", "replay", "--quiet", "--to-kafka",
                    env["AUDITWATCH_KAFKA_BOOTSTRAP"], "--topic", name, str(path)],
                   cwd=ROOT, env={**os.environ, **topic_env(env, name)},
                   check=True, capture_output=True, timeout=900)  # fmt: skip
    path.unlink()
    return asyncio.run(end_offsets(env["AUDITWATCH_KAFKA_BOOTSTRAP"], name))


# ---------------------------------------------------------------------------------------------- detect


@dataclass
class _Progress:
    """What the drain watcher saw: when the group became stable with every member, and when it was done."""

    stable_at: float | None = None
    committed_at_stable: int = 0
    done_at: float | None = None
    committed: int = 0


async def _group_state(admin: AIOKafkaAdminClient, group: str) -> tuple[str, int]:
    response = (await admin.describe_consumer_groups([group]))[0].to_object()
    described = response["groups"][0]
    return str(described["state"]), len(described["members"])


async def _watch_drain(bootstrap: str, group: str, total: int, members: int, meters: tuple[CpuMeter, ConsumerClock],
                       procs: list[subprocess.Popen[bytes]], timeout_s: float) -> _Progress:  # fmt: skip
    """Poll the group until its committed offsets reach `total`; start the meters when it is stable with all members."""
    progress = _Progress()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.perf_counter() + timeout_s
        while progress.committed < total:
            if time.perf_counter() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"group {group}: {progress.committed:,} of {total:,} records committed, then "
                                   "a detect process exited or the time ran out")  # fmt: skip
            offsets = await admin.list_consumer_group_offsets(group)
            progress.committed = sum(max(meta.offset, 0) for meta in offsets.values())
            if progress.stable_at is None and await _group_state(admin, group) == ("Stable", members):
                for meter in meters:
                    meter.start()
                progress.stable_at, progress.committed_at_stable = time.perf_counter(), progress.committed
            await asyncio.sleep(POLL_S)
        progress.done_at = time.perf_counter()
    finally:
        await admin.close()
    return progress


def run_detect(env: dict[str, str], name: str, total: int, consumers: int, workdir: Path) -> Run:
    """`consumers` detect processes, a consumer group and a database of their own, until the topic is drained."""
    bootstrap, admin_url = env["AUDITWATCH_KAFKA_BOOTSTRAP"], env["AUDITWATCH_DB_URL"]
    group = f"bench-scale-{uuid.uuid4().hex[:8]}"
    with database(admin_url) as db_url:
        launched = time.perf_counter()
        logs = [workdir / f"detect-{consumers}-{i}.log" for i in range(consumers)]
        procs = [
            auditwatch(["detect", "--kafka", bootstrap, "--db", db_url, "--topic", name, "--group", group],
                       topic_env(env, name), log)
            for log in logs
        ]  # fmt: skip
        pids = {f"detect-{i + 1}": p.pid for i, p in enumerate(procs)}
        groups = {proc: just(pid) for proc, pid in pids.items()} | shared_servers(admin_url)
        meter, launch_meter = CpuMeter(groups), CpuMeter(groups)  # from the group's being stable, and from launch
        clock, launch_clock = ConsumerClock(pids), ConsumerClock(pids)  # where each consumer's time went, likewise
        launch_meter.start()
        launch_clock.start()
        try:
            timeout_s = 120 + total / 1000  # bounded: far above any rate seen here
            try:
                progress = asyncio.run(_watch_drain(bootstrap, group, total, consumers, (meter, clock), procs,
                                                    timeout_s))  # fmt: skip
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}{log_tails(procs, logs)}") from None
            notes: tuple[str, ...] = ()
            if progress.stable_at is None or progress.committed_at_stable > total // 2:  # a small topic
                progress.stable_at, progress.committed_at_stable = launched, 0
                meter, clock = launch_meter, launch_clock
                notes = ("counted from launch: most of the topic was drained before the group was seen stable",)
            cpu, busy = meter.stop()
            clock.stop()
        finally:
            stop_all(procs)
        assert progress.stable_at is not None and progress.done_at is not None
        return Run(
            role="detect", processes=consumers, events=progress.committed - progress.committed_at_stable,
            seconds=progress.done_at - progress.stable_at, wall_s=progress.done_at - launched, cpu=cpu,
            machine_busy=busy, load_average=load_average(), consumed=progress.committed, alert_ids=alert_ids(db_url),
            notes=notes, consumers=clock.read(dict(zip(pids, logs, strict=True))),
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------- ingest


def drive(urls: list[str], bodies: list[bytes], clients: int, seconds: float) -> tuple[int, float, float, float]:
    """bench.loadgen's sender against each URL at once, `clients` split evenly: (events acknowledged, POST p50 ms,
    p99 ms, s). With several URLs the latencies are the worst URL's: the generator reports percentiles only."""

    async def together() -> list[dict[str, Any]]:
        share = max(1, clients // len(urls))
        return list(await asyncio.gather(*(load(url, requests_for(url, bodies), share, seconds) for url in urls)))

    results = asyncio.run(together())
    acknowledged = sum(int(r["statuses"].get("200", 0)) for r in results) * BATCH
    return (acknowledged, max(float(r["p50_ms"]) for r in results), max(float(r["p99_ms"]) for r in results),
            max(float(r["seconds"]) for r in results))  # fmt: skip


def generator(urls: list[str], clients: int, seconds: float, body_events: int, conn: Connection) -> None:
    """The load generator's process: build the bodies, warm up, say ready, then load on "go"; send the result."""
    bodies, _ = make_bodies(body_events)
    drive(urls, bodies[:4], len(urls), 1.0)  # warm-up: connections, producers, topic metadata
    conn.send("ready")
    conn.recv()
    conn.send(drive(urls, bodies, clients, seconds))


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def run_ingest(env: dict[str, str], processes: int, traffic: tuple[int, float, int], workdir: Path) -> Run:
    """`processes` ingest processes, a port each, in front of a fresh topic; the generator in a process of its own,
    with `traffic` = (clients, seconds, events in its pre-built bodies)."""
    bootstrap = env["AUDITWATCH_KAFKA_BOOTSTRAP"]
    with topic(bootstrap, "bench-scale-ingest") as name:
        ports = [free_port() for _ in range(processes)]
        launched = time.perf_counter()
        procs = [
            auditwatch(["ingest", "--kafka", bootstrap, "--topic", name, "--port", str(port)],
                       topic_env(env, name), workdir / f"ingest-{processes}-{port}.log")
            for port in ports
        ]  # fmt: skip
        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        urls = [f"http://127.0.0.1:{port}/audit/webhook?timeout=30s" for port in ports]
        load_proc = spawn.Process(target=generator, args=(urls, *traffic, theirs), daemon=True)
        try:
            for port, proc in zip(ports, procs, strict=True):
                wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            load_proc.start()
            theirs.close()  # the generator's end is its own now: if it dies, recv() raises EOFError at once
            if not ours.poll(300):
                raise RuntimeError("the load generator did not get ready")
            ours.recv()
            groups = {f"ingest-{i + 1}": just(p.pid) for i, p in enumerate(procs)} | {"generator": just(load_proc.pid)}
            meter = CpuMeter(groups | shared_servers(env["AUDITWATCH_DB_URL"]))
            meter.start()
            ours.send("go")
            if not ours.poll(traffic[1] + 120):
                raise RuntimeError("the load generator did not finish")
            sent, p50_ms, p99_ms, elapsed = ours.recv()
            cpu, busy = meter.stop()
        finally:
            stop_all(procs)
            load_proc.join(timeout=30)
            if load_proc.is_alive():
                load_proc.kill()
        in_topic = sum(asyncio.run(end_offsets(bootstrap, name)))
        notes = (f"POST p50 {p50_ms:.0f} ms, p99 {p99_ms:.0f} ms",
                 f"{in_topic:,} records in the topic (warm-up included)")  # fmt: skip
        return Run(role="ingest", processes=processes, events=sent, seconds=elapsed,
                   wall_s=time.perf_counter() - launched, cpu=cpu, machine_busy=busy,
                   load_average=load_average(), consumed=in_topic, notes=notes)  # fmt: skip


# ---------------------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Report:
    runs: tuple[Run, ...]  # in the order they ran: 1 then 2 processes, detect then ingest, repeated
    partitions: tuple[int, ...]  # records in each partition of the detect topic

    @property
    def events(self) -> int:
        return sum(self.partitions)

    def of(self, role: str, processes: int) -> list[Run]:
        return [run for run in self.runs if (run.role, run.processes) == (role, processes)]

    def rate(self, role: str, processes: int) -> float:
        """The median events/s of the runs of `processes` `role` processes."""
        return statistics.median(run.rate for run in self.of(role, processes))

    def scaling(self, role: str) -> float:
        one = self.rate(role, 1)
        return self.rate(role, 2) / one if one else 0.0

    def roles(self) -> list[str]:
        return list(dict.fromkeys(run.role for run in self.runs))

    def lines(self) -> list[str]:
        sizes = ", ".join(f"{n:,}" for n in self.partitions)
        out = [f"topic: {self.events:,} records in {PARTITIONS} partitions ({sizes}; keyed by principal)"]
        out += [run.line() for run in self.runs]
        detect = self.of("detect", 1) + self.of("detect", 2)
        ids = {run.alert_ids for run in detect}
        digest = hashlib.sha256("\n".join(detect[0].alert_ids).encode()).hexdigest()[:12]
        out.append(f"alerts: {len(detect[0].alert_ids)} in each of the {len(detect)} detect runs, ids "
                   f"{'identical' if len(ids) == 1 else 'DIFFERENT'} (sha256 {digest})")  # fmt: skip
        for role in self.roles():
            cost = [statistics.median(run.per_cpu_second for run in self.of(role, n)) for n in (1, 2)]
            out.append(f"{role}: median {self.rate(role, 1):,.0f} events/s with 1 process, {self.rate(role, 2):,.0f} "
                       f"with 2, scaling 2 vs 1: {self.scaling(role):.2f}; per {role} CPU-second {cost[0]:,.0f} "
                       f"and {cost[1]:,.0f}")  # fmt: skip
        return out

    def summary(self) -> str:
        return " ".join(
            f"{role}_1={self.rate(role, 1):.0f} {role}_2={self.rate(role, 2):.0f} "
            f"{role}_scaling={self.scaling(role):.3f}"
            for role in self.roles()
        )


def measure(
    events: int,
    *,
    ingest_seconds: float = 0.0,
    clients: int = 8,
    body_events: int = 40_000,
    repeat: int = 1,
    logs: Path | None = None,
) -> Report:
    """The whole benchmark, `repeat` times over the same detect topic; ingest_seconds 0 skips the ingest runs.
    The load generator cycles through `body_events` events in pre-built bodies. The processes' logs go to `logs`
    (kept) when given, else to a temporary directory."""
    env = services_env()
    bootstrap = env["AUDITWATCH_KAFKA_BOOTSTRAP"]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="auditwatch-scale-") as tmp, topic(bootstrap, "bench-scale") as name:
        workdir = logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        partitions = fill(env, name, events, workdir)
        for _ in range(repeat):  # 1 and 2 in turn, so that the machine's load swings hit both alike
            done = len(runs)
            runs += [run_detect(env, name, sum(partitions), n, workdir) for n in (1, 2)]
            if ingest_seconds > 0:
                runs += [run_ingest(env, n, (clients, ingest_seconds, body_events), workdir) for n in (1, 2)]
            print(*(run.line() for run in runs[done:]), sep="\n", file=sys.stderr)  # progress, as each round ends
    return Report(runs=tuple(runs), partitions=tuple(partitions))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=at_least(1), default=300_000, help="events in the detect topic (default 300000)"
    )
    parser.add_argument("--seconds", type=more_than(0), default=15.0, help="length of each ingest load (default 15)")
    parser.add_argument(
        "--clients", type=at_least(2), default=8, help="concurrent webhook clients in all, split between the ingest "
        "processes (default 8)",
    )  # fmt: skip
    parser.add_argument("--skip-ingest", action="store_true", help="only the detect runs")
    parser.add_argument(
        "--repeat", type=at_least(1), default=1, help="rounds of every run; medians are reported (default 1)"
    )
    parser.add_argument("--logs", type=Path, help="keep the auditwatch processes' logs in this directory")
    args = parser.parse_args()
    print(describe())
    report = measure(args.events, ingest_seconds=0.0 if args.skip_ingest else args.seconds, clients=args.clients,
                     repeat=args.repeat, logs=args.logs)  # fmt: skip
    for line in report.lines():
        print(line)
    print(report.summary())


if __name__ == "__main__":
    main()
