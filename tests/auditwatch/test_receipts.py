"""Event receipts (opt-in) as the processes record them: every event received leaves one receipt, stored with
its batch's alerts, served over REST, pruned after the retention; in `serve` and in `detect`, with their flags."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine

from api.store import AlertStore
from api.tables import Receipt, receipt_of
from auditwatch import cli
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.events import AuditEvent
from tests.support.client import TestClient
from tests.support.events import event_list, scenario_events
from tests.support.receipts import walk


def key_of(raw: dict[str, Any]) -> Receipt:
    return raw["auditID"], raw["stage"], raw.get("stageTimestamp", "")


def test_the_embedded_sink_prunes_old_receipts_after_a_batch(db_url: str) -> None:
    from auditwatch.embedded import EmbeddedSink
    from detectors.pipeline import Pipeline

    store = AlertStore(db_url)
    store.migrate()
    sink = EmbeddedSink(Pipeline([]), store, record_receipts=True, receipts_retention_hours=1 / 3600)
    events = [AuditEvent(raw=raw) for raw in scenario_events()]
    sink.process(events[:30], [])  # stored, then the first prune (due at start) finds nothing old enough
    time.sleep(1.1)
    sink.process(events[30:], [])  # the next prune is minutes away: nothing is deleted yet
    assert store.count_receipts() == 59
    sink.writer.retention.every_s = 0  # type: ignore[union-attr]
    sink.process([], [])
    assert sorted(walk(store, limit=100)[0]) == sorted(receipt_of(e) for e in events[30:])
    store.close()


# --- serve: the webhook writes receipts with the batch's alerts ---


def serve_client(db_url: str, **settings: Any) -> TestClient:
    return TestClient(create_serve_app(Settings(db_url=db_url, **settings)))


@pytest.fixture
def recording(db_url: str) -> Iterator[TestClient]:
    with serve_client(db_url, record_receipts=True) as c:
        yield c


def all_receipts(client: TestClient, **params: Any) -> tuple[list[Receipt], int]:
    page = client.get("/api/v1/receipts", params={"limit": 5000, **params})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["next_cursor"] is None
    return [(i["audit_id"], i["stage"], i["stage_timestamp"]) for i in body["items"]], body["total"]


def test_serve_records_every_received_event_once(recording: TestClient) -> None:
    items = scenario_events()
    batch = [*items, copy.deepcopy(items[7]), "junk"]  # a duplicate (dropped by the pipeline) and a reject
    resp = recording.post("/audit/webhook", content=event_list(batch))
    assert resp.status_code == 200 and resp.json()["accepted"] == 60 and resp.json()["rejected"] == 1
    got, total = all_receipts(recording)
    assert sorted(got) == sorted(key_of(e) for e in items) and total == 59
    assert recording.post("/audit/webhook", content=event_list(batch)).status_code == 200  # redelivered
    assert all_receipts(recording)[1] == 59
    mine, total = all_receipts(recording, audit_id=items[0]["auditID"])
    assert mine and total == len(mine) and all(r[0] == items[0]["auditID"] for r in mine)


def test_serve_without_the_option_records_nothing(db_url: str) -> None:
    with serve_client(db_url) as c:
        assert c.post("/audit/webhook", content=event_list(scenario_events())).status_code == 200
        assert c.get("/api/v1/receipts").json() == {"items": [], "next_cursor": None, "total": 0}
        assert c.get("/api/v1/alerts").json()["items"]  # the batch itself was processed


def test_receipts_of_a_batch_without_alerts_are_written(recording: TestClient) -> None:
    quiet = [e for e in scenario_events() if e["user"]["username"].startswith("system:node:")][:3]
    assert quiet
    resp = recording.post("/audit/webhook", content=event_list(quiet))
    assert resp.status_code == 200 and resp.json()["alerts"] == 0
    assert sorted(all_receipts(recording)[0]) == sorted(key_of(e) for e in quiet)


def test_a_batch_answered_503_leaves_no_receipt_and_its_retry_leaves_them_once(recording: TestClient) -> None:
    store: AlertStore = recording.app.state.store  # type: ignore[attr-defined]
    engine = store.engine
    store.engine = create_engine("sqlite:////nonexistent-dir/x.db")  # the database went away
    first = scenario_events()[:10]
    assert recording.post("/audit/webhook", content=event_list(first)).status_code == 503
    store.engine.dispose()
    store.engine = engine  # it is back
    assert all_receipts(recording)[1] == 0  # a 503 says "not received": nothing of the batch is kept
    second = scenario_events()[10:]
    assert recording.post("/audit/webhook", content=event_list(second)).status_code == 200
    assert recording.post("/audit/webhook", content=event_list(first)).status_code == 200  # the retry
    assert sorted(all_receipts(recording)[0]) == sorted(key_of(e) for e in first + second)


def test_receipts_api_pages_and_refuses_bad_queries(recording: TestClient) -> None:
    recording.post("/audit/webhook", content=event_list(scenario_events()))
    page = recording.get("/api/v1/receipts?limit=50").json()
    assert len(page["items"]) == 50 and page["total"] == 59 and page["next_cursor"]
    rest = recording.get("/api/v1/receipts", params={"cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 9 and rest["next_cursor"] is None
    assert {"audit_id", "stage", "stage_timestamp", "received_at"} == set(rest["items"][0])
    assert recording.get("/api/v1/receipts?cursor=garbage").status_code == 400
    assert recording.get("/api/v1/receipts?limit=0").status_code == 422
    assert recording.get("/api/v1/receipts?limit=5001").status_code == 422


def test_receipts_need_the_token(db_url: str) -> None:
    with serve_client(db_url, record_receipts=True, api_token="s3cret-token-value") as c:
        assert c.get("/api/v1/receipts").status_code == 401
        ok = c.get("/api/v1/receipts", headers={"Authorization": "Bearer s3cret-token-value"})
        assert ok.status_code == 200


# --- the command line and settings ---


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().record_receipts is False and Settings().receipts_retention_hours == 168.0
    monkeypatch.setenv("AUDITWATCH_RECORD_RECEIPTS", "true")
    monkeypatch.setenv("AUDITWATCH_RECEIPTS_RETENTION_HOURS", "2.5")
    assert Settings().record_receipts is True and Settings().receipts_retention_hours == 2.5
    for bad in ("0", "-1", "nan", "inf"):
        monkeypatch.setenv("AUDITWATCH_RECEIPTS_RETENTION_HOURS", bad)
        with pytest.raises(ValueError, match="receipts_retention_hours"):
            Settings()


@pytest.mark.parametrize("command", ["serve", "detect"])
def test_flags_are_explained(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for needle in ("--record-receipts", "--receipts-retention-hours", "AUDITWATCH_RECORD_RECEIPTS",
                   "one database row per event", "--audit-log-path"):  # fmt: skip
        assert needle in out


class Captured(Exception):
    pass


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("AUDITWATCH_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_env")
def test_serve_flags_reach_the_sink(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    import auditwatch.server

    seen: list[Settings] = []

    def fake_app(settings: Settings, **_: Any) -> Any:
        seen.append(settings)
        raise Captured

    monkeypatch.setattr(auditwatch.server, "create_serve_app", fake_app)
    with pytest.raises(Captured):
        cli.main(["serve", "--db", db_url, "--record-receipts", "--receipts-retention-hours", "3"])
    with pytest.raises(Captured):
        cli.main(["serve", "--db", db_url])
    assert [(s.record_receipts, s.receipts_retention_hours) for s in seen] == [(True, 3.0), (False, 168.0)]


@pytest.mark.usefixtures("no_env")
def test_detect_flags_reach_the_consumer(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    import auditwatch.consumer

    seen: list[dict[str, Any]] = []

    def fake_consumer(**kwargs: Any) -> Any:
        seen.append(kwargs)
        raise Captured

    monkeypatch.setattr(auditwatch.consumer, "Consumer", fake_consumer)
    argv = ["detect", "--kafka", "127.0.0.1:1", "--db", db_url]
    with pytest.raises(Captured):
        cli.main([*argv, "--record-receipts", "--receipts-retention-hours", "0.5"])
    with pytest.raises(Captured):
        cli.main(argv)
    assert [(k["record_receipts"], k["receipts_retention_hours"]) for k in seen] == [(True, 0.5), (False, 168.0)]


# --- detect: receipts of every decoded record, stored before the offsets are committed ---


def test_detect_records_a_receipt_for_every_event_of_the_topic(tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer

    from auditwatch.consumer import Consumer
    from detectors.pipeline import Pipeline
    from detectors.registry import load_rules
    from ingest.kafka import TopicSpec, ensure_topics
    from tests.support.services import kafka_bootstrap

    bootstrap = kafka_bootstrap()
    topic = f"receipts-{uuid.uuid4().hex[:12]}"
    items = scenario_events()
    store = AlertStore(f"sqlite:///{tmp_path / 'detect.db'}")
    store.migrate()

    async def main() -> int:
        await ensure_topics(bootstrap, [TopicSpec(topic, 3, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for raw in [*items, items[3]]:  # one event produced twice
                await producer.send_and_wait(topic, orjson.dumps(raw), key=raw["auditID"].encode())
            await producer.send_and_wait(topic, b"not json")
        finally:
            await producer.stop()
        detector = Consumer(bootstrap=bootstrap, topic=topic, group=f"g-{uuid.uuid4().hex[:12]}",
                            pipeline=Pipeline(load_rules(["builtin"])), store=store, record_receipts=True)  # fmt: skip
        task = asyncio.create_task(detector.run())
        deadline = time.monotonic() + 60
        while detector.stats.records < len(items) + 2 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.2)
        detector.stop()
        await task
        return detector.stats.records

    try:
        assert asyncio.run(main()) == len(items) + 2
        got, _ = walk(store, limit=1000)
        assert sorted(got) == sorted(key_of(e) for e in items)
        assert store.quarantined()  # the bad record is not a receipt, it is quarantined
    finally:
        store.close()
