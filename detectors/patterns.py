"""Patterns that come from rule files (regular expressions and shell globs), compiled for RE2.

RE2 matches in time linear in the text, whatever the pattern: no rule can make one event stall the
pipeline (Python's backtracking `re` needs seconds for `^(a+)+$` on a 30-character URI). The price is
that RE2 has no backtracking features (lookaround, backreferences, atomic groups, possessive
quantifiers); a pattern that needs one is refused with a PatternError that says so, and the loader adds
the file and line. Other differences from Python's `re`: `$` without `(?m)` is the end of the text (never
before a final newline), `\\d`, `\\w` and `\\s` are ASCII, and `\\Z` is written `\\z`.

Every pattern set becomes one RE2 Set (`matcher`), a DFA scan that answers "does any pattern match".
Matchers are plain functions, so detectors holding them can be deep-copied.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import re2

from detectors.errors import DetectorError

Matcher = Callable[[str], bool]

# Matching costs at most about one step per program instruction per byte of text (when crafted text makes
# the DFA's state cache thrash: ~20 us per byte near the limit, against well under 1 us usually). The limit
# bounds that; rule patterns are tens to hundreds of instructions.
MAX_PROGRAM_SIZE = 5000


class PatternError(DetectorError):
    """A rule pattern that cannot run on RE2; the message says why."""


class Anchor(Enum):
    """Where a pattern must match: anywhere (`re.search`), at the start (`re.match`), the whole text."""

    SEARCH = "search"
    START = "start"
    WHOLE = "whole"


# What RE2 says of a pattern (after "invalid perl operator: ") -> the backtracking feature it uses
_OPERATORS = {
    "(?=": "lookahead",
    "(?!": "negative lookahead",
    "(?<=": "lookbehind",
    "(?<!": "negative lookbehind",
    "(?>": "an atomic group",
    "(?(": "a conditional group",
    "(?P": "a backreference",  # `(?P<name>` is fine, so this is `(?P=name)`
}
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9k]")
_POSSESSIVE = re.compile(r"bad repetition operator: .*[*+?}]\+$")


def _options(ignore_case: bool, dot_all: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # the error goes into the PatternError, not to stderr
    options.never_capture = True  # a yes/no answer needs no groups
    options.case_sensitive = not ignore_case
    options.dot_nl = dot_all
    return options


def _backtracking_feature(complaint: str) -> str | None:
    operator = complaint.removeprefix("invalid perl operator: ")
    if operator != complaint and operator in _OPERATORS:
        return _OPERATORS[operator]
    if _BACKREFERENCE.match(complaint):
        return "a backreference"
    if _POSSESSIVE.match(complaint):
        return "a possessive quantifier"
    return None


def _checked(regex: str, options: Any, shown: str) -> Any:
    """RE2's pattern object for `regex`; PatternError when RE2 cannot run it, or it is too large. `shown`
    names what the rule wrote."""
    try:
        compiled = re2.compile(regex, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        complaint = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        feature = _backtracking_feature(complaint)
        if feature is not None:
            raise PatternError(
                f"{shown} needs backtracking ({feature}), which is not allowed: patterns must run in linear time"
            ) from None
        raise PatternError(f"bad {shown}: {complaint} (RE2 syntax)") from None
    size: int = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(f"{shown} is too large: {size} RE2 instructions (at most {MAX_PROGRAM_SIZE})")
    return compiled


_SETS = {Anchor.SEARCH: re2.Set.SearchSet, Anchor.START: re2.Set.MatchSet, Anchor.WHOLE: re2.Set.FullMatchSet}


def _compile(regexes: Sequence[str], shown: Sequence[str], anchor: Anchor, options: Any) -> Matcher:
    if not regexes:
        return lambda _text: False
    found = _SETS[anchor](options)
    for regex, what in zip(regexes, shown, strict=True):
        _checked(regex, options, what)
        found.Add(regex)
    found.Compile()
    match = found.Match

    def test(text: str) -> bool:
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate (from a JSON escape such as "\udc80")
            data = text.encode("utf-8", "surrogatepass")
        return match(data) is not None

    return test


def matcher(
    regexes: Sequence[str],
    *,
    anchor: Anchor = Anchor.SEARCH,
    ignore_case: bool = False,
    dot_all: bool = False,
    multi_line: bool = False,
) -> Matcher:
    """A test that any of `regexes` matches a text (as `anchor` says), in time linear in the text.

    The flags are Python's IGNORECASE, DOTALL and MULTILINE; PatternError names a regex RE2 cannot run.
    """
    return _compile(
        [f"(?m){r}" if multi_line else r for r in regexes],
        [f"regex {r!r}" for r in regexes],
        anchor,
        _options(ignore_case, dot_all),
    )


def compile_regex(regex: str, *, ignore_case: bool = False, dot_all: bool = False, multi_line: bool = False) -> Any:
    """One regex as the RE2 binding's own pattern object (`search`, `match`, ...), for an API that wants one
    (pySigma's regex engine); PatternError when RE2 cannot run it."""
    return _checked(f"(?m){regex}" if multi_line else regex, _options(ignore_case, dot_all), f"regex {regex!r}")


# ---- shell globs -----------------------------------------------------------------------------------------


def _literal(char: str) -> str:
    return char if char.isalnum() or char == "_" else f"\\x{{{ord(char):x}}}"


def escape(text: str) -> str:
    """`text` as an RE2 regular expression that matches exactly it."""
    return "".join(map(_literal, text))


def _bracket(body: str) -> str:
    """A glob's `[...]` body as an RE2 class, with `fnmatch.translate`'s reading of Python 3.11: `!` negates,
    a `]` first is a member, `a-z` is a range (reversed ranges drop out), and nothing is escaped."""
    negate = body.startswith("!")
    members = body[1:] if negate else body
    chunks: list[str] = []  # runs of single characters; each boundary between two chunks is a range
    start, k = 0, 1
    while (k := members.find("-", k)) >= 0:
        chunks.append(members[start:k])
        start, k = k + 1, k + 3
    if members[start:]:
        chunks.append(members[start:])
    elif chunks:
        chunks[-1] += "-"  # a trailing '-' is a member
    else:
        chunks.append(members)
    for i in range(len(chunks) - 1, 0, -1):  # drop reversed ranges, endpoints included
        if chunks[i - 1][-1] > chunks[i][0]:
            chunks[i - 1] = chunks[i - 1][:-1] + chunks[i][1:]
            del chunks[i]
    parts: list[str] = []
    for i, chunk in enumerate(chunks):
        if i:
            parts.append("-")
        parts.extend(_literal(c) for c in chunk)
    if not parts:
        return "." if negate else r"[^\x00-\x{10FFFF}]"  # `[!]`-like: any character; `[]`-like: none
    return ("[^" if negate else "[") + "".join(parts) + "]"


def glob_to_regex(glob: str) -> str:
    """An RE2 regular expression for a shell glob, read as `fnmatch` reads it: `*` any text, `?` one
    character, `[...]`/`[!...]` one character of a set (not), everything else literal. Match it whole, with
    `.` matching newlines too (`dot_all`)."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i + 1 if i < n and glob[i] == "!" else i
            j = j + 1 if j < n and glob[j] == "]" else j
            j = glob.find("]", j)
            if j < 0:
                out.append(_literal("["))
            else:
                out.append(_bracket(glob[i:j]))
                i = j + 1
        else:
            out.append(_literal(char))
    return "".join(out)


def glob(globs: Sequence[str], *, ignore_case: bool = False, shown: Sequence[str] | None = None) -> Matcher:
    """A test that a text matches any of the shell `globs`, as `fnmatch.fnmatchcase` does. `shown` names each glob
    in errors (default: the glob itself)."""
    shown = shown or [f"glob {g!r}" for g in globs]
    return _compile([glob_to_regex(g) for g in globs], shown, Anchor.WHOLE, _options(ignore_case, dot_all=True))
