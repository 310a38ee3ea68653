"""Reading `/metrics`: every sample of a Prometheus text exposition, parsed by prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """(sample name, labels) -> value, for every sample; raises ValueError when the text does not parse."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError when the series does not exist."""
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= series)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(series)[label] for (n, series) in samples if n == name and label in dict(series)}


def rules_in_pack(pack: str) -> int:
    """How many rules a shipped pack loads (what `auditwatch_rules_loaded` should count for it)."""
    from detectors.registry import load_rules

    return len(load_rules([pack]))
