"""Which events a detector can fire on, as data: the pipeline routes each event only to the detectors in scope.

An event's routing key is five cheap fields: stage, verb, objectRef.resource, objectRef.subresource and
responseStatus.code. A `Scope` holds the stages and resources a detector declares, and optionally a
condition over the key fields, abstracted from the rule's own `match:` (rules/conditions.py builds it): each
test of a key field is kept exactly, every other test becomes "unknown". Evaluated on a key in three-valued
logic, the condition is False only when the rule's `match:` is false for every event with that key, so a
detector left out of an event's route could not have done anything with it. The pipeline memoises the route
of each key, so the condition costs nothing per event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from detectors.events import AuditEvent

KEY_PATHS = ("stage", "verb", "objectRef.resource", "objectRef.subresource", "responseStatus.code")
STAGE, RESOURCE = KEY_PATHS.index("stage"), KEY_PATHS.index("objectRef.resource")
RouteKey = tuple[Any, ...]  # the KEY_PATHS values of an event: str, int or None


def route_key(raw: dict[str, Any]) -> RouteKey | None:
    """The event's routing key, or None when a field has a shape that only the full condition can judge
    (then every detector whose stages and resources admit the event meets it)."""
    ref = raw.get("objectRef")
    status = raw.get("responseStatus")
    if type(ref) is dict:
        resource, subresource = ref.get("resource"), ref.get("subresource")
    elif ref is None:
        resource = subresource = None
    else:
        return None
    if type(status) is dict:
        code = status.get("code")
    elif status is None:
        code = None
    else:
        return None
    stage, verb = raw.get("stage"), raw.get("verb")
    if (
        type(stage) is str
        and type(verb) is str
        and (type(resource) is str or resource is None)
        and (type(subresource) is str or subresource is None)
        and (type(code) is int or code is None)
    ):
        return stage, verb, resource, subresource, code
    return None  # also a missing stage or verb: rare enough to take the declared route


def key_event(key: RouteKey) -> AuditEvent:
    """An event holding only the key's fields: a key field's test reads the same value from it as from
    any event with that key."""
    stage, verb, resource, subresource, code = key
    raw: dict[str, Any] = {"stage": stage, "verb": verb}
    ref = {"resource": resource, "subresource": subresource}
    raw["objectRef"] = {k: v for k, v in ref.items() if v is not None}
    if code is not None:
        raw["responseStatus"] = {"code": code}
    return AuditEvent({k: v for k, v in raw.items() if v is not None})


@dataclass(frozen=True, slots=True)
class KeyTest:
    """A test of one key field, compiled as the rule compiles it."""

    test: Callable[[AuditEvent], bool]

    def holds(self, event: AuditEvent) -> bool | None:
        return self.test(event)


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[KeyCondition, ...]

    def holds(self, event: AuditEvent) -> bool | None:
        result: bool | None = True
        for part in self.parts:
            value = part.holds(event)
            if value is False:
                return False
            if value is None:
                result = None
        return result


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[KeyCondition, ...]

    def holds(self, event: AuditEvent) -> bool | None:
        result: bool | None = False
        for part in self.parts:
            value = part.holds(event)
            if value is True:
                return True
            if value is None:
                result = None
        return result


@dataclass(frozen=True, slots=True)
class NotOf:
    part: KeyCondition

    def holds(self, event: AuditEvent) -> bool | None:
        value = self.part.holds(event)
        return None if value is None else not value


@dataclass(frozen=True, slots=True)
class Unknown:
    """A test of a field outside the key: true for some events with the key, maybe."""

    def holds(self, event: AuditEvent) -> bool | None:
        return None


KeyCondition = KeyTest | AllOf | AnyOf | NotOf | Unknown
UNKNOWN = Unknown()


@dataclass(frozen=True, slots=True)
class Scope:
    """The events a detector can fire on: its stages and resources (None: any) and, when it has one, a
    condition over the routing key."""

    stages: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    condition: KeyCondition = UNKNOWN

    def admits_coarse(self, stage: Any, resource: Any) -> bool:
        """By stage and resource alone (what an event whose key cannot be built is routed by)."""
        if self.stages is not None and stage not in self.stages:
            return False
        return self.resources is None or resource in self.resources

    def admits(self, key: RouteKey) -> bool:
        return self.admits_coarse(key[STAGE], key[RESOURCE]) and self.condition.holds(key_event(key)) is not False


@runtime_checkable
class Scoped(Protocol):
    """A detector that declares its scope beyond `stages` and `resources`."""

    @property
    def scope(self) -> Scope: ...


def scope_of(detector: Any) -> Scope:
    """The declared scope of a detector; from its `stages` and `resources` when it declares none."""
    if isinstance(detector, Scoped):
        return detector.scope
    return Scope(detector.stages, detector.resources)
