"""Durations in rule files (`window: 15m`, `suppress: 1h`, `history: 7d`) and as alert messages show them."""

from __future__ import annotations

import re
from typing import Any

from detectors.errors import RuleError

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, *, path: str, line: int, what: str) -> float:
    """`30s`, `15m`, `2h`, `7d` -> seconds."""
    m = _DURATION.match(str(value)) if isinstance(value, (str, int)) else None
    if m is None or int(m.group(1)) <= 0:
        raise RuleError(f"{what} must be a duration like 30s, 15m, 2h or 7d", path=path, line=line)
    return float(int(m.group(1)) * _UNITS[m.group(2)])


def format_duration(seconds: float) -> str:
    """Seconds as alert messages show them: `7d`, `1.5h`, `15m`, `40s`."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    if seconds >= 60:
        return f"{seconds / 60:.1f}m".replace(".0m", "m")
    return f"{seconds:.0f}s"
