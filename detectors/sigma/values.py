"""Sigma values as tests on one audit field value: strings with wildcards and modifiers, numbers, booleans,
regular expressions, CIDR ranges and comparisons.

Matching follows Sigma: strings compare case-insensitively (except `re` and `cased`), `*` and `?` are
wildcards, numbers compare numerically.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RegexEngine, RegexPattern
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from detectors import patterns

ValueTest = Callable[[Any], bool]


class _LinearTimeRegexEngine(RegexEngine):
    """How pySigma checks `|re` values while it parses a rule: as `detectors.patterns` will run them, so a
    refusal says why (and RE2 logs nothing to stderr)."""

    def compile(self, pattern: str, flags: int = 0) -> RegexPattern:
        compiled: RegexPattern = patterns.compile_regex(
            pattern,
            ignore_case=bool(flags & re.IGNORECASE),
            dot_all=bool(flags & re.DOTALL),
            multi_line=bool(flags & re.MULTILINE),
        )
        return compiled

    @property
    def error(self) -> type[Exception]:
        return patterns.PatternError


# What pySigma parses rules with: its defaults, with auditwatch's regex engine.
POLICY = SigmaPolicy(regex_engine=_LinearTimeRegexEngine())


class SigmaCompileError(Exception):
    """A detection that auditwatch cannot evaluate; `field` helps the caller find the line."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


def text_of(value: Any) -> str | None:
    """A scalar as the text a Sigma string is matched against: booleans as true/false, numbers as written."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def string_parts(s: SigmaString, field: str | None) -> list[str | SpecialChars]:
    """A Sigma string as literal runs and wildcards; placeholders are refused."""
    parts: list[str | SpecialChars] = []
    for part in s.s:
        if isinstance(part, Placeholder):
            raise SigmaCompileError(
                f"placeholder %{part.name}% (the 'expand' modifier) needs a processing pipeline; not supported", field
            )
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return parts


def string_test(parts: Sequence[str | SpecialChars], cased: bool) -> tuple[ValueTest, str | None]:
    """A test for one Sigma string; also its plain literal (lower-cased unless cased) when it has no wildcard."""
    fold: Callable[[str], str] = (lambda t: t) if cased else str.lower
    literals = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if not isinstance(p, str)]
    if not specials:
        literal = fold("".join(literals))

        def equals(v: Any) -> bool:
            t = v if type(v) is str else text_of(v)
            return t is not None and fold(t) == literal

        return equals, literal
    multi = SpecialChars.WILDCARD_MULTI
    if all(p is multi for p in specials) and len(literals) <= 1:
        lit = fold(literals[0]) if literals else ""
        shape = tuple(isinstance(p, str) for p in parts)
        test: ValueTest | None = None
        if shape in ((False,), (False, False)):  # '*': any scalar

            def test(v: Any) -> bool:
                return text_of(v) is not None

        elif shape == (False, True, False):

            def test(v: Any) -> bool:
                t = v if type(v) is str else text_of(v)
                return t is not None and lit in fold(t)

        elif shape == (True, False):

            def test(v: Any) -> bool:
                t = v if type(v) is str else text_of(v)
                return t is not None and fold(t).startswith(lit)

        elif shape == (False, True):

            def test(v: Any) -> bool:
                t = v if type(v) is str else text_of(v)
                return t is not None and fold(t).endswith(lit)

        if test is not None:
            return test, None
    pattern = "".join(
        patterns.escape(p) if isinstance(p, str) else (".*" if p is SpecialChars.WILDCARD_MULTI else ".") for p in parts
    )
    matches = patterns.matcher([pattern], anchor=patterns.Anchor.WHOLE, ignore_case=not cased, dot_all=True)

    def glob(v: Any) -> bool:
        t = v if type(v) is str else text_of(v)
        return t is not None and matches(t)

    return glob, None


def _compare(op: CompareOperators, n: float) -> ValueTest:
    ops: dict[CompareOperators, Callable[[float], bool]] = {
        CompareOperators.LT: lambda x: x < n,
        CompareOperators.LTE: lambda x: x <= n,
        CompareOperators.GT: lambda x: x > n,
        CompareOperators.GTE: lambda x: x >= n,
        CompareOperators.NEQ: lambda x: x != n,
    }
    check = ops[op]

    def test(v: Any) -> bool:
        x = _number(v)
        return x is not None and check(x)

    return test


def value_test(value: SigmaType, field: str | None) -> tuple[ValueTest, str | None]:
    """(test on one scalar, plain lower-cased literal if it is a case-insensitive equality)."""
    if isinstance(value, SigmaString):
        return string_test(string_parts(value, field), isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaTimestampPart):
        raise SigmaCompileError("timestamp-part modifiers (minute, hour, day, ...) are not supported", field)
    if isinstance(value, SigmaBool):
        b = bool(value.boolean)
        word = "true" if b else "false"
        return (lambda v: v is b or (type(v) is str and v.lower() == word)), None
    if isinstance(value, SigmaNumber):
        n = value.number

        def number(v: Any) -> bool:
            if isinstance(v, bool):
                return False
            if isinstance(v, (int, float)):
                return bool(v == n)
            return type(v) is str and _number(v) == n

        return number, None
    if isinstance(value, SigmaRegularExpression):
        flags = value.flags
        try:
            found = patterns.matcher(
                [str(value.regexp)],
                ignore_case=SigmaRegularExpressionFlag.IGNORECASE in flags,
                dot_all=SigmaRegularExpressionFlag.DOTALL in flags,
                multi_line=SigmaRegularExpressionFlag.MULTILINE in flags,
            )
        except patterns.PatternError as exc:
            raise SigmaCompileError(str(exc), field) from None

        def search(v: Any) -> bool:
            t = v if type(v) is str else text_of(v)
            return t is not None and found(t)

        return search, None
    if isinstance(value, SigmaCIDRExpression):
        network = value.network

        def cidr(v: Any) -> bool:
            if type(v) is not str:
                return False
            try:
                return ipaddress.ip_address(v) in network
            except ValueError:
                return False

        return cidr, None
    if isinstance(value, SigmaCompareExpression):
        return _compare(value.op, value.number.number), None
    raise SigmaCompileError(f"values of type {type(value).__name__} are not supported", field)
