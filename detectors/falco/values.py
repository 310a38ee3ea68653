"""What every Falco field extractor shares: the value types, the plugin's rendering of JSON values, a walk
down nested objects that stops where one is missing, and the objects of a list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

Value = str | list[str] | None
Extractor = Callable[[dict[str, Any]], Value]


class FieldError(Exception):
    """A field name or argument the plugin does not know."""


def render(value: Any) -> str | None:
    """A JSON value as the plugin renders it: strings as they are, everything else as JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def get_path(node: Any, *keys: str) -> Any:
    """The value at `keys` (a nested dict path), None where the path breaks off."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def str_list(value: Any) -> list[str] | None:
    """A list's values rendered, None for no list or an empty one."""
    if not isinstance(value, list):
        return None
    out = [s for s in (render(v) for v in value) if s is not None]
    return out or None


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects in a list (none when it is not one)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
