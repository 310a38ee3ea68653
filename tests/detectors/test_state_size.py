"""The `StateSized` and `Catalogued` abilities: a stateful rule says how many keys it holds (what memory grows
with), a detector lists the rules it alerts for; asked for, never probed from private attributes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.memory import state_keys
from detectors.base import Catalogued, StateSized
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules.native import RULE_TYPES
from simulation import ClusterProfile, benign_events

# the keyed table of each stateful rule type, as its snapshot writes it
SNAPSHOT_TABLES = {"threshold": "times", "distinct_count": "values", "new_terms": "last_seen",
                   "sequence": "progress", "anomaly": "principals"}  # fmt: skip


def test_every_stateful_rule_counts_the_keys_its_snapshot_holds() -> None:
    pipeline = Pipeline(load_rules(["builtin"]))
    assert state_keys(pipeline) == 0
    for raw in benign_events(ClusterProfile(nodes=5, seed=3), count=6000):
        pipeline.process(AuditEvent(raw=raw))
    sizes: Counter[str] = Counter()
    for detector in pipeline.stateful:
        assert isinstance(detector, StateSized), detector.id
        assert detector.rule_type in RULE_TYPES
        table: Any = detector.snapshot()[SNAPSHOT_TABLES[detector.rule_type]]
        assert detector.state_keys() == len(table), detector.id
        sizes[detector.rule_type] += detector.state_keys()
    assert set(SNAPSHOT_TABLES) == {d.rule_type for d in pipeline.stateful if isinstance(d, StateSized)}
    assert sizes["new_terms"] > 0 and sizes["anomaly"] > 0  # realistic traffic leaves state behind
    assert state_keys(pipeline) == sum(sizes.values())  # bench/memory.py asks the same way


def test_every_detector_lists_its_rules_with_their_severity_and_format() -> None:
    detectors = load_rules(["builtin", "falco", "sigma"])
    formats: Counter[str] = Counter()
    ids: list[str] = []
    for detector in detectors:
        assert isinstance(detector, Catalogued), detector.id
        formats[detector.rule_format] += len(detector.rule_severities())
        ids.extend(detector.rule_severities())
    assert formats["auditwatch"] == 59 and formats["sigma"] == 16 and formats["falco"] > 40
    assert len(ids) == len(set(ids))  # rule ids are unique across formats: one alert series each
