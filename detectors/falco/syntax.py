"""Falco's condition language, as text: tokenizer, recursive-descent parser, macro and list expansion.

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | primary
    primary := "(" expr ")" | check | macro-name
    check   := lhs op [rhs]          (op "exists" takes no rhs)
    lhs     := field | field[arg] | transformer "(" lhs ")"
    rhs     := value | "(" [item ("," item)*] ")" | "val(" lhs ")"

Parsing gives an AST; `expand` inlines macros and list names; `detectors.falco.condition` compiles the
expanded tree into closures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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
