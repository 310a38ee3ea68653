"""A rule's `allowlist:`: users, groups and namespaces that never alert, and images or registries that
exempt an event when every container has one. Entries are shell globs (`system:node:*`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from detectors import patterns
from detectors.errors import RuleError
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
        return cls(
            users=tuple(lists["users"]), groups=tuple(lists["groups"]), namespaces=tuple(lists["namespaces"]),
            images=tuple(lists["images"]), registries=tuple(lists["registries"]),
            _user=_glob_matcher(lists["users"]), _group=_glob_matcher(lists["groups"]),
            _namespace=_glob_matcher(lists["namespaces"]), _image=_glob_matcher(lists["images"]),
            _registry=_glob_matcher(lists["registries"]), active=any(lists.values()),
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
    """The rule's `allowlist:` (empty when absent)."""
    raw = node.get("allowlist")
    if raw is None:
        return Allowlist()
    line = node.line_of("allowlist")
    if not isinstance(raw, dict):
        raise RuleError(f"allowlist must be a mapping of {'/'.join(ALLOWLIST_KEYS)}", path=path, line=line)
    unknown = sorted(set(raw) - set(ALLOWLIST_KEYS))
    if unknown:
        raise RuleError(
            f"unknown allowlist key {unknown[0]!r} (known: {', '.join(ALLOWLIST_KEYS)})", path=path, line=line
        )
    lists: dict[str, list[str]] = {}
    for key in ALLOWLIST_KEYS:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RuleError(f"allowlist.{key} must be a list of strings", path=path, line=line)
        lists[key] = value
    try:
        return Allowlist.build(lists)
    except patterns.PatternError as exc:
        raise RuleError(f"allowlist: {exc}", path=path, line=line) from None
