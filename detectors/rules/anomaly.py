"""`type: anomaly` — the online-learning tier: per-principal window features, HalfSpaceTrees, decaying risk.

Design (docs/rules.md "Anomaly rules", anomaly-detection.md section 5):

1. For every event the rule's `match:` selects, eight features of the principal's recent behaviour are
   computed with plain dicts and scaled to [0, 1] (`extract_features`): rarity of the action for the
   principal, sensitivity of the action, burst rate, distinct resources and namespaces in a short window,
   failure ratio, new source address, new user agent.
2. `river.anomaly.HalfSpaceTrees` (defaults: 10 trees, height 8, window 250; fixed seed, so replay and live
   agree) scores the feature vector *before* learning it. Events that alert, or that belong to a principal
   whose risk is above the threshold, are never learned (the model must not learn the attack as normal).
3. The part of the score above the running 90th percentile of scores, weighted by the action's sensitivity,
   is added to a per-principal risk that halves every `half_life`.
4. One alert per principal episode: the risk crosses the threshold; the principal alerts again only after
   its risk has decayed below half the threshold.
5. The threshold comes from an alert budget (`budget_per_million`): the streaming quantile
   1 - budget * EVENTS_PER_EPISODE / 1e6 of the risk values (river `stats.Quantile`, P²), never below
   `min_risk`. During the warm-up (`warmup_events` scored events or `warmup` of event time, whichever comes
   first) the rule scores and learns but never alerts.

State is JSON (`snapshot()`/`restore()`): per-principal dicts, plus the river objects as base64 of a pickle.
That pickle is bound to the river (and Python) version: if it does not load, the model and the quantiles are
rebuilt empty (and the warm-up starts again) while the per-principal baselines are kept. Principals not seen
for `ttl` are forgotten, and so are their addresses, user agents and actions.
"""

from __future__ import annotations

import base64
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

from river import anomaly, stats

from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.rules.stateful import _Common, _common_fields, _human, _strip, parse_duration
from detectors.rules.yamlload import LocatedDict

FEATURES = ("rarity", "sensitivity", "burst", "resources", "namespaces", "failures", "new_ip", "new_agent")
SNAPSHOT_VERSION = 1
EVENTS_PER_EPISODE = 100  # the budget counts episodes; an episode spans about this many scored events
SCORE_FLOOR_Q = 0.99  # only the part of a score above this running quantile of scores adds to the risk
SHORT_WINDOW_S = 300.0  # distinct resources / namespaces / failures
BURST_WINDOW_S = 60.0
ALPHA = 1.0  # smoothing of the rarity estimate towards the cluster-wide frequency of the action
MAX_RECENT = 512  # entries of the short window kept per principal
MAX_TERMS = 64  # addresses / user agents remembered per principal
_SWEEP_EVERY = 4096

_RBAC = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})
_WORKLOADS = frozenset({"deployments", "daemonsets", "statefulsets", "replicasets", "cronjobs", "jobs", "pods"})
_WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def action_of(event: AuditEvent) -> str:
    """`verb:resource[/subresource]`, e.g. `get:secrets` or `create:pods/exec`."""
    sub = event.subresource
    return f"{event.verb}:{event.resource}/{sub}" if sub else f"{event.verb}:{event.resource}"


def sensitivity(verb: str, resource: str, subresource: str) -> float:
    """Weight in [0, 1] of the action families attackers need (GuardDuty's and Elastic's sensitive sets).

    >>> sensitivity("create", "pods", "exec"), sensitivity("get", "secrets", ""), sensitivity("get", "pods", "")
    (1.0, 0.9, 0.0)
    """
    if resource == "pods" and subresource in ("exec", "attach", "ephemeralcontainers"):
        return 1.0
    if resource == "nodes" and subresource == "proxy":
        return 1.0
    if resource == "serviceaccounts" and subresource == "token":
        return 1.0
    if resource in _RBAC and (verb in _WRITES or verb in ("bind", "escalate")):
        return 1.0
    if resource == "secrets":
        return 0.9 if verb in ("get", "list", "watch") else 1.0
    if resource == "pods" and subresource == "portforward":
        return 0.8
    if resource == "certificatesigningrequests" and verb in _WRITES:
        return 0.8
    if resource in _WORKLOADS and not subresource and verb in _WRITES:
        return 0.6
    if resource in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations") and verb in _WRITES:
        return 0.8
    if verb in _WRITES:
        return 0.3
    if resource in _RBAC or resource == "serviceaccounts" or resource == "configmaps":
        return 0.2
    return 0.0


def _squash(x: float, half: float) -> float:
    """x / (x + half): 0 -> 0, half -> 0.5, large -> 1."""
    return x / (x + half) if x > 0 else 0.0


def _decayed(value: float, since: float, now: float, half_life: float) -> float:
    return value * math.pow(0.5, max(0.0, now - since) / half_life)


@dataclass
class Principal:
    """What the rule remembers about one principal. Times are event times (seconds since the epoch)."""

    first: float
    last: float
    total: float = 0.0  # decayed count of the principal's scored events (updated at `last`)
    events: int = 0
    actions: dict[str, list[float]] = field(default_factory=dict)  # action -> [decayed count, updated at]
    ips: dict[str, float] = field(default_factory=dict)  # address -> last seen
    agents: dict[str, float] = field(default_factory=dict)  # user agent -> last seen
    recent: list[list[Any]] = field(default_factory=list)  # [time, resource, namespace, failed] in SHORT_WINDOW_S
    rate_mean: float = 0.0  # EW mean of "events in the last minute", sampled at the principal's events
    risk: float = 0.0
    risk_at: float = 0.0
    alerting: bool = False

    def to_json(self) -> list[Any]:
        return [self.first, self.last, self.total, self.events, self.actions, self.ips, self.agents,
                self.recent, self.rate_mean, self.risk, self.risk_at, self.alerting]  # fmt: skip

    @classmethod
    def from_json(cls, raw: list[Any]) -> Principal:
        first, last, total, events, actions, ips, agents, recent, rate_mean, risk, risk_at, alerting = raw
        return cls(float(first), float(last), float(total), int(events), dict(actions), dict(ips), dict(agents),
                   list(recent), float(rate_mean), float(risk), float(risk_at), bool(alerting))  # fmt: skip


@dataclass
class Baseline:
    """Cluster-wide action frequencies, for the rarity prior p_global(action)."""

    actions: dict[str, float] = field(default_factory=dict)
    total: float = 0.0


def extract_features(
    event: AuditEvent, state: Principal, baseline: Baseline, *, count_half_life: float, now: float | None = None
) -> dict[str, float]:
    """The feature vector of `event` given what is known of its principal *before* it; all in [0, 1].

    Pure: reads `state` and `baseline`, changes nothing (`observe` records the event afterwards).

    >>> raw = {"verb": "get", "objectRef": {"resource": "secrets", "namespace": "payments"},
    ...        "sourceIPs": ["198.51.100.23"], "userAgent": "curl/8.5.0", "responseStatus": {"code": 200},
    ...        "stageTimestamp": "2026-11-20T10:00:00Z"}
    >>> ev = AuditEvent(raw)
    >>> alice = Principal(first=ev.timestamp - 86400, last=ev.timestamp - 60, total=50.0, events=50,
    ...     actions={"get:pods": [50.0, ev.timestamp - 60]}, ips={"10.20.1.15": ev.timestamp - 60},
    ...     agents={"kubectl/v1.31.2": ev.timestamp - 60}, rate_mean=1.0)
    >>> f = extract_features(ev, alice, Baseline({"get:secrets": 10.0, "get:pods": 90.0}, 100.0),
    ...                      count_half_life=7 * 86400)
    >>> {k: round(v, 2) for k, v in f.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'rarity': 0.75, 'sensitivity': 0.9, 'burst': 0.11, 'resources': 0.0, 'namespaces': 0.0,
     'failures': 0.0, 'new_ip': 1.0, 'new_agent': 1.0}
    """
    if now is None:
        now = event.timestamp
    action = action_of(event)
    # rarity: -log((c_pair + a * p_global) / (c_principal + a)), on decayed counts
    p_global = (baseline.actions.get(action, 0.0) + 1.0) / (baseline.total + 1.0)
    pair = state.actions.get(action)
    c_pair = _decayed(pair[0], pair[1], now, count_half_life) if pair else 0.0
    c_principal = _decayed(state.total, state.last, now, count_half_life)
    surprise = -math.log(min(1.0, (c_pair + ALPHA * p_global) / (c_principal + ALPHA)))
    # short window: what the principal did in the last five minutes, this event included
    recent = [r for r in state.recent if now - r[0] <= SHORT_WINDOW_S]
    resources = {r[1] for r in recent} | {event.resource}
    namespaces = {r[2] for r in recent} | {event.namespace}
    code = event.response_code
    failed = code in (401, 403)
    failures = (sum(1 for r in recent if r[3]) + failed) / (len(recent) + 1)
    last_minute = sum(1 for r in recent if now - r[0] <= BURST_WINDOW_S) + 1
    ips = event.source_ips
    ip = ips[-1] if ips else ""
    return {
        "rarity": _squash(surprise, 2.0),
        "sensitivity": sensitivity(event.verb, event.resource, event.subresource),
        "burst": _squash(last_minute / (state.rate_mean + 1.0), 4.0),
        "resources": _squash(len(resources) - 1, 5.0),
        "namespaces": _squash(len(namespaces) - 1, 3.0),
        "failures": failures,
        "new_ip": 1.0 if ip and ip not in state.ips else 0.0,
        "new_agent": 1.0 if event.user_agent and event.user_agent not in state.agents else 0.0,
    }


def observe(
    event: AuditEvent, state: Principal, baseline: Baseline, *, count_half_life: float, now: float, learn: bool = True
) -> None:
    """Record `event` in the principal's short window and, if `learn`, in its baseline (actions, addresses,
    user agents) and the cluster-wide action counts. Events of an alerting episode are not learned: the
    attacker's address must not become "usual" because the attack went on."""
    state.events += 1
    state.recent = [r for r in state.recent if now - r[0] <= SHORT_WINDOW_S][-MAX_RECENT + 1 :]
    last_minute = sum(1 for r in state.recent if now - r[0] <= BURST_WINDOW_S) + 1
    state.rate_mean += 0.05 * (last_minute - state.rate_mean)
    state.recent.append([now, event.resource, event.namespace, event.response_code in (401, 403)])
    state.total = _decayed(state.total, state.last, now, count_half_life) + (1.0 if learn else 0.0)
    state.last = max(state.last, now)
    if not learn:
        return
    action = action_of(event)
    pair = state.actions.get(action)
    state.actions[action] = [(_decayed(pair[0], pair[1], now, count_half_life) if pair else 0.0) + 1.0, now]
    ips = event.source_ips
    for terms, value in ((state.ips, ips[-1] if ips else ""), (state.agents, event.user_agent)):
        if value:
            terms[value] = now
            if len(terms) > MAX_TERMS:  # keep the most recently used
                del terms[min(terms, key=terms.__getitem__)]
    baseline.actions[action] = baseline.actions.get(action, 0.0) + 1.0
    baseline.total += 1.0


_IDENTITY_PATHS = frozenset({"$principal", "user.username", "impersonatedUser.username"})


def _paths(condition: Any) -> set[str]:
    """Every field path a condition reads (combinators all/any/not walked through)."""
    if isinstance(condition, list):
        return set().union(*(_paths(c) for c in condition)) if condition else set()
    if not isinstance(condition, dict):
        return set()
    found: set[str] = set()
    for key, value in condition.items():
        found |= _paths(value) if key in ("all", "any", "not") else {str(key)}
    return found


def _new_models(budget_per_million: float) -> dict[str, Any]:
    q = max(0.5, 1.0 - budget_per_million * EVENTS_PER_EPISODE / 1e6)
    return {
        "hst": anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=42),
        "score_q": stats.Quantile(SCORE_FLOOR_Q),
        "risk_q": stats.Quantile(q),
    }


@dataclass
class AnomalyRule(_Common):
    """Per-principal anomaly score (HalfSpaceTrees over window features) fused into a decaying risk."""

    budget_per_million: float = 10.0
    warmup_events: int = 50_000
    warmup_s: float = 86_400.0
    half_life_s: float = 3_600.0
    ttl_s: float = 21 * 86_400.0
    min_risk: float = 1.0
    count_half_life_s: float = 7 * 86_400.0
    _principals: dict[str, Principal] = field(default_factory=dict, repr=False)
    _baseline: Baseline = field(default_factory=Baseline, repr=False)
    _models: dict[str, Any] = field(default_factory=dict, repr=False)
    _scored: int = 0
    _start: float | None = None
    _warm: bool = False
    learned: int = 0  # events the model learned (tests check that alerting events are not among them)
    identity_scope: bool = False  # `match` and `allowlist` read only user.username / the principal
    _scope_cache: dict[tuple[Any, Any], bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._models:
            self._models = _new_models(self.budget_per_million)

    @property
    def threshold(self) -> float:
        q = self._models["risk_q"].get()
        return max(self.min_risk, float(q) if q is not None else 0.0)

    def _in_scope(self, event: AuditEvent) -> bool:
        """`_counts`, memoised per identity when the condition reads nothing but the identity (the common
        scope "people and application service accounts"): the rule sees every completed request."""
        raw = event.raw
        if self.stages is not None and raw.get("stage") not in self.stages:
            return False
        if not self.identity_scope:
            return self._counts(event)
        user, imp = raw.get("user"), raw.get("impersonatedUser")
        key = (user.get("username") if type(user) is dict else None, imp.get("username") if type(imp) is dict else None)
        found = self._scope_cache.get(key)
        if found is None:
            if len(self._scope_cache) >= 100_000:
                self._scope_cache.clear()
            found = self._scope_cache[key] = self.predicate(event) and not self.allowlist.allows(event)
        return found

    def detect(self, event: AuditEvent) -> list[Alert]:
        if not self._in_scope(event):
            return []
        who = event.principal
        if not who:
            return []
        now = event.timestamp
        if self._start is None:
            self._start = now
        state = self._principals.get(who)
        if state is None:
            state = self._principals[who] = Principal(first=now, last=now, risk_at=now)
        x = extract_features(event, state, self._baseline, count_half_life=self.count_half_life_s, now=now)
        models = self._models
        score = float(models["hst"].score_one(x))  # score first ...
        floor = models["score_q"].get() or 0.0
        surprise = max(0.0, score - floor) / max(1e-9, 1.0 - floor)
        weight = 0.25 + 0.75 * x["sensitivity"]
        threshold = self.threshold
        decayed = _decayed(state.risk, state.risk_at, now, self.half_life_s)
        if state.alerting and decayed < threshold / 2:
            state.alerting = False  # the episode is over (judged before this event adds to the risk)
        state.risk = decayed + weight * surprise
        state.risk_at = max(state.risk_at, now)
        self._scored += 1
        if not self._warm:
            self._warm = self._scored >= self.warmup_events or now - self._start >= self.warmup_s
        alerts: list[Alert] = []
        if self._warm and not state.alerting and state.risk >= threshold:
            state.alerting = True
            alerts.append(self._explain(event, who, state, x, score, threshold))
        if not state.alerting:  # the quantiles describe what happens outside episodes (else they chase attacks)
            models["score_q"].update(score)
            models["risk_q"].update(state.risk)
        learn = not state.alerting and state.risk < threshold
        if learn:
            models["hst"].learn_one(x)  # ... then learn, but never an anomaly
            self.learned += 1
        observe(event, state, self._baseline, count_half_life=self.count_half_life_s, now=now, learn=learn)
        self._sweep(now)
        return alerts

    def _explain(
        self, event: AuditEvent, who: str, state: Principal, x: dict[str, float], score: float, threshold: float
    ) -> Alert:
        top = sorted(x.items(), key=lambda kv: -kv[1])[:4]
        now = event.timestamp
        usual = sorted(
            ((a, _decayed(c, t, now, self.count_half_life_s)) for a, (c, t) in state.actions.items()),
            key=lambda kv: -kv[1],
        )[:5]
        details = {
            "principal": who,
            "risk": round(state.risk, 3),
            "threshold": round(threshold, 3),
            "score": round(score, 3),
            "top_features": {k: round(v, 3) for k, v in top},
            "features": {k: round(v, 3) for k, v in x.items()},
            "baseline": {
                "events": state.events,
                "since": state.first,
                "usual_actions": {a: round(c, 1) for a, c in usual},
                "source_ips": sorted(state.ips, key=state.ips.__getitem__, reverse=True)[:5],
                "user_agents": sorted(state.agents, key=state.agents.__getitem__, reverse=True)[:3],
            },
            "half_life_s": self.half_life_s,
        }
        reasons = ", ".join(f"{k}={v:.2f}" for k, v in top if v > 0)
        message = (f"risk {state.risk:.2f} over {threshold:.2f} for {who} ({reasons}; "
                   f"baseline: {state.events} events in {_human(max(1.0, now - state.first))})")  # fmt: skip
        return self._alert(event, message, details)

    def _sweep(self, now: float) -> None:
        self._seen += 1
        if self._seen % _SWEEP_EVERY:
            return
        horizon = now - self.ttl_s
        for who in [w for w, p in self._principals.items() if p.last <= horizon]:
            del self._principals[who]
        for p in self._principals.values():
            for terms in (p.ips, p.agents):
                for k in [k for k, ts in terms.items() if ts <= horizon]:
                    del terms[k]
            for a in [a for a, (_, ts) in p.actions.items() if ts <= horizon]:
                del p.actions[a]
        if len(self._baseline.actions) > 10_000:  # a flood of made-up resources must not grow it forever
            keep = sorted(self._baseline.actions.items(), key=lambda kv: -kv[1])[:5_000]
            self._baseline.actions = dict(keep)

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "principals": {w: p.to_json() for w, p in self._principals.items()},
            "baseline": [self._baseline.actions, self._baseline.total],
            "scored": self._scored,
            "start": self._start,
            "warm": self._warm,
            "learned": self.learned,
            # version-bound (river, Python): rebuilt empty when it does not load
            "models_pickle_b64": base64.b64encode(pickle.dumps(self._models)).decode(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._principals = {w: Principal.from_json(p) for w, p in state.get("principals", {}).items()}
        actions, total = state.get("baseline", [{}, 0.0])
        self._baseline = Baseline(dict(actions), float(total))
        self._scored = int(state.get("scored", 0))
        self._start = state.get("start")
        self._warm = bool(state.get("warm", False))
        self.learned = int(state.get("learned", 0))
        self._models = _new_models(self.budget_per_million)
        blob = state.get("models_pickle_b64")
        if blob:
            try:
                models = pickle.loads(base64.b64decode(blob))  # noqa: S301 - our own checkpoint
                if isinstance(models, dict) and set(models) == set(self._models):
                    self._models = models
                    return
            except Exception:  # noqa: BLE001 - another river version: rebuild
                pass
            self._scored, self._warm, self._start = 0, False, None  # the new model warms up again

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> AnomalyRule:
        keys = frozenset({"budget_per_million", "warmup_events", "warmup", "half_life", "ttl", "min_risk"})
        fields = _common_fields(node, path, keys)
        err = fields["_err"]

        def duration(key: str, default: float) -> float:
            if key not in node:
                return default
            return parse_duration(node[key], path=path, line=node.line_of(key), what=key)

        def number(key: str, default: float, *, integer: bool = False) -> float:
            value = node.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise err(f"{key} must be a positive number", key)
            if integer and not isinstance(value, int):
                raise err(f"{key} must be an integer", key)
            return float(value)

        budget = number("budget_per_million", 10.0)
        if budget * EVENTS_PER_EPISODE >= 5e5:
            raise err(f"budget_per_million must be below {5e5 / EVENTS_PER_EPISODE:g}", "budget_per_million")
        allowlist = node.get("allowlist") or {}
        return cls(
            **_strip(fields),
            identity_scope=_paths(node["match"]) <= _IDENTITY_PATHS
            and isinstance(allowlist, dict)
            and set(allowlist) <= {"users"},
            budget_per_million=budget,
            warmup_events=int(number("warmup_events", 50_000, integer=True)),
            warmup_s=duration("warmup", 86_400.0),
            half_life_s=duration("half_life", 3_600.0),
            ttl_s=duration("ttl", 21 * 86_400.0),
            min_risk=number("min_risk", 1.0),
        )
