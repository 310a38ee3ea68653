"""The fuzz suite's size: its classes add up to at least `MIN_CASES` cases in the `ci` profile without
PostgreSQL (with it, more), and each fuzz test checks that it ran its share (tests/support/fuzz.py)."""

from __future__ import annotations

from tests.support.fuzz import BUDGETS, MIN_CASES


def test_the_fuzz_classes_add_up_to_the_minimum() -> None:
    without_postgresql = {name: n for name, n in BUDGETS.items() if "postgresql" not in name}
    assert len(without_postgresql) == 8, sorted(BUDGETS)
    assert sum(without_postgresql.values()) >= MIN_CASES, without_postgresql
