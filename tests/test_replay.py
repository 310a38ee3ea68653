"""`auditwatch replay` end to end, as a user runs it (real subprocesses, real SQLite files)."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import subprocess
from pathlib import Path

import orjson

from tests.conftest import DATA, PYTHON, ROOT, SCENARIO, clean_env

EXPECTED = orjson.loads((DATA / "scenario.expected.json").read_bytes())


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PYTHON, "-m", "auditwatch.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        env=clean_env(),
    )


def alerts_of(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr.decode()
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_replay_prints_exactly_the_expected_alerts() -> None:
    got = alerts_of(run("replay", str(SCENARIO), "--output", "-"))
    assert {(a["rule_id"], a["audit_id"], a["stage"]) for a in got} == {
        (rule, audit_id, stage) for rule, hits in EXPECTED.items() for audit_id, stage in hits
    }
    assert len(got) == sum(len(v) for v in EXPECTED.values())
    lines = SCENARIO.read_bytes().splitlines()
    for alert in got:
        assert set(alert) >= {"rule", "rule_id", "severity", "audit_id", "stage", "time", "user", "origin"}
        file, line = str(alert["origin"]).rsplit(":", 1)
        assert file == str(SCENARIO)
        event = orjson.loads(lines[int(line) - 1])  # origin points at the very line
        assert (event["auditID"], event["stage"]) == (alert["audit_id"], alert["stage"])
        assert alert["user"] == "mallory@example.com"


def test_replaying_twice_into_one_database_keeps_the_count(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    url = f"sqlite:///{db}"
    first = run("replay", str(SCENARIO), "--db", url)
    second = run("replay", str(SCENARIO), "--db", url)
    assert first.returncode == second.returncode == 0
    assert f"({sum(len(v) for v in EXPECTED.values())} new in the store)" in first.stderr.decode()
    assert "(0 new in the store)" in second.stderr.decode()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from alerts").fetchone() == (sum(len(v) for v in EXPECTED.values()),)


def test_gzip_directories_and_stdin_give_the_same_alerts(tmp_path: Path) -> None:
    plain = {a["id"] for a in alerts_of(run("replay", str(SCENARIO), "--output", "-"))}
    folder = tmp_path / "logs"
    folder.mkdir()
    lines = SCENARIO.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    (folder / "audit-2026-11-20T10-00-00.000.log.gz").write_bytes(gzip.compress(b"".join(lines[:half])))
    (folder / "audit.log").write_bytes(b"".join(lines[half:]))  # the live file, not compressed, no .gz name
    assert {a["id"] for a in alerts_of(run("replay", str(folder), "--output", "-"))} == plain
    renamed = tmp_path / "archive.bin"  # gzip is told by its magic bytes, not the name
    renamed.write_bytes(gzip.compress(SCENARIO.read_bytes()))
    assert {a["id"] for a in alerts_of(run("replay", str(renamed), "--output", "-"))} == plain
    assert {a["id"] for a in alerts_of(run("replay", "-", "--output", "-", stdin=SCENARIO.read_bytes()))} == plain


def test_bad_lines_are_reported_with_file_and_line_and_never_stop_the_replay(tmp_path: Path) -> None:
    lines = SCENARIO.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(
        b"".join(lines[:5]) + b"{not json\n" + b'{"kind":"Pod","apiVersion":"v1"}\n' + b"\n"
        + b"".join(lines[5:]) + lines[0][:40]  # a truncated last line
    )  # fmt: skip
    db = tmp_path / "q.db"
    result = run("replay", str(broken), "--db", f"sqlite:///{db}")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"replayed {len(lines)} events" in err
    assert f"{broken}:6: malformed JSON" in err
    assert f"{broken}:7: kind 'Pod' is not Event or EventList" in err
    assert f"{broken}:{len(lines) + 4}: malformed JSON" in err and "truncated" in err
    assert "rejected: 3" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from quarantine").fetchone() == (3,)
        assert conn.execute("select count(*) from alerts").fetchone() == (sum(len(v) for v in EXPECTED.values()),)


def test_missing_file_is_reported_and_others_still_replay(tmp_path: Path) -> None:
    result = run("replay", str(tmp_path / "nope.jsonl"), str(SCENARIO), "--output", "-")
    assert len(alerts_of(result)) == sum(len(v) for v in EXPECTED.values())
    assert "nope.jsonl:1: cannot read" in result.stderr.decode()


def test_only_given_rules_run_and_builtin_names_the_pack(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "detectors/rules/builtin/pod-exec-attach.yaml", rules)
    only = alerts_of(run("replay", str(SCENARIO), "--rules", str(rules), "--output", "-"))
    assert [a["rule_id"] for a in only] == ["pod-exec-attach"]
    (rules / "pod-exec-attach.yaml").rename(rules / "my-exec.yaml")
    text = (rules / "my-exec.yaml").read_text().replace("id: pod-exec-attach", "id: my-exec")
    (rules / "my-exec.yaml").write_text(text)
    both = alerts_of(run("replay", str(SCENARIO), "--rules", "builtin", "--rules", str(rules), "--output", "-"))
    assert sorted(a["rule_id"] for a in both) == sorted([*EXPECTED, "my-exec"])


def test_broken_rule_file_stops_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad-rule.yaml"
    bad.write_text("id: bad-rule\nname: x\nseverity: high\ndescription: d\nmitre: T1609\nmatch:\n  verb: {oops: 1}\n")
    result = run("replay", str(SCENARIO), "--rules", str(bad), "--output", "-")
    assert result.returncode != 0
    assert f"{bad}:7: unknown operator 'oops'" in result.stderr.decode()


def test_falco_output_format_for_falcosidekick() -> None:
    got = alerts_of(run("replay", str(SCENARIO), "--output", "-", "--output-format", "falco"))
    assert len(got) == sum(len(v) for v in EXPECTED.values())
    for alert in got:
        assert set(alert) == {"time", "rule", "priority", "source", "output", "output_fields", "tags", "hostname"}
        assert alert["source"] == "k8s_audit" and alert["priority"] in {"Error", "Warning", "Notice"}
        assert alert["output_fields"]["ka.user.name"] == "mallory@example.com"
    assert {a["rule"] for a in got} == {"Exec or attach into a pod", "Privileged container created",
                                        "Binding to cluster-admin created or changed",
                                        "Exec command reads credentials or keys", "Exec runs a shell command line (sh -c)",
                                        "Container image from outside the trusted registries"}  # fmt: skip
