"""Deterministic simulator of a Kubernetes cluster's audit log, for tests, benchmarks and the demo sample.

Not part of the product (neither the wheel nor the image ship it). It yields ``audit.k8s.io/v1`` Events
exactly as an apiserver's log backend writes them: benign traffic of the cluster's components, CI and
people (:func:`benign_events`), a short attack story (:func:`attack_events`), and labelled attack
campaigns, loud ones from public catalogues and quiet ones, merged into the benign stream
(:func:`plan_campaigns`, :func:`labelled_stream`). ``ClusterProfile(realism="noisy")`` adds the benign
traffic of a real cluster that rules flag (GitOps, operators, exec habits, on-call debugging:
:mod:`simulation.noisy`); ``unannotated_share`` writes a share of events without annotations, as some
exporters do. Everything is seeded: the same arguments always give the same bytes.

    python -m simulation --help
"""

from simulation.attacks.campaigns import MITRE, QUIET, TECHNIQUES, VARIANTS, Campaign, plan_campaigns
from simulation.attacks.story import ATTACK_TECHNIQUES, attack_events
from simulation.benign import benign_events
from simulation.clock import SECOND, epoch_us
from simulation.cluster import REALISMS, ClusterProfile
from simulation.demo import demo_attack_labels, demo_events, demo_profile
from simulation.files import write_jsonl, write_labels
from simulation.labelled import labelled_stream

__all__ = [
    "ATTACK_TECHNIQUES",
    "MITRE",
    "QUIET",
    "REALISMS",
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
