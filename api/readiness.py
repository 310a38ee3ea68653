"""Whether the alert store is usable by this version, as `/readyz` says: its schema at the Alembic revision this
code migrates to, with every table the code writes.

Probes ask every few seconds, so a ready store costs one query reading the one-row version table and the
database's catalog (never a table of alerts), and nothing is cached: a table dropped is seen at the next probe.
Only when that query fails or disagrees does a second catalog query say what is missing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.batchwrite import store_error
from api.tables import metadata

VERSION_TABLE = "alembic_version"
TABLES = tuple(sorted(metadata.tables))  # every table the store writes
NAMES = (*TABLES, VERSION_TABLE)
RESTART = "restart auditwatch serve, api or detect: each migrates the schema when it starts"
RESTORE = "restore the database from a backup"

# The tables among NAMES that exist, as the application's unqualified names reach them (PostgreSQL: the
# search_path), read from the catalog.
_PRESENT = {
    "postgresql": "SELECT n FROM unnest(CAST(:names AS text[])) AS n WHERE to_regclass(n) IS NOT NULL",
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN :names",
}


@cache
def revisions() -> tuple[str, frozenset[str]]:
    """The head revision of api/migrations and every revision it knows (read once: the code does not change)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(__file__).parent / "migrations"))
    return str(scripts.get_current_head()), frozenset(script.revision for script in scripts.walk_revisions())


def _present_query(dialect: str, *, with_version: bool) -> str:
    present = _PRESENT[dialect]
    if not with_version:
        return present
    return f"SELECT version_num, (SELECT count(*) FROM ({present}) AS t) AS tables FROM {VERSION_TABLE}"


def _bound(conn: Connection, sql: str) -> list[tuple[object, ...]]:
    statement = text(sql)
    if conn.dialect.name == "sqlite":
        statement = statement.bindparams(bindparam("names", expanding=True))
    return [tuple(row) for row in conn.execute(statement, {"names": list(NAMES)})]


def schema_problem(engine: Engine) -> str | None:
    """Why this version cannot use the store's schema, with what an operator does about it; None when it can.
    StoreError when the database does not answer."""
    head, known = revisions()
    try:
        with engine.connect() as conn:
            rows = _bound(conn, _present_query(conn.dialect.name, with_version=True))
        if len(rows) == 1 and rows[0][0] == head and rows[0][1] == len(NAMES):
            return None
    except SQLAlchemyError as exc:
        failed: SQLAlchemyError | None = exc
        rows = []
    else:
        failed = None
    try:
        with engine.connect() as conn:  # a new transaction: PostgreSQL refuses more in one that failed
            present = {str(row[0]) for row in _bound(conn, _present_query(conn.dialect.name, with_version=False))}
    except SQLAlchemyError as exc:
        raise store_error(exc) from exc
    return _problem(rows, present, head, known, failed)


def _problem(
    rows: list[tuple[object, ...]], present: set[str], head: str, known: frozenset[str], failed: SQLAlchemyError | None
) -> str | None:
    if failed is not None:
        if VERSION_TABLE in present:  # not what failed
            raise store_error(failed) from failed
        if present:
            return f"alert store schema damaged: its table {VERSION_TABLE} is missing: {RESTORE}"
        return f"alert store has no schema (no table {VERSION_TABLE}): {RESTART}"
    if len(rows) != 1:
        return f"alert store schema damaged: its table {VERSION_TABLE} holds {len(rows)} revisions, not 1: {RESTORE}"
    found = str(rows[0][0])[:40]
    if found not in known:
        return (
            f"alert store schema at revision {found!r}, unknown to this version, which needs {head}: a newer "
            f"auditwatch migrated it; run that version, or {RESTORE} taken before"
        )
    if found != head:
        return f"alert store schema at revision {found}, this version needs {head}: {RESTART}"
    missing = ", ".join(name for name in TABLES if name not in present)
    if not missing:  # the first query failed or disagreed, the second found everything: a change in between
        return None
    lacks = f"alert store schema at revision {head} lacks the table(s) {missing}"
    return f"{lacks}: {RESTORE} (restarting does not recreate them)"
