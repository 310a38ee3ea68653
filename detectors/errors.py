"""The one error root of the detection package."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TypeVar

from detectors.credentials import redact_message

T = TypeVar("T")


class DetectorError(Exception):
    """Root of every error raised by `detectors`."""


class RuleError(DetectorError):
    """A rule file that cannot be loaded; carries the file and line it points at."""

    def __init__(self, message: str, *, path: str = "<string>", line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class RuleErrors(DetectorError):
    """Several rule errors collected in one pass, so a user fixes them all at once."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def collect(errors: list[RuleError], check: Callable[[], T], fallback: T) -> T:
    """Run one independent check of a rule file: its result, or `fallback` with its errors added to `errors`, so
    that every error of a file is reported at once."""
    try:
        return check()
    except RuleError as exc:
        errors.append(exc)
    except RuleErrors as exc:
        errors.extend(exc.errors)
    return fallback


def check_each(checks: Iterable[Callable[[], T]]) -> list[T]:
    """Run independent checks (the branches of a condition, the test cases of a rule...) with `collect`: their
    results, or RuleErrors with the errors of all of them."""
    errors: list[RuleError] = []
    results: list[T] = []
    for check in checks:
        results += collect(errors, partial(_listed, check), [])
    if errors:
        raise RuleErrors(errors)
    return results


def _listed(check: Callable[[], T]) -> list[T]:
    return [check()]


class EventError(DetectorError):
    """An input that is not an audit event (or a list of them); the message says why. It may quote the input,
    so it is redacted and cut (a 400 answer or a CLI error never echoes a credential)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_message(message))


MAX_ERROR_CHARS = 300  # of an exception's description in a quarantine reason


def describe_error(exc: BaseException) -> str:
    """How an exception reads in a quarantine reason: `TypeError: unhashable type: 'list'` (the first line of
    its message, cut to a readable length)."""
    text = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
