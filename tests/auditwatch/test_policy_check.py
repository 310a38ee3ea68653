"""`auditwatch policy check`: an audit policy validated, linted, and the rules it leaves blind, as text or JSON."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.support.cli import RunCli
from tests.support.paths import ROOT

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


def test_policy_check_minimal_lists_the_rules_it_blinds(run_cli: RunCli) -> None:
    result = run_cli("policy", "check", str(ROOT / "audit-policies" / "minimal.yaml"), "--json")
    assert result.code == 0, result.err
    report = orjson.loads(result.out)
    assert report["errors"] == []
    blind = {b["rule"]: b["reason"] for b in report["blind_rules"]}
    for rule in ("privileged-container", "rbac-binding-to-broad-group", "rbac-wildcard-role", "host-namespaces",
                 "serviceaccount-token-secret-created"):  # fmt: skip
        assert rule in blind and "reads requestObject (needs level Request)" in blind[rule], rule
    assert "pod-exec-attach" not in blind and "secrets-listed-cluster-wide" not in blind
    assert "cluster-admin-binding" not in blind  # a binding *named* cluster-admin is caught at Metadata
    human = run_cli("policy", "check", str(ROOT / "audit-policies" / "minimal.yaml"))
    assert "can never fire under this policy" in human.out and "privileged-container" in human.out


def test_policy_check_recommended_blinds_only_the_justified_exceptions(run_cli: RunCli) -> None:
    result = run_cli("policy", "check", str(ROOT / "audit-policies" / "recommended.yaml"), "--json")
    assert result.code == 0, result.err
    report = orjson.loads(result.out)
    assert report["errors"] == [] and report["warnings"] == []
    # justified in README "Audit policies": the bodies of Secrets and ConfigMaps are never logged
    assert {b["rule"] for b in report["blind_rules"]} <= {"serviceaccount-token-secret-created",
                                                          "configmap-with-credentials"}  # fmt: skip


def test_policy_check_stage_and_resource_reasons(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        HEAD
        + "omitStages: [ResponseStarted]\nrules:\n- {level: None, resources: [{group: '', resources: [serviceaccounts/token]}]}\n- {level: RequestResponse}\n"
    )
    report = orjson.loads(run_cli("policy", "check", str(path), "--json").out)
    blind = {b["rule"]: b["reason"] for b in report["blind_rules"]}
    assert "ResponseStarted" in blind["pod-exec-attach"] and "omitted" in blind["pod-exec-attach"]
    assert "not recorded" in blind["serviceaccount-token-minted"]


def test_policy_check_invalid_policy_exits_non_zero(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + "rules:\n- {level: Everything}\n")
    result = run_cli("policy", "check", str(path), "--json")
    assert result.code == 1
    assert orjson.loads(result.out)["errors"]
