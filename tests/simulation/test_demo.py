"""The bundled demo sample: the file auditwatch replays is what simulation.demo_events generates."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson

from auditwatch.demo import SAMPLES
from simulation import ATTACK_TECHNIQUES, demo_attack_labels, demo_profile
from tests.support.simulation import Event, parse_ts, suspicious

DEMO_PATH = SAMPLES["synthetic"].path
REGENERATE = f"python -m simulation --demo --out {DEMO_PATH.relative_to(DEMO_PATH.parents[2])}"


def test_demo_file_matches_generator(demo: list[Event]) -> None:
    assert DEMO_PATH.exists(), "regenerate with: " + REGENERATE
    assert DEMO_PATH.stat().st_size < 1_000_000
    lines = gzip.decompress(DEMO_PATH.read_bytes()).splitlines()
    assert lines == [orjson.dumps(ev) for ev in demo], "demo file is stale: " + REGENERATE


def test_demo_contents(demo: list[Event]) -> None:
    assert 2000 <= len(demo) <= 12_000
    start = parse_ts(demo[0]["stageTimestamp"])
    assert start >= datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert parse_ts(demo[-1]["stageTimestamp"]) - start <= timedelta(minutes=20)
    labels = demo_attack_labels()
    assert set(labels.values()) == set(ATTACK_TECHNIQUES)
    attack = [ev for ev in demo if ev["auditID"] in labels]
    assert {ev["auditID"] for ev in attack} == set(labels)
    first = parse_ts(attack[0]["stageTimestamp"])
    assert timedelta(minutes=11) <= first - datetime(2026, 11, 20, 8, 0, tzinfo=UTC) <= timedelta(minutes=13)
    # the exec targets a pod that has not been deleted by then
    exec_ev = next(ev for ev in attack if ev["objectRef"].get("subresource") == "exec")
    ns, pod = exec_ev["objectRef"]["namespace"], exec_ev["objectRef"]["name"]
    deleted_before = [
        ev
        for ev in demo
        if ev["verb"] == "delete"
        and ev.get("objectRef", {}).get("name") == pod
        and ev["stageTimestamp"] < exec_ev["requestReceivedTimestamp"]
    ]
    assert deleted_before == [] and ns in demo_profile().namespaces
    nodes = {ev["user"]["username"] for ev in demo if ev["user"].get("username", "").startswith("system:node:")}
    assert len(nodes) == 10


def test_demo_benign_part_has_no_red_flags(demo: list[Event]) -> None:
    labels = demo_attack_labels()
    flagged = [ev["auditID"] for ev in demo if ev["auditID"] not in labels and suspicious(ev)]
    assert flagged == []
