"""The attack story (simulation.attack_events): seven labelled techniques, each carrying its red flag."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from simulation import ATTACK_TECHNIQUES, attack_events
from tests.support.simulation import PROFILE, Event, suspicious


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
        suspicious(ev)
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
