"""The authorization decision of an audit event: the authorizer's annotation, else what the response proves.

The apiserver writes `authorization.k8s.io/decision` (`allow`/`forbid`) on every event after authorization,
but exporters, normalisers and SIEMs often drop annotations. The response code still tells, because of
where each code can come from in the apiserver's filter chain (authentication, audit, impersonation,
priority and fairness, authorization, then admission and storage):

- 101 (exec, attach and port-forward upgrades), 2xx and 3xx: the handler served the request, so
  authorization allowed it: `allow`.
- 403: `forbid`. The authorizer's refusal, or a refused impersonation; an admission webhook or the RBAC
  escalation check also answer 403 after authorization allowed the request, which only the annotation
  tells apart (so it wins when present).
- 401: not an authorization decision (authentication failed first): unknown.
- 429: the priority-and-fairness filter rejects before authorization (an eviction blocked by a disruption
  budget answers 429 after it): unknown.
- Other 4xx (400, 404, 405, 409, 410, 413, 415, 422...): the request reached the handler, admission or
  storage, which only happens after authorization allowed it: `allow` (a 404 on get, a 409 conflict, a 422
  from admission are authorized attempts). The exception is a 400 for a malformed `timeout` parameter,
  refused before authorization; it does nothing either way.
- 5xx: unknown. The authorizer's own errors answer 500, and timeouts (504) and panics can happen before
  authorization finished.
- No response yet (the RequestReceived stage) or no code: unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from detectors.annotations import DECISION_ANNOTATION

ALLOW: Final = "allow"
FORBID: Final = "forbid"


def decision_for_code(code: int) -> str | None:
    """The decision a response code proves (see the module docstring), or None when it proves none."""
    if code == 403:
        return FORBID
    if code == 101 or 200 <= code < 400 or (400 <= code < 500 and code not in (401, 429)):
        return ALLOW
    return None


def decision_of(raw: Mapping[str, Any]) -> str | None:
    """The event's authorization decision: its `authorization.k8s.io/decision` annotation when it has one,
    else the one its response code proves; None when neither tells."""
    annotations = raw.get("annotations")
    if type(annotations) is dict:
        value = annotations.get(DECISION_ANNOTATION)
        if value is not None:
            return str(value)
    status = raw.get("responseStatus")
    if type(status) is not dict:
        return None
    code = status.get("code")
    return decision_for_code(code) if type(code) is int else None
