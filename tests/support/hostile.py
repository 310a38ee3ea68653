"""An exec event whose attacker-chosen values carry Slack mrkdwn, Markdown and mentions, and the check that a
Slack/Mattermost message made from its alert shows them without acting on them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from tests.support.events import exec_event

MARKUP = "*boss* _it_ ~gone~ `rm -rf` [click](http://evil.example/a) ![px](http://evil.example/p.png)"
MENTIONS = "@channel @here @all <!channel> <!here|here>"
EVENT_FIELDS = ("Principal", "Namespace", "Request", "Source IPs", "Command")


def hostile_exec_event() -> dict[str, Any]:
    """`kubectl exec` as the apiserver logs it, by a user, into a pod and with a command an attacker named."""
    event = exec_event()
    event["user"]["username"] = f"{MARKUP} {MENTIONS}\n\n# heading\n> quote"
    name = "web-0](http://evil.example/n)"
    command = ["sh", "-c", f"echo {MENTIONS} {MARKUP}\n\n![i](http://evil.example/i.png)"]
    query = "&".join(f"command={quote(arg, safe='')}" for arg in command)
    event["requestURI"] = f"/api/v1/namespaces/shop/pods/{quote(name, safe='')}/exec?{query}&container=web&stdin=true"
    event["objectRef"]["name"] = name
    event["sourceIPs"] = ["198.51.100.23", "[x](http://evil.example/ip)"]
    return event


def check_inert_slack_message(sent: dict[str, Any]) -> None:
    (attachment,) = sent["attachments"]
    assert attachment["mrkdwn_in"] == ["text", "fields"]  # Slack renders the code spans too
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert set(EVENT_FIELDS) <= fields.keys(), fields
    for value in [attachment["text"], *(fields[t] for t in EVENT_FIELDS)]:
        assert re.fullmatch(r"`[^`\n\r]+`", value), value  # one code span, on one line, that nothing ends early
    assert "*boss* _it_ ~gone~ ˋrm -rfˋ [click](http://evil.example/a)" in fields["Principal"]  # still readable
    assert "![i](http://evil.example/i.png)" in fields["Command"] and "web-0](http://evil" in fields["Request"]
    for text in [sent["text"], attachment["fallback"], attachment["title"], *fields.values()]:
        assert "\n" not in text and "<" not in text and ">" not in text, text
        assert re.search("@(?!\u200b)", text) is None, text  # @channel, @here, @all: a zero-width space after @
    assert "@\u200bchannel @\u200bhere @\u200ball &lt;!channel&gt;" in fields["Principal"]
