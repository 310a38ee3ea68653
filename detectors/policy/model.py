"""The audit policy model: a Policy, its rules, the request attributes it is evaluated on, and decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from detectors.errors import DetectorError
from detectors.events import AuditEvent

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}
API_VERSION = "audit.k8s.io/v1"


class PolicyError(DetectorError):
    """A policy the apiserver would refuse to start with; `errors` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        if len(errors) == 1:
            super().__init__(f"invalid audit policy: {errors[0]}")
        else:
            super().__init__("invalid audit policy:\n" + "\n".join(f"  {e}" for e in errors))


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()  # already the union with the policy's
    omit_managed_fields: bool | None = None
    index: int = 0
    line: int = 0

    def describe(self) -> str:
        return f"rules[{self.index}]" + (f" (line {self.line})" if self.line else "")


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the apiserver records for a request: its level, the stages left out, managed fields or not."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    rule: PolicyRule | None = None


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """The authorizer attributes a policy sees. `user` None is a failed authentication (no user at all)."""

    user: str | None
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @classmethod
    def from_event(cls, event: AuditEvent | Mapping[str, Any]) -> RequestAttributes:
        """The attributes of the request an audit Event records (its authenticated user, not the
        impersonated one: the policy runs before impersonation)."""
        raw = event.raw if isinstance(event, AuditEvent) else event
        user = raw.get("user")
        username: str | None = None
        groups: tuple[str, ...] = ()
        if isinstance(user, dict) and (user.get("username") or user.get("groups")):
            username = str(user.get("username") or "")
            raw_groups = user.get("groups")
            groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else ()
        uri = str(raw.get("requestURI") or "")
        path, _, query = uri.partition("?")
        verb = str(raw.get("verb") or "")
        ref = raw.get("objectRef")
        if not isinstance(ref, dict) or not ref.get("resource"):
            return cls(username, groups, verb, False, path=path)
        name = str(ref.get("name") or "")
        if not name and verb in ("list", "watch") and query:
            name = field_selector_name(query)
        return cls(
            username, groups, verb, True,
            namespace=str(ref.get("namespace") or ""), api_group=str(ref.get("apiGroup") or ""),
            resource=str(ref.get("resource") or ""), subresource=str(ref.get("subresource") or ""),
            name=name, path=path,
        )  # fmt: skip


def field_selector_name(query: str) -> str:
    """`fieldSelector=metadata.name=X` (or `==X`) names the object of a list/watch, as RequestInfo does."""
    for selector in parse_qs(query).get("fieldSelector", []):
        for term in selector.split(","):
            for op in ("==", "="):
                key, sep, value = term.partition(op)
                if sep and key.strip() == "metadata.name" and not key.endswith("!"):
                    value = value.strip()
                    if value and value not in (".", "..") and "/" not in value and "%" not in value:
                        return value
                    return ""
    return ""
