"""The detection benchmark's per-half, per-day and per-tier figures, its report and JSON, and its pipelines."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from bench import detection
from bench.detection_metrics import AlertRec, RunResult, Window, first_tier
from bench.detection_report import FiftyNodes, compare, to_json
from simulation import SECOND, Campaign

DAY = 86400 * SECOND
T0 = 1_800_000_000 * SECOND  # the start of the window; the evaluation half starts a day later
EVAL = T0 + DAY


def _camp(cid: str, technique: str, start_s: int) -> Campaign:
    return Campaign(cid, technique, "dedicated", EVAL + start_s * SECOND, end_us=EVAL + (start_s + 5) * SECOND)


def _alerts() -> list[AlertRec]:
    a = AlertRec
    return [
        # learning half (day 0): 2 medium, 1 low benign
        a(T0 + 10 * SECOND, 2, "exec", "match", "l1", None, "dev"),
        a(T0 + 20 * SECOND, 3, "priv", "match", "l2", None, "op"),
        a(T0 + 30 * SECOND, 1, "secret-read", "match", "l3", None, "eso"),
        # evaluation half (day 1): 1 medium, 2 low, 1 info benign; the rules tier catches c1, the stateful tier c2
        a(EVAL + 5 * SECOND, 2, "exec", "match", "e1", None, "dev"),
        a(EVAL + 6 * SECOND, 1, "secret-read", "match", "e2", None, "eso"),
        a(EVAL + 7 * SECOND, 1, "secret-read", "match", "e3", None, "eso"),
        a(EVAL + 8 * SECOND, 0, "context", "match", "e4", None, "eso"),
        a(EVAL + 110 * SECOND, 3, "priv", "match", "x1", "c1", "mallory"),
        a(EVAL + 240 * SECOND, 2, "burst", "threshold", "y1", "c2", "bob", ("off_hours", "new_ip")),
    ]


def _window() -> Window:
    return Window(T0, EVAL, EVAL + DAY, 1_000_000, 500_000, ((500_000, 500_000), (1_000_010, 1_000_000)))


def _tiers() -> list[detection.TierResult]:
    camps = [_camp("c1", "stratus.privileged-pod", 100), _camp("c2", "quiet.slow-recon", 200)]
    alerts = _alerts()
    return [
        detection.compute_metrics(
            name,
            [a for a in alerts if a.rule_type in types],
            camps,
            eval_start_us=EVAL,
            eval_end_us=EVAL + DAY,
            benign_eval_events=1_000_000,
            window=_window(),
        )
        for name, types in (("rules", ("match",)), ("stateful", ("match", "threshold")))
    ]


def test_severity_classes_and_halves() -> None:
    rules, stateful = _tiers()
    assert rules.benign_by_class == Counter({"medium+": 1, "low": 2, "info": 1})
    assert rules.per_million == {"medium+": 1.0, "low": 2.0, "info": 1.0}
    # the learning half's rates: its own alerts over its own benign events
    assert rules.learning_by_class == Counter({"medium+": 2, "low": 1})
    assert rules.learning_per_million == {"medium+": 4.0, "low": 2.0, "info": 0.0}
    assert rules.learning_by_rule == Counter({"exec": 1, "priv": 1, "secret-read": 1})
    assert set(rules.detected) == {"c1"} and set(stateful.detected) == {"c1", "c2"}
    assert stateful.campaign_features == {"c2": ["off_hours", "new_ip"]}
    assert first_tier([rules, stateful], "c1") == "rules" and first_tier([rules, stateful], "c2") == "stateful"


def test_per_day_counts_and_rules() -> None:
    rules = _tiers()[0]
    learning, evaluation = rules.days
    assert (learning.half, evaluation.half) == ("learning", "evaluation")
    assert (learning.events, evaluation.benign_events) == (500_000, 1_000_000)
    assert learning.benign == Counter({"medium+": 2, "low": 1}) and learning.attack == 0
    assert evaluation.benign == Counter({"medium+": 1, "low": 2, "info": 1}) and evaluation.attack == 1
    assert evaluation.rules == Counter({"secret-read": 2, "exec": 1, "context": 1})


def _result() -> RunResult:
    tiers = _tiers()
    camps = [_camp("c1", "stratus.privileged-pod", 100), _camp("c2", "quiet.slow-recon", 200)]
    world = {"realism": "noisy", "seed": 1, "days": 2, "nodes": 1, "namespaces": ["web"], "humans": 1}
    world |= {"ci_accounts": 1, "unannotated_share": 0.0, "organisation": "acme", "registry": "r.acme.io"}
    return RunResult(camps, {}, tiers, {}, 2_000_010, 1_000_000, 10, 2.0, [], None, 2, _window(), world)


def test_report_and_json() -> None:
    res, fifty = _result(), FiftyNodes(50, 24, 4_000_000)
    out = io.StringIO()
    detection.report(res, out, fifty=fifty)
    text = out.getvalue()
    assert "campaigns: 2 (1 loud, 1 quiet)" in text
    assert "per day: benign alerts" in text and "secret-read=2" in text
    assert "stateful over rules: campaigns ['c2']" in text
    # 50 nodes: the evaluation half's 1 medium+ per million x 4 M events a day
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("benign alerts per day of a 50-node cluster"))
    assert lines[at + 2].split() == ["rules", "16", "8", "4", "8"]
    assert text.strip().splitlines()[-1].startswith("campaign_recall=1.000 ")
    data = json.loads(json.dumps(to_json(res, fifty)))
    tier = data["tiers"][0]
    assert tier["per_day_at_scale"]["evaluation"]["medium+"] == pytest.approx(4.0)
    assert [d["half"] for d in tier["days"]] == ["learning", "evaluation"]
    assert {c["id"]: (c["quiet"], c["first_tier"]) for c in data["campaigns"]} == {
        "c1": (False, "rules"),
        "c2": (True, "stateful"),
    }
    side = io.StringIO()
    compare([res, res], side)
    assert len(side.getvalue().strip().splitlines()) == 1 + len(res.tiers)


def test_shared_pipeline_gives_each_tier_the_alerts_of_its_own_pipeline() -> None:
    kwargs = {"days": 0.04, "nodes": 1, "namespaces": ("web", "shop"), "humans": 2, "ci_accounts": 1, "seed": 4}
    techniques = ["stratus.privileged-pod", "quiet.ci-new-image", "atomic.T1609"]
    shared = detection.run(techniques=techniques, **kwargs)  # type: ignore[arg-type]
    separate = detection.run(techniques=techniques, separate_pipelines=True, **kwargs)  # type: ignore[arg-type]
    assert list(shared.alerts) == list(separate.alerts)
    for name, alerts in shared.alerts.items():
        assert alerts == separate.alerts[name], name
    assert shared.labels == separate.labels and shared.labels


def test_a_campaign_seen_only_by_info_alerts_is_not_caught() -> None:
    camps = [_camp("c1", "quiet.stolen-pod-token", 100)]
    habit = AlertRec(EVAL + 110 * SECOND, 0, "secret-read", "match", "i1", "c1", "web")
    paged = AlertRec(EVAL + 130 * SECOND, 1, "secret-read", "match", "i2", "c1", "web")
    only_info = detection.compute_metrics(
        "rules", [habit], camps, eval_start_us=EVAL, eval_end_us=EVAL + DAY, benign_eval_events=1_000_000
    )
    assert only_info.detected == {} and only_info.recall == 0.0
    with_low = detection.compute_metrics(
        "rules", [habit, paged], camps, eval_start_us=EVAL, eval_end_us=EVAL + DAY, benign_eval_events=1_000_000
    )
    assert with_low.detected == {"c1": EVAL + 130 * SECOND} and with_low.recall == 1.0
