"""`auditwatch demo`: replay a bundled sample of cluster activity and show what it finds."""

from __future__ import annotations

import sys
from pathlib import Path

from api.store import AlertStore
from auditwatch.replay import format_summary, replay
from detectors.alerts import Alert
from detectors.pipeline import Pipeline

DEMO_FILE = Path(__file__).parent / "data" / "demo-events.jsonl.gz"


def _row(alert: Alert) -> str:
    target = "/".join(p for p in (alert.namespace, alert.resource, alert.name) if p)
    if alert.subresource:
        target += f"/{alert.subresource}"
    when = alert.event_time.strftime("%H:%M:%S")
    return f"{when}  {alert.severity.label:<8}  {alert.rule_name[:44]:<44}  {alert.user[:28]:<28}  {target}"


def run_demo(db_url: str, pipeline: Pipeline) -> int:
    store = AlertStore(db_url)
    store.migrate()
    found: list[Alert] = []
    try:
        stats = replay([str(DEMO_FILE)], pipeline, store=store, emit=found.append)
    finally:
        store.close()
    print(f"Replayed a 20-minute sample of a 10-node cluster ({stats.events:,} audit events):")
    print("controllers, kubelets, the scheduler, two humans, a CI deployer, and a short attack.\n")
    header = f"{'time':<8}  {'severity':<8}  {'rule':<44}  {'user':<28}  target"
    print(header)
    print("-" * len(header))
    for alert in sorted(found, key=lambda a: (a.event_time, a.rule_id)):
        print(_row(alert))
    print()
    print(format_summary(stats, stored=True), file=sys.stderr)
    print(
        "\nThe alerts are in " + db_url + ". Query them over REST:\n"
        f"  auditwatch serve --db {db_url} &\n"
        "  curl -s 'http://127.0.0.1:8080/api/v1/alerts?min_severity=high'\n"
        "  curl -s 'http://127.0.0.1:8080/api/v1/alerts/<id>'   # one alert with its (redacted) event\n"
        "  open http://127.0.0.1:8080/docs for the OpenAPI documentation"
    )
    return 0
