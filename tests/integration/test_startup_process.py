"""Real processes at startup and in their logs: the port in use and Kafka away are one line before any banner;
`detect` waits for Kafka, `ingest` starts without it; a line per batch and per alert, in text or JSON, with
nothing credential-shaped in them."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import auditwatch_process, clean_env
from tests.support.credential_canaries import CANARIES, planted_events, quarantined_items
from tests.support.events import event_list, exec_event
from tests.support.paths import PYTHON, ROOT
from tests.support.problems import problem_detail
from tests.support.processes import Proc, free_port
from tests.support.services import PrivateKafka

pytestmark = pytest.mark.integration
TOKEN = "rw-t0ken-CANARY-4e1d77"


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, proc: Proc) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited {proc.popen.returncode}: {proc.output()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}: {proc.output()[-3000:]}")


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of an output that also holds the banner (stdout and stderr in one file)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def closed_port() -> int:
    return free_port()  # bound and closed again: nothing listens there


def test_a_port_in_use_is_one_line_and_no_banner(tmp_path: Path, closed_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "AUDITWATCH_DB_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "AUDITWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}",
        }
        for command in ("serve", "api", "ingest"):
            result = auditwatch_process(command, "--port", str(port), env=env)
            assert (result.code, result.out) == (1, ""), result
            assert result.err == (
                f"auditwatch: cannot listen on 127.0.0.1:{port}: the port is in use (another auditwatch?): stop that "
                "process or choose another --port\n"
            )


def test_detect_without_kafka_retries_then_exits_1_in_one_line(tmp_path: Path, closed_port: int) -> None:
    bootstrap = f"127.0.0.1:{closed_port}"
    args = ["detect", "--kafka", bootstrap, "--db", f"sqlite:///{tmp_path / 'a.db'}", "--kafka-wait", "3"]
    result = auditwatch_process(*args)
    assert (result.code, result.out) == (1, ""), result  # no banner: it never ran
    lines = result.err.splitlines()
    assert "Traceback" not in result.err and "aiokafka" not in result.err
    retries, last = lines[:-1], lines[-1]
    assert 2 <= len(retries) <= 4, result.err  # backoff 1 s, 2 s, ... within 3 s
    for line in retries:
        assert f" INFO auditwatch.startup: Kafka at {bootstrap} not reachable yet (no broker answered" in line, line
    assert last == (
        f"auditwatch: Kafka at {bootstrap} is not reachable (no broker answered (connection refused or unreachable)) "
        "after waiting 3 s: start it, fix --kafka, or wait longer with --kafka-wait SECONDS"
    )
    as_json = auditwatch_process(*args[:-1], "0", "--log-format", "json")
    assert as_json.code == 1 and len(as_json.err.splitlines()) == 1  # --kafka-wait 0: one try, one line


def test_ingest_starts_without_kafka_and_says_so_in_one_line(tmp_path: Path, closed_port: int) -> None:
    port = free_port()
    proc = Proc(["ingest", "--kafka", f"127.0.0.1:{closed_port}", "--port", str(port)], tmp_path / "ingest.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        started = proc.output()  # the startup, before any batch
        resp = httpx.post(f"http://127.0.0.1:{port}/audit/webhook", content=event_list([exec_event()]), timeout=30)
        assert "retry later" in problem_detail(resp, 503)
        assert proc.stop() in (0, -15)
    finally:
        proc.kill9()
    lines = started.splitlines()
    assert lines[0] == f"auditwatch {version()} ingest: listening on http://127.0.0.1:{port}" and len(lines) == 4
    said = lines[3]  # after the banner's three lines: one line, and nothing else
    assert f"WARNING auditwatch.ingest: Kafka at 127.0.0.1:{closed_port} is unreachable: no broker answered" in said
    assert said.endswith("webhook batches get 503 (the apiserver retries them) until it is reachable")
    assert "Traceback" not in proc.output()


def test_ingest_logs_that_it_is_unready_without_kafka_as_ingest_not_as_the_store(
    tmp_path: Path, closed_port: int
) -> None:
    port = free_port()
    args = ["ingest", "--kafka", f"127.0.0.1:{closed_port}", "--port", str(port), "--log-format", "json"]
    proc = Proc(args, tmp_path / "ingest.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        assert problem_detail(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30), 503) == (
            "Kafka unavailable: unreachable"
        )
        wait_for("the unready line", lambda: "not ready" in proc.output(), 10, proc)
    finally:
        proc.kill9()
    (line,) = [d for d in json_lines(proc.output()) if d["msg"].startswith("not ready")]
    assert line["logger"] == "auditwatch.ingest", line
    assert line["msg"].startswith(f"not ready (/readyz answers 503): Kafka at 127.0.0.1:{closed_port} is unreachable")
    # and no line of ingest's is logged as the alert store's, which it has none of
    assert not [d for d in json_lines(proc.output()) if d["logger"].startswith("auditwatch.store")]


def version() -> str:
    from importlib.metadata import version as of

    return of("auditwatch")


@pytest.fixture
def kafka_later(tmp_path: Path) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(tmp_path / "kafka")
    yield broker
    broker.stop()


def test_detect_waits_for_kafka_then_logs_each_batch_and_alert(tmp_path: Path, kafka_later: PrivateKafka) -> None:
    bootstrap = kafka_later.bootstrap
    detect = Proc(["detect", "--kafka", bootstrap, "--db", f"sqlite:///{tmp_path / 'd.db'}", "--partitions", "2",
                   "--kafka-wait", "180", "--log-format", "json"], tmp_path / "detect.log")  # fmt: skip
    try:
        wait_for("a retry line", lambda: any("not reachable yet" in d["msg"] for d in json_lines(detect.output())),
                 60, detect)  # fmt: skip
        assert "auditwatch " not in detect.output()  # no banner while it waits
        kafka_later.start()
        wait_for(
            "the banner", lambda: f"detect: group auditwatch-detect on {bootstrap}" in detect.output(), 120, detect
        )
        archive = tmp_path / "attack.jsonl"
        archive.write_bytes(b"\n".join(json.dumps(e).encode() for e in [exec_event()]) + b"\n")
        publish = auditwatch_process("replay", str(archive), "--to-kafka", bootstrap, "--partitions", "2", "--quiet")
        assert publish.code == 0, publish

        def batch_with_alerts() -> bool:
            return any(d["msg"] == "batch" and d["alerts"] for d in json_lines(detect.output()))

        wait_for("a batch line", batch_with_alerts, 60, detect)
        assert detect.stop() in (0, -15)
    finally:
        detect.kill9()
    docs = json_lines(detect.output())
    assert all({"ts", "level", "logger", "msg"} <= set(d) for d in docs)
    retries = [d for d in docs if "not reachable yet" in d["msg"]]
    assert retries and all(d["level"] == "INFO" and d["logger"] == "auditwatch.startup" for d in retries)
    batch = next(d for d in docs if d["msg"] == "batch")
    assert batch["level"] == "INFO" and batch["logger"] == "auditwatch.detect"
    assert (batch["records"], batch["events"], batch["rejected"], batch["alerts"]) == (1, 1, 0, 3)
    assert batch["partitions"] and isinstance(batch["ms"], float)
    alerts = [d for d in docs if d["msg"] == "alert"]
    assert {a["rule_id"] for a in alerts} == {
        "pod-exec-attach",
        "exec-credential-file-access",
        "exec-shell-command-payload",
    }
    assert all(a["level"] == "WARNING" and a["principal"] == "mallory@example.com" for a in alerts)


def test_serve_logs_batches_and_alerts_without_a_credential(tmp_path: Path) -> None:
    """A canary in every form the redaction knows, in the events posted, in a bad request and in the token: none
    of them in the log of a real serve process, at debug level, in JSON; the structured lines are all there."""
    port = free_port()
    token = tmp_path / "token"
    token.write_text(TOKEN)
    base = f"http://127.0.0.1:{port}"
    argv = [PYTHON, "-m", "auditwatch.cli", "serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 's.db'}",
            "--token-file", str(token), "--rules", "builtin", "--rules", "falco", "--rule-matching", "all",
            "--log-format", "json", "--log-level", "debug"]  # fmt: skip
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, env=clean_env(), stdout=out, stderr=err)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        posted = event_list(planted_events() + quarantined_items())
        resp = httpx.post(f"{base}/audit/webhook", content=posted, headers=auth, timeout=30)
        assert resp.status_code == 200, resp.text
        bad = b'{"kind": "Bearer %s"}' % CANARIES["error-400"].encode()
        assert httpx.post(f"{base}/audit/webhook", content=bad, headers=auth, timeout=10).status_code == 400
        assert httpx.get(f"{base}/api/v1/alerts?user={TOKEN}", timeout=10).status_code == 401
        assert (
            httpx.get(f"{base}/api/v1/alerts", headers={"Authorization": "Bearer CANARY-guess-99"}).status_code == 401
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert stdout.startswith(f"auditwatch {version()} serve: listening on {base}\n")
    docs = [json.loads(line) for line in stderr.splitlines()]  # every line of stderr is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(d) for d in docs)
    batch = next(d for d in docs if d["msg"] == "batch")
    assert (batch["logger"], batch["events"], batch["rejected"]) == ("auditwatch.webhook", 6, 3) and batch["alerts"] > 0
    alerts = [d for d in docs if d["msg"] == "alert"]
    assert len(alerts) == batch["alerts"]
    assert all(set(a) >= {"rule_id", "severity", "principal", "namespace", "verb", "resource", "alert_id"}
               for a in alerts)  # fmt: skip
    for name, canary in {**CANARIES, "token": TOKEN, "guess": "CANARY-guess-99"}.items():
        assert canary not in stderr and canary not in stdout, name
