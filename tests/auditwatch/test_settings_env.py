"""AUDITWATCH_* variables that nothing reads are named in one warning line (a typo would go unnoticed), never
with their values; those the scripts, tests and logs read are not."""

from __future__ import annotations

import re

import pytest

from auditwatch.settings import OTHER_ENV_NAMES, Settings, unknown_env_names
from tests.support.cli import RunCli
from tests.support.paths import ROOT, SCENARIO


def test_unknown_variables_are_named_once_without_their_values(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWATCH_DB_ULR", "postgresql://app:S3cretPW29@db/x")
    monkeypatch.setenv("auditwatch_prot", "8080")  # settings read names in any case: so does the check
    monkeypatch.setenv("AUDITWATCH_KAFKA_LIBS", "/opt/kafka/libs")  # the test support's
    monkeypatch.setenv("AUDITWATCH_LOG_LEVEL", "warning")  # the logs'
    monkeypatch.setenv("AUDITWATCH_TOPIC", "k8s-audit")  # a setting
    result = run_cli("replay", str(SCENARIO), "--output", "-", "--quiet")
    assert result.code == 0, result
    assert result.err == (
        "auditwatch: warning: ignoring AUDITWATCH_DB_ULR, auditwatch_prot: no setting has this name (a typo?)\n"
    )
    assert "S3cretPW29" not in result.out + result.err


def test_nothing_is_said_when_every_variable_is_read(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITWATCH_TOPIC", "k8s-audit")
    monkeypatch.setenv("AUDITWATCH_DEBUG", "")
    result = run_cli("replay", str(SCENARIO), "--output", "-", "--quiet")
    assert (result.code, result.err) == (0, "")


def test_every_variable_the_repository_sets_or_reads_is_known() -> None:
    """A name used by a script, a test, a manifest or the docs is a setting or on the allow-list."""
    sources = [*ROOT.glob("scripts/**/*.sh"), *ROOT.glob("deploy/**/*.yaml"), ROOT / "docker-compose.yml",
               ROOT / "Dockerfile", ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("tests/support/*.py"),
               *ROOT.glob("bench/*.py"), *ROOT.glob("auditwatch/**/*.py")]  # fmt: skip
    names = {name for path in sources for name in re.findall(r"\bAUDITWATCH_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    unknown = unknown_env_names(dict.fromkeys(names, ""))
    assert len(names) > 30 and not unknown, unknown
    assert not {f"AUDITWATCH_{name.upper()}" for name in Settings.model_fields} & OTHER_ENV_NAMES
