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


def mattermost_rewrites(text: str) -> str:
    """What Mattermost does to an incoming webhook's texts before rendering them (its Slack compatibility, from
    its server's source: `ExpandAnnouncement`, `replaceUserIds` for a known user's id, and
    `ParseSlackLinksToMarkdown` on the attachment's text and field values)."""
    for slack, mention in (("<!channel>", "@channel"), ("<!here>", "@here"), ("<!all>", "@all")):
        text = text.replace(slack, mention)
    text = re.sub(r"<@([A-Za-z0-9]+)>", r"@\1", text)
    return re.sub(r"<([^\n<|>]+)\|([^\n>]+)>", r"[\2](\1)", text)


def check_inert_mattermost_message(sent: dict[str, Any]) -> None:
    """As `check_inert_slack_message`, after Mattermost's own rewrites; and values shown as they are: no HTML
    entity, which Mattermost would show as written inside a code span."""
    (attachment,) = sent["attachments"]
    fields = {f["title"]: mattermost_rewrites(f["value"]) for f in attachment["fields"]}
    assert set(EVENT_FIELDS) <= fields.keys(), fields
    for value in [mattermost_rewrites(attachment["text"]), *(fields[t] for t in EVENT_FIELDS)]:
        assert re.fullmatch(r"`[^`\n\r]+`", value), value
    assert "*boss* _it_ ~gone~ ˋrm -rfˋ [click](http://evil.example/a)" in fields["Principal"]
    assert "![i](http://evil.example/i.png)" in fields["Command"] and "web-0](http://evil" in fields["Request"]
    texts = [sent["text"], attachment["fallback"], attachment["title"], attachment["footer"], *fields.values()]
    for text in map(mattermost_rewrites, texts):
        assert "\n" not in text and re.search("&(amp|lt|gt);", text) is None, text
        assert re.search("@(?!\u200b)", text) is None, text  # no mention, <!channel> and <@ID> included
    assert "@\u200bchannel @\u200bhere @\u200ball <\u200b!channel>" in fields["Principal"]
