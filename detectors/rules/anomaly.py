"""`type: anomaly` — the online-learning tier: each principal scored against its own history (docs/anomaly.md).

1. For every event the rule's `match:` selects, what is new for its principal (`anomaly_features.novel_facts`:
   a new action `verb:resource[/subresource]`, a new namespace, a denied request, a new source address or
   user agent, an unusual hour for it) joins the principal's window of distinct novel facts (`window`).
2. The window's weight `k` is scored against `lam`, what the principal's own history says it brings in such a
   window (`anomaly_score.expected`): the score is -log10 P(N >= k), N ~ Poisson(lam). A principal that
   often does new things (an SRE) needs much more than one whose history is narrow (an application's token).
3. An episode starts when the score reaches `threshold` with at least `min_facts` of weight: one alert, with
   the facts and the principal's baseline; it ends when the score falls below half the threshold. The events
   of an episode are not learned: the attacker's address must not become usual because the attack went on.
4. Budgets: one alert per principal per UTC day, `max_alerts_per_day` alerts in all; past them an episode still
   starts (so it is not learned) but raises no alert (`over_budget`).
5. No alert during the learning period (`warmup`, by default the pipeline's baseline learning period), which
   starts with the first scored event; the rule learns meanwhile.

State is JSON (`snapshot()`/`restore()`), bounded: at most `max_principals` principals (the least recently
seen are dropped first) and, per principal, a few hundred remembered actions, namespaces, addresses and user
agents; principals not seen for `ttl` are forgotten. In a batch (`Transactional`), a principal's profile is
copied the first time the batch changes it, and the counters are saved at `begin()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from detectors.alerts import Alert, Severity, make_alert
from detectors.errors import RuleError, RuleErrors, collect
from detectors.events import AuditEvent
from detectors.loading.yamlload import LocatedDict
from detectors.rules.anomaly_features import ONCE, Observed, Profile, decay, learn, novel_facts, sensitive
from detectors.rules.anomaly_score import (
    BOOTSTRAP_S,
    EXPLORE_HALF_LIFE_S,
    by_kind,
    expected,
    explain,
    log10_tail,
    window_weight,
)
from detectors.rules.durations import format_duration, parse_duration
from detectors.rules.header import render_message
from detectors.rules.journal import KeyJournal
from detectors.rules.stateful import StatefulRule, own_key

SNAPSHOT_VERSION = 3  # 3: novelty profiles (earlier snapshots held HalfSpaceTrees features; not restored)
MAX_WINDOW_FACTS = 64

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


@dataclass
class AnomalyRule(StatefulRule):
    """Per-principal novelty, scored against the principal's own habit of doing new things."""

    rule_type: ClassVar[str] = "anomaly"

    threshold: float = 6.0  # -log10 of the probability of the window's novelty for the principal
    min_facts: float = 4.0  # the least weight of novel facts in a window that can alert
    window_s: float = 6 * 3600.0
    warmup_s: float | None = None  # None: the pipeline's baseline learning period (`use_learning_period`)
    ttl_s: float = 21 * 86_400.0
    max_alerts_per_day: int = 5
    max_principals: int = 20_000
    _principals: dict[str, Profile] = field(default_factory=dict, repr=False)
    _start: float | None = None
    _warm: bool = False
    _day: int = -1  # the UTC day (days since the epoch) of `_day_alerts`
    _day_alerts: int = 0
    over_budget: int = 0  # episodes that raised no alert because a budget was spent
    learned: int = 0  # events learned (tests check that an episode's events are not among them)
    identity_scope: bool = False  # `match` and `allowlist` read only user.username / the principal
    _scope_cache: dict[tuple[Any, Any], bool] = field(default_factory=dict, repr=False)

    def use_learning_period(self, seconds: float) -> None:
        """The pipeline's baseline learning period, as the warm-up unless the rule sets its own."""
        if self.warmup_s is None:
            self.warmup_s = seconds

    def _in_scope(self, event: AuditEvent, identity: tuple[Any, Any]) -> bool:
        """`counts` of an event of the rule's stages whose identity `_scope_cache` does not hold yet."""
        if len(self._scope_cache) >= 100_000:
            self._scope_cache.clear()
        found = self._scope_cache[identity] = self.predicate(event) and not self.header.allowlist.allows(event)
        return found

    def detect(self, event: AuditEvent) -> list[Alert]:
        # `counts`, memoised per identity when the condition reads nothing but the identity (the common scope
        # "people and application service accounts"): the rule sees every completed request
        raw = event.raw
        if raw.get("stage") not in self.header.stages:
            return []
        if self.identity_scope:
            user, imp = raw.get("user"), raw.get("impersonatedUser")
            identity = (user.get("username") if type(user) is dict else None,
                        imp.get("username") if type(imp) is dict else None)  # fmt: skip
            found = self._scope_cache.get(identity)
            if not (self._in_scope(event, identity) if found is None else found):
                return []
        elif not self.counts(event):
            return []
        who = event.principal
        if not who:
            return []
        now = event.timestamp
        if self._start is None:
            self._start = now
        if self._undo is not None:
            self._undo.touch(who)
        p = self._principals.get(who)
        if p is None:
            p = self._principals[who] = Profile(first=now, last=now, explore_at=now)
        window = p.window
        if window and now - window[0][0] > self.window_s:
            window = p.window = self._leave_window(p, now)
        seen = Observed.of(event)
        facts = novel_facts(seen, p, now)
        alerts: list[Alert] = []
        if facts:
            held = {(f[1], f[2]) for f in window} | {(f[1], "") for f in window if f[1] in ONCE}
            for kind, value, weight in facts:
                fresh = (kind, value) not in held and (kind not in ONCE or (kind, "") not in held)
                if fresh and len(window) < MAX_WINDOW_FACTS:
                    window.append([now, kind, value, weight])
        if facts or p.alerting:
            alerts = self._judge(event, who, p, now)
        if not p.alerting:
            learn(seen, p, now)
            self.learned += 1
        if now > p.last:
            p.last = now
        if self.tick():
            self._sweep(now)
        return alerts

    def _leave_window(self, p: Profile, now: float) -> list[list[Any]]:
        """The window without its facts older than `window_s`. Those join the principal's habit of novelty
        (`explore`) unless they were an episode's or its first day's: the habit is measured on what has left
        the window, so that the window is never judged against itself."""
        keep, gone = [], 0.0
        for f in p.window:
            if now - f[0] <= self.window_s:
                keep.append(f)
            elif not p.alerting and f[0] - p.first >= BOOTSTRAP_S:
                gone += f[3]
        if gone:
            p.explore = decay(p.explore, p.explore_at, now, EXPLORE_HALF_LIFE_S) + gone
            p.explore_at = now
        return keep

    def _judge(self, event: AuditEvent, who: str, p: Profile, now: float) -> list[Alert]:
        """Start or end the principal's episode on its window's score; the alert, if the budgets allow it."""
        k = window_weight(p)
        lam = expected(p, now, self.window_s)
        score = log10_tail(k, lam)
        if p.alerting:
            if score < self.threshold / 2:
                p.alerting = False  # the episode is over (judged with this event's facts)
            return []
        if not self._warm:
            self._warm = self._start is not None and now - self._start >= (self.warmup_s or 0.0)
        if not self._warm or score < self.threshold or k < self.min_facts:
            return []
        p.alerting = True  # an episode, alerted or not: its events are not learned
        if not self._spend_budget(p, now):
            return []
        return [self._explain(event, who, p, score, k, lam)]

    def _spend_budget(self, p: Profile, now: float) -> bool:
        """Whether today's budgets (the principal's one alert, the rule's `max_alerts_per_day`) allow an alert."""
        day = int(now // 86_400)
        if day != self._day:
            self._day, self._day_alerts = day, 0
        if self._day_alerts >= self.max_alerts_per_day or p.alert_day == day:
            self.over_budget += 1
            return False
        self._day_alerts += 1
        p.alert_day = day
        return True

    def _explain(self, event: AuditEvent, who: str, p: Profile, score: float, k: float, lam: float) -> Alert:
        now = event.timestamp
        kinds = by_kind(p)
        facts = explain(p)
        heavy = any(kind == "denied" or (kind == "action" and sensitive(value)) for _, kind, value, _ in p.window)
        usual = sorted(p.actions, key=p.actions.__getitem__, reverse=True)[:8]
        details = {
            "principal": who,
            "score": round(score, 2),
            "threshold": self.threshold,
            "novel_weight": round(k, 2),
            "expected_weight": round(lam, 3),
            "window_s": self.window_s,
            "top_features": {name: round(w, 2) for name, w in kinds.items()},
            "novel_facts": facts,
            "baseline": {
                "events": p.events,
                "since": p.first,
                "usual_actions": usual,
                "namespaces": sorted(p.spaces, key=p.spaces.__getitem__, reverse=True)[:8],
                "source_ips": sorted(p.ips, key=p.ips.__getitem__, reverse=True)[:5],
                "user_agents": sorted(p.agents, key=p.agents.__getitem__, reverse=True)[:3],
            },
            "budget": {"alerts_today": self._day_alerts, "max_per_day": self.max_alerts_per_day},
        }
        top = ", ".join(f"{n:g} {name}" for name, n in kinds.items())
        message = (f"{k:g} novel for {who} in {format_duration(self.window_s)} where its history expects "
                   f"{lam:.2g} (p={10 ** -score:.1e}): {top}; first: {'; '.join(facts[:4])}; "
                   f"baseline: {p.events} events in {format_duration(max(1.0, now - p.first))}")  # fmt: skip
        header = self.header
        text = render_message(header.message, event) + f" ({message})" if header.message else message
        severity = max(header.severity, Severity.MEDIUM) if heavy else header.severity
        return make_alert(
            rule_id=header.id, rule_name=header.name, severity=severity, mitre=header.mitre, message=text,
            event=event, details=details, suppress_s=header.suppress_s, guidance=header.guidance,
        )  # fmt: skip

    def _sweep(self, now: float) -> None:
        table = self._principals
        horizon = now - self.ttl_s
        gone = [w for w, p in table.items() if p.last <= horizon]
        if len(table) - len(gone) > self.max_principals:  # the least recently seen go first
            by_age = sorted((p.last, w) for w, p in table.items() if p.last > horizon)
            gone += [w for _, w in by_age[: len(table) - len(gone) - self.max_principals]]
        for who in gone:
            self.forget(table, who)

    def journal(self) -> KeyJournal[str, Profile]:
        return KeyJournal(self._principals, Profile.copy)

    def state_keys(self) -> int:
        return len(self._principals)

    def counters(self) -> tuple[Any, ...]:
        return (*super().counters(), self._start, self._warm, self._day, self._day_alerts, self.over_budget,
                self.learned)  # fmt: skip

    def set_counters(self, saved: tuple[Any, ...]) -> None:
        super().set_counters(saved[:-6])
        self._start, self._warm, self._day, self._day_alerts, self.over_budget, self.learned = saved[-6:]

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "principals": {w: p.to_json() for w, p in self._principals.items()},
            "start": self._start,
            "warm": self._warm,
            "learned": self.learned,
            "day": [self._day, self._day_alerts, self.over_budget],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Back to a snapshot; one of another version (or none) starts empty, and the learning period again."""
        if state.get("version") != SNAPSHOT_VERSION:
            state = {}
        self._principals = {w: Profile.from_json(p) for w, p in state.get("principals", {}).items()}
        self._start = state.get("start")
        self._warm = bool(state.get("warm", False))
        self.learned = int(state.get("learned", 0))
        self._day, self._day_alerts, self.over_budget = (int(n) for n in state.get("day", [-1, 0, 0]))

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> AnomalyRule:
        keys = frozenset({"threshold", "min_facts", "window", "warmup", "ttl", "max_alerts_per_day", "max_principals"})
        errors: list[RuleError] = []
        common = collect(errors, partial(cls.parse, node, path=path, extra_keys=keys), None)

        def number(key: str, default: float, *, integer: bool = False) -> float:
            return own_key(errors, node, key, partial(_positive, path=path, what=key, integer=integer), default)

        threshold, min_facts = number("threshold", 6.0), number("min_facts", 4.0)
        window_s = own_key(errors, node, "window", partial(parse_duration, path=path, what="window"), 6 * 3600.0)
        warmup_s = own_key(errors, node, "warmup", partial(parse_duration, path=path, what="warmup"), None)
        ttl_s = own_key(errors, node, "ttl", partial(parse_duration, path=path, what="ttl"), 21 * 86_400.0)
        max_alerts_per_day = number("max_alerts_per_day", 5, integer=True)
        max_principals = number("max_principals", 20_000, integer=True)
        if errors or common is None:
            raise RuleErrors(errors)
        allowlist = node.get("allowlist") or {}
        return cls(
            *common,
            identity_scope=_paths(node["match"]) <= _IDENTITY_PATHS
            and isinstance(allowlist, dict)
            and set(allowlist) <= {"users"},
            threshold=threshold,
            min_facts=min_facts,
            window_s=window_s,
            warmup_s=warmup_s,
            ttl_s=ttl_s,
            max_alerts_per_day=int(max_alerts_per_day),
            max_principals=int(max_principals),
        )


def _positive(value: Any, *, path: str, line: int, what: str, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise RuleError(f"{what} must be a positive number", path=path, line=line)
    if integer and not isinstance(value, int):
        raise RuleError(f"{what} must be an integer", path=path, line=line)
    return float(value)
