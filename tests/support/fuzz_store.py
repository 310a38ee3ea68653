"""The fuzz suite's judges: the reference pipeline's alerts for the valid events of a case, and a look at an alert
store shared by many cases (counts that must add up, the alerts a case must have stored exactly once, no planted
credential in any row written since the last look, nor in the files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa

from api.store import AlertStore
from api.tables import alerts_table, groups_table, quarantine_table, receipts_table, state_table
from detectors.alerts import Alert
from detectors.events import AuditEvent, Rejected
from detectors.pipeline import Pipeline
from tests.support.fuzz_events import leaks

__all__ = ["StoreWatch", "leaks", "reference_alerts"]


def reference_alerts(reference: Pipeline, events: list[AuditEvent], *, may_fail: str = "") -> tuple[list[Alert], int]:
    """The reference pipeline's alerts for these events, and on how many a detector failed: only the detector
    `may_fail` may (a user's rule type made to); a shipped one failing on a valid event is a bug."""
    alerts: list[Alert] = []
    failed_events = 0
    for event in events:
        failures: list[Rejected] = []
        alerts += reference.process(event, failures)
        if failures:
            failed_events += 1
            assert all(may_fail and f.reason.startswith(f"detector {may_fail} raised") for f in failures), (
                f"a shipped detector failed on a valid event: {failures[0].reason}\n{orjson.dumps(event.raw)[:3000]!r}"
            )
    return alerts, failed_events


@dataclass
class StoreWatch:
    """Follows one store across cases: the alert ids stored so far, and how far its rows have been scanned."""

    store: AlertStore
    known: set[str] = field(default_factory=set)
    quarantine_id: int = 0
    state_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    excused: set[str] = field(default_factory=set)  # canaries a case excused (`scan_new`), for `scan_all`

    def totals(self) -> tuple[int, int, int]:
        """Alerts, the sum of the alert groups' counts, receipts."""
        with self.store.engine.connect() as conn:
            counts = conn.execute(sa.select(
                sa.select(sa.func.count()).select_from(alerts_table).scalar_subquery(),
                sa.select(sa.func.coalesce(sa.func.sum(groups_table.c.count), 0)).scalar_subquery(),
                sa.select(sa.func.count()).select_from(receipts_table).scalar_subquery(),
            )).one()  # fmt: skip
        return int(counts[0]), int(counts[1]), int(counts[2])

    def check_stored(self, ids: set[str], before: tuple[int, int, int]) -> tuple[int, int, int]:
        """The alerts `ids` are stored, each once; no other alert was added since `before`; groups add up."""
        new = ids - self.known
        self.known |= ids
        after = self.totals()
        assert after[0] == before[0] + len(new), "alerts stored other than the reference's, or not once"
        assert after[1] == after[0], "alert group counts do not add up to the alerts"
        with self.store.engine.connect() as conn:
            stored = set(conn.scalars(sa.select(alerts_table.c.id).where(alerts_table.c.id.in_(ids))))
        assert stored == ids, f"reference alerts not stored: {sorted(ids - stored)[:5]}"
        return after

    def scan_new(self, ids: set[str], excused: frozenset[str] = frozenset()) -> None:
        """No canary in the alerts `ids`, their groups, the quarantine rows since the last scan, or the detector
        state if it was written since; but those `excused` (the damage of the case hit the shape they were
        planted in: `"n\x00ame": "DB_PASSWORD"` names no credential)."""
        q, state = quarantine_table, state_table
        with self.store.engine.connect() as conn:
            rows = [*conn.execute(sa.select(alerts_table).where(alerts_table.c.id.in_(ids))),
                    *conn.execute(sa.select(groups_table).where(groups_table.c.last_alert_id.in_(ids))),
                    *conn.execute(sa.select(q).where(q.c.id > self.quarantine_id)),
                    *conn.execute(sa.select(state).where(state.c.updated_at > self.state_time))]  # fmt: skip
            self.quarantine_id = int(conn.execute(sa.select(sa.func.max(q.c.id))).scalar() or 0)
            self.state_time = conn.execute(sa.select(sa.func.max(state.c.updated_at))).scalar() or self.state_time
        for row in rows:
            text = orjson.dumps(dict(row._mapping), default=str, option=orjson.OPT_NON_STR_KEYS)
            assert not set(leaks(text)) - excused, f"canaries {leaks(text)} stored: {text[:3000]!r}"
            self.excused |= set(leaks(text))

    def scan_all(self) -> None:
        """No canary in any row, nor (SQLite) in the database files themselves."""
        if self.store.url.startswith("sqlite:///"):
            path = Path(self.store.url.removeprefix("sqlite:///"))
            for file in [path, *path.parent.glob(path.name + "-*")]:
                found = set(leaks(file.read_bytes())) - self.excused
                assert not found, f"canaries {found} in {file}"
        with self.store.engine.connect() as conn:
            for table in (alerts_table, groups_table, quarantine_table, receipts_table, state_table):
                for row in conn.execute(sa.select(table)):
                    text = orjson.dumps(dict(row._mapping), default=str, option=orjson.OPT_NON_STR_KEYS)
                    assert not set(leaks(text)) - self.excused, (table.name, leaks(text), text[:2000])
