"""`auditwatch demo`: replay a bundled sample of cluster activity and show what it finds."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from api.store import AlertStore
from auditwatch.replay import format_summary, replay
from auditwatch.startup import shown_url
from detectors.alerts import Alert
from detectors.pipeline import Pipeline

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Sample:
    path: Path
    about: str


SAMPLES = {
    # The log backend's file of the end-to-end test's run against a real kube-apiserver
    # (tests/integration/test_kube_e2e.py).
    "kube": Sample(
        DATA / "kube-e2e-audit.jsonl.gz",
        "Replayed the audit log of a real kube-apiserver v1.36.3 ({events:,} events), captured by auditwatch's\n"
        "end-to-end test: the apiserver's own traffic, a monitoring agent and a CI deployer polling, then an\n"
        "attack: a forbidden burst, anonymous access, a privileged pod with the host's / mounted, exec into it,\n"
        "impersonation, a token request and cluster-admin for a low-privilege user.",
    ),
    # The simulation package (python -m simulation --demo): a bigger cluster than the e2e test can run.
    "synthetic": Sample(
        DATA / "demo-events.jsonl.gz",
        "Replayed a 20-minute sample of a 10-node cluster ({events:,} audit events):\n"
        "controllers, kubelets, the scheduler, two humans, a CI deployer, and a short attack.",
    ),
}


def _row(alert: Alert) -> str:
    target = "/".join(p for p in (alert.namespace, alert.resource, alert.name) if p)
    if alert.subresource:
        target += f"/{alert.subresource}"
    when = alert.event_time.strftime("%H:%M:%S")
    return f"{when}  {alert.severity.label:<8}  {alert.rule_name[:44]:<44}  {alert.user[:28]:<28}  {target}"


def run_demo(db_url: str, pipeline: Pipeline, sample: str = "kube") -> int:
    chosen = SAMPLES[sample]
    store = AlertStore(db_url)
    store.migrate()
    found: list[Alert] = []
    try:
        stats = replay([str(chosen.path)], pipeline, store=store, emit=found.append)
    finally:
        store.close()
    print(chosen.about.format(events=stats.events) + "\n")
    header = f"{'time':<8}  {'severity':<8}  {'rule':<44}  {'user':<28}  target"
    print(header)
    print("-" * len(header))
    for alert in sorted(found, key=lambda a: (a.event_time, a.rule_id)):
        print(_row(alert))
    print()
    print(format_summary(stats, stored=True), file=sys.stderr)
    print(
        "\nThe alerts are in " + shown_url(db_url) + ". Query them over REST:\n"
        f"  auditwatch serve --db {shown_url(db_url)} &\n"
        "  curl -s 'http://127.0.0.1:8080/api/v1/alerts?min_severity=high'\n"
        "  curl -s 'http://127.0.0.1:8080/api/v1/alerts/<id>'   # one alert with its (redacted) event\n"
        "  open http://127.0.0.1:8080/docs for the OpenAPI documentation"
    )
    return 0
