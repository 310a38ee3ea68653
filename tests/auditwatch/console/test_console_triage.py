"""Triage from the console's forms: acknowledge, assign, note, resolve, reopen; false positive with an exception
pre-filled from the alert, which silences the next such event; what the forms refuse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.console import csrf_of, post_events, submit
from tests.support.events import another_like, exec_event


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_serve_app(Settings(db_url=db_url))) as c:
        yield c


@pytest.fixture
def alert(client: TestClient) -> dict[str, Any]:
    post_events(client, exec_event())
    (found,) = client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]
    return found  # type: ignore[no-any-return]


def triage(client: TestClient, alert_id: str, **fields: str) -> Any:
    resp = submit(client, f"/alerts/{alert_id}", f"/alerts/{alert_id}/triage", fields)
    assert resp.status_code == 303 and resp.headers["location"] == f"/alerts/{alert_id}#triage", resp.text
    return client.get(f"/api/v1/alerts/{alert_id}").json()


def test_acknowledge_assign_note_resolve_reopen(client: TestClient, alert: dict[str, Any]) -> None:
    aid = alert["id"]
    assert triage(client, aid, action="acknowledge")["status"] == "acknowledged"
    assert triage(client, aid, action="reopen", author="ann")["status"] == "open"
    assert triage(client, aid, action="acknowledge")["status"] == "acknowledged"
    assert (
        triage(client, aid, action="assign", assignee="bob@example.com", author="ann")["assignee"] == "bob@example.com"
    )
    noted = triage(client, aid, action="note", note="contractor, asked them", author="ann")
    assert [n["text"] for n in noted["notes"]] == ["contractor, asked them"]
    assert triage(client, aid, action="assign", assignee="")["assignee"] is None  # empty unassigns
    assert triage(client, aid, action="resolve")["status"] == "resolved"
    assert triage(client, aid, action="reopen")["status"] == "open"
    history = client.get(f"/api/v1/alerts/{aid}/history").json()["items"]  # an author given once is remembered
    assert [(h["field"], h["new"], h["author"]) for h in history] == [
        ("status", "acknowledged", "anonymous"), ("status", "open", "ann"), ("status", "acknowledged", "ann"), ("assignee", "bob@example.com", "ann"), ("note", "contractor, asked them", "ann"),
        ("assignee", None, "ann"), ("status", "resolved", "ann"), ("status", "open", "ann"),
    ]  # fmt: skip
    page = client.get(f"/alerts/{aid}").text
    assert "contractor, asked them" in page and "status open &rarr; acknowledged" in page


def test_the_author_is_remembered_for_the_next_forms(client: TestClient, alert: dict[str, Any]) -> None:
    aid = alert["id"]
    assert (
        'id="t-author" name="author" maxlength="200" autocomplete="name" value=""' in client.get(f"/alerts/{aid}").text
    )
    triage(client, aid, action="acknowledge", author="Zoë")
    page = client.get(f"/alerts/{aid}").text
    assert page.count('value="Zoë"') == 3  # the visible field and the assign and note forms' copies
    assert triage(client, aid, action="note", note="seen")["notes"][0]["author"] == "Zoë"
    assert (
        'id="fp-author" name="author" maxlength="200" value="Zoë"' in client.get(f"/alerts/{aid}/false-positive").text
    )


def test_what_the_triage_form_refuses(client: TestClient, alert: dict[str, Any]) -> None:
    aid = alert["id"]
    assert submit(client, f"/alerts/{aid}", f"/alerts/{aid}/triage", {"action": "explode"}).status_code == 400
    empty_note = submit(client, f"/alerts/{aid}", f"/alerts/{aid}/triage", {"action": "note", "note": "  "})
    assert empty_note.status_code == 422 and "note" in empty_note.text
    missing = submit(client, f"/alerts/{aid}", "/alerts/nope/triage", {"action": "acknowledge"})
    assert missing.status_code == 404 and "<html" in missing.text
    page = client.get(f"/alerts/{aid}")  # a note whose escapes are not UTF-8: refused, not mangled into U+FFFD
    body = f"csrf_token={csrf_of(page)}&action=note&note=caf%E9+%FF".encode()
    bad = client.post(
        f"/alerts/{aid}/triage", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert bad.status_code == 400 and "UTF-8" in bad.text
    assert client.get(f"/api/v1/alerts/{aid}").json()["notes"] == []


def test_the_false_positive_form_is_pre_filled_from_the_alert(client: TestClient, alert: dict[str, Any]) -> None:
    page = client.get(f"/alerts/{alert['id']}/false-positive")
    assert page.status_code == 200
    for path, value in (("user.username", "mallory@example.com"), ("verb", "create"), ("objectRef.resource", "pods"),
                        ("objectRef.subresource", "exec"), ("objectRef.namespace", "shop")):  # fmt: skip
        assert f'name="value:{path}" value="{value}"' in page.text
        assert re.search(rf'name="use:{re.escape(path)}" value="1"\s+checked>', page.text)


def test_false_positive_creates_the_exception_that_silences_a_replay(client: TestClient, alert: dict[str, Any]) -> None:
    aid = alert["id"]
    fields = {"use:user.username": "1", "value:user.username": "mallory@example.com",
              "use:objectRef.namespace": "1", "value:objectRef.namespace": "shop",
              "use:verb": "1", "value:verb": "create", "value:objectRef.resource": "pods",  # not ticked: left out
              "comment": "mallory's debugging sessions", "author": "ann"}  # fmt: skip
    resp = submit(client, f"/alerts/{aid}/false-positive", f"/alerts/{aid}/false-positive", fields)
    assert resp.status_code == 303 and resp.headers["location"] == f"/alerts/{aid}#exceptions", resp.text
    after = client.get(f"/api/v1/alerts/{aid}").json()
    assert after["status"] == "false_positive" and after["notes"][0]["text"] == "mallory's debugging sessions"
    (exception,) = client.get("/api/v1/exceptions").json()["items"]
    assert exception["rule_id"] == "pod-exec-attach" and exception["from_alert"] == aid
    assert exception["match"] == {"user.username": ["mallory@example.com"], "objectRef.namespace": ["shop"],
                                  "verb": ["create"]}  # fmt: skip
    assert exception["author"] == "ann" and exception["comment"] == "mallory's debugging sessions"
    page = client.get(f"/alerts/{aid}").text
    assert f'data-exception-id="{exception["id"]}"' in page

    post_events(client, another_like(exec_event(), 7))  # the same kind of event again: silenced
    assert [a["id"] for a in client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]] == [aid]
    assert client.get(f"/api/v1/exceptions/{exception['id']}").json()["hits"] >= 1


def test_a_typed_glob_widens_the_exception(client: TestClient, alert: dict[str, Any]) -> None:
    aid = alert["id"]
    fields = {"use:objectRef.namespace": "1", "value:objectRef.namespace": "sh*"}
    resp = submit(client, f"/alerts/{aid}/false-positive", f"/alerts/{aid}/false-positive", fields)
    assert resp.status_code == 303
    (exception,) = client.get("/api/v1/exceptions").json()["items"]
    assert exception["match"] == {"objectRef.namespace": ["sh*"]}


def test_the_false_positive_form_refuses_no_fields_and_a_past_expiry(client: TestClient, alert: dict[str, Any]) -> None:
    aid = alert["id"]
    url = f"/alerts/{aid}/false-positive"
    none = submit(client, url, url, {"comment": "everything"})
    assert none.status_code == 422 and "tick at least one field" in none.text and 'value="everything"' not in none.text
    past = submit(client, url, url, {"use:verb": "1", "value:verb": "create", "expires_at": "2020-01-01T00:00"})
    assert past.status_code == 422 and "past" in past.text
    assert client.get("/api/v1/exceptions").json()["items"] == []
    assert client.get(f"/api/v1/alerts/{aid}").json()["status"] == "open"


def test_an_expiry_with_an_offset_keeps_it(client: TestClient, alert: dict[str, Any]) -> None:
    """The form's field is UTC without an offset; a client that writes one (+05:00) means that time, not 5 h later."""
    aid = alert["id"]
    url = f"/alerts/{aid}/false-positive"
    given = {"use:verb": "1", "value:verb": "create", "expires_at": "2030-06-30T12:00+05:00"}
    assert submit(client, url, url, given).status_code == 303
    (exception,) = client.get("/api/v1/exceptions").json()["items"]
    assert exception["expires_at"].startswith("2030-06-30T07:00:00")
