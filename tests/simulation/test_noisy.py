"""The noisy benign world (ClusterProfile(realism="noisy")) and the quiet campaigns hidden in it.

One labelled stream (4 days, 1 node, seed 3, every quiet technique in days 2-4) is generated once and
read by every test: each benign behaviour of issue 13's item 1 is present, benign events carry no label,
and every quiet campaign is labelled and looks like what it claims to be.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import orjson
import pytest

from simulation import QUIET, SECOND, Campaign, ClusterProfile, benign_events, epoch_us, labelled_stream, plan_campaigns
from simulation.benign import ClusterSimulation
from simulation.exporters import loses_annotations
from tests.support.behaviours import BEHAVIOURS, DAY_US, BehaviourScan, Event

PROFILE = ClusterProfile(nodes=1, humans=4, ci_accounts=2, seed=3, realism="noisy")
DAYS = 4


@dataclass
class World:
    scan: BehaviourScan
    campaigns: list[Campaign]
    attack: dict[str, list[Event]] = field(default_factory=dict)  # campaign id -> its events
    labelled: dict[str, str] = field(default_factory=dict)  # auditID -> campaign id, as the stream said
    benign_ids: set[str] = field(default_factory=set)
    benign_users: set[str] = field(default_factory=set)
    benign_images: set[str] = field(default_factory=set)  # images of pods created by benign requests


@pytest.fixture(scope="module")
def world() -> World:
    sim = ClusterSimulation(PROFILE)
    start = epoch_us(PROFILE.start)
    campaigns = plan_campaigns(
        PROFILE, eval_start_us=start + 2 * DAY_US, eval_end_us=start + DAYS * DAY_US, seed=3, techniques=list(QUIET)
    )
    teams = {h.actor.username: h.team for h in sim.cluster.humans}
    out = World(BehaviourScan(start, teams, PROFILE.site.registry), campaigns)
    for ts, ev, cid in labelled_stream(PROFILE, duration_s=DAYS * 86400, campaigns=campaigns, seed=3):
        if cid is None:
            out.scan.add(ts, ev)
            out.benign_ids.add(ev["auditID"])
            out.benign_users.add(ev["user"].get("username", ""))
            ref = ev.get("objectRef") or {}
            if ref.get("resource") == "pods" and "subresource" not in ref and ev["verb"] == "create":
                out.benign_images.update(c["image"] for c in _containers(ev))
        else:
            out.labelled[ev["auditID"]] = cid
            out.attack.setdefault(cid, []).append(ev)
    return out


def test_noisy_world_is_deterministic_and_seeded() -> None:
    def digest(profile: ClusterProfile) -> str:
        h = hashlib.sha256()
        for ev in benign_events(profile, count=20_000):
            h.update(orjson.dumps(ev))
        return h.hexdigest()

    assert digest(PROFILE) == digest(PROFILE)
    other = ClusterProfile(nodes=1, humans=4, ci_accounts=2, seed=4, realism="noisy")
    assert digest(other) != digest(PROFILE)
    # the organisation (e-mail domain, registry) comes from the seed: nothing can rely on a fixed name
    assert PROFILE.site != other.site and "example" not in PROFILE.site.registry
    assert ClusterProfile().site.registry == "registry.example.com"  # the clean world keeps its placeholders


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_each_benign_behaviour_is_present(world: World, behaviour: str) -> None:
    assert world.scan.requests[behaviour] > 0, f"no benign request shows {behaviour!r} in {DAYS} days"


def test_habits_recur_over_days(world: World) -> None:
    scan = world.scan
    # developers exec into their own namespaces on most working days, into another team's far less
    assert len(scan.days["exec into own team"]) >= 3
    assert scan.requests["exec into own team"] > 5 * scan.requests["exec into another team"]
    for daily in (
        "CronJob creates Job",
        "Argo CD image update",
        "cert-manager writes Secret",
        "401 from expired token",
    ):
        assert scan.days[daily] == set(range(DAYS)), daily
    # image updates several times a day; pods run images of the organisation's registry and of public ones
    assert min(scan.image_updates_per_day[d] for d in range(DAYS)) >= 3
    assert scan.registries["org"] > 0 and all(scan.registries[h] > 0 for h in ("docker.io", "ghcr.io", "quay.io"))


def test_benign_events_carry_no_label_and_campaigns_are_labelled(world: World) -> None:
    assert not world.benign_ids & set(world.labelled)
    assert {c.technique for c in world.campaigns} == set(QUIET)
    for camp in world.campaigns:
        assert camp.audit_ids, f"{camp.id} emitted nothing"
        assert all(world.labelled[a] == camp.id for a in camp.audit_ids)
        assert {ev["auditID"] for ev in world.attack[camp.id]} == set(camp.audit_ids)
        assert camp.start_us <= camp.end_us and camp.id.startswith(f"c{camp.id[1:3]}-{camp.technique}-")
        assert camp.mitre, camp.technique


def _campaign(world: World, technique: str) -> tuple[Campaign, list[Event]]:
    camp = next(c for c in world.campaigns if c.technique == technique)
    return camp, [ev for ev in world.attack[camp.id] if ev["stage"] == "ResponseComplete"]


def test_quiet_campaigns_borrow_identities_of_the_benign_world(world: World) -> None:
    for camp in world.campaigns:
        assert camp.actor in world.benign_users, camp.id
    # a stolen application token: replayed from another pod's address, with the application's client
    camp, events = _campaign(world, "quiet.stolen-pod-token")
    assert camp.src_ip.startswith("10.244.") and camp.actor.startswith("system:serviceaccount:")
    extra = events[0]["user"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"]  # the victim pod's claims, not the caller's
    # slow reconnaissance: a dozen reads spread over hours
    camp, events = _campaign(world, "quiet.slow-recon")
    assert len(events) >= 10 and (camp.end_us - camp.start_us) >= 2 * 3600 * SECOND
    # CI deploys one workload with an image no benign pod ever ran
    _, events = _campaign(world, "quiet.ci-new-image")
    images = {c["image"] for ev in events for c in _containers(ev) if ev["objectRef"]["resource"] == "pods"}
    assert images and not images & world.benign_images
    # a developer's credential at an hour they do not work, from an address they never used
    camp, events = _campaign(world, "quiet.off-hours-credential")
    hour = (camp.start_us // SECOND // 3600) % 24
    assert not PROFILE.working_hours[0] <= hour < PROFILE.working_hours[1]
    assert {ev["sourceIPs"][0] for ev in events} == {camp.src_ip} and not camp.src_ip.startswith("10.")
    # a token minted for a powerful service account, used minutes later
    _, events = _campaign(world, "quiet.minted-token")
    minted = next(ev for ev in events if ev["objectRef"].get("subresource") == "token")
    used = [ev for ev in events if ev["user"]["username"] != minted["user"]["username"]]
    assert used and used[0]["user"]["username"].endswith(minted["objectRef"]["name"])
    gap = _epoch_s(used[0]["requestReceivedTimestamp"]) - _epoch_s(minted["requestReceivedTimestamp"])
    assert 60 <= gap <= 900


def _containers(ev: Event) -> list[dict[str, str]]:
    obj = ev.get("requestObject") or {}
    return list(obj.get("spec", {}).get("containers", []))


def _epoch_s(ts: str) -> float:
    from tests.support.simulation import parse_ts

    return parse_ts(ts).timestamp()


def test_unannotated_share_drops_annotations_of_whole_requests() -> None:
    written = list(benign_events(PROFILE, count=5000))
    exported = list(benign_events(dataclasses.replace(PROFILE, unannotated_share=0.3), count=5000))
    annotated = lost = 0
    for ev, out in zip(written, exported, strict=True):
        if "annotations" not in ev:
            assert out == ev
            continue
        annotated += 1
        if loses_annotations(ev["auditID"], 0.3):
            lost += 1
            assert "annotations" not in out and out == {k: v for k, v in ev.items() if k != "annotations"}
        else:
            assert out == ev
    assert 0.2 < lost / annotated < 0.4
