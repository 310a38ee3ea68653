"""`python -m simulation`: benign streams, labelled streams with their CSVs, the demo sample."""

from __future__ import annotations

import csv
import gzip
import subprocess
from pathlib import Path

import orjson
import pytest

from simulation import TECHNIQUES
from simulation.cli import main
from tests.support.paths import PYTHON, ROOT


def test_cli_writes_requested_count(tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl.gz"
    assert main(["--out", str(out), "--count", "300", "--nodes", "3", "--seed", "5"]) == 0
    lines = gzip.decompress(out.read_bytes()).splitlines()
    assert len(lines) == 300
    assert orjson.loads(lines[0])["kind"] == "Event"


def test_cli_writes_a_labelled_stream(tmp_path: Path) -> None:
    out, labels_dir = tmp_path / "events.jsonl", tmp_path / "labels"
    techniques = "stratus.privileged-pod,atomic.T1613"
    argv = ["--duration", "7200", "--nodes", "1", "--namespaces", "web", "--humans", "1", "--campaigns", techniques]
    assert main([*argv, "--out", str(out), "--labels-out", str(labels_dir)]) == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    with open(labels_dir / "labels.csv", newline="") as f:
        labels = list(csv.DictReader(f))
    with open(labels_dir / "campaigns.csv", newline="") as f:
        campaigns = list(csv.DictReader(f))
    assert len(campaigns) == 4  # two techniques, dedicated and stolen
    assert {c["technique"] for c in campaigns} == set(techniques.split(","))
    ids = {ev["auditID"] for ev in events}
    assert labels and {row["auditID"] for row in labels} <= ids
    assert {row["campaign_id"] for row in labels} == {c["id"] for c in campaigns}
    assert sum(int(c["events"]) for c in campaigns) == len(labels)
    # the same arguments give the same bytes
    again = tmp_path / "again.jsonl"
    assert main([*argv, "--out", str(again), "--labels-out", str(tmp_path / "l2")]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert (tmp_path / "l2" / "labels.csv").read_bytes() == (labels_dir / "labels.csv").read_bytes()


def test_cli_help_and_technique_list(capsys: pytest.CaptureFixture[str]) -> None:
    run = subprocess.run([PYTHON, "-m", "simulation", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--campaigns" in run.stdout and "--demo" in run.stdout  # `python -m simulation`
    assert main(["--list-techniques"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(TECHNIQUES)


def test_cli_noisy_world_with_a_quiet_campaign(tmp_path: Path) -> None:
    out, labels_dir = tmp_path / "noisy.jsonl", tmp_path / "labels"
    argv = ["--duration", "5400", "--nodes", "1", "--realism", "noisy", "--campaigns", "quiet.ci-new-image"]
    assert main([*argv, "--unannotated-share", "0.5", "--out", str(out), "--labels-out", str(labels_dir)]) == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    with open(labels_dir / "campaigns.csv", newline="") as f:
        (campaign,) = list(csv.DictReader(f))  # a quiet technique runs once, with its own variant
    assert campaign["technique"] == "quiet.ci-new-image" and campaign["mitre"] and int(campaign["events"]) > 0
    assert any(ev["user"]["username"].endswith(":argocd-application-controller") for ev in events)
    assert any("annotations" not in ev and ev["stage"] == "ResponseComplete" for ev in events)
