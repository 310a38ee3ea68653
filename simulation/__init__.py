"""Deterministic simulator of a Kubernetes cluster's audit log, for tests, benchmarks and the demo sample.

Not part of the product (neither the wheel nor the image ship it). It yields ``audit.k8s.io/v1`` Events
exactly as an apiserver's log backend writes them: benign traffic of the cluster's components, CI and
people (:func:`benign_events`), a short attack story (:func:`attack_events`), and labelled attack
campaigns from public catalogues merged into the benign stream (:func:`plan_campaigns`,
:func:`labelled_stream`). Everything is seeded: the same arguments always give the same bytes.

    python -m simulation --help
"""

from simulation.attacks.campaigns import TECHNIQUES, VARIANTS, Campaign, plan_campaigns
from simulation.attacks.story import ATTACK_TECHNIQUES, attack_events
from simulation.benign import benign_events
from simulation.clock import SECOND, epoch_us
from simulation.cluster import ClusterProfile
from simulation.demo import demo_attack_labels, demo_events, demo_profile
from simulation.files import write_jsonl, write_labels
from simulation.labelled import labelled_stream

__all__ = [
    "ATTACK_TECHNIQUES",
    "SECOND",
    "TECHNIQUES",
    "VARIANTS",
    "Campaign",
    "ClusterProfile",
    "attack_events",
    "benign_events",
    "demo_attack_labels",
    "demo_events",
    "demo_profile",
    "epoch_us",
    "labelled_stream",
    "plan_campaigns",
    "write_jsonl",
    "write_labels",
]
