"""The labelled detection benchmark (bench/detection.py): metrics computed right on a tiny run."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

from auditwatch.campaigns import Campaign, labelled_stream, plan_campaigns
from auditwatch.synth import _SEC, ClusterProfile, _to_us

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:  # bench/ is not a package; load the script as a module
    spec = importlib.util.spec_from_file_location("bench_detection", ROOT / "bench" / "detection.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_detection"] = mod  # dataclasses look their module up there
    saved = sys.path[0]
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path[0] = saved
    return mod


bench = _bench()
DAY = 86400 * _SEC
T0 = 1_800_000_000 * _SEC


def _camp(cid: str, start_s: int) -> Campaign:
    return Campaign(cid, "x", "dedicated", T0 + start_s * _SEC, end_us=T0 + (start_s + 5) * _SEC)


def test_metrics_on_hand_made_alerts() -> None:
    a = bench.AlertRec
    camps = [_camp("c1", 100), _camp("c2", 200), _camp("c3", DAY // _SEC + 50)]
    alerts = [
        a(T0 + 10 * _SEC, 3, "r-benign", "match", "b1", None),
        a(T0 + 107 * _SEC, 1, "r-low", "match", "x1", "c1"),  # first alert of c1: TTD 7 s
        a(T0 + 130 * _SEC, 3, "r-high", "match", "x2", "c1"),
        a(T0 + 260 * _SEC, 2, "r-med", "match", "y1", "c2"),  # c2: TTD 60 s
        a(T0 - 5 * _SEC, 4, "r-before", "match", "z", None),  # before the evaluation: not counted
    ]
    # 11 low benign alerts on day 2 around c3 (undetected): the top 10 of day 2 are all benign
    alerts += [a(T0 + DAY + i * _SEC, 1, "noise", "new_terms", f"n{i}", None) for i in range(11)]
    res = bench.compute_metrics(
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
    a = bench.AlertRec
    camps = [_camp("c1", 3000)]
    # 12 early benign medium alerts, then one high attack alert late in the day: it still makes the top 10
    alerts = [a(T0 + i * _SEC, 2, "m", "match", f"b{i}", None) for i in range(12)]
    alerts.append(a(T0 + 3001 * _SEC, 3, "h", "match", "x", "c1"))
    res = bench.compute_metrics("t", alerts, camps, eval_start_us=T0, eval_end_us=T0 + DAY, benign_eval_events=1000)
    assert res.top10_precision == pytest.approx(0.1)
    assert res.ttd_s["c1"] == pytest.approx(1.0)


def test_campaign_labels_and_stream_order() -> None:
    profile = ClusterProfile(nodes=1, namespaces=("web",), humans=1, seed=3)
    start = _to_us(profile.start)
    camps = plan_campaigns(
        profile,
        eval_start_us=start + 1800 * _SEC,
        eval_end_us=start + 3 * 3600 * _SEC,
        seed=3,
        techniques=["stratus.privileged-pod", "stratus.nodes-proxy"],
    )
    assert len(camps) == 4
    seen: dict[str, str] = {}
    last = 0
    for ts, ev, cid in labelled_stream(profile, duration_s=4 * 3600, campaigns=camps, seed=3):
        assert ts >= last
        last = ts
        assert ev["kind"] == "Event" and ev["apiVersion"] == "audit.k8s.io/v1"
        if cid is not None:
            seen[ev["auditID"]] = cid
    for c in camps:
        assert c.audit_ids and all(seen[a] == c.id for a in c.audit_ids)
        assert c.start_us < c.end_us
    stolen = [c for c in camps if c.variant != "dedicated"]
    assert stolen and all(not c.src_ip.startswith("10.") for c in stolen)
    assert {c.actor for c in stolen} <= {"system:serviceaccount:ci:deployer", "alice@example.com"}


def test_tiny_run_end_to_end() -> None:
    res = bench.run(
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
        assert first >= camp.start_us and rules.ttd_s[cid] == pytest.approx((first - camp.start_us) / _SEC)
        assert all(a.campaign == cid for a in res.alerts["rules"] if a.audit_id in camp.audit_ids)
    detected_techs = {by_tech[c].technique for c in rules.detected}
    assert {"stratus.privileged-pod", "stratus.nodes-proxy"} <= detected_techs
    assert set(res.labels.values()) == {c.id for c in res.campaigns}
    assert sum(len(c.audit_ids) for c in res.campaigns) == len(res.labels)
    # every alert carries the label of its event
    for a in res.alerts["rules"]:
        assert a.campaign == res.labels.get(a.audit_id)
    out = io.StringIO()
    bench.report(res, out)
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("campaign_recall=") and "median_ttd_s=" in last
