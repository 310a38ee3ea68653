"""The one error body of every HTTP answer (RFC 9457 problem details, api/problems.py), checked."""

from __future__ import annotations

from typing import Any

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def problem_detail(resp: Any, status: int) -> str:
    """The `detail` of an error answer (an httpx or TestClient response), after checking its status and shape."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json", resp.headers
    body = resp.json()
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"errors"}, body
    assert body["type"] == "about:blank" and body["status"] == status and body["title"], body
    assert isinstance(body["detail"], str) and "\n" not in body["detail"], body
    return str(body["detail"])
