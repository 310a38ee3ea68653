"""`type: anomaly` — the online-learning tier: per-principal window features, HalfSpaceTrees, decaying risk.

Design (docs/rules.md "Anomaly rules", docs/anomaly.md):

1. For every event the rule's `match:` selects, eight features of the principal's recent behaviour are
   computed with plain dicts and scaled to [0, 1] (`anomaly_features.extract_features`): rarity of the
   action for the principal, sensitivity of the action, burst rate, distinct resources and namespaces in a
   short window, failure ratio, new source address, new user agent.
2. `river.anomaly.HalfSpaceTrees` (defaults: 10 trees, height 8, window 250; fixed seed, so replay and live
   agree) scores the feature vector *before* learning it. Events that alert, or that belong to a principal
   whose risk is above the threshold, are never learned (the model must not learn the attack as normal).
3. The part of the score above the running 99th percentile of scores (SCORE_FLOOR_Q), weighted by the
   action's sensitivity, is added to a per-principal risk that halves every `half_life`.
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

In a batch (`Transactional`), a principal's record is copied the first time the batch changes it, and so is
each cluster-wide action count; the river objects are pickled at the batch's first change to them (about
8 ms for the default model; a copy.deepcopy takes ten times as long), and unpickled only by a rollback.
"""

from __future__ import annotations

import base64
import pickle
from dataclasses import dataclass, field
from typing import Any, ClassVar

from river import anomaly, stats

from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.loading.yamlload import LocatedDict
from detectors.rules.anomaly_features import Baseline, Principal, action_of, decay, extract_features, observe
from detectors.rules.header import format_duration, key_error, parse_duration
from detectors.rules.journal import KeyJournal
from detectors.rules.stateful import StatefulRule

SNAPSHOT_VERSION = 1
EVENTS_PER_EPISODE = 100  # the budget counts episodes; an episode spans about this many scored events
SCORE_FLOOR_Q = 0.99  # only the part of a score above this running quantile of scores adds to the risk

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
class AnomalyRule(StatefulRule):
    """Per-principal anomaly score (HalfSpaceTrees over window features) fused into a decaying risk."""

    rule_type: ClassVar[str] = "anomaly"

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
    _baseline_undo: KeyJournal[str, float] | None = field(default=None, repr=False)  # of the open batch
    _models_before: bytes | None = field(default=None, repr=False)  # pickled at the open batch's first change

    def __post_init__(self) -> None:
        if not self._models:
            self._models = _new_models(self.budget_per_million)

    @property
    def threshold(self) -> float:
        q = self._models["risk_q"].get()
        return max(self.min_risk, float(q) if q is not None else 0.0)

    def _in_scope(self, event: AuditEvent) -> bool:
        """`counts`, memoised per identity when the condition reads nothing but the identity (the common
        scope "people and application service accounts"): the rule sees every completed request."""
        raw = event.raw
        if raw.get("stage") not in self.header.stages:
            return False
        if not self.identity_scope:
            return self.counts(event)
        user, imp = raw.get("user"), raw.get("impersonatedUser")
        key = (user.get("username") if type(user) is dict else None, imp.get("username") if type(imp) is dict else None)
        found = self._scope_cache.get(key)
        if found is None:
            if len(self._scope_cache) >= 100_000:
                self._scope_cache.clear()
            found = self._scope_cache[key] = self.predicate(event) and not self.header.allowlist.allows(event)
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
        if self._undo is not None:
            self._undo.touch(who)
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
        decayed = decay(state.risk, state.risk_at, now, self.half_life_s)
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
            if self._undo is not None and self._models_before is None:
                self._models_before = pickle.dumps(models)
            models["score_q"].update(score)
            models["risk_q"].update(state.risk)
        learn = not state.alerting and state.risk < threshold
        if learn:
            models["hst"].learn_one(x)  # ... then learn, but never an anomaly
            self.learned += 1
            if self._baseline_undo is not None:
                self._baseline_undo.touch(action_of(event))
        observe(event, state, self._baseline, count_half_life=self.count_half_life_s, now=now, learn=learn)
        self._sweep(now)
        return alerts

    def _explain(
        self, event: AuditEvent, who: str, state: Principal, x: dict[str, float], score: float, threshold: float
    ) -> Alert:
        top = sorted(x.items(), key=lambda kv: -kv[1])[:4]
        now = event.timestamp
        usual = sorted(
            ((a, decay(c, t, now, self.count_half_life_s)) for a, (c, t) in state.actions.items()),
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
                   f"baseline: {state.events} events in {format_duration(max(1.0, now - state.first))})")  # fmt: skip
        return self.alert(event, message, details)

    def _sweep(self, now: float) -> None:
        if not self.tick():
            return
        horizon = now - self.ttl_s
        for who in [w for w, p in self._principals.items() if p.last <= horizon]:
            self.forget(self._principals, who)
        for who, p in self._principals.items():
            stale_terms = [(terms, k) for terms in (p.ips, p.agents) for k, ts in terms.items() if ts <= horizon]
            stale_actions = [a for a, (_, ts) in p.actions.items() if ts <= horizon]
            if (stale_terms or stale_actions) and self._undo is not None:
                self._undo.touch(who)
            for terms, k in stale_terms:
                del terms[k]
            for a in stale_actions:
                del p.actions[a]
        actions = self._baseline.actions
        if len(actions) > 10_000:  # a flood of made-up resources must not grow it forever
            keep = sorted(actions.items(), key=lambda kv: -kv[1])[:5_000]
            if self._baseline_undo is not None:
                self._baseline_undo.replace(keep)
            else:
                actions.clear()
                actions.update(keep)

    def journal(self) -> KeyJournal[str, Principal]:
        return KeyJournal(self._principals, Principal.copy)

    def state_keys(self) -> int:
        return len(self._principals)

    def counters(self) -> tuple[Any, ...]:
        return (*super().counters(), self._scored, self._start, self._warm, self.learned, self._baseline.total)

    def set_counters(self, saved: tuple[Any, ...]) -> None:
        super().set_counters(saved[:-5])
        self._scored, self._start, self._warm, self.learned, self._baseline.total = saved[-5:]

    def begin(self) -> None:
        super().begin()
        self._baseline_undo = KeyJournal(self._baseline.actions)
        self._models_before = None

    def commit(self) -> None:
        super().commit()
        self._baseline_undo, self._models_before = None, None

    def rollback(self) -> None:
        if self._baseline_undo is not None:
            self._baseline_undo.undo()
        if self._models_before is not None:
            self._models = pickle.loads(self._models_before)  # noqa: S301 - our own bytes, from this batch
        self._baseline_undo, self._models_before = None, None
        super().rollback()

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
        common = cls.parse(node, path=path, extra_keys=keys)

        def duration(key: str, default: float) -> float:
            if key not in node:
                return default
            return parse_duration(node[key], path=path, line=node.line_of(key), what=key)

        def number(key: str, default: float, *, integer: bool = False) -> float:
            value = node.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise key_error(node, path, f"{key} must be a positive number", key)
            if integer and not isinstance(value, int):
                raise key_error(node, path, f"{key} must be an integer", key)
            return float(value)

        budget = number("budget_per_million", 10.0)
        if budget * EVENTS_PER_EPISODE >= 5e5:
            raise key_error(
                node, path, f"budget_per_million must be below {5e5 / EVENTS_PER_EPISODE:g}", "budget_per_million"
            )
        allowlist = node.get("allowlist") or {}
        return cls(
            *common,
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
