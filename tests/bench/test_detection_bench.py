"""The labelled detection benchmark (bench.detection): metrics computed right on a tiny run."""

from __future__ import annotations

import io

import pytest

from bench import detection
from simulation import SECOND, Campaign

DAY = 86400 * SECOND
T0 = 1_800_000_000 * SECOND


def _camp(cid: str, start_s: int) -> Campaign:
    return Campaign(cid, "x", "dedicated", T0 + start_s * SECOND, end_us=T0 + (start_s + 5) * SECOND)


def test_metrics_on_hand_made_alerts() -> None:
    a = detection.AlertRec
    camps = [_camp("c1", 100), _camp("c2", 200), _camp("c3", DAY // SECOND + 50)]
    alerts = [
        a(T0 + 10 * SECOND, 3, "r-benign", "match", "b1", None),
        a(T0 + 107 * SECOND, 1, "r-low", "match", "x1", "c1"),  # first alert of c1: TTD 7 s
        a(T0 + 130 * SECOND, 3, "r-high", "match", "x2", "c1"),
        a(T0 + 260 * SECOND, 2, "r-med", "match", "y1", "c2"),  # c2: TTD 60 s
        a(T0 - 5 * SECOND, 4, "r-before", "match", "z", None),  # before the evaluation: not counted
    ]
    # 11 low benign alerts on day 2 around c3 (undetected): the top 10 of day 2 are all benign
    alerts += [a(T0 + DAY + i * SECOND, 1, "noise", "new_terms", f"n{i}", None) for i in range(11)]
    res = detection.compute_metrics(
        "t", alerts, camps, eval_start_us=T0, eval_end_us=T0 + 2 * DAY, benign_eval_events=2_000_000
    )
    assert set(res.detected) == {"c1", "c2"}
    assert res.recall == pytest.approx(2 / 3)
    assert res.ttd_s == {"c1": pytest.approx(7.0), "c2": pytest.approx(60.0)}
    assert res.median_ttd_s == pytest.approx(33.5)
    assert res.benign_alerts == 12 and res.attack_alerts == 3
    assert res.alerts_per_million == pytest.approx(6.0)
    # day 1: 4 alerts, 3 attack -> 0.75; day 2: top 10 are benign -> 0.0
    assert res.days_with_alerts == 2
    assert res.top10_precision == pytest.approx(0.375)
    assert res.campaign_rules["c1"] == ["r-low", "r-high"]
    assert res.benign_by_rule["noise"] == 11


def test_top10_orders_by_severity_then_time() -> None:
    a = detection.AlertRec
    camps = [_camp("c1", 3000)]
    # 12 early benign medium alerts, then one high attack alert late in the day: it still makes the top 10
    alerts = [a(T0 + i * SECOND, 2, "m", "match", f"b{i}", None) for i in range(12)]
    alerts.append(a(T0 + 3001 * SECOND, 3, "h", "match", "x", "c1"))
    res = detection.compute_metrics("t", alerts, camps, eval_start_us=T0, eval_end_us=T0 + DAY, benign_eval_events=1000)
    assert res.top10_precision == pytest.approx(0.1)
    assert res.ttd_s["c1"] == pytest.approx(1.0)


def test_top10_is_the_products_priority_corroboration_and_context_count() -> None:
    a = detection.AlertRec
    camps = [_camp("c1", 3000)]
    # 9 early benign medium alerts raised on first-seen context, one benign medium for what its event does;
    # then one intruder flagged by three rules (one of them high) late in the day
    alerts = [a(T0 + i * SECOND, 2, "new-ip", "new_terms", f"b{i}", None, f"u{i}", (), f"u{i}", True)
              for i in range(9)]  # fmt: skip
    alerts.append(a(T0 + 20 * SECOND, 2, "burst", "threshold", "b9", None, "", (), "10.0.0.9"))
    alerts += [a(T0 + (3001 + i) * SECOND, 2 + (i == 2), r, "match", f"x{i}", "c1", "mallory", (), "mallory")
               for i, r in enumerate(("new-ip", "secret-list", "privileged"))]  # fmt: skip
    res = detection.compute_metrics("t", alerts, camps, eval_start_us=T0, eval_end_us=T0 + DAY, benign_eval_events=1000)
    # severity then time alone would keep the intruder's two medium alerts out of the top 10 (0.1)
    assert res.top10_precision == pytest.approx(0.3)


def test_tiny_run_end_to_end() -> None:
    res = detection.run(
        days=0.1,
        nodes=1,
        namespaces=("web", "shop"),
        humans=2,
        ci_accounts=1,
        seed=5,
        techniques=["stratus.privileged-pod", "stratus.nodes-proxy", "atomic.T1613"],
    )
    assert [t.name for t in res.tiers][:2] == ["rules", "stateful"]
    rules = res.tiers[0]
    assert rules.campaigns == 6
    by_tech = {c.id: c for c in res.campaigns}
    for cid, first in rules.detected.items():
        camp = by_tech[cid]
        # TTD is measured from the campaign's own first request, to an alert on one of its events
        assert first >= camp.start_us and rules.ttd_s[cid] == pytest.approx((first - camp.start_us) / SECOND)
        assert all(a.campaign == cid for a in res.alerts["rules"] if a.audit_id in camp.audit_ids)
    detected_techs = {by_tech[c].technique for c in rules.detected}
    assert {"stratus.privileged-pod", "stratus.nodes-proxy"} <= detected_techs
    assert set(res.labels.values()) == {c.id for c in res.campaigns}
    assert sum(len(c.audit_ids) for c in res.campaigns) == len(res.labels)
    # every alert carries the label of its event
    for a in res.alerts["rules"]:
        assert a.campaign == res.labels.get(a.audit_id)
    out = io.StringIO()
    detection.report(res, out)
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("campaign_recall=") and "median_ttd_s=" in last
