"""The one detector interface. Every rule type and model implements it; the pipeline knows nothing else."""

from __future__ import annotations

from typing import Protocol

from detectors.alerts import Alert
from detectors.events import AuditEvent


class Detector(Protocol):
    """`detect` is pure and synchronous: no I/O, no clock; the same event gives the same alerts."""

    @property
    def id(self) -> str: ...

    # Prefilter hints for the pipeline's index: None means "any".
    @property
    def stages(self) -> frozenset[str] | None: ...

    @property
    def resources(self) -> frozenset[str] | None: ...

    def detect(self, event: AuditEvent) -> list[Alert]: ...
