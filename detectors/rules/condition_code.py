"""A rule's `match:` as a tree, compiled into one Python function: the hot path of every native rule.

`conditions` builds the tree: `All`, `AnyOf`, `Not`, `Member` (a field one or two plain keys deep whose value, or
a list element of it, is one of a set of strings and ints: `verb: [get, list]`), `Among` (any other field path
with strings to choose from: `$decision: allow`), `Prefixed` (`{prefix: ...}` alone), and `Check` for every other
test (a compiled predicate). `compiled` turns it into the source of a single function, `and`/`or`/`not` with the
cheapest parts first, and every `Member` (and `Prefixed` on a plain field) written out inline, so that a rule
costs one call per event instead of one per node. The source holds only generated names and `repr()`s of field
keys; every other value is bound by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectors.events import AuditEvent

Predicate = Callable[[AuditEvent], bool]


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Cond


@dataclass(frozen=True, slots=True)
class Member:
    """`keys` (one or two) from the event root lead to a value in `choices` (strings and ints, not bools), or a
    list holding one; a list of objects on the way (`key1: [{key2: ...}]`) holds if one of them does. Types
    must agree: a str never equals an int."""

    keys: tuple[str, ...]
    choices: frozenset[Any]


@dataclass(frozen=True, slots=True)
class Among:
    """Some value that `values` reads (a field path's, flattened) is a string in `strings`. `keys`: the path's
    plain keys from the event root, when it is just that (then it costs less than a derived field's)."""

    values: Callable[[AuditEvent], list[Any]]
    strings: frozenset[str]
    keys: tuple[str, ...] | None = None
    value: Callable[[AuditEvent], Any] | None = None  # the only value, a string or None (`$decision`): no list


@dataclass(frozen=True, slots=True)
class Prefixed:
    """Some value that `values` reads is a string that starts with one of `prefixes`; `keys` as for `Among` (one
    or two are written out inline)."""

    values: Callable[[AuditEvent], list[Any]]
    prefixes: tuple[str, ...]
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Check:
    predicate: Predicate


Cond = All | AnyOf | Not | Member | Among | Prefixed | Check


def list_hit(values: list[Any], choices: frozenset[Any]) -> bool:
    """Whether an element of a list is a string or int in `choices`."""
    try:
        if choices.isdisjoint(values):  # the usual answer, at C speed: no element equals a choice
            return False
    except TypeError:  # an element that cannot be hashed: the loop below decides
        pass
    for v in values:
        if (type(v) is str or type(v) is int) and v in choices:
            return True
    return False


def string_among(values: list[Any], strings: frozenset[str]) -> bool:
    """Whether a value is a string in `strings`."""
    for v in values:
        if isinstance(v, str) and v in strings:
            return True
    return False


def string_prefixed(values: list[Any], prefixes: tuple[str, ...]) -> bool:
    """Whether a value is a string that starts with one of `prefixes`."""
    for v in values:
        if isinstance(v, str) and v.startswith(prefixes):
            return True
    return False


def dicts_hit(outer: list[Any], key: str, choices: frozenset[Any]) -> bool:
    """Whether an object of a list has `key` with a value (or a list element) in `choices`."""
    for o in outer:
        if type(o) is dict:
            v: Any = o.get(key)
            kind = type(v)
            if (kind is str or kind is int) and v in choices:
                return True
            if kind is list and list_hit(v, choices):
                return True
    return False


class _Source:
    """The expression of a condition tree, and the names its values are bound to."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {
            "list_hit": list_hit,
            "dicts_hit": dicts_hit,
            "string_among": string_among,
            "string_prefixed": string_prefixed,
        }
        self.temps = 0
        self.reads_raw = False

    def bind(self, value: Any) -> str:
        name = f"_v{len(self.names)}"
        self.names[name] = value
        return name

    def temp(self) -> str:
        """A fresh local name (assigned with `:=` where first used)."""
        self.temps += 1
        return f"_t{self.temps}"

    def expression(self, cond: Cond) -> str:
        if isinstance(cond, Prefixed) and cond.keys is not None and 1 <= len(cond.keys) <= 2:
            return self._prefixed(cond, cond.keys)
        if isinstance(cond, All):
            return "(" + " and ".join(self.expression(part) for part in cond.parts) + ")"
        if isinstance(cond, AnyOf):
            return "(" + " or ".join(self.expression(part) for part in cond.parts) + ")"
        if isinstance(cond, Not):
            return f"(not {self.expression(cond.part)})"
        if isinstance(cond, Check):
            return f"{self.bind(cond.predicate)}(event)"
        if isinstance(cond, Among) and cond.value is not None:
            return f"({self.bind(cond.value)}(event) in {self.bind(cond.strings)})"
        if isinstance(cond, Among):
            return f"string_among({self.bind(cond.values)}(event), {self.bind(cond.strings)})"
        if isinstance(cond, Prefixed):
            return f"string_prefixed({self.bind(cond.values)}(event), {self.bind(cond.prefixes)})"
        return self._member(cond)

    def _member(self, cond: Member) -> str:
        """Each type tested once, as an if/else chain: most values fail the first test that fits their type."""
        self.reads_raw = True
        if len(cond.keys) == 1:
            return self._hit(f"raw.get({cond.keys[0]!r})", cond.choices)
        k1, k2 = cond.keys
        outer = self.temp()
        first = self._hit(f"{outer}.get({k2!r})", cond.choices)
        return (
            f"({first} if type({outer} := raw.get({k1!r})) is dict"
            f" else (type({outer}) is list and dicts_hit({outer}, {k2!r}, {self.bind(cond.choices)})))"
        )

    def _prefixed(self, cond: Prefixed, keys: tuple[str, ...]) -> str:
        """A string value read inline; absent or null is False; any other shape goes through `values`."""
        self.reads_raw = True
        prefixes, general, v = self.bind(cond.prefixes), self.bind(cond.values), self.temp()
        if len(keys) == 1:
            value = f"raw.get({keys[0]!r})"
        else:
            outer, odd = self.temp(), self.bind(_ODD)
            value = (
                f"({outer}.get({keys[1]!r}) if type({outer} := raw.get({keys[0]!r})) is dict"
                f" else (None if {outer} is None else {odd}))"
            )
        return (
            f"({v}.startswith({prefixes}) if type({v} := {value}) is str"
            f" else ({v} is not None and string_prefixed({general}(event), {prefixes})))"
        )

    def _hit(self, value: str, choices: frozenset[Any]) -> str:
        """`value` is a string or int in `choices`, or a list holding one."""
        v, kind, names = self.temp(), self.temp(), self.bind(choices)
        only = next(iter(choices)) if len(choices) == 1 else None
        # one string: a list holds it when `in` finds it (a string equals no other JSON value)
        in_list = f"{self.bind(only)} in {v}" if type(only) is str else f"list_hit({v}, {names})"
        kinds = [name for name in ("str", "int") if any(type(c).__name__ == name for c in choices)]
        if not kinds:
            return f"(type({v} := {value}) is list and {in_list})"
        first, *rest = kinds
        scalar = f"({kind} := type({v} := {value})) is {first}" + "".join(f" or {kind} is {name}" for name in rest)
        return f"({v} in {names} if {scalar} else ({kind} is list and {in_list}))"


_ODD = object()  # stands for "the outer value is neither an object nor absent": the general reader decides


def cost(cond: Cond) -> int:
    """A rough cost of evaluating a condition: a plain field read inline is cheapest, a derived field (`$decision`,
    an index, `[*]`) dearest; `and`/`or` may have to evaluate every part."""
    if isinstance(cond, (All, AnyOf)):
        return sum(cost(part) for part in cond.parts)
    if isinstance(cond, Not):
        return cost(cond.part)
    if isinstance(cond, Member):
        return 1
    if isinstance(cond, (Among, Prefixed)):
        return 2 if cond.keys is not None else 5
    return 4


def cheapest_first(cond: Cond) -> Cond:
    """The same condition with the parts of every `and` and `or` in order of cost (stable): most events fail a
    rule's cheapest test, so its dearer ones are rarely reached. The parts are pure, so order cannot change the
    result."""
    if isinstance(cond, (All, AnyOf)):
        parts = sorted((cheapest_first(part) for part in cond.parts), key=cost)
        return All(tuple(parts)) if isinstance(cond, All) else AnyOf(tuple(parts))
    if isinstance(cond, Not):
        return Not(cheapest_first(cond.part))
    return cond


def compiled(cond: Cond, label: str = "match") -> Predicate:
    """The condition as one function of an event (`label` names it in tracebacks), cheapest tests first."""
    if isinstance(cond, Check):
        return cond.predicate
    source = _Source()
    body = source.expression(cheapest_first(cond))
    lines = ["def predicate(event):"]
    if source.reads_raw:
        lines.append("    raw = event.raw")
    lines.append(f"    return {body}")
    code = compile("\n".join(lines), f"<condition {label}>", "exec")
    exec(code, source.names)  # noqa: S102 - source built above from generated names and repr()s only
    predicate: Predicate = source.names["predicate"]
    return predicate
