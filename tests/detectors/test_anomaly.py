"""The online-learning tier (`type: anomaly`): novel facts per principal, scored against its own habit of novelty."""

from __future__ import annotations

import doctest
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from detectors.alerts import Severity
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.registry import load_rules
from detectors.rules import anomaly_features, anomaly_score
from detectors.rules.anomaly import AnomalyRule
from detectors.rules.stateful import SWEEP_EVERY
from tests.support.anomaly import RULE_FILE, make_rule

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
APP = "system:serviceaccount:shop:api"
APP_AGENT = "shop-api/v2.3.1 (linux/amd64) kubernetes/$Format"
RECON = [("pods", ""), ("services", ""), ("deployments", "apps"), ("configmaps", ""), ("serviceaccounts", ""),
         ("roles", "rbac.authorization.k8s.io"), ("networkpolicies", "networking.k8s.io")]  # fmt: skip


def request(user: str, verb: str, resource: str, at: datetime, *, ns: str = "", name: str = "", group: str = "",
            ip: str = "10.244.1.17", agent: str = APP_AGENT, code: int = 200) -> AuditEvent:  # fmt: skip
    """An event as the API server writes it at the Metadata level."""
    base = f"/apis/{group}/v1" if group else "/api/v1"
    path = f"{base}/namespaces/{ns}/{resource}" if ns else f"{base}/{resource}"
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    if ns:
        ref["namespace"] = ns
    if name:
        ref["name"], path = name, f"{path}/{name}"
    if group:
        ref["apiGroup"] = group
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raw = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": str(uuid.uuid4()),
        "stage": "ResponseComplete", "requestURI": path, "verb": verb,
        "user": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
        "sourceIPs": [ip], "userAgent": agent, "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code}, "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow" if code < 400 else "forbid"},
    }  # fmt: skip
    return AuditEvent(raw)


def habit(days: float, user: str = APP, start: datetime = START, every_min: int = 10) -> list[AuditEvent]:
    """An application's token doing what it always does: read its own Secret and ConfigMap, from its pods."""
    out = []
    for i in range(int(days * 24 * 60 / every_min)):
        at = start + timedelta(minutes=i * every_min)
        ip = f"10.244.1.{10 + i % 5}"  # pods come and go within the node's range
        if i % 2:
            out.append(request(user, "get", "secrets", at, ns="shop", name="api-credentials", ip=ip))
        else:
            out.append(request(user, "get", "configmaps", at, ns="shop", name="api-config", ip=ip))
    return out


def enumeration(at: datetime, user: str = APP, ip: str = "10.244.7.23") -> list[AuditEvent]:
    """The same token from another pod: its namespace's Secrets (refused), kinds it never read, then beyond."""
    out = [request(user, "list", "pods", at, ns="shop", ip=ip),
           request(user, "list", "secrets", at + timedelta(minutes=2), ns="shop", ip=ip, code=403)]  # fmt: skip
    out += [request(user, "list", res, at + timedelta(minutes=4 + 4 * i), ns="shop", group=g, ip=ip)
            for i, (res, g) in enumerate(RECON[1:])]  # fmt: skip
    later = at + timedelta(minutes=40)
    out.append(request(user, "list", "pods", later + timedelta(minutes=5), ns="kube-system", ip=ip, code=403))
    out.append(request(user, "list", "nodes", later + timedelta(minutes=9), ip=ip, code=403))
    return out


def rule(**settings: Any) -> AnomalyRule:
    return make_rule(**{"warmup_s": 86_400.0, **settings})


def run(r: AnomalyRule, events: list[AuditEvent]) -> list[Any]:
    return [a for e in events for a in r.detect(e)]


def test_doctests() -> None:
    for module in (anomaly_features, anomaly_score):
        result = doctest.testmod(module)
        assert result.attempted >= 1 and result.failed == 0, module.__name__


def test_a_narrow_principal_that_enumerates_alerts_with_what_was_new() -> None:
    r = rule()
    week = habit(7)
    assert run(r, week) == []
    alerts = run(r, enumeration(week[-1].time + timedelta(hours=2)))
    assert len(alerts) == 1
    [a] = alerts
    d = a.details
    assert a.user == APP and a.severity == Severity.MEDIUM  # a denied request among the facts
    assert d["score"] >= r.threshold and d["novel_weight"] >= r.min_facts
    assert d["expected_weight"] < 0.2  # its history is narrow: it almost never does anything new
    assert list(d["top_features"])[0] == "new actions" and "denied requests" in d["top_features"]
    assert "new actions: list:pods" in d["novel_facts"]
    assert "new source addresses: 10.244.7.0/24" in d["novel_facts"]
    assert {"get:secrets", "get:configmaps"} <= set(d["baseline"]["usual_actions"])
    assert "10.244.1.0/24" in d["baseline"]["source_ips"]
    assert "new actions" in a.message and "list:pods" in a.message
    assert a.details["response"].startswith("Read the novel facts")  # the rule's response advice travels
    json.dumps(a.summary())


def test_its_habit_does_not_alert_and_neither_does_a_new_pod_of_the_same_node() -> None:
    r = rule()
    assert run(r, habit(10)) == []
    assert r.learned == len(habit(10))


def _score(r: AnomalyRule, who: str, now: datetime) -> tuple[float, float]:
    p = r._principals[who]
    lam = anomaly_score.expected(p, now.timestamp(), r.window_s)
    return anomaly_score.log10_tail(anomaly_score.window_weight(p), lam), lam


def test_the_same_enumeration_weighs_much_less_for_a_principal_that_explores_every_day() -> None:
    r = rule(threshold=1e9)  # never an episode: both are scored on the same facts
    sre = "sre@example.com"
    days = []
    for day in range(8):  # something new every day: kinds, a namespace
        at = START + timedelta(days=day)
        days += habit(1, user=sre, start=at, every_min=30)
        days += [request(sre, "list", f"kind{day}x{i}", at + timedelta(hours=3, minutes=i), ns=f"team{day}")
                 for i in range(4)]  # fmt: skip
    run(r, days + habit(8))
    at = START + timedelta(days=8, hours=2)
    run(r, enumeration(at, user=sre, ip="10.244.1.10") + enumeration(at))
    (sre_score, sre_lam), (app_score, app_lam) = _score(r, sre, at), _score(r, APP, at)
    assert sre_lam > 10 * app_lam
    assert sre_score < app_score - 5


def test_silent_and_learning_during_the_learning_period_which_follows_the_baselines() -> None:
    [seven] = load_rules([str(RULE_FILE)])
    [two] = load_rules([str(RULE_FILE)], LoadOptions(baseline_learning_s=2 * 86_400.0))
    assert isinstance(seven, AnomalyRule) and isinstance(two, AnomalyRule)
    assert seven.warmup_s == 7 * 86_400.0 and two.warmup_s == 2 * 86_400.0
    events = habit(3) + enumeration(START + timedelta(days=3, hours=1))
    assert run(seven, events) == []
    assert len(run(two, events)) == 1


def test_an_episode_alerts_once_and_is_not_learned() -> None:
    r = rule()
    run(r, habit(7))
    learned = r.learned
    burst = enumeration(START + timedelta(days=7, hours=2))
    assert len(run(r, burst + enumeration(START + timedelta(days=7, hours=3)))) == 1
    p = r._principals[APP]
    assert p.alerting and r.learned - learned < 4  # only what came before the score crossed the threshold
    assert "list:roles" not in p.actions and "list:networkpolicies" not in p.actions


def test_budgets_one_alert_per_principal_a_day_and_a_daily_cap() -> None:
    r = rule(max_alerts_per_day=2)
    users = [f"system:serviceaccount:shop:app{i}" for i in range(4)]
    for user in users:
        run(r, habit(7, user=user))
    at = START + timedelta(days=7, hours=2)
    found = [a for user in users for a in run(r, enumeration(at, user=user))]
    assert len(found) == 2 and r.over_budget == 2
    assert all(r._principals[u].alerting for u in users)  # over budget: still an episode, still not learned
    # the first principal's episode ends, then it enumerates again the same day: its day's alert is spent
    again = enumeration(at + timedelta(hours=8), user=users[0], ip="10.244.9.9")
    assert run(r, again) == [] and r.over_budget == 3
    assert len(run(r, enumeration(at + timedelta(days=1), user=users[0], ip="10.244.8.8"))) == 1  # a new day


def test_state_is_bounded() -> None:
    r = rule(max_principals=100, warmup_s=30 * 86_400.0)
    for i in range(2 * SWEEP_EVERY):  # a flood of identities, each seen once
        r.detect(request(f"user-{i}@example.com", "get", "pods", START + timedelta(seconds=i), ns="shop"))
    assert len(r._principals) <= 100 + SWEEP_EVERY and r.state_keys() == len(r._principals)
    assert f"user-{2 * SWEEP_EVERY - 1}@example.com" in r._principals  # the most recently seen are kept
    assert "user-0@example.com" not in r._principals
    at = START + timedelta(days=1)
    for i in range(anomaly_features.MAX_ACTIONS + 50):  # a flood of made-up kinds by one principal
        r.detect(request(APP, "list", f"kind{i}", at + timedelta(seconds=i), ns="shop"))
    p = r._principals[APP]
    assert len(p.actions) == anomaly_features.MAX_ACTIONS and len(p.window) <= 64
    assert f"kind{anomaly_features.MAX_ACTIONS + 49}" in {a.split(":")[1] for a in p.actions}
    late = request(APP, "get", "secrets", at + timedelta(seconds=r.ttl_s + 10), ns="shop")
    for _ in range(SWEEP_EVERY):
        r.detect(late)
    assert set(r._principals) == {APP}  # the others were not seen for `ttl`


def test_checkpoint_restore_round_trip_gives_the_same_alerts() -> None:
    week, burst = habit(7), enumeration(START + timedelta(days=7, hours=2))
    a = rule()
    run(a, week)
    state = json.loads(json.dumps(a.snapshot()))  # JSON-able
    b = rule()
    b.restore(state)
    assert b.snapshot() == a.snapshot()
    assert [x.id for x in run(a, burst)] == [x.id for x in run(b, burst)] != []
    c = rule()
    c.restore({**state, "version": 2})  # the HalfSpaceTrees model's snapshots start afresh
    assert c._principals == {} and c._start is None


def test_a_rolled_back_batch_leaves_no_trace() -> None:
    week, burst = habit(7), enumeration(START + timedelta(days=7, hours=2))
    r, ref = rule(), rule()
    run(r, week)
    run(ref, week)
    before = json.dumps(r.snapshot(), sort_keys=True)
    r.begin()
    assert len(run(r, burst)) == 1
    r.rollback()
    assert json.dumps(r.snapshot(), sort_keys=True) == before
    r.begin()
    assert [x.id for x in run(r, burst)] == [x.id for x in run(ref, burst)]
    r.commit()
    assert json.dumps(r.snapshot(), sort_keys=True) == json.dumps(ref.snapshot(), sort_keys=True)


def test_scope_skips_control_plane_identities() -> None:
    r = rule()
    assert r.identity_scope  # the built-in `match` reads only the principal: memoised per identity
    for user in ("system:node:node-01", "system:serviceaccount:kube-system:replicaset-controller",
                 "system:kube-scheduler", "system:anonymous"):  # fmt: skip
        r.detect(request(user, "list", "pods", START))
    assert r._principals == {}
    r.detect(request(APP, "list", "pods", START))
    assert set(r._principals) == {APP}
