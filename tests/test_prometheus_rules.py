"""deploy/prometheus: the alerting rules are valid (`promtool check rules`), fire on the series they are meant for
and stay quiet on the others (`promtool test rules`), and only read metrics that auditwatch exports."""

from __future__ import annotations

import re
import subprocess

import sqlalchemy as sa
import yaml

from auditwatch.metrics import Metrics
from auditwatch.notify.config import parse_sinks
from auditwatch.notify.sender import Sender
from auditwatch.server import create_ingest_app
from auditwatch.settings import Settings
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.paths import ROOT
from tests.support.prometheus import prometheus_tool

RULES = ROOT / "deploy" / "prometheus" / "auditwatch-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "auditwatch-rules.test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([prometheus_tool("promtool"), *args], cwd=RULES.parent, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_the_rules_are_valid() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


def test_each_rule_fires_where_it_should_and_only_there() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    covered = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    assert covered == alerts  # every rule has a test where it fires


def exported_names() -> set[str]:
    """Every metric name the apps can export: an ingest app's (the webhook's) and a detect's (the rest)."""
    ingest = create_ingest_app(Settings(kafka_bootstrap="127.0.0.1:9"))  # built, never started: no connection
    pipeline = Pipeline(load_rules(["builtin"]))
    sender = Sender(sa.create_engine("sqlite://"), parse_sinks(["webhook=http://127.0.0.1:9/"]))
    detect = Metrics.for_detection(pipeline, sender, consumer=True)
    names: set[str] = set()
    for registry in (ingest.state.metrics.registry, detect.registry):
        for family in registry.collect():
            # a counter family is named without its `_total`; a gauge without samples yet (the lag) by its name
            names.update([sample.name for sample in family.samples] or [family.name])
    return names


def test_the_rules_read_only_metrics_auditwatch_exports() -> None:
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bauditwatch_[a-z_]+", expr)}
    assert len(used) >= 8
    assert used <= exported_names()
