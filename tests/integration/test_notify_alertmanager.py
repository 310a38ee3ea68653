"""The sender against a real, private Alertmanager whose receiver is a webhook into the test: the alerts it holds,
the grouped notification it sends, the resolution when a group's window closes, and a restart that loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.outbox import Outbox
from api.store import AlertStore
from api.tables import alerts_table
from auditwatch.notify.config import SinkConfig
from auditwatch.notify.sender import Sender
from tests.support.alertmanager import PrivateAlertmanager
from tests.support.alerts import live_alerts
from tests.support.receivers import Receiver
from tests.support.sending import until, with_sender

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_store(db_url: str) -> Iterator[AlertStore]:
    s = AlertStore(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[PrivateAlertmanager, Receiver]]:
    hook = Receiver().start()
    am = PrivateAlertmanager(tmp_path / "am", hook.url)
    try:
        am.start()
        yield am, hook
    finally:
        am.stop()
        hook.stop()


def group_ids(store: AlertStore) -> set[str]:
    with store.engine.begin() as conn:
        return set(conn.scalars(select(alerts_table.c.group_id)))


def notifications(hook: Receiver) -> list[dict[str, Any]]:
    return [r.json() for r in hook.requests() if r.path == "/hook"]


def held(am: PrivateAlertmanager) -> dict[str, dict[str, Any]]:
    return {a["labels"]["auditwatch_group"]: a for a in am.alerts()}


def test_alertmanager_holds_one_alert_per_group_notifies_them_grouped_and_resolves_them(
    sqlite_store: AlertStore, alertmanager: tuple[PrivateAlertmanager, Receiver]
) -> None:
    am, hook = alertmanager
    batch = live_alerts(6, principals=2, suppress_s=4)  # two groups, whose windows close 4 s after their last alert

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, batch, routes=sender.routes())
        await until("both groups in Alertmanager", lambda: len(am.alerts()) == 2)
        alerts = held(am)
        assert set(alerts) == group_ids(sqlite_store)
        for alert in alerts.values():
            assert set(alert["labels"]) == {"alertname", "severity", "principal", "namespace", "auditwatch_group"}
            assert alert["labels"]["alertname"] == "pod-exec-attach" and alert["labels"]["severity"] == "high"
            assert alert["annotations"]["alerts"] == "3" and alert["annotations"]["rule"] == "Exec or attach into a pod"
            assert alert["generatorURL"].startswith("https://auditwatch.test/alerts/")
        assert {a["labels"]["principal"] for a in alerts.values()} == {
            "intruder-0@example.com",
            "intruder-1@example.com",
        }
        await until("a grouped notification", lambda: any(n["status"] == "firing" for n in notifications(hook)))
        firing = next(n for n in notifications(hook) if n["status"] == "firing")
        assert firing["groupKey"] == '{}:{alertname="pod-exec-attach"}'
        assert len(firing["alerts"]) == 2 and firing["commonLabels"]["alertname"] == "pod-exec-attach"
        await until("the groups resolved", lambda: sender.stats[sinks[0].name].resolved == 2, timeout_s=30)
        await until("Alertmanager resolved them", lambda: am.alerts() == [])
        await until("a resolved notification", lambda: any(n["status"] == "resolved" for n in notifications(hook)))

    sender = with_sender(sqlite_store, [f"alertmanager={am.url},resend=1s"], body)
    (name,) = sender.stats
    assert sender.stats[name].delivered == 6  # every alert's delivery, in one post of its two groups
    resolved = next(n for n in notifications(hook) if n["status"] == "resolved")
    assert {a["labels"]["auditwatch_group"] for a in resolved["alerts"]} <= group_ids(sqlite_store)


def test_an_alertmanager_restart_mid_stream_loses_nothing(
    sqlite_store: AlertStore, alertmanager: tuple[PrivateAlertmanager, Receiver]
) -> None:
    am, _hook = alertmanager
    before = live_alerts(4, principals=2, tag="before")
    during = live_alerts(6, principals=3, tag="during", who="other")  # other principals: new groups

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        name = sinks[0].name
        await asyncio.to_thread(sqlite_store.write, before, routes=sender.routes())
        await until("the first groups", lambda: len(am.alerts()) == 2)
        await asyncio.to_thread(am.stop)  # Alertmanager keeps alerts in memory only: they are gone
        await asyncio.to_thread(sqlite_store.write, during, routes=sender.routes())
        await until("failed tries", lambda: sender.stats[name].errors >= 2)
        assert Outbox(sqlite_store.engine).depths().get(name) == 6
        await asyncio.to_thread(am.start)
        everything = group_ids(sqlite_store)
        await until("every group back in Alertmanager", lambda: set(held(am)) == everything)
        assert len(everything) == 5

    sender = with_sender(sqlite_store, [f"alertmanager={am.url},resend=1s,backoff=200ms,backoff_max=1s"], body)
    (name,) = sender.stats
    assert sender.stats[name].delivered == 10 and sender.depths() == {name: 0}
