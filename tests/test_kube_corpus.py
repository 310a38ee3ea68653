"""The corpus captured from a live run against a real kube-apiserver (tests/test_kube_e2e.py with
KUBE_E2E_CAPTURE=tests/data/kube-e2e): replaying it finds exactly the alerts the live run found."""

from __future__ import annotations

import gzip
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditwatch.replay import replay
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.conftest import DATA
from tests.test_cli import run
from tests.test_kube_e2e import attack_steps

CORPUS = DATA / "kube-e2e" / "audit.jsonl.gz"
LIVE_ALERTS = DATA / "kube-e2e" / "alerts.json"


def corpus_events() -> list[dict[str, Any]]:
    with gzip.open(CORPUS, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def live_alerts() -> list[dict[str, str]]:
    alerts: list[dict[str, str]] = orjson.loads(LIVE_ALERTS.read_bytes())
    return alerts


def test_corpus_is_a_real_apiserver_log() -> None:
    events = corpus_events()
    assert len(events) >= 2000
    assert {(e["kind"], e["apiVersion"]) for e in events} == {("Event", "audit.k8s.io/v1")}
    agents = {e.get("userAgent", "") for e in events}
    assert any(a.startswith("kube-apiserver/v1.36.3") for a in agents)
    assert any(a.startswith("kubectl/v1.36.3") for a in agents)
    stages = Counter(e["stage"] for e in events)
    assert stages["RequestReceived"] == 0, "the recommended policy omits RequestReceived"
    assert stages["ResponseStarted"] > 0 and stages["ResponseComplete"] > 0
    assert any(e["responseStatus"]["code"] == 401 and not e["user"] for e in events), "a failed authentication"
    assert len({e["auditID"] for e in events}) > 2000 - 100


def test_corpus_holds_no_credentials() -> None:
    raw = gzip.decompress(CORPUS.read_bytes()).decode()
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", raw), "a JWT (the minted token must be at Metadata level)"
    assert "e2e-admin-token" not in raw and "e2e-lowpriv-token" not in raw and "e2e-ci-token" not in raw


def test_corpus_replays_to_the_alerts_of_the_live_run() -> None:
    found: list[Any] = []
    replay([str(CORPUS)], Pipeline(load_rules(["builtin"])), emit=found.append)
    replayed = sorted((a.rule_id, a.audit_id, a.stage, a.severity.label) for a in found)
    live = sorted((a["rule_id"], a["audit_id"], a["stage"], a["severity"]) for a in live_alerts())
    assert replayed == live
    expected_rules = {rule for step in attack_steps() for rule in step.expect}
    assert expected_rules <= {rule for rule, *_ in live}


@pytest.mark.parametrize("sample", ["kube", "synthetic"])
def test_demo_replays_a_bundled_sample(tmp_path: Path, sample: str) -> None:
    out = run("demo", "--sample", sample, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "curl" in out.stdout and "/api/v1/alerts" in out.stdout
    with sqlite3.connect(tmp_path / "auditwatch.db") as conn:
        count = conn.execute("select count(*) from alerts").fetchone()[0]
    if sample == "kube":
        assert "real kube-apiserver v1.36.3" in out.stdout
        assert count == len(live_alerts())
        assert "Privileged container created" in out.stdout and "alice" in out.stdout
    else:
        assert count >= 4 and "10-node cluster" in out.stdout
