"""Labelled-stream assembly: benign events with attack campaigns merged in, each event labelled.

A campaign is built when the benign stream reaches its start (minus a look-ahead), so exec targets
are pods that are alive at that moment. Everything is seeded: the same arguments give the same events
and labels.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Final

from simulation.attacks.campaigns import Campaign, build_campaign
from simulation.benign import ClusterSimulation
from simulation.clock import SECOND
from simulation.cluster import ClusterProfile
from simulation.emitter import Event
from simulation.exporters import drop_annotations

_LOOKAHEAD_US: Final = 120 * SECOND


def labelled_stream(
    profile: ClusterProfile, *, duration_s: float, campaigns: list[Campaign], seed: int
) -> Iterator[tuple[int, Event, str | None]]:
    """Benign events with the campaigns merged in, in stageTimestamp order: (µs, event, campaign id or None).

    Campaign events past the end of the window are dropped (and removed from the campaign's labels)."""
    sim = ClusterSimulation(profile)
    share = profile.unannotated_share  # campaigns' events go through the same exporter as the rest
    end = sim.start + int(duration_s * SECOND)
    pending = sorted(campaigns, key=lambda c: c.start_us)
    pi = 0
    heap: list[tuple[int, int, Event, str]] = []
    seq = 0
    for ts, ev in sim.run():
        if ts >= end:
            break
        while pi < len(pending) and pending[pi].start_us - _LOOKAHEAD_US <= ts:
            camp = pending[pi]
            for ats, aev in build_campaign(sim, camp, seed, pi):
                seq += 1
                heapq.heappush(heap, (ats, seq, drop_annotations(aev, share), camp.id))
            pi += 1
        while heap and heap[0][0] <= ts:
            ats, _, aev, cid = heapq.heappop(heap)
            yield ats, aev, cid
        yield ts, ev, None
    while heap and heap[0][0] < end:
        ats, _, aev, cid = heapq.heappop(heap)
        yield ats, aev, cid
    cut = {cid for _, _, _, cid in heap}  # campaigns with events past the end
    for camp in campaigns:
        if camp.id in cut:
            gone = {aev["auditID"] for _, _, aev, cid in heap if cid == camp.id}
            camp.audit_ids = [a for a in camp.audit_ids if a not in gone]
