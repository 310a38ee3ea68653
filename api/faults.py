"""Why a write failed, as the batch writer must act on it: retry it whole, isolate an item, or refuse.

- `TRANSIENT`: the database is unreachable, busy or restarting (a lost connection, a locked SQLite file, a
  server shutdown, a serialization failure or deadlock, no room left). The same write works later: the
  batch is refused for now (503, or the consumer's retry) and nothing of it is kept.
- `ITEM`: the database refuses a value (PostgreSQL data and integrity errors, SQLite range or type errors,
  anything raised while a row is built or encoded). Writing the batch again fails again: the item must be
  set aside, and the rest stored.
- `STORE`: the store itself is broken (a missing table or column, no permission, a corrupt file). No item
  is at fault and none is set aside: the batch is refused until an operator repairs the store.

PostgreSQL errors are told by their SQLSTATE, SQLite errors by their result code; without either (an error
raised by the driver itself), by the DB-API class.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy import exc as sa_exc


class Fault(Enum):
    TRANSIENT = "transient"
    ITEM = "item"
    STORE = "store"


# SQLSTATE classes: 08 connection exception, 40 transaction rollback (serialization failure, deadlock),
# 53 insufficient resources (disk full, out of memory, too many connections), 57 operator intervention
# (admin shutdown, crash shutdown, cannot connect now, statement timeout).
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
# 55P03 lock not available, 55006 object in use, 25006 read-only transaction (a standby after a failover).
_TRANSIENT_STATES = frozenset({"55P03", "55006", "25006"})
# 22 data exception (NUL in jsonb, out-of-range numbers or times), 23 integrity constraint violation,
# 54 program limit exceeded (a value too large to index, a jsonb nested too deep).
_ITEM_CLASSES = frozenset({"22", "23", "54"})

_SQLITE_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL",
                     "SQLITE_NOMEM", "SQLITE_PROTOCOL", "SQLITE_INTERRUPT")  # fmt: skip
_SQLITE_ITEM = ("SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE")

_DBAPI_ROOTS = frozenset({"DatabaseError", "InterfaceError"})  # every DB-API error derives from one of them
_DBAPI_TRANSIENT = frozenset({"OperationalError", "InterfaceError"})  # connection trouble, by convention
_DBAPI_ITEM = frozenset({"DataError", "IntegrityError", "ProgrammingError", "NotSupportedError"})


def classify(error: BaseException) -> Fault:
    """The fault behind an exception raised by a write (or by building its rows)."""
    if isinstance(error, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return Fault.TRANSIENT
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or error.orig is None:
            return Fault.TRANSIENT
        return _classify_driver_error(error.orig)
    if isinstance(error, sa_exc.StatementError):  # raised while binding parameters: a value that cannot be sent
        return Fault.ITEM
    if isinstance(error, sa_exc.SQLAlchemyError):
        return Fault.STORE
    if {cls.__name__ for cls in type(error).__mro__} & _DBAPI_ROOTS:  # a driver error SQLAlchemy did not wrap
        return _classify_driver_error(error)
    return Fault.ITEM  # OverflowError, TypeError, ValueError, RecursionError... from one item's values


def _classify_driver_error(orig: BaseException) -> Fault:
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_STATES:
            return Fault.TRANSIENT
        return Fault.ITEM if sqlstate[:2] in _ITEM_CLASSES else Fault.STORE
    code = getattr(orig, "sqlite_errorname", None)
    if isinstance(code, str):
        if code.startswith(_SQLITE_TRANSIENT):
            return Fault.TRANSIENT
        return Fault.ITEM if code.startswith(_SQLITE_ITEM) else Fault.STORE
    names = {cls.__name__ for cls in type(orig).__mro__}  # a driver's own subclass of a DB-API class
    if names & _DBAPI_TRANSIENT:
        return Fault.TRANSIENT
    return Fault.ITEM if names & _DBAPI_ITEM else Fault.STORE
