"""Undo journals: what a batch changed in a rule's keyed state, so that a rollback can take it back exactly.

A stateful rule keeps its state in dicts keyed by its group key (or principal). While a batch is open, the
rule calls `touch(key)` before it changes or creates an entry and `remove(key)` to delete one; the first time
a key is touched in the batch, the journal keeps a copy of its entry (or notes that there was none). `undo()`
puts every touched entry back and, when entries were deleted, the table's order as well: snapshots list
entries in table order, and some rules break ties by it. The cost is one copy per key a batch touches; keys
it does not touch cost nothing, and outside a batch there is no journal at all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_ABSENT: Any = object()  # the key had no entry before the batch


class KeyJournal(Generic[K, V]):
    """The undo journal of one table for one batch. `copy` copies an entry that the rule mutates in place
    (None: entries are replaced, never mutated, so keeping the old object is enough)."""

    __slots__ = ("before", "copy", "order", "table")

    def __init__(self, table: dict[K, V], copy: Callable[[V], V] | None = None) -> None:
        self.table = table
        self.copy = copy
        self.before: dict[K, Any] = {}
        self.order: list[K] | None = None  # the table's keys before its first deletion in the batch

    def touch(self, key: K) -> None:
        """Call before changing or creating `table[key]`."""
        if key not in self.before:
            value = self.table.get(key, _ABSENT)
            self.before[key] = value if value is _ABSENT or self.copy is None else self.copy(value)

    def remove(self, key: K) -> None:
        """Delete `table[key]` (journaled)."""
        if self.order is None:
            self.order = list(self.table)
        self.touch(key)
        del self.table[key]

    def replace(self, items: Iterable[tuple[K, V]]) -> None:
        """Replace the whole content of the table in place (journaled)."""
        if self.order is None:
            self.order = list(self.table)
        for key in self.table:
            self.touch(key)
        self.table.clear()
        self.table.update(items)

    def undo(self) -> None:
        """Put the table back as it was when the batch began."""
        table = self.table
        for key, value in self.before.items():
            if value is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = value
        if self.order is not None:  # deleted entries came back at the end: restore the order
            ordered = {key: table[key] for key in self.order if key in table}
            table.clear()
            table.update(ordered)
