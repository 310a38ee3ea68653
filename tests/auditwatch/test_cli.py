"""The command line a user meets: help texts, refusals, the demo, `rules test` and `rules lint`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.cli import RunCli, auditwatch_process
from tests.support.events import exec_event
from tests.support.kube_scenario import live_alerts
from tests.support.paths import ROOT


@pytest.fixture
def never_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that should have refused to start fails the test instead of serving in this process."""
    import auditwatch.server

    def run_http(*_: Any) -> None:
        raise AssertionError("the listener started")

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, where the demo's default store (sqlite:///auditwatch.db) is written."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("serve", ["--host", "--port", "--db", "--rules", "--max-body-bytes", "--token-file", "--insecure"]),
        ("replay", ["--rules", "--output", "--db", "--quiet"]),
        ("demo", ["--db"]),
    ],
)
def test_every_option_is_explained(command: str, options: list[str], run_cli: RunCli) -> None:
    out = run_cli(command, "--help")
    assert out.code == 0
    for option in options:
        assert option in out.out
    assert "AUDITWATCH_" in run_cli("--help").out


def option_help(help_out: str, option: str) -> str:
    """An option's help text in a command's --help output, on one line."""
    lines = help_out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {option} "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("  -")), len(lines))
    return " ".join(" ".join(lines[start:end]).split()[2:])  # less the option and its metavar


def command_help(command: str) -> str:
    out = auditwatch_process(command, "--help", env={"COLUMNS": "200"})  # the real CLI, in a fresh interpreter
    assert out.code == 0, out.err
    return out.out


def test_the_token_flags_say_what_each_listener_serves() -> None:
    """detect's metrics listener serves /metrics, /docs and /version (all GETs) and /healthz, no /readyz; ingest's
    read-only token reaches its GETs (/metrics, /docs, /version), and ingest serves no alerts; api has no webhook."""
    detect = command_help("detect")
    token, read_token = option_help(detect, "--token-file"), option_help(detect, "--read-token-file")
    assert "/readyz" not in token and "/healthz stays open" in token and "GET /metrics" in token, token
    assert "alerts" not in read_token and "reaches what --token-file's does" in read_token, read_token
    ingest = option_help(command_help("ingest"), "--read-token-file")
    assert "alerts" not in ingest and "GET /metrics" in ingest and "not the webhook" in ingest, ingest
    api = option_help(command_help("api"), "--token-file")
    assert "webhook" not in api and "/healthz and /readyz stay open" in api, api


def test_serve_refuses_an_unauthenticated_public_address() -> None:
    """In a real interpreter: the exit status a service manager sees."""
    out = auditwatch_process("serve", "--host", "0.0.0.0", "--port", "1")
    assert out.code == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in out.err


@pytest.mark.usefixtures("never_listens")
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0 without authentication"),
        (["--host", "0.0.0.0", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "without authentication"),
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], "client certificates need TLS"),
    ],
)
def test_unsafe_listeners_refuse_to_start(
    args: list[str], needle: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    for command in ("serve", "api", "ingest"):
        out = run_cli(command, "--port", "1", *args)
        assert out.code == 2, command
        assert needle in out.err


@pytest.mark.usefixtures("never_listens")
def test_bad_environment_setting_is_named(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITWATCH_PORT", "eighty")
    out = run_cli("serve")
    assert out.code != 0 and "bad setting: port" in out.err


@pytest.mark.usefixtures("never_listens")
def test_a_body_budget_smaller_than_a_body_is_refused(run_cli: RunCli) -> None:
    out = run_cli("serve", "--max-body-bytes", "2000000", "--body-budget-bytes", "1000000")
    assert out.code != 0
    assert "bad setting: body_budget_bytes: Value error, must be at least max_body_bytes (2000000)" in out.err


# Each step of the attack in the demo's captured log, and the alert that must show it.
DEMO_ATTACK = {
    "auth-failure-burst-by-ip": "alice",  # the forbidden burst
    "denied-secret-access-burst": "alice",
    "anonymous-request-allowed": "system:anonymous",
    "rbac-binding-to-broad-group": "e2e-admin",  # what let the anonymous request in
    "privileged-container": "e2e-admin",
    "sensitive-hostpath-mount": "e2e-admin",  # the host's / mounted
    "pod-exec-attach": "e2e-admin",
    "privileged-pod-then-exec": "e2e-admin",
    "impersonation-of-privileged-identity": "e2e-admin",
    "serviceaccount-token-minted": "e2e-admin",
    "cluster-admin-binding": "e2e-admin",  # cluster-admin for the low-privilege user
}


def test_demo_shows_alerts_and_how_to_query_them(in_tmp_path: Path, run_cli: RunCli) -> None:
    out = run_cli("demo")
    assert out.code == 0, out.err
    assert "curl" in out.out and "/api/v1/alerts" in out.out
    with sqlite3.connect(in_tmp_path / "auditwatch.db") as conn:  # the default store, in the working directory
        stored = conn.execute("select rule_id, user_name from alerts").fetchall()
    by_rule = dict(stored)
    assert {rule_id: by_rule.get(rule_id) for rule_id in DEMO_ATTACK} == DEMO_ATTACK
    # only the attackers alert: none on the apiserver's own traffic, the monitoring agent or the CI deployer
    assert {user for _, user in stored} == {"alice", "e2e-admin", "system:anonymous"}
    # the table prints one row per stored alert
    rows = [line for line in out.out.splitlines() if line[:2].isdigit() and line[2:3] == ":"]
    assert len(rows) == len(stored) and len(stored) >= len(DEMO_ATTACK)
    assert any(" high " in row and "Privileged container created" in row and "shop/pods/node-shell" in row
               for row in rows)  # fmt: skip


def test_rules_test_runs_every_inline_case_and_reports_failures_with_file_and_line(
    tmp_path: Path, run_cli: RunCli
) -> None:
    out = run_cli("rules", "test")
    assert out.code == 0, out.out
    assert " passed, 0 failed" in out.out
    broken = tmp_path / "always-exec.yaml"
    source = (ROOT / "detectors/rules/builtin/pod-exec-attach.yaml").read_text()
    broken.write_text(
        source.replace("id: pod-exec-attach", "id: always-exec").replace("expect: none", "expect: alert", 1)
    )
    out = run_cli("rules", "test", str(broken))
    assert out.code == 1
    assert f"FAIL  always-exec: {broken}:" in out.out and "expected an alert, got 0" in out.out


def test_rules_lint_reports_untested_rules_and_unmatchable_sigma_rules(tmp_path: Path, run_cli: RunCli) -> None:
    assert run_cli("rules", "lint").code == 0
    rule = tmp_path / "untested.yaml"
    rule.write_text("id: untested\nname: U\nseverity: low\ndescription: d\nmitre: T1609\nmatch: {verb: get}\n")
    out = run_cli("rules", "lint", str(rule))
    assert out.code == 1 and "untested: no positive test" in out.out and "no negative test" in out.out
    out = run_cli("rules", "lint", "sigma")  # the shipped SigmaHQ pack
    assert out.code == 1 and "can never match as written" in out.out
    assert "Kubernetes Potential Enumeration Activity" in out.out and "16 rules, 1 problem(s)" in out.out


def test_rules_lint_reports_every_error_of_a_rule_at_once(tmp_path: Path, run_cli: RunCli) -> None:
    """Within one condition, the tests, the allowlist and a stateful rule's own keys: every error, each at its line."""
    event = orjson.dumps(exec_event()).decode()
    rule = tmp_path / "burst.yaml"
    rule.write_text(
        "id: burst\nname: B\nseverity: low\ndescription: d\nmitre: T1609\ntype: threshold\n"
        "match:\n  any:\n    - verb: {startswth: c}\n    - objectRef.resource: {regex: '(a'}\n"
        "group_by: [$principal]\nwindow: soon\nthreshold: 1\n"
        "allowlist:\n  users: [bob]\n  groups: devs\n  teams: [a]\n"
        f"tests:\n  - {{name: t, expect: maybe, sequence: [{{event: {event}}}]}}\n  - {{name: u, expect: none}}\n"
    )
    out = run_cli("rules", "lint", str(rule))
    assert out.code == 1 and "Traceback" not in out.err
    assert [line for line in out.out.splitlines() if line.startswith("error: ")] == [
        f"error: {rule}:9: unknown operator 'startswth' (known: equals, in, not_in, prefix, suffix, contains, "
        "regex, not_regex, exists, gt, gte, lt, lte, path_under, some)",
        f"error: {rule}:10: bad regex '(a': missing ): (a (RE2 syntax)",
        f"error: {rule}:12: window must be a duration like 30s, 15m, 2h or 7d",
        f"error: {rule}:13: threshold must be an integer of at least 2",
        f"error: {rule}:16: allowlist.groups must be a list of strings",
        f"error: {rule}:17: unknown allowlist key 'teams' (known: users, groups, namespaces, images, registries)",
        f"error: {rule}:19: test expect must be 'alert' or 'none'",
        f"error: {rule}:20: a test is {{name, expect: alert|none, sequence: [{{event, repeat?, every?}}], alerts?}}",
    ]
    assert out.out.splitlines()[-1] == "8 rule file error(s)"


def test_rules_lint_warns_about_fields_no_audit_event_has(tmp_path: Path, run_cli: RunCli) -> None:
    rule = tmp_path / "typo.yaml"
    rule.write_text(
        "id: typo\nname: T\nseverity: low\ndescription: d\nmitre: T1609\nmatch: {objectRef.resouce: pods}\n"
    )
    out = run_cli("rules", "lint", str(rule))
    assert out.code == 1
    assert f"warning: {rule}:6: rule 'typo': no audit event has 'objectRef.resouce'" in out.out
    assert "did you mean 'resource'?" in out.out


@pytest.mark.parametrize("sample", ["kube", "synthetic"])
def test_demo_replays_a_bundled_sample(in_tmp_path: Path, sample: str, run_cli: RunCli) -> None:
    out = run_cli("demo", "--sample", sample)
    assert out.code == 0, out.err
    assert "curl" in out.out and "/api/v1/alerts" in out.out
    with sqlite3.connect(in_tmp_path / "auditwatch.db") as conn:
        count = conn.execute("select count(*) from alerts").fetchone()[0]
    if sample == "kube":
        assert "real kube-apiserver v1.36.3" in out.out
        assert count == len(live_alerts())
        assert "Privileged container created" in out.out and "alice" in out.out
    else:
        assert count >= 4 and "10-node cluster" in out.out
