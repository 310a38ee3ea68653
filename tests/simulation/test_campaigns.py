"""Labelled campaigns merged into benign traffic (simulation.plan_campaigns, simulation.labelled_stream)."""

from __future__ import annotations

from simulation import SECOND, ClusterProfile, epoch_us, labelled_stream, plan_campaigns


def test_campaign_labels_and_stream_order() -> None:
    profile = ClusterProfile(nodes=1, namespaces=("web",), humans=1, seed=3)
    start = epoch_us(profile.start)
    camps = plan_campaigns(
        profile,
        eval_start_us=start + 1800 * SECOND,
        eval_end_us=start + 3 * 3600 * SECOND,
        seed=3,
        techniques=["stratus.privileged-pod", "stratus.nodes-proxy"],
    )
    assert len(camps) == 4
    seen: dict[str, str] = {}
    last = 0
    for ts, ev, cid in labelled_stream(profile, duration_s=4 * 3600, campaigns=camps, seed=3):
        assert ts >= last
        last = ts
        assert ev["kind"] == "Event" and ev["apiVersion"] == "audit.k8s.io/v1"
        if cid is not None:
            seen[ev["auditID"]] = cid
    for c in camps:
        assert c.audit_ids and all(seen[a] == c.id for a in c.audit_ids)
        assert c.start_us < c.end_us
    stolen = [c for c in camps if c.variant != "dedicated"]
    assert stolen and all(not c.src_ip.startswith("10.") for c in stolen)
    assert {c.actor for c in stolen} <= {"system:serviceaccount:ci:deployer", "alice@example.com"}
