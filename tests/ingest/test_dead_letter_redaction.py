"""Dead-letter records (distributed mode's quarantine, a Kafka topic people read) are redacted and capped."""

from __future__ import annotations

import orjson

from detectors.events import Rejected
from ingest.kafka import DEAD_LETTER_PAYLOAD_BYTES, dead_letter
from tests.support.credential_canaries import CANARIES, quarantined_items


def test_dead_letters_hold_no_credential() -> None:
    for item in quarantined_items():
        record = orjson.loads(dead_letter(Rejected("webhook#items[0]", f"stage {item!r:.200}", item)))
        text = orjson.dumps(record).decode()
        assert [n for n, v in CANARIES.items() if v in text] == []
        assert record["payload_truncated"] is False and "<redacted>" in text


def test_a_large_dead_letter_payload_is_cut_with_a_marker() -> None:
    payload = {"items": [{"password": CANARIES["quarantine-line"], "pad": "x" * 200} for _ in range(1_000)]}
    record = orjson.loads(dead_letter(Rejected("f.jsonl:3", "too big", payload)))
    assert record["payload_truncated"] is True and isinstance(record["payload"], str)
    assert record["payload"].endswith("<truncated>") and len(record["payload"]) <= DEAD_LETTER_PAYLOAD_BYTES + 11
    assert CANARIES["quarantine-line"] not in record["payload"]
