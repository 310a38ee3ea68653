"""Every rule file's own test events, run through the real pipeline; every rule needs both kinds."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.base import SelfTested
from detectors.loading.loader import BUILTIN
from detectors.loading.testing import run_case
from detectors.registry import load_rules

RULES: list[Any] = [r for r in load_rules([BUILTIN]) if isinstance(r, SelfTested)]
CASES = [(rule, case) for rule in RULES for case in rule.tests]


def test_builtin_pack_is_not_empty() -> None:
    assert len(RULES) >= 12


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_has_positive_and_negative_cases(rule: Any) -> None:
    assert any(c.expect_alert for c in rule.tests), f"{rule.source}: no positive test (expect: alert)"
    assert any(not c.expect_alert for c in rule.tests), f"{rule.source}: no negative test (expect: none)"


@pytest.mark.parametrize(("rule", "case"), CASES, ids=[f"{r.id}:{c.name}" for r, c in CASES])
def test_rule_case(rule: Any, case: object) -> None:
    from detectors.base import RuleTest

    assert isinstance(case, RuleTest)
    result = run_case(rule, case, path=rule.source.path)
    assert result.ok, result.detail
