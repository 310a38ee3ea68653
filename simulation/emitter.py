"""The audit event emitter: builds the ``audit.k8s.io/v1`` Events of one request, as the apiserver writes them.

Per the apiserver, RequestReceived events carry no annotations, ``responseStatus`` or objects, long-running
requests (watch, logs, exec, proxy) get a ResponseStarted event, failed authentication is a single
ResponseStarted event with an empty user, and on ResponseComplete the ``objectRef`` is completed with
name/uid/resourceVersion taken from the request object. Events are queued on a heap by stageTimestamp;
every event is a fresh tree of dicts and lists, so consumers may mutate events freely.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from simulation.clock import TimeFormatter

Event = dict[str, Any]

AUTHZ_DECISION: Final = "authorization.k8s.io/decision"
AUTHZ_REASON: Final = "authorization.k8s.io/reason"
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_REF_ORDER: Final = (
    "resource",
    "namespace",
    "name",
    "uid",
    "apiGroup",
    "apiVersion",
    "resourceVersion",
    "subresource",
)


def object_ref(
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    group: str = "",
    version: str = "v1",
    subresource: str | None = None,
) -> dict[str, str]:
    """An ``objectRef`` as the apiserver builds it from the URL (Go ``omitempty`` key order)."""
    ref = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    if group:
        ref["apiGroup"] = group
    ref["apiVersion"] = version
    if subresource:
        ref["subresource"] = subresource
    return ref


def _complete_ref(ref: dict[str, str], name: str | None, uid: str | None, rv: str | None) -> dict[str, str]:
    """objectRef at ResponseComplete: name/uid/resourceVersion filled from the request object."""
    merged = dict(ref)
    if name and "name" not in merged:
        merged["name"] = name
    if uid:
        merged["uid"] = uid
    if rv:
        merged["resourceVersion"] = rv
    return {k: merged[k] for k in _REF_ORDER if k in merged}


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated identity plus where it connects from and its User-Agent."""

    username: str
    groups: tuple[str, ...]
    ip: str
    ua: str
    reason: str  # authorization.k8s.io/reason on allowed requests
    uid: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def user(self) -> dict[str, Any]:
        u: dict[str, Any] = {"username": self.username}
        if self.uid:
            u["uid"] = self.uid
        u["groups"] = list(self.groups)
        if self.extra:
            u["extra"] = {k: [v] for k, v in self.extra}
        return u


def rbac_reason(kind: str, binding: str, role_kind: str, role: str, subject_kind: str, subject: str) -> str:
    """The RBAC authorizer's ``authorization.k8s.io/reason`` for an allowed request."""
    return f'RBAC: allowed by {kind} "{binding}" of {role_kind} "{role}" to {subject_kind} "{subject}"'


def forbidden_status(message: str, details: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


def not_found_status(message: str, details: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NotFound",
        "details": details,
        "code": 404,
    }


def success_status(code: int = 201) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}


def watch_uri(path: str, rv: str, timeout_s: int, selector: str = "") -> str:
    """client-go reflector watch URL (query keys sorted, as url.Values.Encode does)."""
    m, s = divmod(timeout_s, 60)
    return (
        f"{path}?allowWatchBookmarks=true{selector}&resourceVersion={rv}"
        f"&timeout={m}m{s}s&timeoutSeconds={timeout_s}&watch=true"
    )


def exec_uri(ns: str, pod: str, command: list[str], container: str = "app", *, interactive: bool = True) -> str:
    """``pods/exec`` URL as kubectl builds it (each argument a URL-encoded ``command=``): ``kubectl exec -it``
    attaches stdin and a tty, a one-off command reads stdout and stderr."""
    query = "&".join(f"command={quote(c, safe='')}" for c in command)
    streams = "stdin=true&stdout=true&tty=true" if interactive else "stderr=true&stdout=true"
    return f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{query}&container={container}&{streams}"


def _event_head(level: str, aid: str, stage: str, uri: str, verb: str, user: dict[str, Any], ip: str, ua: str) -> Event:
    """The fields every stage of a request starts with, in the apiserver's order."""
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": aid,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": user,
        "sourceIPs": [ip],
        "userAgent": ua,
    }


class Emitter:
    """Builds the audit Events of one request and queues them by stageTimestamp.

    It also draws the random ids (auditIDs, uids, resourceVersions, generated names) from its seeded
    ``rng``, so the order of calls decides every id: keep it when changing a caller.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clock = TimeFormatter()
        self.out: list[tuple[int, int, Event]] = []  # heap of (stageTimestamp µs, seq, event)
        self._seq = 0
        self._rv = 48_211_337 + rng.randrange(1_000_000)

    # ids -------------------------------------------------------------------------------------------
    def uuid(self) -> str:
        n = (self.rng.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def rv(self) -> str:
        self._rv += 1 + self.rng.randrange(40)
        return str(self._rv)

    def token(self, n: int) -> str:
        choice = self.rng.choice
        return "".join(choice(_NAME_ALPHABET) for _ in range(n))

    def hex(self, nbytes: int) -> str:
        return f"{self.rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"

    # queue -----------------------------------------------------------------------------------------
    def push(self, ts: int, ev: Event) -> None:
        self._seq += 1
        heapq.heappush(self.out, (ts, self._seq, ev))

    def drain(self) -> list[tuple[int, Event]]:
        """Pop every queued event, in stageTimestamp order (then queueing order)."""
        out = []
        while self.out:
            ts, _, ev = heapq.heappop(self.out)
            out.append((ts, ev))
        return out

    # requests --------------------------------------------------------------------------------------
    def request(
        self,
        t: int,
        actor: Actor,
        verb: str,
        uri: str,
        ref: dict[str, str] | None,
        *,
        level: str = "Metadata",
        code: int = 200,
        latency: int | None = None,
        req_obj: dict[str, Any] | None = None,
        resp_obj: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
        stream: int | None = None,
        decision: str = "allow",
        reason: str | None = None,
        obj_meta: tuple[str | None, str | None, str | None] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> str:
        """Queue the events of one request that starts at ``t`` (µs) and return its auditID.

        ``stream`` (µs) marks a long-running request (watch, pods/log, exec): it gets a ResponseStarted
        shortly after ``t`` and its ResponseComplete ``stream`` µs after ``t``. ``obj_meta`` is the
        (name, uid, resourceVersion) of the request object, copied into the final objectRef.
        ``annotations`` are added to the authorizer's (e.g. a TokenRequest's issued-credential-id).
        """
        rng = self.rng
        aid = self.uuid()
        ts0 = self.clock.micro(t)
        rr = _event_head(level, aid, "RequestReceived", uri, verb, actor.user(), actor.ip, actor.ua)
        if ref is not None:
            rr["objectRef"] = dict(ref)
        rr["requestReceivedTimestamp"] = ts0
        rr["stageTimestamp"] = ts0
        self.push(t, rr)

        written = {AUTHZ_DECISION: decision, AUTHZ_REASON: actor.reason if reason is None else reason}
        if annotations:
            written.update(annotations)
        final_ref = ref
        if ref is not None and obj_meta is not None:
            final_ref = _complete_ref(ref, *obj_meta)
        if stream is not None:
            t_started = t + 600 + rng.randrange(2500)
            started = _event_head(level, aid, "ResponseStarted", uri, verb, actor.user(), actor.ip, actor.ua)
            if final_ref is not None:
                started["objectRef"] = dict(final_ref)
            started["responseStatus"] = {"metadata": {}, "code": code}
            started["requestReceivedTimestamp"] = ts0
            started["stageTimestamp"] = self.clock.micro(t_started)
            started["annotations"] = dict(written)
            self.push(t_started, started)
            t_end = t + max(stream + rng.randrange(3000), t_started - t + 1000)
        else:
            if latency is None:
                latency = 700 + int(rng.expovariate(1 / 2500))
            t_end = t + latency

        rc = _event_head(level, aid, "ResponseComplete", uri, verb, actor.user(), actor.ip, actor.ua)
        if final_ref is not None:
            rc["objectRef"] = dict(final_ref)
        rc["responseStatus"] = status if status is not None else {"metadata": {}, "code": code}
        if req_obj is not None and level in ("Request", "RequestResponse"):
            rc["requestObject"] = req_obj
        if resp_obj is not None and level == "RequestResponse":
            rc["responseObject"] = resp_obj
        rc["requestReceivedTimestamp"] = ts0
        rc["stageTimestamp"] = self.clock.micro(t_end)
        rc["annotations"] = written
        self.push(t_end, rc)
        return aid

    def unauthenticated(self, t: int, ip: str, ua: str, verb: str, uri: str, ref: dict[str, str] | None) -> str:
        """A 401: authentication failed, so a single ResponseStarted event with an empty user."""
        aid = self.uuid()
        ev = _event_head("Metadata", aid, "ResponseStarted", uri, verb, {}, ip, ua)
        if ref is not None:
            ev["objectRef"] = dict(ref)
        ev["responseStatus"] = {
            "metadata": {},
            "message": "Authentication failed, attempted: bearer",
            "code": 401,
        }
        ev["requestReceivedTimestamp"] = self.clock.micro(t)
        t_end = t + 80 + self.rng.randrange(400)
        ev["stageTimestamp"] = self.clock.micro(t_end)
        self.push(t_end, ev)
        return aid
