"""Archive shapes shared by the archive tests: a CloudWatch Logs subscription record as Firehose delivers it."""

from __future__ import annotations

import gzip

import orjson


def subscription_message(messages: list[str], kind: str = "DATA_MESSAGE") -> bytes:
    """A gzipped CloudWatch Logs subscription record holding `messages` (one log event each)."""
    body = {
        "messageType": kind,
        "owner": "111122223333",
        "logGroup": "/aws/eks/prod/cluster",
        "logStream": "kube-apiserver-audit-6f1a2b3c4d5e" if kind == "DATA_MESSAGE" else "",
        "subscriptionFilters": ["to-firehose"],
        "logEvents": [{"id": f"3891{i}", "timestamp": 1795165923151, "message": m} for i, m in enumerate(messages)],
    }
    return gzip.compress(orjson.dumps(body))  # fmt: skip
