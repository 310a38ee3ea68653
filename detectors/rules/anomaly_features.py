"""What the anomaly rule knows of each principal, and the feature vector it scores (see docs/anomaly.md).

Plain dicts and arithmetic, no model: `extract_features` turns an event and its principal's recent
behaviour into nine numbers in [0, 1]; `observe` records the event afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from detectors.events import AuditEvent

FEATURES = (
    "rarity", "sensitivity", "burst", "resources", "namespaces", "failures", "new_ip", "new_agent", "off_hours",
)  # fmt: skip
SHORT_WINDOW_S = 300.0  # distinct resources / namespaces / failures
BURST_WINDOW_S = 60.0
ALPHA = 1.0  # smoothing of the rarity estimate towards the cluster-wide frequency of the action
MAX_RECENT = 512  # entries of the short window kept per principal
MAX_TERMS = 64  # addresses / user agents remembered per principal
HOURS_KNOWN = 50.0  # events a principal needs before its usual hours say anything
HOURS_CAP = 10_000.0  # the hour histogram is halved past this many events, so that habits can change

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


def decay(value: float, since: float, now: float, half_life: float) -> float:
    """`value` as of `since`, halved every `half_life` seconds until `now`."""
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
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)  # learned events per UTC hour of day

    def to_json(self) -> list[Any]:
        return [self.first, self.last, self.total, self.events, self.actions, self.ips, self.agents,
                self.recent, self.rate_mean, self.risk, self.risk_at, self.alerting, self.hours]  # fmt: skip

    def copy(self) -> Principal:
        """A copy that later changes to this one leave alone (what an undo journal keeps of a principal before
        a batch changes it). The containers are copied, not their entries: `observe` and the sweep replace
        or delete entries, and never change one in place."""
        return Principal(self.first, self.last, self.total, self.events, dict(self.actions), dict(self.ips),
                         dict(self.agents), list(self.recent), self.rate_mean, self.risk, self.risk_at,
                         self.alerting, list(self.hours))  # fmt: skip

    @classmethod
    def from_json(cls, raw: list[Any]) -> Principal:
        first, last, total, events, actions, ips, agents, recent, rate_mean, risk, risk_at, alerting = raw[:12]
        hours = [float(h) for h in raw[12]] if len(raw) > 12 else [0.0] * 24  # before off_hours: none learned
        return cls(float(first), float(last), float(total), int(events), dict(actions), dict(ips), dict(agents),
                   list(recent), float(rate_mean), float(risk), float(risk_at), bool(alerting), hours)  # fmt: skip


def hour_of(now: float) -> int:
    """The UTC hour of day of an event time."""
    return int(now // 3600) % 24


def off_hours(state: Principal, now: float) -> float:
    """How far outside the principal's usual hours `now` is: 0 within them (or without enough history), towards 1
    for an hour (with its neighbours) that holds a small share of the principal's learned events. Learned per
    principal from its own events: a night-shift operator's nights are its usual hours."""
    known = sum(state.hours)
    if known < HOURS_KNOWN:
        return 0.0
    h = hour_of(now)
    near = state.hours[h - 1] + state.hours[h] + state.hours[(h + 1) % 24]
    expected = known * 3 / 24  # the share of three hours if activity were spread evenly
    return _squash(-math.log(min(1.0, (near + 1.0) / expected)), 1.5)


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
     'failures': 0.0, 'new_ip': 1.0, 'new_agent': 1.0, 'off_hours': 0.0}
    """
    if now is None:
        now = event.timestamp
    action = action_of(event)
    # rarity: -log((c_pair + a * p_global) / (c_principal + a)), on decayed counts
    p_global = (baseline.actions.get(action, 0.0) + 1.0) / (baseline.total + 1.0)
    pair = state.actions.get(action)
    c_pair = decay(pair[0], pair[1], now, count_half_life) if pair else 0.0
    c_principal = decay(state.total, state.last, now, count_half_life)
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
        "off_hours": off_hours(state, now),
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
    state.total = decay(state.total, state.last, now, count_half_life) + (1.0 if learn else 0.0)
    state.last = max(state.last, now)
    if not learn:
        return
    action = action_of(event)
    pair = state.actions.get(action)
    state.actions[action] = [(decay(pair[0], pair[1], now, count_half_life) if pair else 0.0) + 1.0, now]
    ips = event.source_ips
    for terms, value in ((state.ips, ips[-1] if ips else ""), (state.agents, event.user_agent)):
        if value:
            terms[value] = now
            if len(terms) > MAX_TERMS:  # keep the most recently used
                del terms[min(terms, key=terms.__getitem__)]
    baseline.actions[action] = baseline.actions.get(action, 0.0) + 1.0
    baseline.total += 1.0
    if sum(state.hours) >= HOURS_CAP:
        state.hours = [h / 2 for h in state.hours]
    state.hours[hour_of(now)] += 1.0
