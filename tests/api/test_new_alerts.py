"""Which alerts a batch write newly stored (SQLite and PostgreSQL): what its callers log, count and notify. An
alert already in the store is not new, whether it was there before the write or another writer committed it
while the write was under way (PostgreSQL: it is then neither folded into its group nor queued twice)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, insert, select

from api.errors import StoreError
from api.outbox import OutboxRoute
from api.rows import alert_row
from api.store import AlertStore
from api.tables import alerts_table, groups_table, outbox_table
from detectors.alerts import Alert
from tests.support.alerts import alerts

EVERYTHING = OutboxRoute("all", lambda _alert: True)


def queued_ids(store: AlertStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.scalars(select(outbox_table.c.alert_id)))


def grouped(store: AlertStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.coalesce(func.sum(groups_table.c.count), 0))) or 0)


def test_a_write_names_the_alerts_it_stored_and_not_those_already_there(store: AlertStore) -> None:
    batch = alerts(6)
    first = store.write(batch[:4], routes=[EVERYTHING])
    assert first.new_ids == {a.id for a in batch[:4]} and first.new_alerts == 4
    again = store.write([batch[5], *batch[:4], batch[4], batch[5]], routes=[EVERYTHING])  # a redelivery, and more
    assert again.new_ids == {batch[4].id, batch[5].id}
    assert store.write(batch, routes=[EVERYTHING]).new_ids == frozenset()
    assert store.count_alerts() == 6 and queued_ids(store) == {a.id for a in batch} and grouped(store) == 6


@contextmanager
def committed_meanwhile(store: AlertStore, *rounds: list[Alert], in_savepoint: bool = False) -> Iterator[list[str]]:
    """Another writer commits each round of alerts (their rows alone) just before the write inserts them: after
    the write looked for them (in its savepoint per alert, with `in_savepoint`)."""
    other = sa.create_engine(store.engine.url)
    fired: list[str] = []
    in_one = [False]

    def before(_conn: sa.Connection, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        in_one[0] = in_one[0] or statement.startswith("SAVEPOINT")
        if len(fired) == len(rounds) or not statement.startswith("INSERT INTO alerts "):
            return
        rivals = rounds[len(fired)]
        if (in_savepoint and not in_one[0]) or not any(a.id in repr(parameters) for a in rivals):
            return
        with other.begin() as conn:
            conn.execute(insert(alerts_table), [alert_row(a, datetime.now(UTC)) for a in rivals])
        fired.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield fired
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
        other.dispose()


# PostgreSQL only: a SQLite writer holds the write lock from its first statement, so no other writer commits
ON_POSTGRESQL = pytest.mark.parametrize("store", ["postgresql"], indirect=True)


@ON_POSTGRESQL
def test_alerts_another_writer_commits_during_the_write_are_not_new_nor_grouped_nor_queued(store: AlertStore) -> None:
    batch = alerts(6)
    rivals = batch[1:3]
    with committed_meanwhile(store, rivals) as fired:
        result = store.write(batch, routes=[EVERYTHING])
    assert len(fired) == 1  # the write started again and found them stored
    mine = {a.id for a in batch} - {a.id for a in rivals}
    assert result.new_ids == mine and result.refused == ()
    assert store.count_alerts() == 6 and queued_ids(store) == mine and grouped(store) == 4


@ON_POSTGRESQL
def test_an_alert_another_writer_commits_during_the_write_of_each_alert_alone_is_not_new(store: AlertStore) -> None:
    good = alerts(4)
    unencodable = replace(alerts(5)[4], rule_id="odd-details", details={"when": object()})  # each alert alone
    with committed_meanwhile(store, [good[2]], in_savepoint=True) as fired:
        result = store.write([*good, unencodable], routes=[EVERYTHING])
    assert len(fired) == 1
    mine = {a.id for a in good} - {good[2].id}
    assert result.new_ids == mine and [r.reason.split(" could")[0] for r in result.refused] == [
        "alert of rule odd-details"
    ]
    assert store.count_alerts() == 4 and queued_ids(store) == mine and grouped(store) == 3


@ON_POSTGRESQL
def test_a_write_that_other_writers_keep_overtaking_gives_up_storing_nothing_of_its_own(store: AlertStore) -> None:
    batch = alerts(6)
    with committed_meanwhile(store, [batch[0]], [batch[1]], [batch[2]]) as fired, pytest.raises(StoreError) as raised:
        store.write(batch, routes=[EVERYTHING])
    assert len(fired) == 3 and "other writers kept storing alerts of the batch; retry it" in str(raised.value)
    assert store.count_alerts() == 3 and queued_ids(store) == set() and grouped(store) == 0  # only theirs
    assert store.write(batch, routes=[EVERYTHING]).new_ids == {a.id for a in batch[3:]}  # the caller's retry
