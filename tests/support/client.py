"""The in-process HTTP client of the tests: starlette's TestClient, naming the app `localhost`.

An app whose settings authenticate nobody answers only a Host that names a local client or an allowed host
(auditwatch/hosts.py); TestClient's own default, `testserver`, is neither. A test of the Host check names the
host it sends.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient as _StarletteClient

LOCAL_BASE_URL = "http://localhost"


class TestClient(_StarletteClient):
    __test__ = False  # not a test class for pytest

    def __init__(self, app: Any, base_url: str = LOCAL_BASE_URL, **options: Any) -> None:
        super().__init__(app, base_url=base_url, **options)
