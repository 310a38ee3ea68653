"""The command line a user meets: help texts, refusals, the demo."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, clean_env


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = clean_env(env)
    return subprocess.run([PYTHON, "-m", "auditwatch.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=full_env, check=False)  # fmt: skip


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("serve", ["--host", "--port", "--db", "--rules", "--max-body-bytes", "--token-file", "--insecure"]),
        ("replay", ["--rules", "--output", "--db", "--quiet"]),
        ("demo", ["--db"]),
    ],
)
def test_every_option_is_explained(command: str, options: list[str]) -> None:
    out = run(command, "--help")
    assert out.returncode == 0
    for option in options:
        assert option in out.stdout
    assert "AUDITWATCH_" in run("--help").stdout


def test_serve_refuses_an_unauthenticated_public_address() -> None:
    out = run("serve", "--host", "0.0.0.0", "--port", "1")
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in out.stderr


def test_bad_environment_setting_is_named() -> None:
    out = run("serve", env={"AUDITWATCH_PORT": "eighty"})
    assert out.returncode != 0 and "bad setting: port" in out.stderr


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


def test_demo_shows_alerts_and_how_to_query_them(tmp_path: Path) -> None:
    out = run("demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "curl" in out.stdout and "/api/v1/alerts" in out.stdout
    with sqlite3.connect(tmp_path / "auditwatch.db") as conn:  # the default store, in the working directory
        stored = conn.execute("select rule_id, user_name from alerts").fetchall()
    by_rule = dict(stored)
    assert {rule_id: by_rule.get(rule_id) for rule_id in DEMO_ATTACK} == DEMO_ATTACK
    # only the attackers alert: none on the apiserver's own traffic, the monitoring agent or the CI deployer
    assert {user for _, user in stored} == {"alice", "e2e-admin", "system:anonymous"}
    # the table prints one row per stored alert
    rows = [line for line in out.stdout.splitlines() if line[:2].isdigit() and line[2:3] == ":"]
    assert len(rows) == len(stored) and len(stored) >= len(DEMO_ATTACK)
    assert any(" high " in row and "Privileged container created" in row and "shop/pods/node-shell" in row
               for row in rows)  # fmt: skip


def test_rules_test_runs_every_inline_case_and_reports_failures_with_file_and_line(tmp_path: Path) -> None:
    out = run("rules", "test")
    assert out.returncode == 0, out.stdout
    assert " passed, 0 failed" in out.stdout
    broken = tmp_path / "always-exec.yaml"
    source = (ROOT / "detectors/rules/builtin/pod-exec-attach.yaml").read_text()
    broken.write_text(
        source.replace("id: pod-exec-attach", "id: always-exec").replace("expect: none", "expect: alert", 1)
    )
    out = run("rules", "test", str(broken))
    assert out.returncode == 1
    assert f"FAIL  always-exec: {broken}:" in out.stdout and "expected an alert, got 0" in out.stdout


def test_rules_lint_reports_untested_rules_and_unmatchable_sigma_rules(tmp_path: Path) -> None:
    assert run("rules", "lint").returncode == 0
    rule = tmp_path / "untested.yaml"
    rule.write_text("id: untested\nname: U\nseverity: low\ndescription: d\nmitre: T1609\nmatch: {verb: get}\n")
    out = run("rules", "lint", str(rule))
    assert out.returncode == 1 and "untested: no positive test" in out.stdout and "no negative test" in out.stdout
    out = run("rules", "lint", "sigma")  # the shipped SigmaHQ pack
    assert out.returncode == 1 and "can never match as written" in out.stdout
    assert "Kubernetes Potential Enumeration Activity" in out.stdout and "16 rules, 1 problem(s)" in out.stdout


def test_rules_lint_warns_about_fields_no_audit_event_has(tmp_path: Path) -> None:
    rule = tmp_path / "typo.yaml"
    rule.write_text("id: typo\nname: T\nseverity: low\ndescription: d\nmitre: T1609\nmatch: {objectRef.resouce: pods}\n")
    out = run("rules", "lint", str(rule))
    assert out.returncode == 1
    assert f"warning: {rule}:6: rule 'typo': no audit event has 'objectRef.resouce'" in out.stdout
    assert "did you mean 'resource'?" in out.stdout
