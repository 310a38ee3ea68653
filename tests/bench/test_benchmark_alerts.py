"""The detection benchmark's noisy world gives the alerts it gave before the speed work, every field of them.

A few hours of `bench.replay --world noisy`'s stream (its attack campaigns in the second half) through the
built-in pack, learning periods short enough for the baselines and the online model to judge within them.
Each alert is pinned by its id, rule, severity and a digest of all its fields; the final state of every
stateful detector is pinned by its digest. A change of a rule or of what a detector finds changes them on
purpose: then regenerate the file with `.venv/bin/python -m tests.bench.test_benchmark_alerts` and review
the diff. A speed change must leave it as it is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import ClusterProfile, epoch_us, labelled_stream, plan_campaigns

PINNED = Path(__file__).parent / "data" / "noisy_world_alerts.json"
DAYS = 0.15
DAY_US = 86_400 * 1_000_000


def _digest(value: Any) -> str:
    data = orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_DATACLASS)
    return hashlib.sha256(data).hexdigest()[:20]


def benchmark_alerts() -> dict[str, Any]:
    """The alerts and final state of the noisy world (bench.replay's profile, seed 1), as pinned."""
    profile = ClusterProfile(nodes=2, namespaces=("web", "payments", "checkout", "search"), humans=4, ci_accounts=2,
                             seed=1, realism="noisy")  # fmt: skip
    start = epoch_us(profile.start)
    end = start + int(DAYS * DAY_US)
    campaigns = plan_campaigns(profile, eval_start_us=start + (end - start) // 2, eval_end_us=end, seed=1)
    pipeline = Pipeline(load_rules(["builtin"], LoadOptions(baseline_learning_s=1800))).fresh()
    alerts = []
    stream = labelled_stream(profile, duration_s=DAYS * 86_400, campaigns=campaigns, seed=1)
    for i, (_, raw, _) in enumerate(stream):
        alerts.extend(pipeline.process(AuditEvent(raw, f"world#{i}")))
    return {
        "alerts": [[a.id, a.rule_id, str(a.severity), _digest(a)] for a in alerts],
        "state": _digest(pipeline.snapshot()),
    }


def test_the_noisy_world_gives_the_pinned_alerts_and_state() -> None:
    found = benchmark_alerts()
    pinned = orjson.loads(PINNED.read_bytes())
    rules = {rule for _, rule, _, _ in found["alerts"]}
    # single-event, stateful, baselined and online-model rules all fire in these few hours
    assert len(found["alerts"]) > 30 and {"mixed-allow-forbid-discovery", "ml-principal-anomaly"} & rules
    assert found["alerts"] == pinned["alerts"]
    assert found["state"] == pinned["state"]


if __name__ == "__main__":
    PINNED.write_bytes(orjson.dumps(benchmark_alerts(), option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {PINNED}")
