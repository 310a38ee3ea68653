"""The online-learning tier (`type: anomaly`): features, score-before-learn, episodes, budget, state."""

from __future__ import annotations

import copy
import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from detectors.events import AuditEvent
from detectors.rules import anomaly_features
from detectors.rules.anomaly import AnomalyRule
from detectors.rules.anomaly_features import Baseline, Principal, extract_features, observe
from detectors.rules.stateful import SWEEP_EVERY
from simulation import ClusterProfile, attack_events, benign_events
from tests.support.anomaly import case_events, make_rule
from tests.support.memory import product_gc


def run(rule: AnomalyRule, events: list[AuditEvent]) -> list[Any]:
    return [a for e in events for a in rule.detect(e)]


def test_doctests() -> None:
    result = doctest.testmod(anomaly_features)
    assert result.attempted >= 2 and result.failed == 0


def test_features_on_realistic_events() -> None:
    events = case_events("a day of alice")
    routine, burst = events[:500], events[500:]
    state = Principal(first=routine[0].timestamp, last=routine[0].timestamp)
    base = Baseline()
    for e in routine:
        observe(e, state, base, count_half_life=7 * 86400, now=e.timestamp)
    usual = extract_features(routine[-1], state, base, count_half_life=7 * 86400)
    assert usual["rarity"] < 0.01 and usual["sensitivity"] == 0.0
    assert usual["new_ip"] == usual["new_agent"] == 0.0 and usual["failures"] == 0.0
    assert usual["resources"] == usual["namespaces"] == 0.0
    assert set(usual) == set(anomaly_features.FEATURES) and all(0.0 <= v <= 1.0 for v in usual.values())
    first = extract_features(burst[0], state, base, count_half_life=7 * 86400)  # list secrets, cluster-wide
    assert first["new_ip"] == first["new_agent"] == 1.0
    assert first["sensitivity"] == 0.9 and first["rarity"] > 0.7
    for e in burst[:5]:
        observe(e, state, base, count_half_life=7 * 86400, now=e.timestamp)
    execf = extract_features(burst[5], state, base, count_half_life=7 * 86400)  # exec, 21 s into the burst
    assert execf["sensitivity"] == 1.0 and execf["rarity"] > 0.7
    assert execf["resources"] == pytest.approx(3 / 8)  # secrets, clusterrolebindings, serviceaccounts + pods
    assert execf["namespaces"] == pytest.approx(2 / 5)  # payments + "" and kube-system before it
    assert execf["burst"] > 1.5 * usual["burst"] and execf["new_ip"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in execf.values())


class _Recorder:
    """Wraps the HST to record the order of calls."""

    def __init__(self, inner: Any, log: list[str]) -> None:
        self.inner, self.log = inner, log

    def score_one(self, x: dict[str, float]) -> float:
        self.log.append("score")
        return float(self.inner.score_one(x))

    def learn_one(self, x: dict[str, float]) -> None:
        self.log.append("learn")
        self.inner.learn_one(x)


def test_scores_before_learning_and_never_learns_an_alerting_event() -> None:
    rule = make_rule()
    log: list[str] = []
    rule._models["hst"] = _Recorder(rule._models["hst"], log)
    events = case_events("a day of alice")
    alerts = []
    for e in events:
        before_log, before_learned = len(log), rule.learned
        counter = rule._models["hst"].inner.counter
        found = rule.detect(e)
        new = log[before_log:]
        assert new[0] == "score"
        if found:
            alerts += found
            assert new == ["score"]  # not learned
            assert rule.learned == before_learned and rule._models["hst"].inner.counter == counter
    assert len(alerts) == 1
    a = alerts[0]
    assert a.rule_id == "ml-principal-anomaly" and a.user == "alice@example.com"
    d = a.details
    assert d["risk"] >= d["threshold"] > 0
    assert "10.20.1.15" in d["baseline"]["source_ips"]
    assert "list:pods" in d["baseline"]["usual_actions"]
    assert len(d["top_features"]) == 4 and set(d["features"]) == set(anomaly_features.FEATURES)
    json.dumps(a.summary())


def test_one_alert_per_episode_and_a_new_one_after_decay() -> None:
    rule = make_rule()
    events = case_events("a day of alice")
    routine, burst = events[:500], events[500:]
    run(rule, routine)
    exec_event = burst[-1]
    long_burst = burst[:-1] + [_shift(exec_event, i * 5) for i in range(30)]
    assert len(run(rule, long_burst)) == 1  # 35 anomalous events, one episode, one alert
    later = [_shift(e, 10 * 3600, n=1) for e in burst]  # ten hours later: the risk has decayed
    assert rule._principals["alice@example.com"].alerting
    assert len(run(rule, later)) == 1  # a new episode
    assert rule._principals["alice@example.com"].alerting


def test_scope_skips_control_plane_identities() -> None:
    rule = make_rule()
    assert rule.identity_scope  # the built-in `match` reads only the principal: memoised per identity
    [event] = case_events("alice's routine alone")[:1]
    for user in ("system:node:node-01", "system:serviceaccount:kube-system:replicaset-controller",
                 "system:kube-scheduler", "system:anonymous"):  # fmt: skip
        raw = copy.deepcopy(event.raw)
        raw["user"] = {"username": user}
        assert rule.detect(AuditEvent(raw)) == []
    assert rule._scored == 0
    rule.detect(event)
    assert rule._scored == 1 and set(rule._principals) == {"alice@example.com"}


def _shift(event: AuditEvent, seconds: float, n: int = 0) -> AuditEvent:
    from datetime import timedelta

    raw = copy.deepcopy(event.raw)
    raw["auditID"] = f"{raw['auditID']}-{seconds}-{n}"
    for key in ("requestReceivedTimestamp", "stageTimestamp"):
        t = AuditEvent({"stageTimestamp": raw[key]}).time + timedelta(seconds=seconds)
        raw[key] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return AuditEvent(raw)


def test_silent_during_warmup() -> None:
    rule = make_rule()
    assert run(rule, case_events("the same burst during the warm-up")) == []
    assert not rule._warm


def test_benign_alert_rate_within_budget_after_warmup() -> None:
    count = 200_000
    rule = make_rule(warmup_events=1_000)
    with product_gc():
        benign = [AuditEvent(r) for r in benign_events(ClusterProfile(nodes=5, seed=5), count=count)]
        alerts = run(rule, benign)
    assert rule._warm and rule._scored > 2_000
    per_million = len(alerts) * 1e6 / count
    assert per_million <= 3 * rule.budget_per_million, [a.message for a in alerts]
    # and the synthetic stolen CI token still alerts, once
    from datetime import timedelta

    at = benign[-1].time + timedelta(minutes=5)
    found = run(rule, [AuditEvent(ev) for _, ev in attack_events(ClusterProfile(nodes=5, seed=5), at=at)])
    assert len(found) == 1 and found[0].user == "system:serviceaccount:ci:deployer"


def test_snapshot_restore_round_trip_gives_identical_alerts() -> None:
    events = case_events("a day of alice")
    a, b = make_rule(), make_rule()
    run(a, events[:400])
    run(b, events[:400])
    state = json.loads(json.dumps(a.snapshot()))  # JSON-able
    c = make_rule()
    c.restore(state)
    rest = events[400:]
    alerts_a = [x.id for x in run(a, rest)]
    alerts_c = [x.id for x in run(c, rest)]
    assert alerts_a == alerts_c and len(alerts_a) == 1
    assert a.snapshot()["models_pickle_b64"] == c.snapshot()["models_pickle_b64"]


def test_unloadable_model_pickle_is_rebuilt() -> None:
    rule = make_rule()
    run(rule, case_events("a day of alice")[:300])
    state = rule.snapshot()
    state["models_pickle_b64"] = "bm90IGEgcGlja2xl"  # "not a pickle"
    fresh = make_rule()
    fresh.restore(state)
    assert "alice@example.com" in fresh._principals  # baselines kept
    assert fresh._scored == 0 and not fresh._warm  # the model warms up again
    fresh.restore({})
    assert fresh._principals == {} and fresh.learned == 0


def test_state_is_bounded_by_ttl(tmp_path: Path) -> None:
    rule = make_rule()
    [template] = case_events("alice's routine alone")[:1]
    for i in range(SWEEP_EVERY):
        raw = copy.deepcopy(template.raw)
        raw["user"]["username"] = f"user-{i}@example.com"
        raw["auditID"] = f"a-{i}"
        rule.detect(AuditEvent(raw))
    assert len(rule._principals) == SWEEP_EVERY
    late = _shift(template, rule.ttl_s + 3600)
    for i in range(SWEEP_EVERY):
        rule.detect(_shift(late, i, n=i))
    assert set(rule._principals) == {"alice@example.com"}
    assert len(json.dumps(rule.snapshot())) < 400_000


def test_daily_budget_caps_alerts_and_episodes_over_it_are_not_learned() -> None:
    rule = make_rule(max_alerts_per_day=1)
    events = case_events("a day of alice")
    routine, burst = events[:500], events[500:]
    run(rule, routine)
    assert len(run(rule, burst)) == 1
    assert rule._principals["alice@example.com"].alerting
    # the same burst by another person the same day: an episode (kept from the model), but no alert
    def as_bob(event: AuditEvent) -> AuditEvent:
        raw = copy.deepcopy(event.raw)
        raw["user"] = {**raw["user"], "username": "bob@example.com"}
        raw["auditID"] = raw["auditID"] + "-bob"
        return AuditEvent(raw)

    run(rule, [as_bob(e) for e in routine])
    learned = rule.learned
    assert run(rule, [as_bob(_shift(e, 60)) for e in burst]) == []
    assert rule.over_budget == 1 and rule._principals["bob@example.com"].alerting and rule.learned < learned + len(burst)
    state = json.loads(json.dumps(rule.snapshot()))
    assert state["day"][1:] == [1, 1]


def test_off_hours_is_learned_per_principal() -> None:
    day_worker = Principal(first=0.0, last=0.0)
    day_worker.hours[9:18] = [20.0] * 9  # 180 events, 09:00-17:59 UTC
    at = 1_795_000_000 - 1_795_000_000 % 86400  # a midnight
    assert anomaly_features.off_hours(day_worker, at + 10 * 3600) == 0.0
    assert anomaly_features.off_hours(day_worker, at + 3 * 3600) > 0.5
    newcomer = Principal(first=0.0, last=0.0)  # too little history to say
    assert anomaly_features.off_hours(newcomer, at + 3 * 3600) == 0.0
    night_shift = Principal(first=0.0, last=0.0, hours=[20.0] * 6 + [0.0] * 18)
    assert anomaly_features.off_hours(night_shift, at + 3 * 3600) == 0.0
