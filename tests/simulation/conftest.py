"""Streams shared by the simulator's tests, generated once per session."""

from __future__ import annotations

import pytest

from simulation import benign_events, demo_events
from tests.support.simulation import DURATION_S, PROFILE, Event


@pytest.fixture(scope="session")
def benign() -> list[Event]:
    return list(benign_events(PROFILE, duration_s=DURATION_S))


@pytest.fixture(scope="session")
def demo() -> list[Event]:
    return demo_events()
