"""Streams shared by the simulator's tests, generated once per session."""

from __future__ import annotations

import pytest

from simulation import ClusterProfile, benign_events, demo_events
from tests.simulation.helpers import Event

PROFILE = ClusterProfile(nodes=5, seed=3)
DURATION_S = 2 * 3600


@pytest.fixture(scope="session")
def benign() -> list[Event]:
    return list(benign_events(PROFILE, duration_s=DURATION_S))


@pytest.fixture(scope="session")
def demo() -> list[Event]:
    return demo_events()
