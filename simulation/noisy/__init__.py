"""The benign side of a real cluster, on top of the clean simulation (``ClusterProfile(realism="noisy")``).

What real clusters do that security rules flag: GitOps controllers and CI applying workloads, RBAC, CRDs
and admission webhooks with images from the organisation's registry and public ones (:mod:`.gitops`);
operators writing Secrets, webhooks and privileged DaemonSets, daily CronJobs (:mod:`.operators`);
nodes coming and going (:mod:`.nodes`); add-ons watching Secrets cluster-wide, Prometheus reading
``nodes/proxy``, anonymous health probes, applications calling the API, a CI job with an expired token
(:mod:`.platform`); developers exec-ing into their pods and SREs debugging, granting and paging
(:mod:`.people`). All of it is benign, deterministic and unlabelled.
"""

from __future__ import annotations

from simulation.cluster import Cluster
from simulation.engine import Engine
from simulation.noisy.gitops import GitOps
from simulation.noisy.nodes import NodeLifecycle
from simulation.noisy.operators import Operators
from simulation.noisy.org import Org, build_org
from simulation.noisy.people import NoisyHumans, OnCall
from simulation.noisy.platform import PlatformTraffic
from simulation.system import SystemTraffic
from simulation.workloads import Workloads

__all__ = ["Org", "start_noisy_world"]


def start_noisy_world(engine: Engine, cluster: Cluster, system: SystemTraffic, workloads: Workloads) -> Org:
    """Build the noisy world's cast and start its processes (the people instead of the clean ones)."""
    org = build_org(cluster, engine.em, engine.start)
    NoisyHumans(engine, cluster, workloads, org).start()
    OnCall(engine, cluster, org).start()
    PlatformTraffic(engine, cluster, org, system).start()
    GitOps(engine, cluster, org, workloads).start()
    operators = Operators(engine, cluster, org)
    operators.start()
    NodeLifecycle(engine, cluster, org, system, workloads, operators).start()
    return org
