"""The webhook's contract on a body in a content coding: 415 naming it, before anything reaches the sink, on both
kinds of sink (`serve`'s, which takes parsed events, and `ingest`'s, which takes them as received)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from api.problems import use_problem_details
from detectors.events import AuditEvent, Rejected
from ingest.body import ReceivedEvent
from ingest.webhook import WEBHOOK_PATHS, SinkResult, webhook_router
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail


class EventSink:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        self.batches.append(list(events))
        return SinkResult()


class ReceivingSink(EventSink):
    async def accept_received(self, events: list[ReceivedEvent], rejected: list[Rejected]) -> SinkResult:
        self.batches.append(list(events))
        return SinkResult()


@pytest.fixture(params=[EventSink, ReceivingSink])
def webhook(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, EventSink]]:
    sink = request.param()
    app = FastAPI()
    use_problem_details(app)
    app.include_router(webhook_router(sink))
    with TestClient(app) as client:
        yield client, sink


BODY = event_list([exec_event()])


@pytest.mark.parametrize(
    ("encoding", "named"),
    [("gzip", "gzip"), ("GZIP", "GZIP"), ("br", "br"), ("identity, gzip", "gzip"), ("deflate,gzip", "deflate, gzip"),
     ("x" * 100, "x" * 37 + "...")],
)  # fmt: skip
def test_a_body_in_a_content_coding_is_refused_with_415_naming_it(
    webhook: tuple[TestClient, EventSink], encoding: str, named: str
) -> None:
    client, sink = webhook
    for path in WEBHOOK_PATHS:
        resp = client.post(path, content=gzip.compress(BODY), headers={"Content-Encoding": encoding})
        assert problem_detail(resp, 415) == f"Content-Encoding {named} is not supported: send the body uncompressed"
        assert resp.headers["Accept-Encoding"] == "identity"
    assert sink.batches == []  # nothing of it reached the sink


def test_identity_is_no_coding(webhook: tuple[TestClient, EventSink]) -> None:
    client, sink = webhook
    for encoding in ("identity", "Identity", ""):
        resp = client.post("/audit/webhook", content=BODY, headers={"Content-Encoding": encoding})
        assert resp.status_code == 200, resp.text
    assert len(sink.batches) == 3
