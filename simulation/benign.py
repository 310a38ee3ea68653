"""The benign cluster simulation and its event stream (:func:`benign_events`).

It simulates one kube-apiserver of a small kubeadm-style cluster (Kubernetes v1.31) whose audit
webhook/log backend writes every stage, and yields the Events exactly as the backend serialises them
(``json.loads`` of one log line), in ``stageTimestamp`` order. Everything is driven by one seeded
``random.Random``, so the same :class:`ClusterProfile` always gives the same events, auditIDs included.

The simulated audit policy (first match wins): failed authentication and non-resource URLs at
``Metadata``; ``secrets``, ``configmaps``, ``events``, token/access reviews at ``Metadata``;
``get``/``list``/``watch`` at ``Metadata``; writes to ``leases``, ``endpointslices``, ``pods/binding``
and RBAC at ``RequestResponse``; every other write at ``Request``.

In the default ``realism="clean"`` world, benign traffic deliberately contains nothing a sensible
security rule would flag: no exec/attach/portforward, no privileged, hostPath, hostNetwork/PID/IPC
pods, no cluster-admin or wildcard RBAC, no cluster-wide secret reads, no human-created pods in
``kube-system``, no NodePort services, no admission-webhook changes, no Event deletion and no
anonymous access beyond the health endpoints. ``realism="noisy"`` adds what a real cluster does that
rules do flag (:mod:`simulation.noisy`).

Throughput: ~150k events/s streamed on one core; materialising hundreds of thousands of events in a
list is dominated by CPython's cyclic GC (disable or freeze it around the list, or stream /
pre-serialise with orjson).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from simulation.ci import CiPipelines
from simulation.clock import SECOND, epoch_us
from simulation.cluster import Cluster, ClusterProfile, build_cluster
from simulation.emitter import Emitter, Event
from simulation.engine import Engine
from simulation.exporters import drop_annotations
from simulation.humans import HumanUsers
from simulation.noisy import Org, start_noisy_world
from simulation.system import SystemTraffic
from simulation.workloads import Workloads


class ClusterSimulation:
    """One simulated cluster, its processes started; :meth:`run` streams its events."""

    def __init__(self, profile: ClusterProfile) -> None:
        # the seed text predates this package; changing it would change every generated stream
        self.emitter = Emitter(random.Random(f"auditwatch-synth:{profile.seed}"))
        self.start = epoch_us(profile.start)
        self.engine = Engine(self.emitter, self.start)
        self.cluster: Cluster = build_cluster(profile, self.emitter, self.start)
        self.unannotated_share = profile.unannotated_share
        workloads = Workloads(self.engine, self.cluster)
        system = SystemTraffic(self.engine, self.cluster)
        system.start()
        CiPipelines(self.engine, self.cluster, workloads).start()
        self.org: Org | None = None
        if profile.realism == "noisy":
            self.org = start_noisy_world(self.engine, self.cluster, system, workloads)
        else:
            HumanUsers(self.engine, self.cluster, workloads).start()

    def run(self) -> Iterator[tuple[int, Event]]:
        """Yield (stageTimestamp µs, event) forever, in stageTimestamp order."""
        share = self.unannotated_share
        if not share:
            return self.engine.run()
        return ((ts, drop_annotations(ev, share)) for ts, ev in self.engine.run())


def benign_events(
    profile: ClusterProfile, *, duration_s: float | None = None, count: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield benign audit Events in stageTimestamp order, starting at ``profile.start``.

    Stops after ``duration_s`` simulated seconds or ``count`` events, whichever comes first; with
    neither it is infinite. Requests still in flight at the end (e.g. open watches) are cut, as in a
    real log window, so some auditIDs lack their later stages.
    """
    sim = ClusterSimulation(profile)
    end = None if duration_s is None else sim.start + int(duration_s * SECOND)
    n = 0
    if count is not None and count <= 0:
        return
    for ts, ev in sim.run():
        if end is not None and ts >= end:
            return
        yield ev
        n += 1
        if count is not None and n >= count:
            return
