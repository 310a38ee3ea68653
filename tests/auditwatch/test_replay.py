"""`auditwatch replay` end to end, as a user runs it (in-process through `main`, real SQLite files; stdin
through a real pipe), its time window and policy filter, and its pacing."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest

from auditwatch.replay import Pacer, event_filters
from detectors.events import AuditEvent
from tests.support.cli import CliRun, RunCli, auditwatch_process
from tests.support.credential_canaries import CANARIES, KEPT, planted_events
from tests.support.events import exec_event
from tests.support.paths import DATA, ROOT, SCENARIO

EXPECTED = orjson.loads((DATA / "scenario.expected.json").read_bytes())


def alerts_of(result: CliRun) -> list[dict[str, object]]:
    assert result.code == 0, result.err
    return [orjson.loads(line) for line in result.out.splitlines()]


def test_replay_prints_exactly_the_expected_alerts(run_cli: RunCli) -> None:
    got = alerts_of(run_cli("replay", str(SCENARIO), "--output", "-"))
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


def test_replaying_twice_into_one_database_keeps_the_count(tmp_path: Path, run_cli: RunCli) -> None:
    db = tmp_path / "a.db"
    url = f"sqlite:///{db}"
    first = run_cli("replay", str(SCENARIO), "--db", url)
    second = run_cli("replay", str(SCENARIO), "--db", url)
    assert first.code == second.code == 0
    assert f"({sum(len(v) for v in EXPECTED.values())} new in the store)" in first.err
    assert "(0 new in the store)" in second.err
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from alerts").fetchone() == (sum(len(v) for v in EXPECTED.values()),)


def test_gzip_directories_and_stdin_give_the_same_alerts(tmp_path: Path, run_cli: RunCli) -> None:
    plain = {a["id"] for a in alerts_of(run_cli("replay", str(SCENARIO), "--output", "-"))}
    folder = tmp_path / "logs"
    folder.mkdir()
    lines = SCENARIO.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    (folder / "audit-2026-11-20T10-00-00.000.log.gz").write_bytes(gzip.compress(b"".join(lines[:half])))
    (folder / "audit.log").write_bytes(b"".join(lines[half:]))  # the live file, not compressed, no .gz name
    assert {a["id"] for a in alerts_of(run_cli("replay", str(folder), "--output", "-"))} == plain
    renamed = tmp_path / "archive.bin"  # gzip is told by its magic bytes, not the name
    renamed.write_bytes(gzip.compress(SCENARIO.read_bytes()))
    assert {a["id"] for a in alerts_of(run_cli("replay", str(renamed), "--output", "-"))} == plain
    assert {
        a["id"] for a in alerts_of(auditwatch_process("replay", "-", "--output", "-", stdin=SCENARIO.read_bytes()))
    } == plain


def test_bad_lines_are_reported_with_file_and_line_and_never_stop_the_replay(tmp_path: Path, run_cli: RunCli) -> None:
    lines = SCENARIO.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(
        b"".join(lines[:5]) + b"{not json\n" + b'{"kind":"Pod","apiVersion":"v1"}\n' + b"\n"
        + b"".join(lines[5:]) + lines[0][:40]  # a truncated last line
    )  # fmt: skip
    db = tmp_path / "q.db"
    result = run_cli("replay", str(broken), "--db", f"sqlite:///{db}")
    err = result.err
    assert result.code == 0, err
    assert f"replayed {len(lines)} events" in err
    assert f"{broken}:6: malformed JSON" in err
    assert f"{broken}:7: kind 'Pod' is not Event or EventList" in err
    assert f"{broken}:{len(lines) + 4}: malformed JSON" in err and "truncated" in err
    assert "rejected: 3" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from quarantine").fetchone() == (3,)
        assert conn.execute("select count(*) from alerts").fetchone() == (sum(len(v) for v in EXPECTED.values()),)


def test_missing_file_stops_the_replay_before_it_reads_the_others(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("replay", str(tmp_path / "nope.jsonl"), str(SCENARIO), "--output", "-")
    assert result.code == 3 and result.out == ""
    assert result.err == f"auditwatch: cannot read input {tmp_path / 'nope.jsonl'}: No such file or directory\n"


def test_only_given_rules_run_and_builtin_names_the_pack(tmp_path: Path, run_cli: RunCli) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "detectors/rules/builtin/pod-exec-attach.yaml", rules)
    only = alerts_of(run_cli("replay", str(SCENARIO), "--rules", str(rules), "--output", "-"))
    assert [a["rule_id"] for a in only] == ["pod-exec-attach"]
    (rules / "pod-exec-attach.yaml").rename(rules / "my-exec.yaml")
    text = (rules / "my-exec.yaml").read_text().replace("id: pod-exec-attach", "id: my-exec")
    (rules / "my-exec.yaml").write_text(text)
    both = alerts_of(run_cli("replay", str(SCENARIO), "--rules", "builtin", "--rules", str(rules), "--output", "-"))
    assert sorted(a["rule_id"] for a in both) == sorted([*EXPECTED, "my-exec"])


def test_broken_rule_file_stops_with_file_and_line(tmp_path: Path, run_cli: RunCli) -> None:
    bad = tmp_path / "bad-rule.yaml"
    bad.write_text("id: bad-rule\nname: x\nseverity: high\ndescription: d\nmitre: T1609\nmatch:\n  verb: {oops: 1}\n")
    result = run_cli("replay", str(SCENARIO), "--rules", str(bad), "--output", "-")
    assert result.code != 0
    assert f"{bad}:7: unknown operator 'oops'" in result.err


def test_falco_output_format_for_falcosidekick(run_cli: RunCli) -> None:
    got = alerts_of(run_cli("replay", str(SCENARIO), "--output", "-", "--output-format", "falco"))
    assert len(got) == sum(len(v) for v in EXPECTED.values())
    for alert in got:
        assert set(alert) == {"time", "rule", "priority", "source", "output", "output_fields", "tags", "hostname"}
        # Informational: a rule with a baseline (docs/baselines.md) holds its alerts at info while it learns
        assert alert["source"] == "k8s_audit" and alert["priority"] in {"Error", "Warning", "Notice", "Informational"}
        assert alert["output_fields"]["ka.user.name"] == "mallory@example.com"
    assert {a["rule"] for a in got} == {"Exec or attach into a pod", "Privileged container created",
                                        "Binding to cluster-admin created or changed",
                                        "Exec command reads credentials or keys", "Exec runs a shell command line (sh -c)",
                                        "Container image from outside the trusted registries"}  # fmt: skip


def test_cli_replay_format_since_until_and_policy(tmp_path: Path, run_cli: RunCli) -> None:
    def replay_rules(*args: str) -> list[str]:
        result = run_cli("replay", str(SCENARIO), "--output", "-", "--quiet", *args)
        assert result.code == 0, result.err
        return sorted(orjson.loads(x)["rule_id"] for x in result.out.splitlines())

    everything = replay_rules("--format", "apiserver")
    assert "pod-exec-attach" in everything and "privileged-container" in everything
    assert replay_rules("--since", "2026-11-20T10:00:33Z") == sorted(
        r
        for r in everything
        if r not in ("pod-exec-attach", "exec-credential-file-access", "exec-shell-command-payload")
    )
    assert replay_rules("--until", "2026-11-20T10:00:30Z") == []
    assert replay_rules("--since", "2026-11-20T10:00:30Z", "--until", "2026-11-20T10:00:31Z") == sorted(
        r for r in everything if r.startswith(("pod-exec", "exec-"))
    )
    # a policy that records everything at Metadata without ResponseStarted: exec is invisible, and so is
    # every rule that reads request bodies
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseStarted]\nrules:\n- level: Metadata\n"
    )
    assert "pod-exec-attach" not in replay_rules("--policy", str(policy))
    assert "privileged-container" not in replay_rules("--policy", str(policy))
    minimal = replay_rules("--policy", str(ROOT / "audit-policies" / "minimal.yaml"))
    assert set(minimal) < set(everything) and "pod-exec-attach" in minimal and "privileged-container" not in minimal
    bad = run_cli("replay", str(SCENARIO), "--since", "yesterday", "--output", "-")
    assert bad.code == 2 and "RFC 3339" in bad.err


def test_cli_convert_applies_the_policy(run_cli: RunCli) -> None:
    result = run_cli("convert", str(SCENARIO), "--policy", str(ROOT / "audit-policies" / "minimal.yaml"))
    assert result.code == 0, result.err
    events = [orjson.loads(x) for x in result.out.splitlines()]
    assert events and all(e["level"] == "Metadata" and "requestObject" not in e for e in events)


def test_cli_convert_redacts_credentials_unless_raw(tmp_path: Path, run_cli: RunCli) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in planted_events()))
    planted = {name for name, value in CANARIES.items() if value.encode() in log.read_bytes()}
    assert len(planted) >= 10  # Secret data, tokens, URI parameters, exec flags, headers...
    shown = run_cli("convert", str(log))
    assert shown.code == 0, shown.err
    assert [name for name in planted if CANARIES[name] in shown.out] == []
    assert len(shown.out.splitlines()) == len(planted_events())
    assert all(value in shown.out for value in KEPT if value in log.read_text())  # look-alikes are kept
    raw = run_cli("convert", "--raw", str(log))
    assert raw.code == 0, raw.err
    assert [orjson.loads(line) for line in raw.out.splitlines()] == [
        orjson.loads(line) for line in log.read_bytes().splitlines()
    ]


def test_pacer_maps_event_time_to_wall_time_and_caps_long_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    import auditwatch.replay as replay_module

    clock = [1000.0]  # a fake wall clock that only sleeping moves
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(replay_module.time, "monotonic", lambda: clock[0])
    pacer = Pacer(10.0, max_sleep=2.0, sleep=sleep)

    def at(second: int) -> AuditEvent:
        event = exec_event()
        event["stageTimestamp"] = f"2026-11-20T10:{second // 60:02d}:{second % 60:02d}.000000Z"
        return AuditEvent(raw=event)

    pacer.wait(at(0))
    pacer.wait(at(5))  # 5 s of event time at 10x: about half a second
    pacer.wait(at(4))  # time going backwards never sleeps
    pacer.wait(at(600))  # a long quiet gap is compressed to the cap
    assert len(slept) == 2
    assert slept == [pytest.approx(0.5), 2.0]


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--speed must be a positive number"):
        event_filters(speed=0)


def test_speed_paces_replay_but_caps_each_pause() -> None:
    sleeps: list[float] = []
    pacer = Pacer(10.0, max_sleep=0.5, sleep=sleeps.append)
    for ts in ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z", "2026-11-20T10:00:01Z", "2026-11-20T11:00:00Z"):
        pacer.wait(AuditEvent(raw={"stageTimestamp": ts}))
    assert len(sleeps) == 2 and 0.05 < sleeps[0] <= 0.1 and sleeps[1] == 0.5
