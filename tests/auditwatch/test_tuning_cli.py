"""`--tuning FILE`: a site's tuning silences exactly what it says, through replay of full Events; a malformed
file stops the command with `file:line` errors; `rules lint` and `rules test` show what it does."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from tests.support.cli import CliRun, RunCli
from tests.support.client import TestClient
from tests.support.events import event_list
from tests.support.paths import ROOT
from tests.support.tuning_events import SILENCED, SITE_TUNING, site_day


def _replay(run_cli: RunCli, tmp_path: Path, *extra: str) -> tuple[CliRun, set[tuple[str, int]]]:
    events = tmp_path / "audit.jsonl"
    day = site_day()
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in day))
    out = tmp_path / f"alerts{len(extra)}.jsonl"
    result = run_cli("replay", str(events), "--output", str(out), *extra)
    assert result.code == 0, result.err
    number = {e["auditID"]: n for n, e in enumerate(day, 1)}
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return result, {(a["rule_id"], number[a["audit_id"]]) for a in alerts}


def test_trusting_a_registry_and_a_deployer_silences_exactly_those_alerts(run_cli: RunCli, tmp_path: Path) -> None:
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(SITE_TUNING)
    _, untuned = _replay(run_cli, tmp_path)
    tuned_run, tuned = _replay(run_cli, tmp_path, "--tuning", str(tuning))
    assert SILENCED <= untuned  # the same events alert without the tuning
    assert tuned == untuned - SILENCED  # and with it, exactly those are gone, the others untouched
    # what stays: the deployer's Docker Hub and look-alike images, another account's RBAC write and DaemonSet
    assert {("untrusted-image-registry", 4), ("untrusted-image-registry", 5), ("rbac-modified-by-serviceaccount", 6),
            ("daemonset-created", 7)} <= tuned  # fmt: skip
    assert f"suppressed by the tuning file {tuning}: {len(SILENCED)}" in tuned_run.err
    assert "  untrusted-image-registry (trusted registry): 3" in tuned_run.err
    assert "  daemonset-created (deployer argo-cd): 1" in tuned_run.err


def test_severity_overrides_and_disabled_rules(run_cli: RunCli, tmp_path: Path) -> None:
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("severity:\n  untrusted-image-registry: high\ndisabled: ['rbac-*-by-serviceaccount']\n")
    events = tmp_path / "audit.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in site_day()))
    result = run_cli("replay", str(events), "--output", "-", "--tuning", str(tuning), "--quiet",
                     "--baseline-learning-days", "0")  # fmt: skip
    alerts = [orjson.loads(line) for line in result.out.splitlines()]
    # the rule has a baseline (docs/baselines.md): the override is its severity when it pages; a habit stays info
    paging = [a for a in alerts if a["rule_id"] == "untrusted-image-registry" and a["details"]["baseline"]["reasons"]]
    assert paging and {a["severity"] for a in paging} == {"high"}
    assert all(a["details"]["severity_before_tuning"] == "medium" for a in paging)
    assert {a["severity"] for a in alerts if a["rule_id"] == "untrusted-image-registry" and a not in paging} <= {"info"}
    assert not [a for a in alerts if a["rule_id"] == "rbac-modified-by-serviceaccount"]
    assert [a for a in alerts if a["rule_id"] == "rbac-binding-to-serviceaccount"]


MALFORMED = """\
trusted_registries:
  - registry.acme.internal
  - nginx
deployers:
  - name: argo-cd
    service_acounts: [argocd:argocd-application-controller]
exceptions:
  - name: dev-exec
    rules: [pod-exec-attach]
    namespaces: [team-a]
    fields:
      user.username: {starts_with: [dev-]}
severity:
  pod-exec-attach: urgent
"""


def test_a_malformed_tuning_file_fails_with_file_and_line_for_every_error(run_cli: RunCli, tmp_path: Path) -> None:
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(MALFORMED)
    for argv in (["replay", str(tmp_path / "none.jsonl")], ["rules", "lint"], ["rules", "test"]):
        result = run_cli(*argv, "--tuning", str(tuning))
        text = result.err + result.out
        assert result.code == 2, text
        assert "Traceback" not in text
        assert f"{tuning}:3: trusted_registries[1]: registry 'nginx': start with the registry's host" in text
        assert f"{tuning}:6: deployers[0]: unknown key 'service_acounts'" in text
        assert f"{tuning}:12: exceptions[0].fields.user.username: unknown key 'starts_with'" in text
        assert f"{tuning}:14: severity.pod-exec-attach: Input should be 'info'" in text
    assert result.err == ""  # rules commands report on stdout


def test_yaml_syntax_errors_and_unknown_rules(run_cli: RunCli, tmp_path: Path) -> None:
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("disabled: [pod-exec-attach\n")
    result = run_cli("replay", str(tmp_path), "--tuning", str(tuning))
    assert result.code == 2 and f"auditwatch: {tuning}:2: YAML syntax error" in result.err
    tuning.write_text("disabled:\n  - no-such-rule\n")
    lint = run_cli("rules", "lint", "--tuning", str(tuning))
    assert lint.code == 1 and f"warning: {tuning}:2: rule 'no-such-rule' names no loaded rule" in lint.out


def test_lint_shows_what_the_tuning_does_per_rule(run_cli: RunCli, tmp_path: Path) -> None:
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(SITE_TUNING + "exceptions:\n  - name: team-exec\n    rules: [pod-exec-attach]\n"
                      "    groups: [team-a]\n    namespaces: [team-a]\n"
                      "severity:\n  exec-shell-command-payload: info\ndisabled: [ingress-without-tls]\n")  # fmt: skip
    result = run_cli("rules", "lint", "builtin", "falco", "--tuning", str(tuning))
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert f"tuning {tuning}:" in lines
    assert "  trusted registries: registry.acme.internal" in lines
    assert ("  deployer argo-cd: service accounts argocd:argocd-application-controller: its writes of workloads, "
            "RBAC, CRDs and admission webhooks") in lines  # fmt: skip
    assert "  exception team-exec: groups team-a; objectRef.namespace team-a" in lines
    for line in ("  daemonset-created: deployer argo-cd", "  falco:k8s-deployment-created: deployer argo-cd",
                 "  untrusted-image-registry: trusted registries", "  falco:create-disallowed-pod: trusted registries",
                 "  pod-exec-attach: exception team-exec", "  exec-shell-command-payload: severity low -> info",
                 "  ingress-without-tls: disabled"):  # fmt: skip
        assert line in lines
    assert not [line for line in lines if line.startswith("  privileged-container")]  # content rules stay on
    test = run_cli("rules", "test", "--tuning", str(tuning))
    assert test.code == 0
    assert "tuned ingress-without-tls: plain-HTTP Ingress for a login page: silenced (disabled)" in test.out


def test_serve_applies_the_tuning_and_logs_what_it_suppressed(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(SITE_TUNING)
    day = site_day()
    settings = Settings(db_url=db_url, tuning=str(tuning))
    with caplog.at_level(logging.INFO, logger="auditwatch.serve"), TestClient(create_serve_app(settings)) as client:
        assert client.post("/audit/webhook", content=event_list(day)).status_code == 200
        stored = client.get("/api/v1/alerts?limit=100").json()["items"]
        metrics = client.get("/metrics").text
    assert 'auditwatch_alerts_tuned_out_total{reason="trusted registry",rule="untrusted-image-registry"} 3.0' in metrics
    number = {e["auditID"]: n for n, e in enumerate(day, 1)}
    assert not {(a["rule_id"], number[a["audit_id"]]) for a in stored} & SILENCED
    assert {("untrusted-image-registry", 4), ("daemonset-created", 7)} <= {
        (a["rule_id"], number[a["audit_id"]]) for a in stored
    }
    lines = [r for r in caplog.records if r.getMessage() == "tuning suppressed"]
    assert len(lines) == 1 and lines[0].alerts == len(SILENCED)  # type: ignore[attr-defined]
    assert lines[0].by_rule["untrusted-image-registry (trusted registry)"] == 3  # type: ignore[attr-defined]


def test_the_shipped_example_is_valid(run_cli: RunCli) -> None:
    result = run_cli("rules", "lint", "builtin", "falco", "--tuning", str(ROOT / "examples" / "tuning.yaml"))
    assert result.code == 0, result.out
    assert "  pod-exec-attach: exception team-exec" in result.out.splitlines()
