"""Benign traffic (simulation.benign_events): determinism, event shape, stage semantics, traffic mix, no red flags."""

from __future__ import annotations

import gzip
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from simulation import ClusterProfile, benign_events, write_jsonl
from tests.support.simulation import DURATION_S, PROFILE, Event, by_audit_id, parse_ts, suspicious

MICRO_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LONG_RUNNING_SUBRESOURCES = {"exec", "attach", "portforward", "log", "proxy"}


def _is_long_running(ev: Event) -> bool:
    sub = ev.get("objectRef", {}).get("subresource")
    return ev["verb"] in ("watch", "proxy") or sub in LONG_RUNNING_SUBRESOURCES


def _size(ev: Event) -> int:
    return len(orjson.dumps(ev))


# ---------------------------------------------------------------------------------------------------
# determinism and the API surface
# ---------------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_output(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert write_jsonl(benign_events(PROFILE, count=5000), a) == 5000
    assert write_jsonl(benign_events(PROFILE, count=5000), b) == 5000
    write_jsonl(benign_events(ClusterProfile(nodes=5, seed=4), count=5000), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_gzip_output_is_reproducible_and_round_trips(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    events = list(benign_events(PROFILE, count=2000))
    write_jsonl(events, a, gzip_=True)
    write_jsonl(events, b, gzip_=True)
    assert a.read_bytes() == b.read_bytes()
    lines = gzip.decompress(a.read_bytes()).splitlines()
    assert [orjson.loads(line) for line in lines] == events


def test_count_and_duration_limits() -> None:
    assert len(list(benign_events(PROFILE, count=1234))) == 1234
    assert list(benign_events(PROFILE, count=0)) == []
    events = list(benign_events(PROFILE, duration_s=60))
    end = PROFILE.start + timedelta(seconds=60)
    assert events
    assert all(parse_ts(ev["stageTimestamp"]) < end for ev in events)
    assert parse_ts(events[0]["stageTimestamp"]) >= PROFILE.start
    # both limits: whichever comes first
    assert len(list(benign_events(PROFILE, duration_s=60, count=10))) == 10


def test_profile_knobs_shape_the_cluster() -> None:
    profile = ClusterProfile(nodes=7, humans=5, ci_accounts=2, namespaces=("alpha", "beta"), seed=11)
    events = list(benign_events(profile, duration_s=3 * 3600))
    users = {ev["user"].get("username", "") for ev in events}
    assert len({u for u in users if u.startswith("system:node:")}) == 7
    assert {u for u in users if u.endswith("@example.com")} <= {
        f"{n}@example.com" for n in ("alice", "bob", "carol", "dave", "erin")
    }
    assert len({u for u in users if u.endswith("@example.com")}) >= 3
    assert "system:serviceaccount:ci:deployer" in users
    app_namespaces = {
        ev["objectRef"]["namespace"]
        for ev in events
        if ev.get("objectRef", {}).get("resource") in ("deployments", "replicasets") and "namespace" in ev["objectRef"]
    }
    assert app_namespaces <= {"alpha", "beta"}


def test_events_share_no_nested_objects(demo: list[Event]) -> None:
    """Consumers may mutate an event without corrupting any other."""
    owner: dict[int, int] = {}

    def walk(obj: Any, index: int) -> None:
        if isinstance(obj, dict | list):
            assert owner.setdefault(id(obj), index) == index
            for value in obj.values() if isinstance(obj, dict) else obj:
                walk(value, index)

    for index, ev in enumerate(demo):
        walk(ev, index)


# ---------------------------------------------------------------------------------------------------
# Event shape and stage semantics
# ---------------------------------------------------------------------------------------------------


def test_event_envelope(benign: list[Event]) -> None:
    required = {
        "kind",
        "apiVersion",
        "level",
        "auditID",
        "stage",
        "requestURI",
        "verb",
        "user",
        "sourceIPs",
        "userAgent",
        "requestReceivedTimestamp",
        "stageTimestamp",
    }
    for ev in benign:
        assert required <= ev.keys(), ev
        assert ev["kind"] == "Event" and ev["apiVersion"] == "audit.k8s.io/v1"
        assert ev["level"] in ("Metadata", "Request", "RequestResponse")
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ev["auditID"])
        assert ev["requestURI"].startswith("/")
        if "requestObject" in ev:
            assert ev["level"] in ("Request", "RequestResponse")
        if "responseObject" in ev:
            assert ev["level"] == "RequestResponse"
        if ev["stage"] != "RequestReceived":
            assert ev["responseStatus"]["metadata"] == {}
            code = ev["responseStatus"]["code"]
            if code >= 400 and code != 401:
                assert ev["responseStatus"]["status"] == "Failure"
                assert ev["responseStatus"]["reason"] in ("Forbidden", "NotFound")
            if code == 403:
                assert ev["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_request_received_has_no_response_fields(benign: list[Event]) -> None:
    received = [ev for ev in benign if ev["stage"] == "RequestReceived"]
    assert received
    for ev in received:
        for key in ("annotations", "responseStatus", "requestObject", "responseObject", "impersonatedUser"):
            assert key not in ev, (key, ev)
        assert ev["requestReceivedTimestamp"] == ev["stageTimestamp"]


def test_stage_sequences_are_valid(benign: list[Event]) -> None:
    end = PROFILE.start + timedelta(seconds=DURATION_S)
    n_watch_complete = 0
    for audit_id, evs in by_audit_id(benign).items():
        stages = [ev["stage"] for ev in evs]
        first = evs[0]
        if stages == ["ResponseStarted"]:
            # the only single-event request: failed authentication
            assert first["user"] == {} and first["responseStatus"]["code"] == 401, first
            continue
        expected = ["RequestReceived", "ResponseComplete"]
        if _is_long_running(first):
            expected.insert(1, "ResponseStarted")
        # requests still open when the window closes are cut (a prefix), everything older is complete
        assert stages == expected[: len(stages)], (audit_id, stages)
        if parse_ts(first["requestReceivedTimestamp"]) < end - timedelta(minutes=15):
            assert stages == expected, (audit_id, stages)
        assert len({ev["requestReceivedTimestamp"] for ev in evs}) == 1
        assert len({(ev["verb"], ev["requestURI"], ev["user"]["username"]) for ev in evs}) == 1
        if first["verb"] == "watch" and stages == expected:
            n_watch_complete += 1
            lasted = parse_ts(evs[-1]["stageTimestamp"]) - parse_ts(first["stageTimestamp"])
            assert timedelta(seconds=5) < lasted < timedelta(minutes=11)
    assert n_watch_complete > 100


def test_unauthenticated_requests_are_single_response_started(benign: list[Event]) -> None:
    unauth = [ev for ev in benign if ev.get("responseStatus", {}).get("code") == 401]
    assert unauth, "expected some 401s (stale cron token, expired OIDC tokens)"
    groups = by_audit_id(benign)
    for ev in unauth:
        assert ev["stage"] == "ResponseStarted"
        assert ev["user"] == {}
        assert "annotations" not in ev
        assert ev["responseStatus"]["message"] == "Authentication failed, attempted: bearer"
        assert len(groups[ev["auditID"]]) == 1
    for ev in benign:
        if ev["user"] == {}:
            assert ev["responseStatus"]["code"] == 401


def test_timestamps_are_microsecond_and_non_decreasing(benign: list[Event], demo: list[Event]) -> None:
    for events in (benign, demo):
        previous = ""
        for ev in events:
            ts = ev["stageTimestamp"]
            assert MICRO_TS.match(ts) and MICRO_TS.match(ev["requestReceivedTimestamp"]), ev
            assert ev["requestReceivedTimestamp"] <= ts
            assert ts >= previous  # fixed-width UTC format: string order == time order
            previous = ts


def test_mean_event_size_is_realistic(benign: list[Event], demo: list[Event]) -> None:
    for events in (benign, demo):
        sizes = [_size(ev) for ev in events]
        mean = sum(sizes) / len(sizes)
        assert 800 <= mean <= 2500, mean
        sizes.sort()
        assert sizes[int(0.95 * len(sizes))] <= 3500  # "p95 under ~2.5 KB" plus lease bodies


def test_traffic_mix_is_dominated_by_kubelets_and_controllers(benign: list[Event]) -> None:
    users = [ev["user"].get("username", "") for ev in benign]
    system = sum(u.startswith(("system:node:", "system:kube-", "system:serviceaccount:kube-system:")) for u in users)
    humans = sum(u.endswith("@example.com") for u in users)
    assert system / len(users) > 0.7
    assert 0 < humans / len(users) < 0.1
    lease_renewals = [ev for ev in benign if ev.get("objectRef", {}).get("resource") == "leases"]
    kubelet = [ev for ev in lease_renewals if ev["user"]["username"] == "system:node:node-01"]
    starts = sorted(parse_ts(ev["stageTimestamp"]) for ev in kubelet if ev["stage"] == "RequestReceived")
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert 9.9 < min(gaps) and max(gaps) < 10.6  # kubelet lease every 10 s


def test_kubectl_and_ci_behaviour(benign: list[Event]) -> None:
    final = [ev for ev in benign if ev["stage"] == "ResponseComplete"]
    ci = [ev for ev in final if ev["user"]["username"] == "system:serviceaccount:ci:deployer"]
    patches = [ev for ev in ci if ev["verb"] == "patch"]
    assert patches
    for ev in patches:
        (container,) = ev["requestObject"]["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith("registry.example.com/")
    pod_creates = [
        ev
        for ev in final
        if ev["verb"] == "create" and ev["objectRef"].get("resource") == "pods" and "subresource" not in ev["objectRef"]
    ]
    assert pod_creates
    for ev in pod_creates:
        assert ev["user"]["username"] == "system:serviceaccount:kube-system:replicaset-controller"
        assert ev["requestObject"]["spec"]["containers"]
    forbidden = [ev for ev in final if ev["responseStatus"]["code"] == 403]
    for ev in forbidden:
        assert ev["user"]["username"].endswith("@example.com")
        assert ev["responseStatus"]["reason"] == "Forbidden"
    health = [ev for ev in final if ev["user"]["username"] == "system:anonymous"]
    assert health and {ev["requestURI"] for ev in health} <= {"/healthz", "/readyz", "/livez"}


# ---------------------------------------------------------------------------------------------------
# Benign traffic contains nothing that security rules should flag
# ---------------------------------------------------------------------------------------------------


def test_benign_traffic_has_no_red_flags(benign: list[Event]) -> None:
    flagged = [(ev["auditID"], suspicious(ev)) for ev in benign if suspicious(ev)]
    assert flagged == []
    # secrets: at most namespaced gets by service accounts
    for ev in benign:
        if ev.get("objectRef", {}).get("resource") == "secrets":
            assert ev["verb"] == "get" and ev["user"]["username"].startswith("system:serviceaccount:")
