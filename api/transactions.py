"""How the store's transactions begin: on SQLite, one that writes takes the write lock at once.

`serve` has two writers in one process, the webhook's batches and the notification sender. In SQLite's WAL
mode a transaction that began by reading and then writes, after the other writer committed meanwhile, fails
at once with "database is locked" (its snapshot is stale; waiting cannot help, so the busy timeout does not
apply). A writing transaction therefore begins with BEGIN IMMEDIATE (`writing`), and waits its turn instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.errors import StoreError
from detectors.errors import describe_error

WRITES = "auditwatch_writes"  # the execution option that marks a transaction that will write


def begin_statement(conn: Connection) -> str:
    """SQLite's BEGIN for a transaction on `conn` (IMMEDIATE when it will write)."""
    return "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITES) else "BEGIN"


def writing(engine: Engine) -> Engine:
    """The engine, for a transaction that will write."""
    return engine.execution_options(**{WRITES: True})


@contextmanager
def transaction(engine: Engine, *, writes: bool = True) -> Iterator[Connection]:
    """A transaction on the store's engine; StoreError when the database fails."""
    try:
        with (writing(engine) if writes else engine).begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {describe_error(exc)}") from exc
