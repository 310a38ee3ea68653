"""Triage and rule exceptions in the store, on SQLite and PostgreSQL: changes, history, notes, groups, hits."""

from __future__ import annotations

import copy
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection

from api.queries import AlertFilter
from api.rule_exceptions import DEFAULT_FIELDS, AlertNotFound, NewException
from api.store import AlertStore
from api.tables import exception_hits_table, exceptions_table, groups_table
from api.triage import UNSET, GroupClosed, TriageChange, TriageHooks, triage_group
from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from detectors.exceptions import ExceptionError, ExceptionSet
from tests.support.alerts import alerts
from tests.support.events import exec_event


def same_group_pair() -> tuple[Alert, Alert]:
    """Two alerts of one rule, principal and namespace, seconds apart."""
    first, second = alerts(7)[0], alerts(7)[6]
    assert (first.rule_id, first.group_key) == (second.rule_id, second.group_key)
    return first, second


def one_alert(store: AlertStore) -> Alert:
    alert = alerts(1)[0]
    store.write([alert])
    return alert


def test_status_assignee_and_notes_are_kept_with_their_history(store: AlertStore) -> None:
    alert = one_alert(store)
    assert store.get_alert(alert.id)["status"] == "open"  # type: ignore[index]
    store.triage_alert(alert.id, TriageChange("ann", status="acknowledged", assignee="bob@example.com"))
    store.triage_alert(alert.id, TriageChange("bob", note="looking at it\nsecond line"))
    store.triage_alert(alert.id, TriageChange("bob", status="acknowledged"))  # no change: no history
    found, _ = store.triage_alert(alert.id, TriageChange("bob", status="resolved", assignee=None))
    assert found is not None
    assert (found["status"], found["assignee"]) == ("resolved", None)
    assert [(n["author"], n["text"], n["on"]) for n in found["notes"]] == [
        ("bob", "looking at it\nsecond line", "alert")
    ]
    history = [
        (h["author"], h["field"], h["old"], h["new"]) for h in store.triage_history("alert", alert.id, limit=100)
    ]
    assert history == [
        ("ann", "status", "open", "acknowledged"),
        ("ann", "assignee", None, "bob@example.com"),
        ("bob", "note", None, "looking at it\nsecond line"),
        ("bob", "status", "acknowledged", "resolved"),
        ("bob", "assignee", "bob@example.com", None),
    ]
    assert store.triage_alert("no-such-alert", TriageChange("x", status="resolved")) == (None, None)


def test_notes_and_labels_are_redacted(store: AlertStore) -> None:
    alert = one_alert(store)
    jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLXZhbHVl"
    note = f"token was {jwt}; curl -H 'Authorization: Bearer s3cr3t-t0ken-value' and password=hunter22"
    found, _ = store.triage_alert(alert.id, TriageChange("ann", note=note, assignee="Bearer abcdefghijkl"))
    assert found is not None
    stored = found["notes"][0]["text"] + found["assignee"] + str(store.triage_history("alert", alert.id, limit=10))
    for secret in (jwt, "s3cr3t-t0ken-value", "hunter22", "abcdefghijkl"):
        assert secret not in stored
    assert "<redacted>" in found["notes"][0]["text"]


def test_filters_find_alerts_and_groups_by_status_and_assignee(store: AlertStore) -> None:
    batch = alerts(12)
    store.write(batch)
    for a in batch[:3]:
        store.triage_alert(a.id, TriageChange("ann", status="acknowledged", assignee="ann"))
    store.triage_alert(batch[3].id, TriageChange("ann", status="false_positive"))

    def ids(flt: AlertFilter) -> set[str]:
        return {a["id"] for a in store.list_alerts(flt, limit=100)[0]}

    assert ids(AlertFilter(statuses=("acknowledged",))) == {a.id for a in batch[:3]}
    assert ids(AlertFilter(statuses=("acknowledged", "false_positive"))) == {a.id for a in batch[:4]}
    assert len(ids(AlertFilter(statuses=("open",)))) == 8
    assert ids(AlertFilter(assignee="ann")) == {a.id for a in batch[:3]}
    assert ids(AlertFilter(assignee="nobody")) == set()
    group = store.list_groups(AlertFilter(), limit=10)[0][0]
    store.triage_group(group["id"], TriageChange("ann", status="resolved", assignee="carol"))
    assert [g["id"] for g in store.list_groups(AlertFilter(statuses=("resolved",)), limit=10)[0]] == [group["id"]]
    assert [g["id"] for g in store.list_groups(AlertFilter(assignee="carol"), limit=10)[0]] == [group["id"]]


def test_redelivered_alerts_keep_their_triage(store: AlertStore) -> None:
    batch = alerts(4)
    store.write(batch)
    store.triage_alert(batch[0].id, TriageChange("ann", status="resolved", assignee="ann"))
    assert store.write(batch).new_alerts == 0  # a redelivered batch, a second replay
    found = store.get_alert(batch[0].id)
    assert found is not None and (found["status"], found["assignee"]) == ("resolved", "ann")


def test_group_triage_acts_on_every_alert_and_tells_the_hooks(store: AlertStore) -> None:
    batch = [a for a in alerts(12) if a.rule_id == "pod-exec-attach" and a.namespace == "shop"]
    store.write(batch)
    store.triage_alert(batch[0].id, TriageChange("ann", status="resolved"))  # already what the group will say
    (group,) = store.list_groups(AlertFilter(rule="pod-exec-attach", namespace="shop"), limit=10)[0]
    heard: list[tuple[GroupClosed, str]] = []

    def hook(conn: Connection, closed: GroupClosed) -> None:  # in the change's transaction: it sees the change
        seen = conn.execute(select(groups_table.c.status).where(groups_table.c.id == closed.group_id)).scalar_one()
        heard.append((closed, seen))

    store.triage_hooks.group_closed.append(hook)
    found, changed = store.triage_group(group["id"], TriageChange("ann", status="resolved", note="benign test"))
    assert found is not None and changed == len(batch) - 1
    assert [(c.group_id, c.status, c.previous, c.author, seen) for c, seen in heard] == [
        (group["id"], "resolved", "open", "ann", "resolved")
    ]
    store.triage_group(group["id"], TriageChange("ann", status="false_positive"))  # closed already: not again
    assert len(heard) == 1
    for alert in batch:
        detail = store.get_alert(alert.id)
        assert detail is not None and detail["status"] == "false_positive"
        assert [n["text"] for n in detail["notes"]] == ["benign test"] and detail["notes"][0]["on"] == "group"
    via = store.triage_history("alert", batch[1].id, limit=10)
    assert [(h["new"], h["via_group"]) for h in via] == [("resolved", group["id"]), ("false_positive", group["id"])]
    group_history = [(h["field"], h["new"]) for h in store.triage_history("group", group["id"], limit=10)]
    assert group_history == [("status", "resolved"), ("note", "benign test"), ("status", "false_positive")]
    assert store.triage_group("nope", TriageChange("ann", status="resolved")) == (None, 0)


def test_closing_the_last_open_alert_of_a_group_closes_the_group_and_tells_the_hooks(store: AlertStore) -> None:
    first, second = same_group_pair()
    store.write([first, second])
    (group,) = store.list_groups(AlertFilter(), limit=10)[0]
    heard: list[GroupClosed] = []
    store.triage_hooks.group_closed.append(lambda conn, closed: heard.append(closed))
    store.triage_alert(first.id, TriageChange("ann", status="resolved"))  # the other one is still open
    store.triage_alert(second.id, TriageChange("ann", status="acknowledged"))
    assert store.get_group(group["id"])["status"] == "open" and heard == []  # type: ignore[index]
    store.triage_alert(second.id, TriageChange("bob", status="false_positive"))  # the last one: as the console does
    assert store.get_group(group["id"])["status"] == "false_positive"  # type: ignore[index]
    assert [(c.group_id, c.status, c.previous, c.author) for c in heard] == [
        (group["id"], "false_positive", "open", "bob")
    ]
    history = [
        (h["author"], h["field"], h["old"], h["new"]) for h in store.triage_history("group", group["id"], limit=10)
    ]
    assert history == [("bob", "status", "open", "false_positive")]
    store.triage_alert(first.id, TriageChange("bob", status="false_positive"))  # the group is closed already
    assert len(heard) == 1


def test_a_failing_hook_rolls_the_group_change_back(store: AlertStore) -> None:
    store.write(alerts(2))
    group = store.list_groups(AlertFilter(), limit=10)[0][0]

    def broken(conn: Connection, closed: GroupClosed) -> None:
        raise RuntimeError("outbox full")

    store.triage_hooks.group_closed.append(broken)
    with pytest.raises(RuntimeError):
        store.triage_group(group["id"], TriageChange("ann", status="resolved"))
    assert store.get_group(group["id"])["status"] == "open"  # type: ignore[index]
    assert store.triage_history("group", group["id"], limit=10) == []


def test_a_new_alert_opens_a_closed_group_again(store: AlertStore) -> None:
    first, second = same_group_pair()
    store.write([first])
    group = store.list_groups(AlertFilter(), limit=10)[0][0]
    store.triage_group(group["id"], TriageChange("ann", status="resolved"))
    store.write([second])  # same rule and key, within the suppression window
    reopened = store.get_group(group["id"])
    assert reopened is not None and reopened["status"] == "open" and reopened["count"] == 2
    last = store.triage_history("group", group["id"], limit=10)[-1]
    assert (last["author"], last["old"], last["new"]) == ("auditwatch", "resolved", "open")
    assert store.get_alert(second.id)["status"] == "open"  # type: ignore[index]


def test_a_group_closed_while_a_batch_joins_it_is_opened_again(pg_url: str) -> None:
    """PostgreSQL: the batch waits for the triage holding the group, then sees it closed (not the status it read
    before) and opens it again, rather than leaving its new open alert in a resolved group."""
    store = AlertStore(pg_url)
    store.migrate()
    first, second = same_group_pair()
    store.write([first])
    group_id = str(store.get_alert(first.id)["group_id"])  # type: ignore[index]
    try:
        with store.engine.connect() as triage, ThreadPoolExecutor(1) as pool:
            triage_group(triage, group_id, TriageChange("ann", status="resolved"), datetime.now(UTC), TriageHooks())
            batch = pool.submit(store.write, [second])
            with store.engine.connect() as watch:  # the batch is waiting for the triage's lock
                waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock'")  # fmt: skip
                deadline = time.monotonic() + 20
                while not watch.execute(waiting).scalar_one() and time.monotonic() < deadline and not batch.done():
                    watch.rollback()
                    time.sleep(0.02)
            triage.commit()
            batch.result(timeout=20)
        group = store.get_group(group_id)
        assert group is not None and (group["status"], group["count"]) == ("open", 2)
        assert store.get_alert(second.id)["status"] == "open"  # type: ignore[index]
        last = store.triage_history("group", group_id, limit=10)[-1]
        assert (last["author"], last["old"], last["new"]) == ("auditwatch", "resolved", "open")
    finally:
        store.close()


def test_acknowledged_groups_stay_acknowledged_when_alerts_join(store: AlertStore) -> None:
    first, second = same_group_pair()
    store.write([first])
    group = store.list_groups(AlertFilter(), limit=10)[0][0]
    store.triage_group(group["id"], TriageChange("ann", status="acknowledged"))
    store.write([second])
    assert store.get_group(group["id"])["status"] == "acknowledged"  # type: ignore[index]


def test_concurrent_triage_of_one_alert_keeps_an_exact_history(store: AlertStore) -> None:
    alert = one_alert(store)
    statuses = ["acknowledged", "resolved", "open", "false_positive"] * 6

    def change(i: int) -> None:
        store.triage_alert(alert.id, TriageChange(f"user{i}", status=statuses[i]))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(change, range(len(statuses))))
    history = store.triage_history("alert", alert.id, limit=1000)
    chain = ["open"] + [h["new"] for h in history]
    assert [h["old"] for h in history] == chain[:-1]  # each change starts where the previous one ended
    assert store.get_alert(alert.id)["status"] == chain[-1]  # type: ignore[index]


# ---- exceptions ------------------------------------------------------------------------------------------


def test_exception_crud_and_hits(store: AlertStore) -> None:
    changed: list[str] = []
    store.triage_hooks.exceptions_changed.append(lambda: changed.append("x"))
    created = store.create_exception(NewException(
        author="ann", comment="CI runs exec smoke tests", rule_id="pod-exec-attach",
        match={"user.username": ["ci-bot"], "objectRef.namespace": ["ci-*", "build"]},
    ))  # fmt: skip
    assert created["match"] == {"user.username": ["ci-bot"], "objectRef.namespace": ["ci-*", "build"]}
    assert (created["hits"], created["last_hit"], created["active"]) == (0, None, True)
    assert changed == ["x"]
    (loaded,) = store.active_exceptions()
    assert loaded.id == created["id"] and loaded.match["objectRef.namespace"] == ("ci-*", "build")
    assert store.write([], hits={created["id"]: ["a1", "a2", "a3", "a1"]}).new_hits == 3
    first = store.get_exception(created["id"])
    assert first is not None and first["hits"] == 3 and first["last_hit"] is not None
    again = store.write([], hits={created["id"]: ["a3", "a2", "a1"]})  # a redelivered batch: counted once
    assert again.new_hits == 0 and store.get_exception(created["id"]) == first  # last_hit too
    more = store.write([], hits={created["id"]: ["a2", "a4", "a5"], "deleted-meanwhile": ["a1"]})
    assert more.new_hits == 2
    found = store.get_exception(created["id"])
    assert found is not None and found["hits"] == 5 and found["last_hit"] is not None
    assert [e["id"] for e in store.list_exceptions()] == [created["id"]]
    assert store.list_exceptions("other-rule") == []
    assert store.delete_exception(created["id"]) and not store.delete_exception(created["id"])
    assert store.list_exceptions() == [] and changed == ["x", "x"]
    with store.engine.connect() as conn:  # its hits went with it, and none was kept for the deleted one
        assert conn.scalar(select(func.count()).select_from(exception_hits_table)) == 0


def test_the_hits_migration_goes_down_and_up_and_counts_are_kept(store: AlertStore) -> None:
    from alembic import command
    from alembic.config import Config

    import api.store as api_store

    made = store.create_exception(NewException(author="ann", rule_id="r", match={"verb": ["get"]}))
    store.write([], hits={made["id"]: ["a1"]})
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(api_store.__file__).parent / "migrations"))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    assert store.get_exception(made["id"])["hits"] == 1  # type: ignore[index]
    store.migrate()
    assert store.write([], hits={made["id"]: ["a1", "a2"]}).new_hits == 2  # a1's record went with the downgrade
    assert store.write([], hits={made["id"]: ["a1", "a2"]}).new_hits == 0
    assert store.get_exception(made["id"])["hits"] == 3  # type: ignore[index]


def test_expired_exceptions_are_listed_but_not_loaded(store: AlertStore) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    with store.engine.begin() as conn:  # an exception that has expired since it was made
        conn.execute(insert(exceptions_table), [{
            "id": "old", "rule_id": "r", "match": {"verb": ["get"]}, "comment": "", "author": "ann",
            "created_at": past - timedelta(days=1), "expires_at": past, "from_alert": None, "hits": 0,
        }])  # fmt: skip
    store.create_exception(NewException(author="ann", rule_id="r", match={"verb": ["list"]},
                                        expires_at=datetime.now(UTC) + timedelta(days=1)))  # fmt: skip
    assert [e.match for e in store.active_exceptions()] == [{"verb": ("list",)}]
    assert sorted(e["active"] for e in store.list_exceptions()) == [False, True]


def test_exception_from_an_alert_takes_its_rule_and_values(store: AlertStore) -> None:
    alert = one_alert(store)
    default = store.create_exception(NewException(author="ann", from_alert=alert.id))
    assert default["rule_id"] == alert.rule_id and default["from_alert"] == alert.id
    assert default["match"] == {"user.username": ["mallory@example.com"], "verb": ["create"],
                                "objectRef.resource": ["pods"], "objectRef.subresource": ["exec"],
                                "objectRef.namespace": [alert.namespace]}  # fmt: skip
    assert set(default["match"]) <= set(DEFAULT_FIELDS)
    chosen = store.create_exception(NewException(
        author="ann", from_alert=alert.id, match={"user.groups": None, "userAgent": ["kubectl/*"]}
    ))  # fmt: skip
    assert chosen["match"] == {"user.groups": ["contractors", "system:authenticated"], "userAgent": ["kubectl/*"]}


def test_values_taken_from_an_alert_match_literally(store: AlertStore) -> None:
    raw = copy.deepcopy(exec_event())
    raw["user"]["username"] = "weird*[user]?"
    alert = make_alert(rule_id="pod-exec-attach", rule_name="Exec", severity=Severity.MEDIUM, mitre=(),
                       message="m", event=AuditEvent(raw=raw))  # fmt: skip
    store.write([alert])
    created = store.create_exception(NewException(author="a", from_alert=alert.id, match={"user.username": None}))
    assert created["match"] == {"user.username": ["weird[*][[]user][?]"]}
    (loaded,) = store.active_exceptions()
    now = datetime.now(UTC)
    assert ExceptionSet([loaded]).matching(alert, now) is not None
    other = dataclasses.replace(alert, event={**alert.event, "user": {"username": "weirdX[user]?"}})
    assert ExceptionSet([loaded]).matching(other, now) is None


@pytest.mark.parametrize(
    ("new", "error", "needle"),
    [
        (NewException(author="a", match={"verb": ["get"]}), ExceptionError, "rule_id is required"),
        (NewException(author="a", rule_id="r", match={"verb": None}), ExceptionError, "need from_alert"),
        (NewException(author="a", rule_id="r", match={"$bogus": ["x"]}), ExceptionError, "unknown virtual field"),
        (NewException(author="a", rule_id="r", match={}), ExceptionError, "at least one field condition"),
        (NewException(author="a", from_alert="missing"), AlertNotFound, "from_alert: no alert has this id"),
        (NewException(author="a", from_alert="ALERT", match={"impersonatedUser.username": None}), ExceptionError,
         "has no value in the alert"),
        (NewException(author="a", from_alert="ALERT", rule_id="another-rule"), ExceptionError, "rule_id: must be the rule of the alert"),
    ],
)  # fmt: skip
def test_exceptions_that_cannot_be_made_say_why(
    store: AlertStore, new: NewException, error: type[Exception], needle: str
) -> None:
    alert = one_alert(store)
    if new.from_alert == "ALERT":
        new = dataclasses.replace(new, from_alert=alert.id)
    with pytest.raises(error, match=needle):
        store.create_exception(new)
    assert store.list_exceptions() == []


def test_false_positive_with_an_exception_is_one_transaction(store: AlertStore) -> None:
    alert = one_alert(store)
    bad = NewException(author="ann", match={"$bogus": None}, from_alert=alert.id)
    with pytest.raises(ExceptionError):
        store.triage_alert(alert.id, TriageChange("ann", status="false_positive"), bad)
    assert store.get_alert(alert.id)["status"] == "open"  # type: ignore[index]
    assert store.triage_history("alert", alert.id, limit=10) == []
    found, created = store.triage_alert(
        alert.id, TriageChange("ann", status="false_positive", assignee=UNSET), NewException("ann", from_alert=alert.id)
    )
    assert found is not None and found["status"] == "false_positive"
    assert created is not None and created["from_alert"] == alert.id and store.list_exceptions() == [created]
