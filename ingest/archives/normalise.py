"""Shared normalisation: Kubernetes MicroTime, and Events rebuilt from Elastic documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

AUDIT_API_VERSION = "audit.k8s.io/v1"
_TIME_KEYS = ("requestReceivedTimestamp", "stageTimestamp")


def micro_time(value: Any) -> str | None:
    """Any RFC 3339 time (nanoseconds, milliseconds, offsets) -> the apiserver's `2006-01-02T15:04:05.000000Z`."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    if "." in text:  # more than 6 fractional digits: cut (fromisoformat of 3.11 takes at most 6 reliably)
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:  # year 1 with a positive offset, 9999 with a negative one: not a time to keep
        return None


def normalise_times(event: dict[str, Any]) -> None:
    for key in _TIME_KEYS:
        fixed = micro_time(event.get(key))
        if fixed is not None:
            event[key] = fixed


def _restore_key(key: str) -> str:
    """Elastic's pipeline de-dots annotation keys (`authorization_k8s_io/decision`); the prefix of a key is
    a DNS subdomain, which has no underscores, so they are dots again."""
    prefix, slash, rest = key.partition("/")
    return prefix.replace("_", ".") + slash + rest if slash else key


def _unflatten(doc: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """`kubernetes.audit` as a nested object, whether the document is nested or has dotted keys."""
    node: Any = doc
    for part in prefix.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    # A copy of the top level only: elastic_event changes nothing deeper (and a deep copy recurses).
    if isinstance(node, dict):
        return dict(node)
    flat = {k[len(prefix) + 1 :]: v for k, v in doc.items() if k.startswith(prefix + ".")}
    if not flat:
        whole = doc.get(prefix)
        return dict(whole) if isinstance(whole, dict) else None
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        head, _, tail = dotted.partition(".")  # only the first level: annotation keys hold dots of their own
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[head] = value
    return out


def elastic_event(doc: dict[str, Any]) -> dict[str, Any] | str:
    """An Event rebuilt from an Elastic `logs-kubernetes.audit_logs-*` document (without event.original)."""
    audit = _unflatten(doc, "kubernetes.audit")
    if not audit:
        return "Elastic document without event.original or kubernetes.audit"
    audit.pop("aks_metadata", None)
    audit.setdefault("kind", "Event")
    audit.setdefault("apiVersion", AUDIT_API_VERSION)
    annotations = audit.get("annotations")
    if isinstance(annotations, dict):
        audit["annotations"] = {_restore_key(k): v for k, v in annotations.items()}
    if isinstance(audit.get("sourceIPs"), str):
        audit["sourceIPs"] = [audit["sourceIPs"]]
    normalise_times(audit)
    return audit
