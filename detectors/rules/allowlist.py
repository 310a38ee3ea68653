"""A rule's `allowlist:`: users, groups and namespaces that never alert, and images or registries that
exempt an event when every container has one. Entries are shell globs (`system:node:*`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from detectors import patterns
from detectors.errors import RuleError, RuleErrors
from detectors.events import AuditEvent
from detectors.loading.yamlload import LocatedDict
from detectors.virtual_roots import image_registry as image_registry  # re-exported: defined with $registries

ALLOWLIST_KEYS = ("users", "groups", "namespaces", "images", "registries")


_MEMO_SIZE = 10_000  # values whose answer a matcher remembers (user names, groups, namespaces recur)


def _glob_matcher(globs: list[str]) -> Callable[[str], bool]:
    if not globs:
        return lambda _v: False
    matches = patterns.glob(globs)
    memo: dict[str, bool] = {}

    def test(value: str) -> bool:
        found = memo.get(value)
        if found is None:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            found = memo[value] = bool(value) and matches(value)
        return found

    return test


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Events a rule must not alert on. Users, groups, namespaces: any match allows. Images, registries:
    the event is allowed when it carries containers and *every* one of them (init and ephemeral included,
    unlike Falco's main-containers-only exemption) has an allowed image or comes from an allowed registry."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    registries: tuple[str, ...] = ()
    _user: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _group: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _namespace: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _image: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _registry: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    active: bool = False  # any entry at all: an empty allowlist (most rules) answers without reading the event

    @classmethod
    def build(cls, lists: dict[str, list[str]]) -> Allowlist:
        return cls._of(lists, {key: _glob_matcher(globs) for key, globs in lists.items()})

    @classmethod
    def _of(cls, lists: dict[str, list[str]], matchers: dict[str, Callable[[str], bool]]) -> Allowlist:
        return cls(
            users=tuple(lists["users"]), groups=tuple(lists["groups"]), namespaces=tuple(lists["namespaces"]),
            images=tuple(lists["images"]), registries=tuple(lists["registries"]),
            _user=matchers["users"], _group=matchers["groups"], _namespace=matchers["namespaces"],
            _image=matchers["images"], _registry=matchers["registries"], active=any(lists.values()),
        )  # fmt: skip

    def allows(self, event: AuditEvent) -> bool:
        if not self.active:
            return False
        if self.users and self._user(event.username):
            return True
        if self.groups and any(self._group(g) for g in event.groups):
            return True
        if self.namespaces and self._namespace(event.namespace):
            return True
        if not (self.images or self.registries):
            return False
        images = [i for i in (event.get("$containers[*].image") or []) if isinstance(i, str)]
        return bool(images) and all(self._image(i) or self._registry(image_registry(i)) for i in images)


def parse_allowlist(node: LocatedDict, *, path: str) -> Allowlist:
    """The rule's `allowlist:` (empty when absent); RuleErrors with every bad key or list of it, each at its
    line, so that a rule's errors are all reported at once."""
    raw = node.get("allowlist")
    if raw is None:
        return Allowlist()
    line = node.line_of("allowlist")
    if not isinstance(raw, dict):
        raise RuleError(f"allowlist must be a mapping of {'/'.join(ALLOWLIST_KEYS)}", path=path, line=line)
    lines = {key: raw.line_of(key) if isinstance(raw, LocatedDict) else line for key in raw}
    known = ", ".join(ALLOWLIST_KEYS)
    errors = [
        RuleError(f"unknown allowlist key {key!r} (known: {known})", path=path, line=lines[key])
        for key in raw
        if key not in ALLOWLIST_KEYS
    ]
    lists: dict[str, list[str]] = {}
    matchers: dict[str, Callable[[str], bool]] = {}
    for key in ALLOWLIST_KEYS:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(RuleError(f"allowlist.{key} must be a list of strings", path=path, line=lines[key]))
            continue
        try:
            lists[key], matchers[key] = value, _glob_matcher(value)
        except patterns.PatternError as exc:
            errors.append(RuleError(f"allowlist.{key}: {exc}", path=path, line=lines[key]))
    if errors:
        raise RuleErrors(errors)
    return Allowlist._of(lists, matchers)
