"""The site tuning file the detection benchmark generates from a world's site model (bench.site_tuning)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from bench import detection
from bench.site_tuning import site_tuning, write_site_tuning
from detectors.events import AuditEvent
from detectors.exceptions import field_values
from detectors.loading.loader import BUILTIN_DIR
from detectors.patterns import glob
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.tuning.scope import TrustedRegistries
from detectors.tuning.tuning import load_tuning
from simulation import SECOND, ClusterProfile, epoch_us, labelled_stream, plan_campaigns
from simulation.site import noisy_site


def _profile(seed: int, realism: str = "noisy") -> ClusterProfile:
    return ClusterProfile(nodes=1, namespaces=("web", "shop"), humans=3, ci_accounts=2, seed=seed, realism=realism)


@functools.cache
def _builtin() -> list[Any]:
    return load_rules([str(p) for p in sorted(BUILTIN_DIR.rglob("*.yaml"))])


@pytest.mark.parametrize("realism", ["noisy", "clean"])
def test_the_file_loads_with_the_real_tuning_loader(tmp_path: Path, realism: str) -> None:
    path = write_site_tuning(_profile(3, realism), tmp_path / "site.yaml")
    tuning = load_tuning(str(path), _builtin())
    assert tuning.warnings == ()  # every rule it names is a built-in rule
    assert tuning.trusted.prefixes[0] == _profile(3, realism).site.registry


def test_it_names_each_seeded_organisations_own_registry() -> None:
    registries = {noisy_site(seed).registry for seed in (1, 2, 4)}
    assert len(registries) == 3  # the seeds do draw different organisations
    for seed in (1, 2, 4):
        trusted = site_tuning(_profile(seed))["trusted_registries"]
        assert trusted[0] == noisy_site(seed).registry
        assert not {"docker.io", "docker.io/library", "ghcr.io", "quay.io"} & set(trusted)  # never a public hub


def _identities(content: dict[str, Any]) -> tuple[set[str], set[str]]:
    """User names (service accounts spelt out) and groups that the file names."""
    users: set[str] = set()
    groups: set[str] = set()
    for entry in [*content.get("deployers", []), *content.get("exceptions", [])]:
        users.update(entry.get("users", []))
        users.update(f"system:serviceaccount:{sa}" for sa in entry.get("service_accounts", []))
        groups.update(entry.get("groups", []))
    return users, groups


@functools.cache
def _stream(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A short labelled run with every campaign: (benign events, attack events)."""
    profile = _profile(seed)
    start = epoch_us(profile.start)
    campaigns = plan_campaigns(
        profile, eval_start_us=start + 3600 * SECOND, eval_end_us=start + 5 * 3600 * SECOND, seed=seed
    )
    benign, attack = [], []
    for _, event, cid in labelled_stream(profile, duration_s=6 * 3600, campaigns=campaigns, seed=seed):
        (benign if cid is None else attack).append(event)
    assert len({e["auditID"] for e in attack}) > 30
    return benign, attack


@pytest.mark.parametrize("seed", [1, 2])
def test_it_trusts_nothing_that_only_the_attack_campaigns_bring(seed: int) -> None:
    content = site_tuning(_profile(seed))
    benign, attack = _stream(seed)
    benign_users = {e["user"].get("username") for e in benign}
    attack_users = {e["user"].get("username") for e in attack}
    users, groups = _identities(content)
    # Every identity the file names is one the benign world uses, none is an attacker's own.
    assert users <= benign_users, users - benign_users
    assert not users & (attack_users - benign_users)
    assert not groups  # a site's groups are people; the generated file names none
    # No image an attack campaign writes is trusted, or matches an exception's images.
    trusted = TrustedRegistries(content["trusted_registries"])
    images = glob([i for e in content["exceptions"] for i in e.get("images", [])])
    attack_images = {i for e in attack for i in field_values(e, "$containers[*].image")}
    assert attack_images, "the campaigns write workloads"
    assert not {i for i in attack_images if trusted.trusts(i) or images(i)}


def test_it_excuses_no_campaign_event_but_those_of_the_identities_it_names(tmp_path: Path) -> None:
    """Through the real tuning, an attack alert is kept out only for an identity of the benign world that a site
    declares (CI's, when its credential is stolen; an operator's, when a token is minted for it)."""
    _, attack = _stream(1)
    users, _ = _identities(site_tuning(_profile(1)))
    dets = _builtin()
    tuning = load_tuning(str(write_site_tuning(_profile(1), tmp_path / "site.yaml")), dets)
    pipeline = Pipeline(dets)
    for event in attack:
        for alert in pipeline.process(AuditEvent(raw=event)):
            if not tuning.apply([alert]):
                assert alert.user in users, (alert.rule_id, alert.user)


def test_the_benchmark_adds_a_site_tier_through_the_generated_file(tmp_path: Path) -> None:
    res = detection.run(
        days=0.1,
        nodes=1,
        namespaces=("web", "shop"),
        humans=2,
        ci_accounts=1,
        seed=5,
        techniques=["stratus.privileged-pod", "stratus.dump-secrets"],
        site_tuning_dir=tmp_path,
    )
    assert (tmp_path / "site-tuning-seed5.yaml").is_file()
    assert res.world["tuning"] == str(tmp_path / "site-tuning-seed5.yaml")
    site, top = res.tiers[-1], res.tiers[-2]
    assert site.name == detection.SITE_TIER
    assert site.detected.keys() == top.detected.keys()  # the campaigns' alerts are not the site's routine
    assert site.benign_alerts < top.benign_alerts
    assert len(res.alerts[top.name]) - len(res.alerts[site.name]) == sum(res.tuned_out.values())
