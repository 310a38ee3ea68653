"""Simulated time: epoch microseconds, and their audit-log text forms (MicroTime and metav1.Time)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

SECOND: Final = 1_000_000  # the simulator counts time in epoch microseconds

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_STAGE_TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%f%z"


def epoch_us(dt: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def stage_timestamp_us(text: str) -> int:
    """Epoch microseconds of an Event's ``stageTimestamp`` (MicroTime text)."""
    return epoch_us(datetime.strptime(text, _STAGE_TIMESTAMP_FORMAT))


class TimeFormatter:
    """Formats epoch microseconds as MicroTime (``…T15:04:05.000000Z``) or metav1.Time (``…T15:04:05Z``)."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def _prefix(self, sec: int) -> str:
        p = self._cache.get(sec)
        if p is None:
            if len(self._cache) > 8192:
                self._cache.clear()
            p = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._cache[sec] = p
        return p

    def micro(self, us: int) -> str:
        sec, frac = divmod(us, SECOND)
        return f"{self._prefix(sec)}.{frac:06d}Z"

    def sec(self, us: int) -> str:
        return self._prefix(us // SECOND) + "Z"
