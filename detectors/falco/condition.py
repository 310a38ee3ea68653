"""Falco's condition language: tokenizer, recursive-descent parser, macro/list expansion, closure compiler.

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | primary
    primary := "(" expr ")" | check | macro-name
    check   := lhs op [rhs]          (op "exists" takes no rhs)
    lhs     := field | field[arg] | transformer "(" lhs ")"
    rhs     := value | "(" [item ("," item)*] ")" | "val(" lhs ")"

Parsing gives an AST; `expand` inlines macros and list names; `compile_condition` turns the expanded
tree into nested Python closures over an `AuditEvent`, so evaluating a rule is a handful of calls.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.events import AuditEvent
from detectors.falco.fields import FieldError, Value, resolve

Cond = Callable[[AuditEvent], bool]
Getter = Callable[[AuditEvent], Value]


class ConditionError(Exception):
    """A condition that does not parse or compile; the message names the problem."""


SCALAR_OPS = frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains", "startswith", "endswith",
                        "glob", "iglob", "regex"})  # fmt: skip
LIST_RHS_OPS = frozenset({"in", "intersects", "pmatch"})
UNSUPPORTED_OPS = frozenset({"bcontains", "bstartswith"})
OPERATORS = SCALAR_OPS | LIST_RHS_OPS | {"exists"} | UNSUPPORTED_OPS
WORD_OPS = frozenset(op for op in OPERATORS if op[0].isalpha())
LIST_FIELD_OPS = frozenset({"in", "intersects", "exists"})
TRANSFORMERS = frozenset({"tolower", "toupper", "b64", "basename", "len"})


# ---- AST -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    text: str
    bare: bool  # a bare word may name a list


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    arg: str | None
    transformers: tuple[str, ...] = ()  # innermost first

    def key(self) -> str:
        text = self.name if self.arg is None else f"{self.name}[{self.arg}]"
        for t in self.transformers:
            text = f"{t}({text})"
        return text


@dataclass(frozen=True, slots=True)
class Check:
    field: FieldRef
    op: str
    value: Item | tuple[Item, ...] | FieldRef | None  # tuple for list operators, FieldRef for val()


@dataclass(frozen=True, slots=True)
class MacroRef:
    name: str


@dataclass(frozen=True, slots=True)
class Not:
    item: Any  # Node, or XNode after expansion


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Any, ...]


Node = Check | MacroRef | Not | And | Or


# ---- tokenizer -----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<punct>[(),])
    | (?P<op>==|!=|<=|>=|=|<|>)
    | (?P<dq>"(?:[^"\\]|\\.)*")
    | (?P<sq>'(?:[^'\\]|\\.)*')
    | (?P<word>[^\s(),=<>!"']+(?:\[[^\]]*\])?[^\s(),=<>!"']*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # punct | op | str | word | end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ConditionError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        start = m.start(m.lastgroup or 0)
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind in ("dq", "sq"):
            body = raw[1:-1]
            body = re.sub(r"\\(.)", lambda mm: mm.group(1), body)
            tokens.append(Token("str", body, start))
        else:
            tokens.append(Token(kind, raw, start))
        pos = m.end()
    tokens.append(Token("end", "", n))
    return tokens


# ---- parser --------------------------------------------------------------------------------------------

_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\[(.*)\])?$")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> ConditionError:
        tok = tok or self.peek()
        where = f"column {tok.pos + 1}" if tok.kind != "end" else "end of condition"
        return ConditionError(f"{message} at {where}")

    def expect(self, kind: str, text: str) -> Token:
        tok = self.next()
        if tok.kind != kind or tok.text != text:
            raise self.error(f"expected {text!r}, got {tok.text or 'end'!r}", tok)
        return tok

    def is_word(self, text: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "word" and tok.text == text

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ConditionError("empty condition")
        node = self.parse_or()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_word("or"):
            self.next()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_word("and"):
            self.next()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Node:
        if self.is_word("not"):
            self.next()
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.next()
            node = self.parse_or()
            self.expect("punct", ")")
            return node
        if tok.kind != "word" or tok.text in ("and", "or"):
            raise self.error(f"expected a field, a macro or '(', got {tok.text or 'end'!r}")
        nxt = self.peek(1)
        is_transformer = tok.text in TRANSFORMERS and nxt.kind == "punct" and nxt.text == "("
        if not is_transformer and not _is_operator(nxt):
            self.next()
            if "." in tok.text or "[" in tok.text:
                raise self.error(f"expected an operator after {tok.text!r}, got {nxt.text or 'end'!r}", nxt)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", tok.text):
                raise self.error(f"bad macro name {tok.text!r}", tok)
            return MacroRef(tok.text)
        field = self.parse_lhs()
        op_tok = self.next()
        if not _is_operator(op_tok):
            raise self.error(f"expected an operator after {field.key()!r}, got {op_tok.text or 'end'!r}", op_tok)
        op = op_tok.text
        if op == "exists":
            return Check(field, op, None)
        if op in LIST_RHS_OPS:
            return Check(field, op, self.parse_list_rhs())
        return Check(field, op, self.parse_value())

    def parse_lhs(self) -> FieldRef:
        tok = self.next()
        if tok.kind != "word":
            raise self.error(f"expected a field, got {tok.text or 'end'!r}", tok)
        if tok.text in TRANSFORMERS and self.peek().kind == "punct" and self.peek().text == "(":
            self.next()
            inner = self.parse_lhs()
            self.expect("punct", ")")
            return FieldRef(inner.name, inner.arg, (*inner.transformers, tok.text))
        m = _FIELD.match(tok.text)
        if m is None:
            raise self.error(f"bad field name {tok.text!r}", tok)
        return FieldRef(m.group(1), m.group(2))

    def parse_value(self) -> Item | FieldRef:
        tok = self.peek()
        if tok.kind == "word" and tok.text == "val" and self.peek(1).kind == "punct" and self.peek(1).text == "(":
            self.next()
            self.next()
            ref = self.parse_lhs()
            self.expect("punct", ")")
            return ref
        tok = self.next()
        if tok.kind == "str":
            return Item(tok.text, False)
        if tok.kind == "word" and tok.text not in ("and", "or", "not"):
            return Item(tok.text, True)
        raise self.error(f"expected a value, got {tok.text or 'end'!r}", tok)

    def parse_list_rhs(self) -> tuple[Item, ...]:
        tok = self.peek()
        if tok.kind == "word" and tok.text not in ("and", "or", "not"):
            self.next()  # a bare list name (or a single value) without parentheses
            return (Item(tok.text, True),)
        self.expect("punct", "(")
        items: list[Item] = []
        if self.peek().kind == "punct" and self.peek().text == ")":
            self.next()
            return ()
        while True:
            tok = self.next()
            if tok.kind == "str":
                items.append(Item(tok.text, False))
            elif tok.kind == "word":
                items.append(Item(tok.text, True))
            else:
                raise self.error(f"expected a list item, got {tok.text or 'end'!r}", tok)
            sep = self.next()
            if sep.kind == "punct" and sep.text == ")":
                return tuple(items)
            if not (sep.kind == "punct" and sep.text == ","):
                raise self.error(f"expected ',' or ')' in a list, got {sep.text or 'end'!r}", sep)


def _is_operator(tok: Token) -> bool:
    return tok.kind == "op" or (tok.kind == "word" and tok.text in WORD_OPS)


def parse(text: str) -> Node:
    if not isinstance(text, str):
        raise ConditionError("a condition must be a string")
    return _Parser(text).parse()


# ---- expansion -----------------------------------------------------------------------------------------


def expand_items(
    items: Sequence[Item], lists: Mapping[str, Sequence[str]], seen: tuple[str, ...] = ()
) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if item.bare and item.text in lists:
            if item.text in seen:
                raise ConditionError(f"list {item.text!r} includes itself")
            out.extend(expand_items([Item(t, True) for t in lists[item.text]], lists, (*seen, item.text)))
        else:
            out.append(item.text)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class XCheck:
    """A check after expansion: list values are plain strings."""

    field: FieldRef
    op: str
    value: str | tuple[str, ...] | FieldRef | None


XNode = XCheck | Not | And | Or


def expand(
    node: Node, macros: Mapping[str, Node], lists: Mapping[str, Sequence[str]], stack: tuple[str, ...] = ()
) -> Any:
    """Inline macros (recursively, refusing cycles) and expand list names; returns a tree of XNodes."""
    if isinstance(node, MacroRef):
        if node.name not in macros:
            raise ConditionError(f"undefined macro {node.name!r}")
        if node.name in stack:
            raise ConditionError(f"macro {node.name!r} refers to itself ({' -> '.join((*stack, node.name))})")
        return expand(macros[node.name], macros, lists, (*stack, node.name))
    if isinstance(node, Not):
        return Not(expand(node.item, macros, lists, stack))
    if isinstance(node, And):
        return And(tuple(expand(i, macros, lists, stack) for i in node.items))
    if isinstance(node, Or):
        return Or(tuple(expand(i, macros, lists, stack) for i in node.items))
    value: str | tuple[str, ...] | FieldRef | None
    if isinstance(node.value, tuple):
        value = expand_items(node.value, lists)
    elif isinstance(node.value, Item):
        value = node.value.text
    else:
        value = node.value
    return XCheck(node.field, node.op, value)


# ---- compiler ------------------------------------------------------------------------------------------


def _transform(name: str, v: str) -> str:
    if name == "tolower":
        return v.lower()
    if name == "toupper":
        return v.upper()
    if name == "basename":
        return posixpath.basename(v)
    if name == "b64":
        try:
            return base64.b64decode(v, validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    return str(len(v))


def field_getter(ref: FieldRef) -> tuple[Getter, bool]:
    """(getter over an event, is a list value) for a field reference, with per-event caching of costly ones."""
    try:
        extractor, is_list, cost = resolve(ref.name, ref.arg)
    except FieldError as exc:
        raise ConditionError(str(exc)) from None
    getter: Getter
    if cost >= 2:
        key = "falco:" + (ref.name if ref.arg is None else f"{ref.name}[{ref.arg}]")

        def cached(ev: AuditEvent) -> Value:
            cache = ev.cache
            if key in cache:
                v: Value = cache[key]
                return v
            v = extractor(ev.raw)
            cache[key] = v
            return v

        getter = cached
    else:

        def direct(ev: AuditEvent) -> Value:
            return extractor(ev.raw)

        getter = direct
    for t in ref.transformers:
        getter, is_list = _wrap_transformer(getter, is_list, t)
    return getter, is_list


def _wrap_transformer(inner: Getter, is_list: bool, name: str) -> tuple[Getter, bool]:
    if name == "len":

        def length(ev: AuditEvent) -> Value:
            v = inner(ev)
            return None if v is None else str(len(v))

        return length, False

    def each(ev: AuditEvent) -> Value:
        v = inner(ev)
        if v is None:
            return None
        if isinstance(v, list):
            return [_transform(name, x) for x in v]
        return _transform(name, v)

    return each, is_list


def _pmatch(paths: tuple[str, ...]) -> Callable[[str], bool]:
    prefixes = tuple(p.rstrip("/") + "/" for p in paths)
    exact = frozenset(p.rstrip("/") or "/" for p in paths)

    def match(v: str) -> bool:
        return v in exact or v.startswith(prefixes)

    return match


def _scalar_test(op: str, lit: str) -> Callable[[str], bool]:
    if op in ("=", "=="):
        return lit.__eq__
    if op == "!=":
        return lit.__ne__
    if op == "<":
        return lambda v: v < lit
    if op == "<=":
        return lambda v: v <= lit
    if op == ">":
        return lambda v: v > lit
    if op == ">=":
        return lambda v: v >= lit
    if op == "contains":
        return lambda v: lit in v
    if op == "icontains":
        low = lit.lower()
        return lambda v: low in v.lower()
    if op == "startswith":
        return lambda v: v.startswith(lit)
    if op == "endswith":
        return lambda v: v.endswith(lit)
    if op in ("glob", "iglob"):
        pattern = re.compile(fnmatch.translate(lit), re.IGNORECASE if op == "iglob" else 0)
        return lambda v: pattern.match(v) is not None
    if op == "regex":
        try:
            rx = re.compile(lit)
        except re.error as exc:
            raise ConditionError(f"bad regex {lit!r}: {exc}") from None
        return lambda v: rx.fullmatch(v) is not None
    raise ConditionError(f"unknown operator {op!r}")


def _compile_check(check: XCheck) -> Cond:
    op = check.op
    if op in UNSUPPORTED_OPS:
        raise ConditionError(f"operator {op!r} (byte matching) is not supported on k8s_audit fields")
    if op not in OPERATORS:
        raise ConditionError(f"unknown operator {op!r}")
    get, is_list = field_getter(check.field)
    if is_list and op not in LIST_FIELD_OPS:
        raise ConditionError(
            f"operator {op!r} cannot be used on list field {check.field.key()!r} (use in, intersects or exists)"
        )
    if op == "exists":

        def exists(ev: AuditEvent) -> bool:
            return get(ev) is not None

        return exists
    value = check.value
    if isinstance(value, FieldRef):
        if op in LIST_RHS_OPS:
            raise ConditionError(f"val() cannot be used with {op!r}")
        other, other_is_list = field_getter(value)
        if other_is_list:
            raise ConditionError(f"val() of a list field {value.key()!r} is not supported")

        def against(ev: AuditEvent) -> bool:
            v = get(ev)
            w = other(ev)
            return v is not None and w is not None and _scalar_test(op, w)(v)  # type: ignore[arg-type]

        return against
    if isinstance(value, tuple):
        items = value
        if op == "pmatch":
            if is_list:
                raise ConditionError(f"operator 'pmatch' cannot be used on list field {check.field.key()!r}")
            pm = _pmatch(items)

            def pmatch(ev: AuditEvent) -> bool:
                v = get(ev)
                return v is not None and pm(v)  # type: ignore[arg-type]

            return pmatch
        members = frozenset(items)
        if is_list:
            if op == "in":

                def all_in(ev: AuditEvent) -> bool:
                    v = get(ev)
                    return v is not None and members.issuperset(v)

                return all_in

            def any_in(ev: AuditEvent) -> bool:
                v = get(ev)
                return v is not None and not members.isdisjoint(v)

            return any_in
        if len(members) == 1:
            (only,) = members

            def eq_one(ev: AuditEvent) -> bool:
                return get(ev) == only

            return eq_one

        def one_of(ev: AuditEvent) -> bool:
            return get(ev) in members

        return one_of
    if op in LIST_RHS_OPS:
        raise ConditionError(f"operator {op!r} needs a list")
    lit = value if isinstance(value, str) else ""
    if op in ("=", "=="):

        def eq(ev: AuditEvent) -> bool:
            return get(ev) == lit

        return eq
    test = _scalar_test(op, lit)

    def cmp(ev: AuditEvent) -> bool:
        v = get(ev)
        return v is not None and test(v)  # type: ignore[arg-type]

    return cmp


def _and(fs: list[Cond]) -> Cond:
    if len(fs) == 1:
        return fs[0]
    a, b = fs[0], _and(fs[1:])

    def both(ev: AuditEvent) -> bool:
        return a(ev) and b(ev)

    return both


def _or(fs: list[Cond]) -> Cond:
    if len(fs) == 1:
        return fs[0]
    a, b = fs[0], _or(fs[1:])

    def either(ev: AuditEvent) -> bool:
        return a(ev) or b(ev)

    return either


def compile_condition(node: Any) -> Cond:
    """Expanded tree -> one closure. Missing fields make every check false; `not` then makes it true."""
    if isinstance(node, XCheck):
        return _compile_check(node)
    if isinstance(node, Not):
        inner = compile_condition(node.item)

        def negate(ev: AuditEvent) -> bool:
            return not inner(ev)

        return negate
    if isinstance(node, And):
        return _and([compile_condition(i) for i in node.items])
    if isinstance(node, Or):
        return _or([compile_condition(i) for i in node.items])
    raise ConditionError(f"cannot compile {node!r}")


def required_values(node: Any, keys: frozenset[tuple[str, str | None]]) -> frozenset[str] | None:
    """The values a scalar field (named by any of `keys`) must have for the condition to hold; None = any.

    Sound for indexing: only positive positions count (`not` gives None), AND intersects, OR unites.
    """
    if isinstance(node, XCheck):
        ref = node.field
        if ref.transformers or (ref.name, ref.arg) not in keys:
            return None
        if node.op in ("=", "==") and isinstance(node.value, str):
            return frozenset({node.value})
        if node.op in ("in", "intersects") and isinstance(node.value, tuple):
            return frozenset(node.value)
        return None
    if isinstance(node, And):
        found: frozenset[str] | None = None
        for item in node.items:
            r = required_values(item, keys)
            if r is not None:
                found = r if found is None else found & r
        return found
    if isinstance(node, Or):
        union: set[str] = set()
        for item in node.items:
            r = required_values(item, keys)
            if r is None:
                return None
            union |= r
        return frozenset(union)
    return None
