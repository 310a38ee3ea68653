"""Prometheus metrics of one auditwatch app: what each part counts, on a registry of the app's own.

Each app (serve, ingest, api; detect's metrics listener) has its own `CollectorRegistry`, so tests and several
apps in one process never share a counter; prometheus_client's process, platform and GC collectors are
registered on it. Names follow Prometheus conventions (the `auditwatch_` prefix, `_total` counters, base units).
Labels take bounded values only: reason and fault kinds, status classes, rule types and formats, rule ids and
severities (bounded by the loaded rule set), sink names (bounded by the configuration), Kafka partitions.
Never users, addresses, namespaces, object names or alert ids. Known label values are set up at start, so
their series exist at 0. README "Metrics" lists every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from api.errors import StoreError
from api.faults import Fault, classify
from auditwatch.notify.sender import Sender, SinkStats
from detectors.alerts import Alert
from detectors.base import Catalogued, StateSized
from detectors.events import Rejected
from detectors.pipeline import Pipeline
from detectors.registry import RULE_FORMATS
from detectors.tuning.tuning import Suppressed
from ingest.webhook import REJECT_REASONS, BatchReport

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

# Seconds: a webhook batch is usually done in milliseconds; the apiserver gives up after 30 s.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FAULT_KINDS = tuple(fault.value for fault in Fault)


def build_version() -> str:
    try:
        return version("auditwatch")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def process_registry() -> CollectorRegistry:
    """A registry with what every app exports: the process, platform and GC collectors and the build info."""
    # Process-wide: in the text format each counter's and histogram's `_created` timestamp would be a series of
    # its own (doubling them, an alerts counter per rule included), which Prometheus has no use for.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Gauge("auditwatch_build_info", "Always 1; the auditwatch version that runs", ["version"], registry=registry)
    info.labels(version=build_version()).set(1)
    return registry


class EventMetrics:
    """Events in and batches (serve and ingest: webhook batches; detect: Kafka batches). Every event received
    is either accepted or rejected for one reason, so received = accepted + the sum of rejected."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "auditwatch_events_received_total", "Audit events received (valid or not) in batches that were handled",
            registry=registry,
        )  # fmt: skip
        self.accepted = Counter(
            "auditwatch_events_accepted_total", "Audit events that went through (detection, or to Kafka)",
            registry=registry,
        )  # fmt: skip
        self.rejected = Counter(
            "auditwatch_events_rejected_total", "Audit events set aside (quarantined or only counted), by reason",
            ["reason"], registry=registry,
        )  # fmt: skip
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)
        self.batches = Counter("auditwatch_batches_total", "Batches handled (stored, or sent)", registry=registry)
        self.batch_seconds = Histogram(
            "auditwatch_batch_duration_seconds", "Time from a batch's arrival until it was handled",
            buckets=BATCH_BUCKETS, registry=registry,
        )  # fmt: skip

    def batch_done(self, report: BatchReport) -> None:
        """`BatchObserver`: one batch was handled."""
        self.received.inc(report.received)
        self.accepted.inc(report.accepted)
        for reason, count in report.rejections().items():
            if count:
                self.rejected.labels(reason=reason).inc(count)
        self.batches.inc()
        self.batch_seconds.observe(report.seconds)


class StateKeysCollector:
    """Keys held by stateful detectors, totalled per rule type, read when Prometheus scrapes."""

    def __init__(self, rule_types: Iterable[str], pipelines: Callable[[], Iterable[Pipeline]]) -> None:
        self.rule_types = tuple(dict.fromkeys(rule_types))
        self.pipelines = pipelines

    def describe(self) -> Iterator[Metric]:
        yield self._family({})

    def collect(self) -> Iterator[Metric]:
        totals = dict.fromkeys(self.rule_types, 0)
        for pipeline in list(self.pipelines()):  # a copy: detect adds and drops pipelines as partitions move
            for detector in pipeline.stateful:
                if isinstance(detector, StateSized):
                    totals[detector.rule_type] = totals.get(detector.rule_type, 0) + detector.state_keys()
        yield self._family(totals)

    @staticmethod
    def _family(totals: Mapping[str, int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "auditwatch_detector_state_keys", "Keys held by stateful detectors (windows, sequences, principals)",
            labels=["rule_type"],
        )  # fmt: skip
        for rule_type, keys in totals.items():
            family.add_metric([rule_type], keys)
        return family


class TuningCollector:
    """Alerts the site tuning file kept out, per rule and reason (`disabled`, `trusted registry`, `deployer NAME`,
    `exception NAME`: bounded by the file), read from its counters when Prometheus scrapes."""

    def __init__(self, suppressed: Suppressed) -> None:
        self.suppressed = suppressed

    def describe(self) -> Iterator[Metric]:
        yield self._family({})

    def collect(self) -> Iterator[Metric]:
        yield self._family(dict(self.suppressed.counts))

    @staticmethod
    def _family(counts: Mapping[tuple[str, str], int]) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "auditwatch_alerts_tuned_out", "Alerts the site tuning file suppressed, by rule id and reason",
            labels=["rule", "reason"],
        )  # fmt: skip
        for (rule, reason), count in sorted(counts.items()):
            family.add_metric([rule, reason], count)
        return family


class DetectionMetrics:
    """Rules, alerts, rule exceptions, detector state and the alert store's writes (serve, detect).

    `pipelines` gives the pipelines whose state to count when scraped (serve: one; detect: one per partition)."""

    def __init__(
        self, registry: CollectorRegistry, template: Pipeline, pipelines: Callable[[], Iterable[Pipeline]]
    ) -> None:
        self.alerts = Counter(
            "auditwatch_alerts_total", "Alerts new to the store (each counted once), by rule id and severity",
            ["rule", "severity"], registry=registry,
        )  # fmt: skip
        rules = Gauge("auditwatch_rules_loaded", "Rules loaded, by rule file format", ["format"], registry=registry)
        loaded = dict.fromkeys((rule_format.name for rule_format in RULE_FORMATS), 0)
        for detector in template.detectors:
            if isinstance(detector, Catalogued):
                severities = detector.rule_severities()
                loaded[detector.rule_format] = loaded.get(detector.rule_format, 0) + len(severities)
                for rule, severity in severities.items():
                    self.alerts.labels(rule=rule, severity=severity.label)
        for rule_format, count in loaded.items():
            rules.labels(format=rule_format).set(count)
        self.suppressed = Counter(
            "auditwatch_alerts_suppressed_total", "Alerts that rule exceptions kept out of the store",
            registry=registry,
        )  # fmt: skip
        self.write_seconds = Histogram(
            "auditwatch_store_write_duration_seconds", "Time to write one batch to the alert store (one transaction)",
            buckets=WRITE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.write_failures = Counter(
            "auditwatch_store_write_failures_total", "Batch writes that stored nothing, by fault kind (api/faults.py)",
            ["fault"], registry=registry,
        )  # fmt: skip
        for fault in FAULT_KINDS:
            self.write_failures.labels(fault=fault)
        types = [d.rule_type for d in template.stateful if isinstance(d, StateSized)]
        registry.register(StateKeysCollector(types, pipelines))
        if template.tuning is not None:  # every pipeline of the process shares the template's tuning
            registry.register(TuningCollector(template.tuning.suppressed))

    def stored(self, alerts: Sequence[Alert], suppressed: int) -> None:
        """A batch was stored: its alerts new to the store, and how many more rule exceptions suppressed."""
        for alert in alerts:
            self.alerts.labels(rule=alert.rule_id, severity=alert.severity.label).inc()
        if suppressed:
            self.suppressed.inc(suppressed)

    def write_failed(self, error: StoreError) -> None:
        cause = error.__cause__
        fault = classify(cause) if cause is not None else Fault.STORE
        self.write_failures.labels(fault=fault.value).inc()


class ConsumerMetrics:
    """detect's consumer: its batches (into `events`) and its side of Kafka."""

    def __init__(self, registry: CollectorRegistry, events: EventMetrics) -> None:
        self.events = events
        self.records = Counter(
            "auditwatch_kafka_records_consumed_total", "Kafka records processed and stored", registry=registry
        )
        self.commit_failures = Counter(
            "auditwatch_kafka_commit_failures_total", "Offset commits that failed (the batch is redelivered)",
            registry=registry,
        )  # fmt: skip
        self.lag = Gauge(
            "auditwatch_kafka_consumer_lag", "Records in a partition past the last one processed (high watermark "
            "minus position), for the partitions this consumer holds", ["partition"], registry=registry,
        )  # fmt: skip

    def batch_stored(
        self, events: int, invalid: int, failed: frozenset[str], refused: Iterable[Rejected], seconds: float
    ) -> None:
        """A batch was stored: `events` valid events and `invalid` items, `failed` the origins of the events a
        detector failed on, `refused` the events whose alert the store refused."""
        refused_origins = {r.origin for r in refused} - failed
        accepted = events - len(failed) - len(refused_origins)
        self.events.batch_done(BatchReport(accepted, invalid, len(failed), len(refused_origins), seconds))

    def observe_lag(self, consumer: AIOKafkaConsumer, positions: Mapping[TopicPartition, int]) -> None:
        """The lag of each assigned partition whose position and high watermark are known."""
        for tp in consumer.assignment():
            position, highwater = positions.get(tp), consumer.highwater(tp)
            if position is not None and highwater is not None:
                self.lag.labels(partition=str(tp.partition)).set(max(0, highwater - position))

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions handed over: their lag is another consumer's to report."""
        for partition in partitions:
            try:
                self.lag.remove(str(partition))
            except KeyError:
                pass


class NotificationCollector:
    """The notification sinks' counts (`Sender.stats`) and outbox depths, read when Prometheus scrapes."""

    # (name, help, count): CounterMetricFamily adds `_total` to the name
    _COUNTS: tuple[tuple[str, str, Callable[[SinkStats], int]], ...] = (
        ("auditwatch_notifications_delivered", "Notifications delivered", lambda s: s.delivered),
        ("auditwatch_notifications_failed", "Notifications given up: refused by the sink, or not delivered within "
         "max_age", lambda s: s.failed),
        ("auditwatch_notifications_dropped", "Notifications dropped: over the sink's rate, or beyond max_pending",
         lambda s: s.dropped),
        ("auditwatch_notifications_requests", "HTTP requests made to the sink", lambda s: s.requests),
        ("auditwatch_notifications_errors", "HTTP requests to the sink that failed", lambda s: s.errors),
    )  # fmt: skip

    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def describe(self) -> Iterator[Metric]:
        yield from self._families(include_depths=False)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(include_depths=True)

    def _families(self, *, include_depths: bool) -> Iterator[Metric]:
        names = [sink.name for sink in self.sender.sinks]
        stats = self.sender.stats
        for metric, help_text, count in self._COUNTS:
            family = CounterMetricFamily(metric, help_text, labels=["sink"])
            for name in names:
                family.add_metric([name], count(stats.get(name) or SinkStats()))
            yield family
        depth = GaugeMetricFamily(
            "auditwatch_notification_outbox_depth", "Notifications waiting in the outbox, per sink", labels=["sink"]
        )
        if include_depths and names:
            try:
                depths = self.sender.depths()
            except StoreError:
                depths = {}  # the store is down: no sample, rather than a failed scrape
            for name, pending in depths.items():
                depth.add_metric([name], pending)
        yield depth


@dataclass(frozen=True)
class Metrics:
    """One app's registry and the parts of it the app's code counts into (None: the app has no such part)."""

    registry: CollectorRegistry
    events: EventMetrics | None = None
    detection: DetectionMetrics | None = None
    consumer: ConsumerMetrics | None = None

    @classmethod
    def for_ingest(cls) -> Metrics:
        registry = process_registry()
        return cls(registry, events=EventMetrics(registry))

    @classmethod
    def for_api(cls) -> Metrics:
        return cls(process_registry())

    @classmethod
    def for_detection(
        cls, pipeline: Pipeline, sender: Sender | None, *, pipelines: Callable[[], Iterable[Pipeline]] | None = None,
        consumer: bool = False,
    ) -> Metrics:  # fmt: skip
        """serve (`pipelines` None: the pipeline itself) or detect (`consumer`, one pipeline per partition)."""
        registry = process_registry()
        detection = DetectionMetrics(registry, pipeline, pipelines or (lambda: (pipeline,)))
        if sender is not None:
            registry.register(NotificationCollector(sender))
        events = EventMetrics(registry)
        return cls(
            registry, events=events, detection=detection,
            consumer=ConsumerMetrics(registry, events) if consumer else None,
        )  # fmt: skip
