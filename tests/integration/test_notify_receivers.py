"""The sender against real local HTTP receivers: a signed webhook, falcosidekick's input, Slack, Mattermost; a receiver that
goes down and comes back gets every notification once; refusals, rate limits and the outbox bound."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.outbox import Outbox
from api.store import AlertStore
from auditwatch.notify.config import SinkConfig
from auditwatch.notify.sender import Sender
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.alerts import live_alerts
from tests.support.hostile import check_inert_mattermost_message, check_inert_slack_message, hostile_exec_event
from tests.support.receivers import Receiver, falcosidekick_problems, verify_signature
from tests.support.sending import until, with_sender

pytestmark = pytest.mark.integration
SECRET = b"0123456789abcdef-hmac"


@pytest.fixture
def sqlite_store(db_url: str) -> Iterator[AlertStore]:
    s = AlertStore(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def start(receivers: list[Receiver], **kwargs: object) -> Receiver:
    receiver = Receiver(**kwargs).start()  # type: ignore[arg-type]
    receivers.append(receiver)
    return receiver


def deliveries(store: AlertStore, sink: str) -> dict[str, dict[str, object]]:
    items, _ = Outbox(store.engine).list_deliveries(status=None, sink=sink, limit=500, cursor=None)
    return {str(d["alert_id"]): d for d in items}


def test_webhook_falcosidekick_and_slack_receive_every_alert(
    sqlite_store: AlertStore, receivers: list[Receiver], tmp_path: Path
) -> None:
    hook, sidekick, slack = start(receivers), start(receivers), start(receivers)
    secret_file = tmp_path / "hmac"
    secret_file.write_bytes(SECRET + b"\n")
    batch = live_alerts(6, principals=2)

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, batch, routes=sender.routes())
        for receiver in (hook, sidekick, slack):
            await until("6 notifications each", lambda r=receiver: len(r.requests()) >= 6)  # type: ignore[misc]

    sender = with_sender(sqlite_store, [
        f"webhook={hook.url}/auditwatch,secret_file={secret_file}",
        f"falcosidekick={sidekick.url}",
        f"slack={slack.url}/services/T0/B0/XXXXsecret",
    ], body)  # fmt: skip
    want = {a.id for a in batch}
    signed = hook.requests()
    assert all(r.path == "/auditwatch" and verify_signature(r, SECRET) for r in signed)
    assert [r.headers["x-auditwatch-delivery"] for r in signed] == [r.json()["id"] for r in signed]
    assert {r.json()["id"] for r in signed} == want and len(signed) == 6
    assert {r.json()["rule_id"] for r in signed} == {"pod-exec-attach"}
    events = [r.json() for r in sidekick.requests()]
    assert len(events) == 6 and all(falcosidekick_problems(e) == [] for e in events)
    assert {e["output_fields"]["ka.auditid"] for e in events} == {a.audit_id for a in batch}
    messages = [r.json() for r in slack.requests()]
    assert len(messages) == 6 and all(r.path == "/services/T0/B0/XXXXsecret" for r in slack.requests())
    assert all(m["text"] == "auditwatch high alert: Exec or attach into a pod" for m in messages)
    assert {m["attachments"][0]["title_link"] for m in messages} == {
        f"https://auditwatch.test/alerts/{i}" for i in want
    }
    for sink in sender.sinks:
        assert {d["status"] for d in deliveries(sqlite_store, sink.name).values()} == {"delivered"}
        assert sender.stats[sink.name].delivered == 6 and sender.stats[sink.name].errors == 0


def test_slack_receives_hostile_event_values_inert(sqlite_store: AlertStore, receivers: list[Receiver]) -> None:
    slack = start(receivers)
    event = AuditEvent(raw=hostile_exec_event())
    found = [a for a in Pipeline(load_rules(["builtin"])).process(event) if a.rule_id == "pod-exec-attach"]

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, found, routes=sender.routes())
        await until("the message", lambda: len(slack.requests()) == 1)

    with_sender(sqlite_store, [f"slack={slack.url}/services/T0/B0/XXXXsecret"], body)
    (request,) = slack.requests()
    check_inert_slack_message(request.json())


def test_mattermost_receives_hostile_event_values_as_they_are_and_inert(
    sqlite_store: AlertStore, receivers: list[Receiver]
) -> None:
    mattermost = start(receivers)
    event = AuditEvent(raw=hostile_exec_event())
    event.raw["user"]["username"] = "R&D <ops> " + event.raw["user"]["username"]
    found = [a for a in Pipeline(load_rules(["builtin"])).process(event) if a.rule_id == "pod-exec-attach"]

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, found, routes=sender.routes())
        await until("the message", lambda: len(mattermost.requests()) == 1)

    sender = with_sender(sqlite_store, [f"mattermost={mattermost.url}/hooks/xxxxsecretxxxx"], body)
    (request,) = mattermost.requests()
    assert request.path == "/hooks/xxxxsecretxxxx" and sender.sinks[0].name == f"mattermost:{mattermost.url}"
    check_inert_mattermost_message(request.json())
    assert request.json()["attachments"][0]["text"].startswith("`R&D <ops> ")


def test_a_receiver_that_goes_down_gets_everything_once_it_is_back(
    sqlite_store: AlertStore, receivers: list[Receiver]
) -> None:
    hook = start(receivers)
    first, second = live_alerts(3, tag="first"), live_alerts(5, tag="second")

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, first, routes=sender.routes())
        await until("the first alerts", lambda: len(hook.requests()) == 3)
        hook.stop()
        await asyncio.to_thread(sqlite_store.write, second, routes=sender.routes())
        await until("failed tries", lambda: sender.stats[sinks[0].name].errors >= 3)
        pending = [d for d in deliveries(sqlite_store, sinks[0].name).values() if d["status"] == "pending"]
        assert len(pending) == 5 and any("ConnectError" in str(d["last_error"]) for d in pending)
        hook.start()  # the same port
        await until("every alert", lambda: len(hook.requests()) >= 8)
        await asyncio.sleep(1.0)  # nothing more comes

    sender = with_sender(sqlite_store, [f"webhook={hook.url},backoff=200ms,backoff_max=1s"], body)
    ids = [r.json()["id"] for r in hook.requests()]
    assert sorted(ids) == sorted(a.id for a in [*first, *second])  # every one, none twice
    (name,) = sender.stats
    assert sender.stats[name].delivered == 8 and sender.depths() == {name: 0}


def test_refused_notifications_fail_and_their_errors_keep_no_secret(
    sqlite_store: AlertStore, receivers: list[Receiver]
) -> None:
    slack = start(receivers, status=404, answer=b"channel_not_found for /services/T0/B0/XXXXsecret")
    batch = live_alerts(2)

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, batch, routes=sender.routes())
        await until("both refused", lambda: sender.stats[sinks[0].name].failed == 2)

    sender = with_sender(sqlite_store, [f"slack={slack.url}/services/T0/B0/XXXXsecret"], body)
    (name,) = sender.stats
    found = deliveries(sqlite_store, name)
    assert {d["status"] for d in found.values()} == {"failed"}
    assert {d["last_error"] for d in found.values()} == {"HTTP 404: channel_not_found for <redacted>"}
    assert len(slack.requests()) == 2  # a refusal is not retried


def test_rate_limit_drops_and_counts_the_excess(sqlite_store: AlertStore, receivers: list[Receiver]) -> None:
    hook = start(receivers)
    batch = live_alerts(5)

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, batch, routes=sender.routes())
        await until(
            "all settled", lambda: sender.stats[sinks[0].name].delivered + sender.stats[sinks[0].name].dropped == 5
        )

    sender = with_sender(sqlite_store, [f"webhook={hook.url},rate=2/h"], body)
    (name,) = sender.stats
    assert (sender.stats[name].delivered, sender.stats[name].dropped) == (2, 3)
    statuses = sorted((d["status"], d["last_error"]) for d in deliveries(sqlite_store, name).values())
    assert statuses == [("delivered", None)] * 2 + [("dropped", "over rate=2/h")] * 3
    assert len(hook.requests()) == 2


def test_the_outbox_of_a_sink_that_is_down_is_bounded(sqlite_store: AlertStore, receivers: list[Receiver]) -> None:
    hook = start(receivers)
    hook.stop()
    batch = live_alerts(6)

    async def body(sender: Sender, sinks: list[SinkConfig]) -> None:
        await asyncio.to_thread(sqlite_store.write, batch, routes=sender.routes())
        await until("the oldest dropped", lambda: sender.stats[sinks[0].name].dropped == 3)
        hook.start()
        await until("the rest delivered", lambda: sender.stats[sinks[0].name].delivered == 3)

    sender = with_sender(sqlite_store, [f"webhook={hook.url},max_pending=3,backoff=200ms,backoff_max=500ms"], body)
    (name,) = sender.stats
    dropped = sorted(a for a, d in deliveries(sqlite_store, name).items() if d["status"] == "dropped")
    delivered = sorted(r.json()["id"] for r in hook.requests())
    assert len(dropped) == 3 and len(delivered) == 3 and not set(dropped) & set(delivered)
