"""The memory of a learned baseline: per key (a principal, a principal x namespace, or the whole cluster), the
terms it habitually uses and the networks it habitually comes from, bounded and JSON round-trippable.

Bounds (docs/baselines.md): at most `max_keys` keys, `max_terms` terms and `max_networks` networks per key;
past a cap the least recently seen entry is forgotten, and whatever was not seen for `history_s` is dropped
by a sweep every SWEEP_EVERY observations. Entries are never reordered (eviction scans for the oldest), so
the undo journal of a batch (rules/journal.py) restores the table exactly, order included.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from detectors.rules.journal import KeyJournal

SWEEP_EVERY = 4096  # observations between sweeps of what was not seen for the history
Key = tuple[str, ...]


def network_of(address: str) -> str:
    """The network an address stands for: its /24 (IPv4) or /64 (IPv6). A laptop's lease, a VPN pool or an
    office NAT moves within one; a new one is a new place. Not an address: the text itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _remember(seen: dict[str, float], value: str, now: float, cap: int) -> None:
    """Note `value` at `now` (the latest time wins); past `cap`, forget the least recently seen."""
    previous = seen.get(value)
    seen[value] = now if previous is None else max(previous, now)
    if len(seen) > cap:
        del seen[min(seen, key=seen.__getitem__)]


@dataclass
class Habit:
    """What one key habitually does: term -> last seen, network -> last seen, and when it was last seen."""

    terms: dict[str, float] = field(default_factory=dict)
    networks: dict[str, float] = field(default_factory=dict)
    last: float = 0.0

    def copy(self) -> Habit:
        return Habit(dict(self.terms), dict(self.networks), self.last)

    def to_json(self) -> dict[str, Any]:
        return {"terms": dict(self.terms), "networks": dict(self.networks), "last": self.last}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Habit:
        return cls(dict(data.get("terms", {})), dict(data.get("networks", {})), float(data.get("last", 0.0)))


@dataclass(frozen=True, slots=True)
class Observation:
    """How one event compares with its key's habit, before the event is learned."""

    known: tuple[str, ...]  # the key's terms before the event, most recent first
    new_terms: tuple[str, ...]  # the event's terms the key had not used
    network: str | None  # the event's network, when addresses are judged
    new_network: bool  # that network is not one the key habitually comes from
    known_networks: tuple[str, ...]


@dataclass
class HabitTable:
    """Every key's habit, with the bounds of the module docstring."""

    max_keys: int
    max_terms: int
    max_networks: int
    history_s: float
    habits: dict[Key, Habit] = field(default_factory=dict)
    observed: int = 0
    undo: KeyJournal[Key, Habit] | None = None

    def observe(self, key: Key, terms: tuple[str, ...], network: str | None, now: float) -> Observation:
        """Compare the event with the key's habit, then learn it."""
        if self.undo is not None:
            self.undo.touch(key)
        habit = self.habits.get(key)
        if habit is None:
            habit = self.habits[key] = Habit()
        known = tuple(sorted(habit.terms, key=habit.terms.__getitem__, reverse=True))
        fresh = tuple(t for t in terms if t not in habit.terms)
        known_networks = tuple(sorted(habit.networks, key=habit.networks.__getitem__, reverse=True))
        new_network = network is not None and network not in habit.networks
        for term in terms:
            _remember(habit.terms, term, now, self.max_terms)
        if network is not None:
            _remember(habit.networks, network, now, self.max_networks)
        habit.last = max(habit.last, now)
        if len(self.habits) > self.max_keys:
            self._forget(min(self.habits, key=lambda k: self.habits[k].last))
        self.observed += 1
        if self.observed % SWEEP_EVERY == 0:
            self.sweep(now)
        return Observation(known, fresh, network, new_network, known_networks)

    def sweep(self, now: float) -> None:
        """Drop keys, terms and networks not seen for the history."""
        horizon = now - self.history_s
        for key in list(self.habits):
            habit = self.habits[key]
            if habit.last <= horizon:
                self._forget(key)
                continue
            stale_terms = [t for t, ts in habit.terms.items() if ts <= horizon]
            stale_networks = [n for n, ts in habit.networks.items() if ts <= horizon]
            if stale_terms or stale_networks:
                if self.undo is not None:
                    self.undo.touch(key)
                for term in stale_terms:
                    del habit.terms[term]
                for network in stale_networks:
                    del habit.networks[network]

    def _forget(self, key: Key) -> None:
        if self.undo is not None:
            self.undo.remove(key)
        else:
            del self.habits[key]

    def begin(self) -> None:
        self.undo = KeyJournal(self.habits, Habit.copy)

    def end(self, keep: bool) -> None:
        """Close the batch: keep its changes, or put the table back as `begin()` saw it."""
        if self.undo is not None and not keep:
            self.undo.undo()
        self.undo = None

    def snapshot(self) -> list[list[Any]]:
        return [[list(key), habit.to_json()] for key, habit in self.habits.items()]

    def restore(self, entries: list[list[Any]]) -> None:
        self.habits = {tuple(key): Habit.from_json(habit) for key, habit in entries}
