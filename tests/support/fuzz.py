"""The fuzz suite's frame: Hypothesis profiles, the tally of cases run (printed at the end of the session by
tests/conftest.py) and a hard per-case deadline. The inputs are made in tests/support/fuzz_events.py.

Each fuzz test declares its class and number of cases (`budget`) and checks that at least that many ran
(`ran_budget`); tests/auditwatch/test_fuzz_budget.py checks that the classes add up to `MIN_CASES`. So the total is
both real and checked, also when the tests are run one at a time or on several workers.

Profiles (`HYPOTHESIS_PROFILE`): `ci`, the default, is derandomized (the same cases on every run, no example
database) with the example counts the tests name; `dev` draws new cases each run and keeps failing ones in
`.hypothesis/`, with a fifth of the counts. `AUDITWATCH_FUZZ_SCALE` multiplies the counts of either.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture]  # fmt: skip
# A case slower than this fails (Hypothesis' deadline; generous: two cores shared with the rest of the suite);
# one that hangs is stopped by `hard_deadline`.
CASE_DEADLINE = timedelta(seconds=15)
HARD_DEADLINE_S = 60.0
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=CASE_DEADLINE, suppress_health_check=_SLOW_OK, print_blob=True
)
settings.register_profile("dev", deadline=CASE_DEADLINE, suppress_health_check=_SLOW_OK, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
_SCALE = float(os.environ.get("AUDITWATCH_FUZZ_SCALE", "1")) * (0.2 if PROFILE == "dev" else 1.0)


MIN_CASES = 10_000  # in the `ci` profile, by the classes that need no PostgreSQL (it may be absent)
# fuzz class -> cases in the `ci` profile; declared here, in one table, so that the total can be checked without
# importing the test modules, and each test module's `budget()` call must agree with it
BUDGETS: dict[str, int] = {
    "REST parameters (sqlite)": 600,
    "REST parameters (postgresql)": 200,
    "webhook batches (sqlite)": 200,
    "webhook batches (postgresql)": 60,
    "webhook bodies (sqlite)": 1500,
    "webhook bodies (postgresql)": 150,
    "archives": 200,
    "rule files": 300,
    "random YAML rule files": 200,
    "redaction (events)": 3500,
    "redaction (texts)": 3800,
}


def examples(n: int) -> int:
    """The number of examples a fuzz test runs under the loaded profile."""
    return max(1, round(n * _SCALE))


def budget(name: str, n: int) -> int:
    """Declare the fuzz class `name` as `n` cases (in the `ci` profile); the examples it runs under this one."""
    if BUDGETS.get(name) != n:
        raise ValueError(f"fuzz class {name!r}: {n} cases here, {BUDGETS.get(name)} in tests/support/fuzz.py BUDGETS")
    return examples(n)


@contextmanager
def ran_budget(name: str) -> Iterator[None]:
    """Check that the block ran at least the declared number of cases of class `name`: Hypothesis may stop early
    (e.g. when every example is filtered out), and then the count would be a claim, not a fact."""
    before = TALLY.cases[name]
    yield
    ran = TALLY.cases[name] - before
    assert ran >= examples(BUDGETS[name]), f"{name}: {ran} cases ran, {examples(BUDGETS[name])} declared"


@dataclass
class Tally:
    """Cases run and inputs generated per fuzz class, for the summary at the end of the session."""

    cases: Counter[str] = field(default_factory=Counter)
    inputs: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        total_s = sum(self.seconds.values())
        lines = [f"{name}: {self.cases[name]} cases, {self.inputs[name]} generated inputs, "
                 f"{self.seconds[name]:.1f} s" for name in sorted(self.cases)]  # fmt: skip
        lines.append(
            f"total: {sum(self.cases.values())} cases, {sum(self.inputs.values())} generated inputs, "
            f"{total_s:.1f} s of cases (profile {PROFILE})"
        )
        return lines


TALLY = Tally()


@contextmanager
def case(name: str, inputs: int = 1) -> Iterator[None]:
    """One fuzz case of class `name` holding `inputs` generated inputs: counted, timed, stopped if it hangs."""
    TALLY.cases[name] += 1
    TALLY.inputs[name] += inputs
    started = time.perf_counter()
    try:
        with hard_deadline(HARD_DEADLINE_S):
            yield
    finally:
        TALLY.seconds[name] += time.perf_counter() - started


class CaseHung(Exception):
    """A fuzz case ran past its hard deadline."""


@contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Raise CaseHung in the main thread when the block runs longer than `seconds` (Hypothesis' deadline only
    judges a case once it has ended)."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise CaseHung(f"the case did not end within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
