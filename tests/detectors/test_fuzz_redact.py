"""Fuzzing the redaction: real events with credential canaries planted anywhere (any string, object or list of
the event, in every shape docs/redaction.md lists), and canary texts set in other text (delimiters, JSON
escaping, a line cut after the secret, quarantined text).

Every case: no planted secret survives `redact_event`, `redact_payload` (the event, its JSON text, the text cut
short), `redact_string` or `redact_message`; redaction never raises, and redacting again changes nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.credentials import redact_message
from detectors.redact import redact_event, redact_payload, redact_string
from tests.support.fuzz import budget, case, ran_budget
from tests.support.fuzz_events import CANARY_TEXTS, leaks, planted, real_event, real_event_count

EVENTS = budget("redaction (events)", 3500)
TEXTS = budget("redaction (texts)", 3800)


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def test_canaries_planted_anywhere_in_an_event() -> None:
    @settings(max_examples=EVENTS)
    @given(index=st.integers(0, real_event_count() - 1), data=st.data())
    def events(index: int, data: st.DataObject) -> None:
        event = real_event(index)
        names = data.draw(planted(event, anywhere=True))
        text = orjson.dumps(event)
        with case("redaction (events)", inputs=len(names)):
            redacted = redact_event(event)
            assert not leaks(_dump(redacted)), (leaks(_dump(redacted)), names)
            assert redact_event(redacted) == redacted, "redacting twice changed the event"
            for payload in (event, text.decode(), text[: data.draw(st.integers(1, len(text)))].decode(errors="ignore")):
                found = leaks(_dump(redact_payload(payload, max_nodes=100_000)))
                secrets_cut = leaks(payload if isinstance(payload, str) else text)
                assert not set(found) & set(secrets_cut), (found, str(payload)[:2000])

    with ran_budget("redaction (events)"):
        events()


# Before a canary text: anything that ends a word. After it: what ends a value (a value may hold brackets, `=`
# or `:`, so text glued on with those is part of the secret as far as anyone can tell).
BEFORE = [" ", "\n", "\t", ", ", "; ", "(", ")", '"', "'", "=", "&", "|", "\r\n", "[", "]", "{", "}", ":"]
AFTER = [" ", "\n", "\t", ", ", "; ", '"', "'", "&", "\r\n"]


@st.composite
def canary_in_text(draw: st.DrawFn) -> str:
    """One to three canary texts among other text, perhaps JSON-escaped once or twice, perhaps cut after the
    secret's end (a truncated line keeps the secret, loses what follows)."""
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        parts += [draw(st.text(max_size=30)), draw(st.sampled_from(BEFORE))]
        parts += [CANARY_TEXTS[draw(st.sampled_from(sorted(CANARY_TEXTS)))], draw(st.sampled_from(AFTER))]
    parts.append(draw(st.text(max_size=30)))
    text = "".join(parts)
    for _ in range(draw(st.integers(0, 2))):
        text = orjson.dumps({"log": text}).decode() if draw(st.booleans()) else orjson.dumps(text).decode()[1:-1]
    return text


def test_canaries_in_text() -> None:
    @settings(max_examples=TEXTS)
    @given(text=canary_in_text())
    def texts(text: str) -> None:
        planted_here = leaks(text)
        with case("redaction (texts)", inputs=len(planted_here)):
            for redacted in (redact_string(text), redact_message(text, 10 * len(text) + 10),
                             _dump(redact_payload(text))):  # fmt: skip
                assert not leaks(redacted), (leaks(redacted), text[:2000], str(redacted)[:2000])
            assert redact_string(redact_string(text)) == redact_string(text)

    with ran_budget("redaction (texts)"):
        texts()
