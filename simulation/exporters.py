"""Events as some exporters write them: without ``annotations`` (so without the authorization decision).

Log shippers, normalisers and SIEM pipelines often keep an Event's request and response fields but drop
its annotations. :func:`drop_annotations` does that to a deterministic share of requests, chosen by
auditID, so every stage of one request is treated alike and the same stream always loses the same ones.
"""

from __future__ import annotations

from typing import Any

_SCALE = 1 << 32


def loses_annotations(audit_id: str, share: float) -> bool:
    """Whether the request ``audit_id`` is among the ``share`` written without annotations."""
    return share > 0 and int(audit_id[:8], 16) < share * _SCALE


def drop_annotations(event: dict[str, Any], share: float) -> dict[str, Any]:
    """``event`` itself, its ``annotations`` removed if its request is among the ``share``."""
    if share > 0 and "annotations" in event and loses_annotations(event["auditID"], share):
        del event["annotations"]
    return event
