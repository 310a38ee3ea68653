"""Real Kafka and PostgreSQL for integration tests.

The shared servers come from `scripts/services.sh up` (CI starts them before pytest). Fault tests that
stop a server get a private one of their own (same jars / binaries, other ports, a temp directory), so
they never disturb the shared ones. In CI a missing server fails the test; locally it skips with a hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from tests.support.paths import ROOT
from tests.support.processes import free_port

KAFKA = os.environ.get("AUDITWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PG_URL = os.environ.get("AUDITWATCH_DB_URL", "postgresql+psycopg://auditwatch@127.0.0.1:5432/auditwatch")


def _reachable(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def require(host_port: str, what: str) -> None:
    if _reachable(host_port):
        return
    message = f"{what} is not reachable at {host_port}: run `scripts/services.sh up`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def kafka_bootstrap() -> str:
    require(KAFKA, "Kafka")
    return KAFKA


@contextlib.contextmanager
def new_topics_deleted(bootstrap: str = KAFKA) -> Iterator[None]:
    """The topics created on the shared Kafka meanwhile are deleted on leaving, but Kafka's own (`__...`) and the
    benchmarks' (`bench-...`, which may run beside): a day of test runs otherwise leaves hundreds of topics and tens
    of GB in the broker's log, and it slows down. Nothing is done when Kafka is not up at the start."""
    if not _reachable(bootstrap):
        yield
        return
    before = topic_names(bootstrap)
    try:
        yield
    finally:
        try:
            new = topic_names(bootstrap) - before
            delete_topics(bootstrap, sorted(t for t in new if not t.startswith(("__", "bench-"))))
        except Exception as exc:  # housekeeping: no test's outcome depends on it
            print(f"topics created meanwhile not deleted from {bootstrap}: {exc!r}", file=sys.stderr)


def topic_names(bootstrap: str) -> set[str]:
    """The topics the broker has."""

    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def topics_listed(bootstrap: str, present: set[str], absent: frozenset[str] = frozenset(),
                  timeout_s: float = 15.0) -> set[str]:  # fmt: skip
    """The broker's topics once all of `present` are among them and none of `absent`, or after `timeout_s`: a topic
    Kafka reports created (or deleted) reaches the metadata a client lists a moment later (KRaft applies the
    controller's record asynchronously)."""
    deadline = time.monotonic() + timeout_s
    names = topic_names(bootstrap)
    while not (present <= names and not absent & names) and time.monotonic() < deadline:
        time.sleep(0.2)
        names = topic_names(bootstrap)
    return names


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    async def deleted() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
        await admin.start()
        try:
            await admin.delete_topics(topics, timeout_ms=60_000)
        finally:
            await admin.close()

    if topics:
        asyncio.run(deleted())


def _pg_host_port(url: str) -> str:
    parsed = sa.engine.make_url(url)
    return f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}"


def create_database(admin_url: str) -> str:
    """CREATE DATABASE with a unique name; returns its URL."""
    name = f"aw_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def fresh_database(admin_url: str) -> Iterator[str]:
    url = create_database(admin_url)
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def kafka_libs() -> Path:
    libs = os.environ.get("AUDITWATCH_KAFKA_LIBS")
    if not libs:
        out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "env"], capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip
        for line in out.stdout.splitlines():
            if line.startswith("export AUDITWATCH_KAFKA_LIBS="):
                libs = line.split("=", 1)[1].strip().strip("'\"")
    if not libs or not Path(libs).is_dir():
        pytest.fail("Kafka jars not found: run `scripts/services.sh up`")
    return Path(libs)


class PrivateKafka:
    """A single-node KRaft broker of our own, to stop and start in a fault test."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.libs = kafka_libs()
        self.proc: subprocess.Popen[bytes] | None = None
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "server.properties"
        self.conf.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            "inter.broker.listener.name=PLAINTEXT\ncontroller.listener.names=CONTROLLER\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={workdir / 'data'}\nnum.partitions=3\noffsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n"
        )
        (workdir / "log4j2.xml").write_text(
            '<Configuration status="warn"><Appenders><File name="f" fileName="'
            + str(workdir / "server.log")
            + '"><PatternLayout pattern="[%d] %p %m (%c)%n"/></File></Appenders>'
            '<Loggers><Root level="WARN"><AppenderRef ref="f"/></Root></Loggers></Configuration>'
        )
        self._java(
            "kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", kafka_cluster_id(), "-c", str(self.conf)
        )

    def _cmd(self, main: str, *args: str) -> list[str]:
        return [
            "java", "-Xmx384m", f"-Dlog4j2.configurationFile={self.dir / 'log4j2.xml'}",
            "-cp", f"{self.libs}/*", main, *args,
        ]  # fmt: skip

    def _java(self, main: str, *args: str) -> None:
        subprocess.run(self._cmd(main, *args), check=True, capture_output=True, timeout=120)

    def start(self, timeout_s: float = 90.0) -> None:
        with (self.dir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(self._cmd("kafka.Kafka", str(self.conf)), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"private Kafka exited: {(self.dir / 'stdout.log').read_text()[-2000:]}")
            if _reachable(self.bootstrap):
                time.sleep(1.0)  # the listener opens slightly before the broker is registered
                return
            time.sleep(0.2)
        raise AssertionError("private Kafka did not start in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def kafka_cluster_id() -> str:
    """A random KRaft cluster id, as Kafka's own `Uuid.randomUuid` makes them: never one that starts with "-"
    (1 in 64 of them would), which StorageTool's `-t` would read as an option and refuse."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class PrivatePostgres:
    """A PostgreSQL cluster of our own (Debian's binaries), to stop and start in a fault test."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            pytest.fail("PostgreSQL binaries not found: run `scripts/services.sh up`")
        self.bin = Path(bins[-1])
        self.port = free_port()
        # not under pytest's tmp_path: its parents are private to root, and postgres runs as `postgres`
        workdir = Path(tempfile.mkdtemp(prefix="auditwatch-pg-"))
        workdir.chmod(0o755)
        self.dir = workdir
        self.data = workdir / "pgdata"
        self.log = workdir / "postgres.log"
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.data}'\n"
            )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def cleanup(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


def topic_records(bootstrap: str, topic: str, *, expect_at_least: int = 1, timeout_s: float = 30) -> list[Any]:
    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)  # fmt: skip
        await consumer.start()
        out: list[Any] = []
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out.extend(records)
                if not batch and len(out) >= expect_at_least:
                    break
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    """The group's committed offset of the topic's partition 0 (None before its first commit). On a new broker
    the group coordinator is unknown until `__consumer_offsets` exists: asked again for up to 30 s (a CI run on a
    fresh machine failed on it while the consumer under test, which retries, was already assigned)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
                break
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(topic, 0))
    return None if meta is None or meta.offset < 0 else meta.offset
