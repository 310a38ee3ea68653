"""The alert store against a real SQLite file: migrations, idempotent upserts, alert groups, columns' sizes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.queries import AlertFilter
from api.store import AlertStore
from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from tests.support.alerts import alerts
from tests.support.events import exec_event


def test_upserts_are_idempotent(store: AlertStore) -> None:
    batch = alerts(10)
    assert store.write(batch).new_alerts == 10
    assert store.write(batch + batch).new_alerts == 0
    assert store.count_alerts() == 10


def test_concurrent_migrations_on_postgresql(pg_url: str) -> None:
    """detect and api start together against one database: both migrate, neither fails."""
    from concurrent.futures import ThreadPoolExecutor

    stores = [AlertStore(pg_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: s.migrate(), stores))
    assert stores[0].count_alerts() == 0
    for s in stores:
        s.close()


def test_upgrade_from_the_first_schema_keeps_alerts(store: AlertStore) -> None:
    """A store created by an older auditwatch (revision 0001) is migrated in place."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    import api.store as api_store
    from api.tables import metadata

    (one,) = alerts(1)
    with store.engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(api_store.__file__).parent / "migrations"))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO alerts (id, rule_id, rule_name, severity, severity_rank, mitre, message, "
                          "event_time, detected_at, audit_id, stage, user_name, groups, source_ips, user_agent, verb, "
                          "resource, subresource, namespace, name, origin, event) VALUES ('old', 'r', 'R', 'high', 3, "
                          "'[]', 'm', '2026-11-20 10:00:00', '2026-11-20 10:00:00', 'a', 'ResponseComplete', 'u', '[]', "
                          "'[]', 'ua', 'get', 'pods', '', 'ns', 'n', 'f:1', '{}')"))  # fmt: skip
    store.migrate()
    old = store.get_alert("old")
    assert old is not None and old["details"] == {}
    store.write([one])
    assert store.count_alerts() == 2


def grouped_alert(seconds: float, *, user: str = "mallory@example.com", n: int = 0, suppress_s: float = 3600) -> Alert:
    raw = copy.deepcopy(exec_event())
    raw["auditID"] = f"7c1e0b52-1f3a-4b6c-8d2e-{n:012d}"
    raw["stageTimestamp"] = (
        (datetime(2026, 11, 20, 10, 0, tzinfo=UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    )
    raw["user"]["username"] = user
    return make_alert(rule_id="pod-exec-attach", rule_name="Exec", mitre=("T1609",), severity=Severity.MEDIUM,
                      message=f"exec #{n}", event=AuditEvent(raw=raw), suppress_s=suppress_s)  # fmt: skip


def test_alerts_fold_into_groups_within_the_suppression_window(store: AlertStore) -> None:
    burst = [grouped_alert(600 * i, n=i) for i in range(4)]  # every 10 minutes: one group
    later = grouped_alert(4 * 3600, n=10)  # hours after the last one: a new group
    other = grouped_alert(60, user="bob@example.com", n=20)  # another principal: its own group
    store.write(burst[:2])
    store.write(burst[2:] + [later, other])
    store.write(burst + [later])  # redelivered: counts do not move
    groups, _ = store.list_groups(AlertFilter(), limit=10)
    by_count = sorted((g["user"], g["count"], g["first_seen"], g["last_seen"]) for g in groups)
    assert by_count == [
        ("bob@example.com", 1, "2026-11-20T10:01:00Z", "2026-11-20T10:01:00Z"),
        ("mallory@example.com", 1, "2026-11-20T14:00:00Z", "2026-11-20T14:00:00Z"),
        ("mallory@example.com", 4, "2026-11-20T10:00:00Z", "2026-11-20T10:30:00Z"),
    ]
    assert groups[0]["last_seen"] == "2026-11-20T14:00:00Z"  # most recently active first
    assert store.get_alert(burst[3].id)["group_id"] == store.get_alert(burst[0].id)["group_id"]  # type: ignore[index]
    assert len(store.list_groups(AlertFilter(user="bob@example.com"), limit=10)[0]) == 1


def test_a_short_suppression_window_splits_groups(store: AlertStore) -> None:
    store.write([grouped_alert(0, n=1, suppress_s=60), grouped_alert(120, n=2, suppress_s=60)])
    assert [g["count"] for g in store.list_groups(AlertFilter(), limit=10)[0]] == [1, 1]


def test_client_chosen_values_longer_than_their_columns_are_stored_not_refused(store: AlertStore) -> None:
    # The Audit-ID header and the request path are the client's: an alert on a request with a 2,000-character
    # auditID or namespace must be stored (PostgreSQL refuses over-long varchars), or that batch would be
    # refused forever. The stored values keep a prefix and a digest of the whole, so distinct ones stay distinct.
    raws = []
    for suffix in "ab":
        raw = copy.deepcopy(exec_event())
        raw["auditID"] = "x" * 2000 + suffix
        raw["verb"] = "v" * 100 + suffix
        raw["objectRef"]["namespace"] = "n" * 600 + suffix
        raws.append(raw)
    batch = [make_alert(rule_id="pod-exec-attach", rule_name="Exec", mitre=("T1609",), severity=Severity.MEDIUM,
                        message="m", event=AuditEvent(raw=raw)) for raw in raws]  # fmt: skip
    assert store.write(batch).new_alerts == 2
    assert store.write(batch).new_alerts == 0
    stored = [store.get_alert(a.id) for a in batch]
    assert all(s is not None for s in stored)
    audit_ids = {s["audit_id"] for s in stored if s}
    assert len(audit_ids) == 2 and all(len(i) == 512 and i.startswith("xxx") for i in audit_ids)
    assert all(len(s["namespace"]) == 255 and len(s["verb"]) == 64 for s in stored if s)
    groups, _ = store.list_groups(AlertFilter(None, None, None, None, None, None), limit=10)
    assert len(groups) == 2 and all(len(g["namespace"]) == 255 for g in groups)
