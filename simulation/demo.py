"""The bundled demo sample: 20 minutes of a 10-node cluster with the attack story at ~12 minutes.

``auditwatch demo --sample synthetic`` replays the pre-built file ``auditwatch/data/demo-events.jsonl.gz``,
written by ``python -m simulation --demo --out auditwatch/data/demo-events.jsonl.gz``; a test checks
that the file still equals :func:`demo_events`.
"""

from __future__ import annotations

import random
from typing import Any, Final

from simulation.attacks.story import attack_story, stolen_ci_identity
from simulation.benign import ClusterSimulation
from simulation.clock import SECOND, stage_timestamp_us
from simulation.cluster import ClusterProfile
from simulation.emitter import Emitter

_DEMO_SECONDS: Final = 20 * 60
_DEMO_ATTACK_AT_S: Final = 12 * 60 + 7


def demo_profile(seed: int = 7) -> ClusterProfile:
    """The profile behind :func:`demo_events`: 10 nodes, default namespaces/users."""
    return ClusterProfile(nodes=10, seed=seed)


def demo_events(seed: int = 7) -> list[dict[str, Any]]:
    """~20 min of a 10-node cluster (a few thousand events), attack story at ~12 min, by stageTimestamp."""
    return _demo(seed)[0]


def demo_attack_labels(seed: int = 7) -> dict[str, str]:
    """auditID -> technique (:data:`ATTACK_TECHNIQUES`) of the attack events in ``demo_events(seed)``."""
    return _demo(seed)[1]


def _demo(seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    sim = ClusterSimulation(demo_profile(seed))
    deployments = sim.cluster.deployments
    end = sim.start + _DEMO_SECONDS * SECOND
    at = sim.start + _DEMO_ATTACK_AT_S * SECOND
    benign: list[tuple[int, dict[str, Any]]] = []
    target: tuple[str, str] | None = None
    for ts, ev in sim.run():
        if ts >= end:
            break
        if target is None and ts >= at:  # exec into a pod that exists at that moment
            live = [d for d in deployments if d.pods and not d.rolling] or [d for d in deployments if d.pods]
            target = (live[0].ns, live[0].pods[0].name)
        benign.append((ts, ev))
    if target is None:
        target = (deployments[0].ns, deployments[0].pods[0].name)
    em = Emitter(random.Random(f"auditwatch-synth-attack:{seed}"))  # seed texts predate this package: keep them
    story = attack_story(em, at, stolen_ci_identity(sim.cluster, sim.emitter), target)
    labels = {ev["auditID"]: tech for tech, ev in story}
    merged = benign + [(stage_timestamp_us(ev["stageTimestamp"]), ev) for _, ev in story]
    merged.sort(key=lambda pair: pair[0])  # stable: benign first on ties
    return [ev for _, ev in merged], labels
