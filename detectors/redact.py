"""Remove credentials from events, and from everything built from them, before it is stored, shown or sent on.

What goes (docs/redaction.md has the full list): Secret `data`/`stringData` and the last-applied annotation that
repeats them, values of JSON patches sent to secrets, values under credential-named keys whatever their type
(`token`, `password`, `Authorization`, `DB_PASSWORD`...), the `value` of `{name, value}` pairs named like a
credential (env vars, probe headers), and credential-shaped text in any string or key (`detectors.credentials`);
JSON inside a string is redacted as JSON. Key names and the shape stay, so an analyst still sees *which* key
changed. The walk is iterative (any nesting depth) and linear in the size of its input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from detectors.credentials import REDACTED, is_credential_name, is_reference, redact_short_text, redact_text

TRUNCATED = "<truncated>"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_BODIES = ("requestObject", "responseObject")
_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_EMBEDDED_JSON_MAX = 1 << 20  # longer strings that hold JSON get the text patterns only
# An opaque base64 blob (e.g. a detector's pickled model) holds no text in clear; scanning it only finds noise.
_BLOB = re.compile(r"[A-Za-z0-9+/=\r\n]{1025,}")
_SHORT = 200  # strings up to this long are redacted through a cache
_PAYLOAD_DEPTH = 100  # quarantined items: deeper levels become "<truncated>" (JSON encoders stop near 255)
_SECRET_BODY_NAMES = frozenset({"data", "stringdata"})
_SECRETS_URI = re.compile(r"/secrets(?:/|\?|$)")

# Where a mapping sits: anywhere, in the body of a request to secrets, under a credential name, or it is the
# event of a request to secrets (whose request and response bodies are secret bodies).
_PLAIN, _SECRET, _CREDENTIAL, _SECRETS_EVENT = range(4)


def redact_string(text: str) -> str:
    """A string as it may be stored: JSON inside it redacted as JSON, credential-shaped text replaced."""
    return _Walk(embedded=True).string(text)


_OPTION = re.compile(r"--?([A-Za-z][\w-]{0,63})")


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command's argv as it may be stored: each element as text (`--password=x`), and the element after a
    flag named like a credential (`mysql --password SECRET`, where the value is an element of its own)."""
    out: list[str] = []
    secret_next = False
    for arg in argv:
        out.append(REDACTED if secret_next and _flag_value(arg) else redact_string(arg))
        secret_next = _credential_flag(arg)
    return out


def _credential_flag(arg: str) -> bool:
    """Whether `arg` is a whole flag named like a credential (`--password`): its value is the next element."""
    if arg[:1] != "-":  # most elements: no match to try
        return False
    flag = _OPTION.fullmatch(arg)
    return flag is not None and is_credential_name(flag.group(1))


def _flag_value(arg: Any) -> bool:
    """Whether an element after a credential-named flag is its value (not another flag, nor a switch's word)."""
    return isinstance(arg, str) and not arg.startswith("-") and arg.lower() not in ("true", "false", "yes", "no")


def redact_text_in(value: Any) -> Any:
    """A deep copy of a JSON-like value whose keys are ours (alert details, detector state: rule ids, field
    names), with every string and key given the text patterns and JSON inside strings redacted as JSON. Key
    names are not judged: `token-request-then-use-from-new-ip` is a rule id, not a credential."""
    return _Walk(embedded=True, names=False).run(value, _PLAIN)


def redact_event(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A redacted deep copy of an audit event (the input is not modified)."""
    out: dict[str, Any] = _Walk(embedded=True).run(raw, _context_of(raw))
    return out


def redact_payload(payload: Any, *, max_nodes: int | None = None) -> Any:
    """Best-effort redaction of something that did not validate as an event (quarantine, dead letters).

    A string that parses as a JSON object is redacted as an event and given back as JSON text; any other string
    gets the text patterns. Levels deeper than 100, and everything after `max_nodes` values, become
    "<truncated>", so the result always encodes as JSON.
    """
    walk = _Walk(embedded=True, max_nodes=max_nodes, max_depth=_PAYLOAD_DEPTH)
    if isinstance(payload, str):
        doc = _json_object(payload)
        if doc is None:  # e.g. a truncated line: in the text of a request to secrets, data maps go too
            return redact_text(payload, also=_SECRET_BODY_NAMES if "secrets" in payload else frozenset())
        text = _dumps(walk.run(doc, _context_of(doc)))
        return text if text is not None else redact_text(payload)
    return walk.run(payload, _context_of(payload) if isinstance(payload, dict) else _PLAIN)


def redacted_json(payload: Any, limit: int) -> tuple[str, bool]:
    """`payload` redacted, as JSON text of at most `limit` bytes (then marked "<truncated>"), and whether it was cut."""
    clean = redact_payload(payload, max_nodes=limit)
    try:
        data = orjson.dumps(clean, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits (archives decoded by the json module): the slow encoder takes it
        data = json.dumps(clean, default=str, ensure_ascii=False).encode()
    if len(data) <= limit:
        return data.decode(), False
    return data[:limit].decode("utf-8", "ignore") + TRUNCATED, True


def _context_of(raw: Any) -> int:
    return _SECRETS_EVENT if isinstance(raw, Mapping) and _targets_secrets(raw) else _PLAIN


def _targets_secrets(raw: Mapping[str, Any]) -> bool:
    """Whether the event is a request to secrets (also when a malformed item says so in an odd shape)."""
    ref = raw.get("objectRef")
    resource = ref.get("resource") if isinstance(ref, Mapping) else None
    if resource == "secrets" or (isinstance(resource, list) and "secrets" in resource):
        return True
    uri = raw.get("requestURI")
    return isinstance(uri, str) and _SECRETS_URI.search(uri.partition("?")[0]) is not None


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{") or len(text) > _EMBEDDED_JSON_MAX:
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _dumps(value: Any) -> str | None:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # nested deeper than the encoder goes, or an integer beyond 64 bits
        return None


def _hidden(value: Any) -> Any:
    """A value under a credential name: strings and numbers go; booleans, null and "" say nothing."""
    if (isinstance(value, str) and value) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return REDACTED
    return value


def _is_credential_pair(obj: Mapping[str, Any]) -> bool:
    """`{name: DB_PASSWORD, value: ...}` (env vars, probe headers) or a JSON patch op on a credential path."""
    if "value" not in obj:
        return False
    name = obj.get("name")
    if isinstance(name, str) and is_credential_name(name):
        return True
    path = obj.get("path")
    return (
        obj.get("op") in _PATCH_OPS
        and isinstance(path, str)
        and any(is_credential_name(part) for part in path.split("/") if part)
    )


def _scrub_secret(obj: dict[str, Any], *, patch: bool) -> dict[str, Any]:
    """A Secret (or a patch to one) without its values: data maps keep their keys, patch ops lose their value."""
    out = dict(obj)
    for key in ("data", "stringData"):
        if key in out:
            value = out[key]
            out[key] = dict.fromkeys(value, REDACTED) if isinstance(value, dict) else REDACTED
    if patch and "op" in out and "value" in out:
        out["value"] = REDACTED
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) and _LAST_APPLIED in meta["annotations"]:
        out["metadata"] = {**meta, "annotations": {**meta["annotations"], _LAST_APPLIED: REDACTED}}
    return out


# A container still to copy: (value, the container it goes into, its key or index there, context, depth).
_Pending = tuple[Any, Any, Any, int, int]


class _Walk:
    """One redacting deep copy, with an explicit stack instead of recursion."""

    def __init__(
        self, *, embedded: bool, names: bool = True, max_nodes: int | None = None, max_depth: int | None = None
    ) -> None:
        self.embedded = embedded  # whether strings holding JSON are parsed and redacted as JSON
        self.names = names  # whether key names and shapes (Secrets, name/value pairs) decide what goes
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.nodes = 0
        self.changed = False

    def run(self, root: Any, context: int) -> Any:
        holder: list[Any] = [None]
        stack: list[_Pending] = [(root, holder, 0, context, 0)]
        while stack:
            value, parent, slot, ctx, depth = stack.pop()
            if (self.max_nodes is not None and self.nodes > self.max_nodes) or (
                self.max_depth is not None and depth > self.max_depth
            ):
                parent[slot] = TRUNCATED
                continue
            pending: list[_Pending] = []
            if isinstance(value, dict):
                parent[slot] = self._mapping(value, ctx, depth + 1, pending)
            elif isinstance(value, list):
                parent[slot] = self._sequence(value, ctx, depth + 1, pending)
            else:
                parent[slot] = self._scalar(value, ctx)
            stack.extend(reversed(pending))  # first child on top: values are visited in document order
        return holder[0]

    def _mapping(self, obj: dict[Any, Any], ctx: int, depth: int, pending: list[_Pending]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        if not self.names:
            for key, value in obj.items():
                if not self._put(out, self._key(key), value, _PLAIN, depth, pending):
                    break
            return out
        if ctx == _CREDENTIAL and not is_reference(obj):
            for key, value in obj.items():
                if not self._put(out, self._key(key), value, _CREDENTIAL, depth, pending):
                    break
            return out
        if ctx == _SECRET or obj.get("kind") == "Secret":
            obj = _scrub_secret(obj, patch=ctx == _SECRET)
            self.changed = True
        pair = _is_credential_pair(obj)
        for key, value in obj.items():
            if isinstance(key, str) and (is_credential_name(key) or (pair and key == "value")):
                child = _CREDENTIAL
            elif (ctx == _SECRETS_EVENT and key in _BODIES) or (ctx == _SECRET and key == "items"):
                child = _SECRET  # a SecretList's items carry no kind
            else:
                child = _PLAIN
            if not self._put(out, self._key(key), value, child, depth, pending):
                break
        return out

    def _sequence(self, items: list[Any], ctx: int, depth: int, pending: list[_Pending]) -> list[Any]:
        out: list[Any] = []
        secret_next = False  # a list may be an argv (a container's `args`): `["--password", "SECRET"]`
        for value in items:
            out.append(None)
            child = _CREDENTIAL if secret_next and _flag_value(value) else ctx
            if not self._put(out, len(out) - 1, value, child, depth, pending):
                break
            secret_next = self.names and isinstance(value, str) and _credential_flag(value)
        return out

    def _put(self, out: Any, slot: Any, value: Any, ctx: int, depth: int, pending: list[_Pending]) -> bool:
        """Copy one value into `out[slot]` (containers later, from the stack); False once over `max_nodes`."""
        self.nodes += 1
        if self.max_nodes is not None and self.nodes > self.max_nodes:
            out[slot] = TRUNCATED
            return False
        if isinstance(value, (dict, list)):
            out[slot] = None  # keeps the key's place; filled when the stack reaches it
            pending.append((value, out, slot, ctx, depth))
        else:
            out[slot] = self._scalar(value, ctx)
        return True

    def _scalar(self, value: Any, ctx: int) -> Any:
        if ctx == _CREDENTIAL:
            clean = _hidden(value)
        elif isinstance(value, str):
            clean = self.string(value)
        else:
            return value
        if clean is not value and clean != value:
            self.changed = True
        return clean

    def _key(self, key: Any) -> Any:
        if not isinstance(key, str):
            return key
        clean = redact_short_text(key) if len(key) <= _SHORT else redact_text(key)
        if clean != key:
            self.changed = True
        return clean

    def string(self, text: str) -> str:
        if self.embedded and text[:1] in "{[" and len(text) <= _EMBEDDED_JSON_MAX:
            clean = self._embedded_json(text)
            if clean is not None:
                return clean
        if len(text) <= _SHORT:
            return redact_short_text(text)
        if len(text) > 1024 and _BLOB.fullmatch(text):
            return text
        return redact_text(text)

    @staticmethod
    def _embedded_json(text: str) -> str | None:
        """A string that is JSON (a last-applied annotation, a config file): redacted as JSON, itself if clean."""
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, (dict, list)):
            return None
        inner = _Walk(embedded=False)
        clean = inner.run(doc, _PLAIN)
        return _dumps(clean) if inner.changed else text
