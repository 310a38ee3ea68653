"""The alert store: SQLAlchemy Core over SQLite (default) or PostgreSQL; schema by Alembic migrations.

Here: the engine, migrations, and every write (the batch, triage, rule exceptions, receipt pruning); the
reads are `StoreReads`' (api/reads.py), which `AlertStore` extends. Writes are idempotent: an alert's id
is deterministic, and inserting it again changes nothing, so a redelivered batch or a second replay of the
same file never duplicates an alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.batchwrite import WriteResult, store_error, write_batch
from api.errors import StoreURLError
from api.outbox import OutboxRoute
from api.queries import has_nul
from api.readiness import schema_problem
from api.reads import StoreReads
from api.resends import resolve_groups
from api.rows import utc
from api.rule_exceptions import (
    NewException,
    active_exceptions,
    create_exception,
    delete_exception,
    get_exception,
    list_exceptions,
)
from api.tables import Receipt, StateCheckpoints, receipts_table
from api.transactions import begin_statement, transaction
from api.triage import GroupClosed, TriageChange, TriageHooks, history_of, triage_alert, triage_group
from detectors.alerts import Alert
from detectors.events import Rejected
from detectors.exceptions import RuleException

_MIGRATION_LOCK = 0x61756469_74776174  # "auditwat": the advisory lock that serialises migrations


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun by SQLAlchemy, not pysqlite (which begins them late and commits on the release
        # of a SAVEPOINT), so that savepoints nest inside a real transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a 200 means the alerts reached the disk
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin_statement(conn))  # IMMEDIATE when it will write (api/transactions.py)


def _url_problem(url: str, exc: Exception) -> str:
    """What is wrong with a database URL, and the URLs that work; never the URL itself (it may hold a password)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    works = "use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if isinstance(exc, NoSuchModuleError):
        return f"unknown database URL scheme {scheme!r}: {works}"
    if isinstance(exc, ImportError):
        return f"no driver installed for database URL scheme {scheme!r} ({exc}): {works}"
    if isinstance(exc, ArgumentError) and not scheme:
        return f"not a database URL: {works}"
    return f"cannot use database URL: {exc}"


# the query parameters SQLAlchemy's pysqlite dialect reads; without uri=true it warns about any other and drops it
_SQLITE_OPTIONS = frozenset(
    {"timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements", "uri"}
)


def _ignored_sqlite_options(url: str) -> str | None:
    """Why a SQLite URL's parameters would not reach SQLite (`?mode=ro` would open the file writable), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # create_engine says what is wrong
    query = parsed.query
    fix = "give SQLite's own parameters as sqlite:///file:FILE?mode=ro&uri=true"
    if str(query.get("uri", "")).lower() in ("true", "1"):
        if (parsed.database or "").startswith("file:"):
            return None  # SQLite judges its URI parameters
        # the parameters would become part of the file's name (`alerts.db?mode=ro`)
        return f"bad database URL: with uri=true the database must be a file: URI: {fix}"
    ignored = sorted(set(query) - _SQLITE_OPTIONS)
    if not ignored:
        return None
    names = ", ".join(repr(name) for name in ignored)
    what, them = ("its parameter", "it") if len(ignored) == 1 else ("its parameters", "them")
    return f"bad database URL: SQLAlchemy would ignore {what} {names}: {fix}, or remove {them}"


# libpq's and psycopg's words for a connection option it does not know or a value it refuses, said before any
# server is asked (`connection is bad: invalid sslmode value: "bogus"`): the URL is wrong, not the database down
_REFUSED_OPTION = re.compile(
    r"invalid connection option|bad value for|invalid [\w\" ]*value|invalid port number|invalid integer value"
    r"|could not parse network address|missing \"=\" after"
    r"|no such access mode|no such cache mode|no such vfs|invalid uri authority"  # SQLite's, for a file: URI
)


def _option_problem(exc: BaseException) -> str | None:
    """What the driver refused in the URL's options when connecting failed for that, else None."""
    orig = getattr(exc, "orig", None)
    if orig is None or getattr(orig, "sqlstate", None):  # an answer of the server
        return None
    first = str(orig).partition("\n")[0]
    return first.removeprefix("connection is bad: ") if _REFUSED_OPTION.search(first) else None


def _resolve_in_alertmanager(conn: Connection, closed: GroupClosed) -> None:
    """A group that triage closes is resolved in Alertmanager too, in the same transaction (no sink: no rows)."""
    resolve_groups(conn, [closed.group_id], closed.at)


class AlertStore(StoreReads):
    """Owns one SQLAlchemy engine. Methods are synchronous; async callers run them in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.triage_hooks = TriageHooks()
        self.triage_hooks.group_closed.append(_resolve_in_alertmanager)
        try:
            if url.startswith("sqlite"):
                problem = _ignored_sqlite_options(url)
                if problem is not None:
                    raise StoreURLError(problem)
                self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
                _configure_sqlite(self.engine)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreURLError(_url_problem(url, exc)) from None

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        try:
            with self.engine.connect():  # the first connection: says whether the URL's options are usable
                pass
        except SQLAlchemyError as exc:
            problem = _option_problem(exc)
            if problem is not None:
                raise StoreURLError(f"bad database URL: {problem}") from None
            raise store_error(exc) from exc
        with transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                # detect and api processes start together: one migrates, the others wait, then see it done.
                # Bounded: a stuck migration fails the start with an error instead of hanging it.
                conn.execute(text("SET LOCAL lock_timeout = '60s'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_problem(self) -> str | None:
        """Why this version cannot use the schema, and the remedy; None if it can (api/readiness.py)."""
        return schema_problem(self.engine)

    def write(
        self,
        alerts: Sequence[Alert],
        rejected: Sequence[Rejected] = (),
        states: StateCheckpoints | None = None,
        *,
        receipts: Sequence[Receipt] = (),
        routes: Sequence[OutboxRoute] = (),
        hits: Mapping[str, Sequence[str]] | None = None,
    ) -> WriteResult:
        """Store alerts, rejected items, detector states, event receipts and rule exception hits (exception id ->
        the ids of the alerts it suppressed) in one transaction (an alert the database refuses is quarantined
        instead: see api/batchwrite.py), and queue each new alert for the notification sinks of `routes` that
        take it; StoreError when nothing could be stored. Receipts and hits already stored are left as they are
        (their first `received_at` stays; a hit is counted once)."""
        return write_batch(self.engine, alerts, rejected, states or {}, receipts, routes, hits)

    def triage_alert(
        self, alert_id: str, change: TriageChange, new_exception: NewException | None = None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Apply a triage change to an alert, and create an exception with it (in the same transaction) if
        given: the alert as it is now (None if there is no such alert) and the exception created.
        ExceptionError or AlertNotFound when the exception cannot be made (nothing is changed then)."""
        if has_nul(alert_id):  # as in get_alert (api/reads.py)
            return None, None
        now = datetime.now(UTC)
        created = None
        with transaction(self.engine) as conn:  # it may read the alert's group before its first write
            if not triage_alert(conn, alert_id, change, now, self.triage_hooks):
                return None, None
            if new_exception is not None:
                created = create_exception(conn, new_exception, now)
        if created is not None:
            self._exceptions_changed()
        return self.get_alert(alert_id), created

    def triage_group(self, group_id: str, change: TriageChange) -> tuple[dict[str, Any] | None, int]:
        """Apply a triage change to a group and all its alerts: the group as it is now (None if there is no
        such group) and how many of its alerts changed."""
        if has_nul(group_id):  # as in get_alert (api/reads.py)
            return None, 0
        with transaction(self.engine, writes=False) as conn:
            changed = triage_group(conn, group_id, change, datetime.now(UTC), self.triage_hooks)
        if changed is None:
            return None, 0
        return self.get_group(group_id), changed

    def triage_history(self, target: str, target_id: str, *, limit: int) -> list[dict[str, Any]]:
        """The triage history of an alert or group (target "alert" or "group"), oldest first."""
        with transaction(self.engine, writes=False) as conn:
            return history_of(conn, target, target_id, limit)

    def create_exception(self, new: NewException) -> dict[str, Any]:
        """ExceptionError when its conditions do not compile, AlertNotFound when `from_alert` is not there."""
        with transaction(self.engine, writes=False) as conn:
            created = create_exception(conn, new, datetime.now(UTC))
        self._exceptions_changed()
        return created

    def list_exceptions(self, rule_id: str | None = None) -> list[dict[str, Any]]:
        with transaction(self.engine, writes=False) as conn:
            return list_exceptions(conn, datetime.now(UTC), rule_id)

    def get_exception(self, exception_id: str) -> dict[str, Any] | None:
        with transaction(self.engine, writes=False) as conn:
            return get_exception(conn, exception_id, datetime.now(UTC))

    def delete_exception(self, exception_id: str) -> bool:
        with transaction(self.engine, writes=False) as conn:
            deleted = delete_exception(conn, exception_id)
        if deleted:
            self._exceptions_changed()
        return deleted

    def active_exceptions(self) -> list[RuleException]:
        with transaction(self.engine, writes=False) as conn:
            return active_exceptions(conn, datetime.now(UTC))

    def _exceptions_changed(self) -> None:
        for hook in self.triage_hooks.exceptions_changed:
            hook()

    def prune_receipts(self, before: datetime, *, max_rows: int | None = None) -> int:
        """Delete receipts received before `before`, oldest first; with `max_rows`, about that many at most
        (a whole last batch goes, since a batch's receipts share their `received_at`). Returns the count."""
        r = receipts_table
        cutoff = r.c.received_at < utc(before)
        with transaction(self.engine) as conn:
            if max_rows is not None:
                nth = conn.scalar(
                    select(r.c.received_at).where(cutoff).order_by(r.c.received_at).offset(max_rows - 1).limit(1)
                )
                if nth is not None:
                    cutoff = r.c.received_at <= nth
            return int(conn.execute(r.delete().where(cutoff)).rowcount or 0)

    def close(self) -> None:
        self.engine.dispose()
