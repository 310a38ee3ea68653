"""What the anomaly rule remembers of each principal, and the novel facts an event brings against it.

Plain dicts, no model (docs/anomaly.md): a `Profile` holds what a principal has done (its actions
`verb:resource[/subresource]`, namespaces, source networks, user agents, the requests it was denied, hours
of day, share of denied requests) and how often it usually does something new (`explore`); `novel_facts`
lists what in an event is new for it, and `learn` records the event afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from detectors.events import AuditEvent

# What each kind of novel fact weighs: a new address or client alone is half a fact (pods move, kubectl
# upgrades); the new-address and new-client rules of the stateful tier judge those on their own.
WEIGHTS = {"action": 1.0, "namespace": 1.0, "denied": 1.0, "hour": 1.0, "address": 0.5, "client": 0.5}
ONCE = frozenset({"address", "client", "hour"})  # kinds that count once in a window, however many values
KIND_NAMES = {"action": "new actions", "namespace": "new namespaces", "denied": "denied requests",
              "hour": "unusual hours", "address": "new source addresses", "client": "new user agents"}  # fmt: skip
MAX_ACTIONS = 256  # actions remembered per principal (least recently seen dropped first)
MAX_SPACES = 128  # namespaces remembered per principal
MAX_TERMS = 32  # source addresses / user agents remembered per principal
MAX_WINDOW = 64  # novel facts kept per principal in the scoring window
HOURS_KNOWN = 50.0  # learned events a principal needs before its usual hours say anything
HOURS_CAP = 10_000.0  # the hour histogram is halved past this many events, so that habits can change
DENIED_WEIGHT = 0.01  # of the exponentially weighted share of denied requests
CLUSTER = "(cluster)"  # the namespace of cluster-scoped requests

_RBAC = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})
_WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def sensitive(action: str) -> bool:
    """Whether an action is one attackers need (secrets, RBAC writes, exec/attach, node proxy, TokenRequest).

    >>> sensitive("get:secrets"), sensitive("create:pods/exec"), sensitive("list:configmaps")
    (True, True, False)
    """
    verb, _, target = action.partition(":")
    resource, _, sub = target.partition("/")
    if resource == "secrets" or sub in ("exec", "attach", "ephemeralcontainers", "proxy", "token"):
        return True
    return resource in _RBAC and (verb in _WRITES or verb in ("bind", "escalate"))


def hour_of(now: float) -> int:
    """The UTC hour of day of an event time."""
    return int(now // 3600) % 24


def decay(value: float, since: float, now: float, half_life: float) -> float:
    """`value` as of `since`, halved every `half_life` seconds until `now`."""
    return value * math.pow(0.5, max(0.0, now - since) / half_life)


@dataclass
class Profile:
    """What the rule remembers about one principal. Times are event times (seconds since the epoch)."""

    first: float
    last: float
    events: int = 0  # learned events
    actions: dict[str, float] = field(default_factory=dict)  # action -> last seen
    spaces: dict[str, float] = field(default_factory=dict)  # namespace (CLUSTER for cluster scope) -> last seen
    ips: dict[str, float] = field(default_factory=dict)  # source network (network_of) -> last seen
    agents: dict[str, float] = field(default_factory=dict)  # user agent -> last seen
    refusals: dict[str, float] = field(default_factory=dict)  # "action namespace" it was denied -> last seen
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)  # learned events per UTC hour of day
    denied: float = 0.0  # exponentially weighted share of its requests answered 403
    explore: float = 0.0  # decayed weight of the novel facts it brought after its first day
    explore_at: float = 0.0
    window: list[list[Any]] = field(default_factory=list)  # [time, kind, value, weight]: distinct novel facts
    alerting: bool = False  # in an episode: alerted (or over budget), its events are not learned
    alert_day: int = -1  # the UTC day of its last alert

    def to_json(self) -> list[Any]:
        return [self.first, self.last, self.events, self.actions, self.spaces, self.ips, self.agents,
                self.refusals, self.hours, self.denied, self.explore, self.explore_at, self.window, self.alerting,
                self.alert_day]  # fmt: skip

    @classmethod
    def from_json(cls, raw: list[Any]) -> Profile:
        first, last, events, actions, spaces, ips, agents, refusals, hours, denied, explore, at = raw[:12]
        return cls(float(first), float(last), int(events), dict(actions), dict(spaces), dict(ips), dict(agents),
                   dict(refusals), [float(h) for h in hours], float(denied), float(explore), float(at),
                   [list(f) for f in raw[12]], bool(raw[13]), int(raw[14]))  # fmt: skip

    def copy(self) -> Profile:
        """A copy that later changes to this one leave alone (what an undo journal keeps before a batch changes
        it). Containers are copied, not their entries: entries are replaced, never changed in place."""
        return Profile(self.first, self.last, self.events, dict(self.actions), dict(self.spaces), dict(self.ips),
                       dict(self.agents), dict(self.refusals), list(self.hours), self.denied, self.explore,
                       self.explore_at, list(self.window), self.alerting, self.alert_day)  # fmt: skip


def off_hours(p: Profile, now: float) -> float:
    """How far outside the principal's usual hours `now` is: 0 within them (or without enough history), towards 1
    for an hour (with its neighbours) that holds a small share of its learned events. Learned per principal:
    a night-shift operator's nights are its usual hours."""
    known = sum(p.hours)
    if known < HOURS_KNOWN:
        return 0.0
    h = hour_of(now)
    near = p.hours[h - 1] + p.hours[h] + p.hours[(h + 1) % 24]
    expected = known * 3 / 24  # the share of three hours if activity were spread evenly
    surprise = -math.log(min(1.0, (near + 1.0) / expected))
    return surprise / (surprise + 1.5)


def network_of(ip: str) -> str:
    """The /24 of an IPv4 address, the /64 of an IPv6 one: a pod moving within its node's range, or a laptop
    within its office or VPN pool, is not a new place.

    >>> network_of("10.244.1.213"), network_of("2001:db8:1:2:3::4")
    ('10.244.1.0/24', '2001:db8:1:2::/64')
    """
    if ":" in ip:
        groups = ip.split("::")[0].split(":")[:4]
        return ":".join(groups) + "::/64"
    head, _, _ = ip.rpartition(".")
    return f"{head}.0/24" if head else ip


class Observed(NamedTuple):
    """What the rule reads of an event, read once."""

    action: str  # verb:resource[/subresource]
    space: str  # the namespace, CLUSTER for a cluster-scoped resource, "" for a non-resource request
    network: str  # network_of the last source address
    agent: str
    denied: bool  # answered 403
    refusal: str  # "action namespace" (or the request URI) of a denied request, else ""

    @classmethod
    def of(cls, event: AuditEvent) -> Observed:
        """Read from the raw event in one pass (the AuditEvent properties, without their per-call lookups)."""
        raw = event.raw
        ref = raw.get("objectRef")
        if isinstance(ref, dict):
            resource, sub, namespace = ref.get("resource"), ref.get("subresource"), ref.get("namespace")
            resource, sub = (str(resource) if resource else ""), (str(sub) if sub else "")
            namespace = str(namespace) if namespace else ""
        else:
            resource = sub = namespace = ""
        verb = str(raw.get("verb") or "")
        action = f"{verb}:{resource}/{sub}" if sub else f"{verb}:{resource}"
        space = (namespace or CLUSTER) if resource else ""
        status = raw.get("responseStatus")
        code = status.get("code") if isinstance(status, dict) else None
        denied = isinstance(code, int) and code == 403
        refusal = f"{action} {space or str(raw.get('requestURI') or '')}" if denied else ""
        ips = raw.get("sourceIPs")
        network = network_of(str(ips[-1])) if isinstance(ips, list) and ips else ""
        return cls(action, space, network, str(raw.get("userAgent") or ""), denied, refusal)


def novel_facts(seen: Observed, p: Profile, now: float) -> list[tuple[str, str, float]]:
    """(kind, value, weight) of what in an event is new for the principal, judged on `p` *before* the event.

    A principal seen for the first time has no namespaces, addresses or clients to compare with: only its actions
    and denied requests count then. An unusual hour counts only beside another novel fact: a person working late
    on their usual things is not news, new things at an hour that is not theirs are more so.

    >>> ev = AuditEvent({"verb": "list", "objectRef": {"resource": "networkpolicies", "namespace": "payments"},
    ...                  "sourceIPs": ["10.20.1.15"], "userAgent": "kubectl/v1.31.2",
    ...                  "responseStatus": {"code": 200}, "stageTimestamp": "2026-11-20T10:00:00Z"})
    >>> dev = Profile(first=0.0, last=0.0, events=300, actions={"list:pods": 1.0}, spaces={"web": 1.0},
    ...               ips={"10.20.1.0/24": 1.0}, agents={"kubectl/v1.31.2": 1.0})
    >>> novel_facts(Observed.of(ev), dev, ev.timestamp)
    [('action', 'list:networkpolicies', 1.0), ('namespace', 'payments', 1.0)]
    """
    facts: list[tuple[str, str, float]] = []
    if seen.action not in p.actions:
        facts.append(("action", seen.action, 1.0))
    if seen.denied and seen.refusal not in p.refusals:
        facts.append(("denied", seen.refusal, 1.0 - p.denied))
    if not p.events:
        return facts
    if seen.space and seen.space not in p.spaces:
        facts.append(("namespace", seen.space, 1.0))
    if seen.network and seen.network not in p.ips:
        facts.append(("address", seen.network, WEIGHTS["address"]))
    if seen.agent and seen.agent not in p.agents:
        facts.append(("client", seen.agent, WEIGHTS["client"]))
    if facts and off_hours(p, now) >= 0.5:
        facts.append(("hour", f"{hour_of(now):02d}:00 UTC", 1.0))
    return facts


def _remember(terms: dict[str, float], value: str, now: float, cap: int) -> None:
    if value not in terms and len(terms) >= cap:  # keep the most recently seen
        del terms[min(terms, key=terms.__getitem__)]
    terms[value] = now


def learn(seen: Observed, p: Profile, now: float) -> None:
    """Record an event as the principal's behaviour (not called for the events of an episode: the attacker's
    address must not become usual because the attack went on)."""
    _remember(p.actions, seen.action, now, MAX_ACTIONS)
    if seen.space:
        _remember(p.spaces, seen.space, now, MAX_SPACES)
    if seen.network:
        _remember(p.ips, seen.network, now, MAX_TERMS)
    if seen.agent:
        _remember(p.agents, seen.agent, now, MAX_TERMS)
    if seen.refusal:
        _remember(p.refusals, seen.refusal, now, MAX_SPACES)
    p.denied += DENIED_WEIGHT * (seen.denied - p.denied)
    if p.events % 1024 == 0 and sum(p.hours) >= HOURS_CAP:
        p.hours = [h / 2 for h in p.hours]
    p.hours[hour_of(now)] += 1.0
    p.events += 1
