"""Tests of the synthetic audit-event generator (auditwatch.synth)."""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditwatch import synth
from auditwatch.synth import (
    ATTACK_TECHNIQUES,
    DEMO_PATH,
    ClusterProfile,
    attack_events,
    benign_events,
    demo_attack_labels,
    demo_events,
    write_jsonl,
)

Event = dict[str, Any]

PROFILE = ClusterProfile(nodes=5, seed=3)
DURATION_S = 2 * 3600
MICRO_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LONG_RUNNING_SUBRESOURCES = {"exec", "attach", "portforward", "log", "proxy"}


@pytest.fixture(scope="module")
def benign() -> list[Event]:
    return list(benign_events(PROFILE, duration_s=DURATION_S))


@pytest.fixture(scope="module")
def demo() -> list[Event]:
    return demo_events()


def _by_audit_id(events: list[Event]) -> dict[str, list[Event]]:
    groups: dict[str, list[Event]] = defaultdict(list)
    for ev in events:
        groups[ev["auditID"]].append(ev)
    return groups


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
    assert all(_parse(ev["stageTimestamp"]) < end for ev in events)
    assert _parse(events[0]["stageTimestamp"]) >= PROFILE.start
    # both limits: whichever comes first
    assert len(list(benign_events(PROFILE, duration_s=60, count=10))) == 10


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z")


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


def test_cli_writes_requested_count(tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl.gz"
    assert synth.main(["--out", str(out), "--count", "300", "--nodes", "3", "--seed", "5"]) == 0
    lines = gzip.decompress(out.read_bytes()).splitlines()
    assert len(lines) == 300
    assert orjson.loads(lines[0])["kind"] == "Event"


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
    for audit_id, evs in _by_audit_id(benign).items():
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
        if _parse(first["requestReceivedTimestamp"]) < end - timedelta(minutes=15):
            assert stages == expected, (audit_id, stages)
        assert len({ev["requestReceivedTimestamp"] for ev in evs}) == 1
        assert len({(ev["verb"], ev["requestURI"], ev["user"]["username"]) for ev in evs}) == 1
        if first["verb"] == "watch" and stages == expected:
            n_watch_complete += 1
            lasted = _parse(evs[-1]["stageTimestamp"]) - _parse(first["stageTimestamp"])
            assert timedelta(seconds=5) < lasted < timedelta(minutes=11)
    assert n_watch_complete > 100


def test_unauthenticated_requests_are_single_response_started(benign: list[Event]) -> None:
    unauth = [ev for ev in benign if ev.get("responseStatus", {}).get("code") == 401]
    assert unauth, "expected some 401s (stale cron token, expired OIDC tokens)"
    groups = _by_audit_id(benign)
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
    starts = sorted(_parse(ev["stageTimestamp"]) for ev in kubelet if ev["stage"] == "RequestReceived")
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

_SUSPICIOUS_JSON = (
    '"subresource":"exec"',
    '"subresource":"attach"',
    '"subresource":"portforward"',
    '"subresource":"proxy"',
    '"subresource":"ephemeralcontainers"',
    '"privileged":true',
    '"hostPath"',
    '"hostNetwork":true',
    '"hostPID":true',
    '"hostIPC":true',
    "cluster-admin",
    '"NodePort"',
    "webhookconfigurations",
    '"SYS_ADMIN"',
    '"NET_ADMIN"',
    '"resource":"clusterrolebindings"',
    '"resource":"rolebindings"',
    '"resource":"clusterroles"',
    '"resource":"roles"',
    '"verbs":["*"]',
    "impersonatedUser",
)


def _suspicious(ev: Event) -> list[str]:
    """The single-event red flags most rule sets look for."""
    raw = orjson.dumps(ev).decode()
    hits = [p for p in _SUSPICIOUS_JSON if p in raw]
    ref = ev.get("objectRef", {})
    user = ev["user"].get("username", "")
    if ref.get("resource") == "secrets" and (ev["verb"] in ("list", "watch") or "namespace" not in ref):
        hits.append("secrets read across namespaces")
    if user == "system:anonymous" and ev["requestURI"] not in ("/healthz", "/readyz", "/livez"):
        hits.append("anonymous access")
    if (
        ev["verb"] == "create"
        and ref.get("resource") == "pods"
        and ref.get("namespace") == "kube-system"
        and not user.startswith("system:")
    ):
        hits.append("human pod in kube-system")
    if ev["verb"] in ("delete", "deletecollection") and ref.get("resource") == "events":
        hits.append("events deleted")
    return hits


def test_benign_traffic_has_no_red_flags(benign: list[Event]) -> None:
    flagged = [(ev["auditID"], _suspicious(ev)) for ev in benign if _suspicious(ev)]
    assert flagged == []
    # secrets: at most namespaced gets by service accounts
    for ev in benign:
        if ev.get("objectRef", {}).get("resource") == "secrets":
            assert ev["verb"] == "get" and ev["user"]["username"].startswith("system:serviceaccount:")


def test_demo_benign_part_has_no_red_flags(demo: list[Event]) -> None:
    labels = demo_attack_labels()
    flagged = [ev["auditID"] for ev in demo if ev["auditID"] not in labels and _suspicious(ev)]
    assert flagged == []


# ---------------------------------------------------------------------------------------------------
# The attack story
# ---------------------------------------------------------------------------------------------------


def test_attack_story() -> None:
    at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    story = attack_events(PROFILE, at=at)
    assert story == attack_events(PROFILE, at=at)  # deterministic
    techniques = [tech for tech, _ in story]
    assert set(techniques) == set(ATTACK_TECHNIQUES)
    events = [ev for _, ev in story]
    stamps = [ev["stageTimestamp"] for ev in events]
    assert stamps == sorted(stamps) and stamps[0] >= "2026-11-20T09:30:00.000000Z"
    for ev in events:
        assert not ({"label", "technique", "attack"} & ev.keys())  # nothing non-standard in the Event
    # each technique really carries the pattern a rule would match (positive control for the benign test)
    by_tech: dict[str, list[Event]] = defaultdict(list)
    for tech, ev in story:
        by_tech[tech].append(ev)
    assert all(
        _suspicious(ev)
        for ev in events
        if ev["stage"] == "ResponseComplete" and by_tech["permission-discovery"][0]["auditID"] != ev["auditID"]
    )

    exec_stages = [(ev["stage"], ev.get("responseStatus", {}).get("code")) for ev in by_tech["pod-exec"]]
    assert exec_stages == [("RequestReceived", None), ("ResponseStarted", 101), ("ResponseComplete", 101)]
    exec_ev = by_tech["pod-exec"][-1]
    assert exec_ev["verb"] == "create" and exec_ev["objectRef"]["subresource"] == "exec"
    assert exec_ev["requestURI"].endswith(
        "/exec?command=sh&command=-c&command=cat%20%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
        "&container=app&stdin=true&stdout=true&tty=true"
    )
    deploy = next(ev for ev in by_tech["privileged-hostpath-workload"] if ev["stage"] == "ResponseComplete")
    assert deploy["objectRef"] == {
        "resource": "deployments",
        "namespace": "default",
        "name": "node-debugger",
        "apiGroup": "apps",
        "apiVersion": "v1",
    }
    spec = deploy["requestObject"]["spec"]["template"]["spec"]
    assert spec["containers"][0]["securityContext"]["privileged"] is True
    assert spec["volumes"][0]["hostPath"]["path"] == "/"
    rb = by_tech["cluster-admin-rolebinding"][-1]
    assert rb["objectRef"]["resource"] == "rolebindings" and rb["objectRef"]["namespace"] == "default"
    assert rb["requestObject"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cluster-admin",
    }
    secrets = by_tech["secrets-list-all-namespaces"][-1]
    assert secrets["requestURI"] == "/api/v1/secrets?limit=500" and "namespace" not in secrets["objectRef"]
    anon = by_tech["anonymous-access"][-1]
    assert anon["user"]["username"] == "system:anonymous"
    assert anon["requestURI"] == "/api/v1/namespaces/kube-system/configmaps"
    assert anon["annotations"]["authorization.k8s.io/decision"] == "allow"
    attacker = {
        ev["user"]["username"]
        for tech, ev in story
        if tech not in ("anonymous-access",) and ev["user"]["username"].startswith("system:serviceaccount:ci:")
    }
    assert attacker == {"system:serviceaccount:ci:deployer"}


# ---------------------------------------------------------------------------------------------------
# The bundled demo
# ---------------------------------------------------------------------------------------------------


def test_demo_file_matches_generator(demo: list[Event]) -> None:
    assert DEMO_PATH.exists(), "regenerate with: python -m auditwatch.synth --demo --out " + str(DEMO_PATH)
    assert DEMO_PATH.stat().st_size < 1_000_000
    lines = gzip.decompress(DEMO_PATH.read_bytes()).splitlines()
    assert lines == [orjson.dumps(ev) for ev in demo], (
        "demo file is stale: python -m auditwatch.synth --demo --out auditwatch/data/demo-events.jsonl.gz"
    )


def demo_profile_namespaces() -> tuple[str, ...]:
    return synth.demo_profile().namespaces


def test_demo_contents(demo: list[Event]) -> None:
    assert 2000 <= len(demo) <= 12_000
    start = _parse(demo[0]["stageTimestamp"])
    assert start >= datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert _parse(demo[-1]["stageTimestamp"]) - start <= timedelta(minutes=20)
    labels = demo_attack_labels()
    assert set(labels.values()) == set(ATTACK_TECHNIQUES)
    attack = [ev for ev in demo if ev["auditID"] in labels]
    assert {ev["auditID"] for ev in attack} == set(labels)
    first = _parse(attack[0]["stageTimestamp"])
    assert timedelta(minutes=11) <= first - datetime(2026, 11, 20, 8, 0, tzinfo=UTC) <= timedelta(minutes=13)
    # the exec targets a pod that has not been deleted by then
    exec_ev = next(ev for ev in attack if ev["objectRef"].get("subresource") == "exec")
    ns, pod = exec_ev["objectRef"]["namespace"], exec_ev["objectRef"]["name"]
    deleted_before = [
        ev
        for ev in demo
        if ev["verb"] == "delete"
        and ev.get("objectRef", {}).get("name") == pod
        and ev["stageTimestamp"] < exec_ev["requestReceivedTimestamp"]
    ]
    assert deleted_before == [] and ns in demo_profile_namespaces()
    nodes = {ev["user"]["username"] for ev in demo if ev["user"].get("username", "").startswith("system:node:")}
    assert len(nodes) == 10
