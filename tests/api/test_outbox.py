"""The notification outbox in the store (SQLite and PostgreSQL): queued with the alert, never twice, claimed
under a lease (PostgreSQL: concurrent claims never share a row), settled, bounded, and shown over REST."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from api.outbox import Outbox, OutboxRoute
from api.resends import FIRING, RESOLVED, Resend, Resends, resolve_groups
from api.store import AlertStore
from api.tables import outbox_table, resends_table
from api.triage import TriageChange
from auditwatch.server import create_api_app
from auditwatch.settings import Settings
from detectors.alerts import Severity
from tests.support.alerts import alerts
from tests.support.client import TestClient

EVERYTHING = OutboxRoute("all", lambda _alert: True)
HIGH_ONLY = OutboxRoute("high", lambda alert: alert.severity >= Severity.HIGH)
T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def queued(store: AlertStore) -> list[tuple[str, str, str]]:
    o = outbox_table
    with store.engine.begin() as conn:
        return sorted((r.alert_id, r.sink, r.status) for r in conn.execute(select(o.c.alert_id, o.c.sink, o.c.status)))


def test_new_alerts_are_queued_for_the_sinks_that_take_them_once(store: AlertStore) -> None:
    batch = alerts(8)
    store.write(batch, routes=[EVERYTHING, HIGH_ONLY])
    rows = queued(store)
    assert [r for r in rows if r[1] == "all"] == sorted((a.id, "all", "pending") for a in batch)
    assert [r[0] for r in rows if r[1] == "high"] == sorted(a.id for a in batch if a.severity >= Severity.HIGH)
    Outbox(store.engine).delivered("all", [batch[0].id], T)
    store.write(batch, routes=[EVERYTHING, HIGH_ONLY])  # a redelivered batch
    assert len(queued(store)) == len(rows)
    assert (batch[0].id, "all", "delivered") in queued(store)
    store.write(alerts(9)[8:], routes=[])  # a writer without sinks (replay --db) queues nothing
    assert len(queued(store)) == len(rows)


def test_queued_rows_carry_the_alert_group(store: AlertStore) -> None:
    batch = alerts(4)
    store.write(batch, routes=[EVERYTHING])
    with store.engine.begin() as conn:
        pairs = set(
            conn.execute(text("select o.group_id, a.group_id from notify_outbox o join alerts a on a.id = o.alert_id"))
        )
    assert pairs and all(mine == theirs and mine for mine, theirs in pairs)


def test_claims_lease_rows_until_settled(store: AlertStore) -> None:
    batch = alerts(5)
    store.write(batch, routes=[EVERYTHING])
    box = Outbox(store.engine)
    now = datetime.now(UTC)
    first = box.claim("all", now, limit=3, lease_until=now + timedelta(minutes=5))
    assert len(first) == 3 and all(c.attempts == 0 and c.group_id for c in first)
    second = box.claim("all", now, limit=10, lease_until=now + timedelta(minutes=5))
    assert {c.alert_id for c in second}.isdisjoint({c.alert_id for c in first}) and len(second) == 2
    assert box.claim("all", now, limit=10, lease_until=now + timedelta(minutes=5)) == []
    assert box.claim("other", now, limit=10, lease_until=now) == []
    later = now + timedelta(minutes=6)  # leases ran out (a sender died): claimable again
    assert len(box.claim("all", later, limit=10, lease_until=later + timedelta(minutes=5))) == 5

    a, b, c, d, e = (x.id for x in batch)
    box.delivered("all", [a], later)
    box.retry("all", [b], later + timedelta(seconds=30), "HTTP 503: try later")
    box.release("all", [c], later + timedelta(seconds=30))
    box.fail("all", [d], "HTTP 404: no such hook")
    box.drop("all", [e], "over rate=1/min")
    by_id = {x["alert_id"]: x for x in box.list_deliveries(status=None, sink="all", limit=10, cursor=None)[0]}
    assert by_id[a]["status"] == "delivered" and by_id[a]["attempts"] == 1 and by_id[a]["delivered_at"]
    assert (by_id[b]["status"], by_id[b]["attempts"], by_id[b]["last_error"]) == ("pending", 1, "HTTP 503: try later")
    assert (by_id[c]["status"], by_id[c]["attempts"], by_id[c]["last_error"]) == ("pending", 0, None)
    assert (by_id[d]["status"], by_id[d]["attempts"]) == ("failed", 1)
    assert (by_id[e]["status"], by_id[e]["attempts"], by_id[e]["last_error"]) == ("dropped", 0, "over rate=1/min")
    assert box.claim("all", later, limit=10, lease_until=later) == []  # b and c wait 30 s
    assert box.expedite("all", later) == 2  # the sink is back: no more waiting
    assert {x.alert_id for x in box.claim("all", later, limit=10, lease_until=later)} == {b, c}
    box.delivered("all", [a], later + timedelta(hours=1))  # settling twice changes nothing
    assert box.deliveries_of(a)[0]["attempts"] == 1
    assert box.depths() == {"all": 2}


def test_expiry_and_the_pending_bound(store: AlertStore) -> None:
    store.write(alerts(10), routes=[EVERYTHING])
    box = Outbox(store.engine)
    now = datetime.now(UTC)
    leased = box.claim("all", now, limit=1, lease_until=now + timedelta(hours=1))
    assert box.bound("all", 4, now, "outbox full") == 6  # the oldest, not the one in flight
    pending = {x["alert_id"] for x in box.list_deliveries(status="pending", sink=None, limit=50, cursor=None)[0]}
    assert len(pending) == 4 and leased[0].alert_id in pending
    assert box.bound("all", 4, now, "outbox full") == 0
    assert box.expire("all", now + timedelta(seconds=1), now, "too old") == 3  # the leased one is left alone
    dropped = box.list_deliveries(status="dropped", sink="all", limit=50, cursor=None)[0]
    assert len(dropped) == 6 and {d["last_error"] for d in dropped} == {"outbox full"}


def test_deliveries_page_newest_first_with_a_cursor(store: AlertStore) -> None:
    for i, alert in enumerate(alerts(7)):
        store.write([alert], routes=[EVERYTHING, HIGH_ONLY] if i % 2 else [EVERYTHING])
    box = Outbox(store.engine)
    seen: list[tuple[str, str]] = []
    cursor = None
    for _ in range(10):
        page, cursor = box.list_deliveries(status=None, sink=None, limit=3, cursor=cursor)
        seen.extend((d["alert_id"], d["sink"]) for d in page)
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(queued(store))
    everything = box.list_deliveries(status=None, sink=None, limit=100, cursor=None)[0]
    assert [d["created_at"] for d in everything] == sorted((d["created_at"] for d in everything), reverse=True)


def test_concurrent_claims_on_postgresql_never_share_a_row(pg_url: str) -> None:
    """FOR UPDATE SKIP LOCKED: several `detect` processes share one PostgreSQL (SQLite has one process)."""
    store = AlertStore(pg_url)
    store.migrate()
    store.write(alerts(120), routes=[EVERYTHING])
    box = Outbox(store.engine)
    got: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def claimer(slot: int) -> None:
        start.wait()
        for _ in range(40):
            now = datetime.now(UTC)
            claimed = box.claim("all", now, limit=5, lease_until=now + timedelta(minutes=5))
            got[slot].extend(c.alert_id for c in claimed)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    store.close()
    everything = [a for ids in got for a in ids]
    assert len(everything) == len(set(everything)) == 120
    assert sum(1 for ids in got if ids) >= 2  # they really ran side by side


def test_resend_schedule(store: AlertStore) -> None:
    store.write(alerts(4), routes=[EVERYTHING])
    with store.engine.begin() as conn:
        groups = sorted(set(conn.scalars(select(outbox_table.c.group_id))))
    resends = Resends(store.engine)
    now = datetime.now(UTC)
    resends.firing("am", groups, now)
    resends.firing("am", groups, now)  # an upsert: once per group
    claimed = resends.claim("am", now, limit=10, lease_until=now + timedelta(minutes=1))
    assert sorted(r.group_id for r in claimed) == groups and {r.state for r in claimed} == {FIRING}
    assert resends.claim("am", now, limit=10, lease_until=now) == []  # leased
    resends.settle("am", [Resend(g, FIRING, None, now + timedelta(seconds=60)) for g in groups])
    assert resends.claim("am", now + timedelta(seconds=59), limit=10, lease_until=now) == []
    with store.engine.begin() as conn:  # triage resolves one group: due at once, resolved
        assert resolve_groups(conn, groups[:1], now) == 1
    (resolved,) = resends.claim("am", now, limit=10, lease_until=now + timedelta(minutes=1))
    assert (resolved.group_id, resolved.state, resolved.resolved_at) == (groups[0], RESOLVED, now)
    resends.finish("am", groups[:1])
    resends.retry("am", groups[1:], now, "HTTP 500")
    with store.engine.begin() as conn:
        assert conn.scalar(select(func.count()).select_from(resends_table)) == len(groups) - 1


def test_rest_shows_deliveries_per_alert_and_by_status(store: AlertStore, tmp_path: Path) -> None:
    batch = alerts(3)
    store.write(batch, routes=[EVERYTHING, HIGH_ONLY])
    box = Outbox(store.engine)
    box.fail("all", [batch[0].id], "HTTP 404")
    with TestClient(create_api_app(Settings(db_url=store.url))) as client:
        detail = client.get(f"/api/v1/alerts/{batch[0].id}").json()
        sinks = {d["sink"]: d for d in detail["deliveries"]}
        assert sinks["all"]["status"] == "failed" and sinks["all"]["last_error"] == "HTTP 404"
        assert set(sinks) == ({"all", "high"} if batch[0].severity >= Severity.HIGH else {"all"})
        failed = client.get("/api/v1/deliveries", params={"status": "failed"}).json()
        assert [(d["alert_id"], d["sink"]) for d in failed["items"]] == [(batch[0].id, "all")]
        pending = client.get("/api/v1/deliveries", params={"status": "pending", "sink": "all"}).json()["items"]
        assert {d["alert_id"] for d in pending} == {a.id for a in batch[1:]}
        assert client.get("/api/v1/deliveries", params={"status": "lost"}).status_code == 422
        assert client.get("/api/v1/deliveries", params={"cursor": "nonsense"}).status_code == 400


def test_the_migration_goes_down_and_up(store: AlertStore) -> None:
    from alembic import command
    from alembic.config import Config

    import api.store as api_store

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(api_store.__file__).parent / "migrations"))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    store.migrate()
    store.write(alerts(2), routes=[EVERYTHING])
    assert len(queued(store)) == 2


def test_a_group_resolved_by_triage_is_resolved_in_alertmanager(store: AlertStore) -> None:
    store.write(alerts(2), routes=[EVERYTHING])
    with store.engine.begin() as conn:
        groups = sorted(set(conn.scalars(select(outbox_table.c.group_id))))
    resends = Resends(store.engine)
    now = datetime.now(UTC)
    resends.firing("am", groups, now + timedelta(hours=1))  # nothing due for an hour
    group, changed = store.triage_group(groups[0], TriageChange(status="resolved", author="ops"))
    assert group is not None and group["status"] == "resolved" and changed >= 1
    (resolved,) = resends.claim("am", datetime.now(UTC), limit=10, lease_until=now + timedelta(minutes=1))
    assert (resolved.group_id, resolved.state) == (groups[0], RESOLVED)  # due at once, as a resolution
