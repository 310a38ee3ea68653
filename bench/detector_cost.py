"""Where replay's time goes: reading (parse, validation, copies) against each detector, on one stream.

    .venv/bin/python -m bench.detector_cost                          # the realistic stream (noisy world, 2 days)
    .venv/bin/python -m bench.detector_cost --days 0.5 --top 15
    .venv/bin/python -m bench.detector_cost --rules builtin --rules falco /var/log/audit/   # your own archives

Four passes over the same file, in one process, `--rounds` times in turn (the fastest of each counts):
orjson parse-only; reading alone (`read_archives`: parse, validation, copies dropped); the whole replay into
SQLite as `auditwatch replay` runs it; and the same replay with every detector's `detect` timed (`Timed`). The
last pass costs a little more than the third (two clock reads per call), so the detectors' times are read as
shares of it. Per detector: the calls it got (routing sends each event only to the detectors whose scope admits
it), microseconds per call and per event of the stream. A rule that costs much per event is worth a look: a
`match:` on what routing reads (stage, verb, resource, subresource, response code) sends it fewer events.
The last line is `events=<n> parse_us=<x> read_us=<x> replay_us=<x> detect_us=<x>` (microseconds per event).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.store import AlertStore
from auditwatch.replay import ReplayStats, replay
from auditwatch.startup import tune_gc
from bench.arguments import at_least, loaded_rules, more_than
from bench.machine import describe
from bench.replay import make_noisy_events, parse_only
from detectors.alerts import Alert
from detectors.base import Detector
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from ingest.archives.reader import read_archives

_OWN = frozenset({"inner", "calls", "seconds"})


class Timed:
    """A detector whose `detect` calls are counted and timed; everything else reads through to the one it wraps,
    its optional abilities (`Stateful`, `Clocked`, `Scoped`...) included, so a pipeline treats it as that one."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.calls = 0
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _OWN:  # copy and pickle probe dunders before __init__ has run
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def stages(self) -> frozenset[str] | None:
        return self.inner.stages

    @property
    def resources(self) -> frozenset[str] | None:
        return self.inner.resources

    def detect(self, event: AuditEvent) -> list[Alert]:
        started = time.perf_counter()
        try:
            return self.inner.detect(event)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


@dataclass(frozen=True, slots=True)
class DetectorCost:
    id: str
    kind: str  # the wrapped detector's class: MatchRule, NewTermsRule, Baselined...
    calls: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Costs:
    events: int
    parse_s: float  # orjson parse-only of every line
    read_s: float  # read_archives alone
    replay_s: float  # the replay as `auditwatch replay` runs it
    timed_replay_s: float  # the same with every detector timed
    alerts: int
    detectors: tuple[DetectorCost, ...]  # most expensive first

    def per_event_us(self, seconds: float) -> float:
        return seconds / max(self.events, 1) * 1e6


def _replay_into_sqlite(paths: list[str], pipeline: Pipeline, db: Path) -> ReplayStats:
    store = AlertStore(f"sqlite:///{db}")
    store.migrate()
    try:
        return replay(paths, pipeline, store=store, last_use=True)  # as `auditwatch replay` calls it
    finally:
        store.close()


def _read_seconds(paths: list[str]) -> float:
    started = time.perf_counter()
    for _events, _rejected in read_archives(paths, ReplayStats()):
        pass
    return time.perf_counter() - started


def measure(
    paths: list[str], rules: list[str], workdir: Path, *, parse_path: Path | None = None, rounds: int = 2
) -> Costs:
    """The four passes over `paths`, `rounds` times in turn, the fastest of each kept (the first round also warms
    the caches); `parse_path` is a JSON-lines file of the same events for parse-only (without one, it is not
    measured). AssertionError if timing the detectors changed the alerts."""
    detectors = load_rules(rules, LoadOptions())
    best: Costs | None = None
    for run in range(rounds):
        parse_s = parse_only(parse_path)[1] if parse_path is not None else 0.0
        read_s = _read_seconds(paths)
        plain = _replay_into_sqlite(paths, Pipeline(detectors).fresh(), workdir / f"plain-{run}.db")
        timed_pipeline = Pipeline([Timed(d) for d in detectors]).fresh()  # fresh: copies of the stateful ones
        timed = _replay_into_sqlite(paths, timed_pipeline, workdir / f"timed-{run}.db")
        if (timed.alerts, timed.new_alerts) != (plain.alerts, plain.new_alerts):
            raise AssertionError(f"timing changed the alerts: {timed.alerts} against {plain.alerts}")
        costs = [
            DetectorCost(d.id, type(d.inner).__name__, d.calls, d.seconds)
            for d in timed_pipeline.detectors
            if isinstance(d, Timed)
        ]
        costs.sort(key=lambda c: c.seconds, reverse=True)
        this = Costs(plain.events, parse_s, read_s, plain.seconds, timed.seconds, plain.alerts, tuple(costs))
        if best is None:
            best = this
        else:  # the fastest of each pass; the detectors' times from the fastest timed replay
            fastest = this if this.timed_replay_s < best.timed_replay_s else best
            best = Costs(
                this.events, min(this.parse_s, best.parse_s), min(this.read_s, best.read_s),
                min(this.replay_s, best.replay_s), fastest.timed_replay_s, this.alerts, fastest.detectors,
            )  # fmt: skip
    if best is None:
        raise ValueError("rounds must be at least 1")
    return best


def report(costs: Costs, top: int) -> list[str]:
    us = costs.per_event_us
    detect_s = sum(c.seconds for c in costs.detectors)
    lines = [
        f"{costs.events:,} events, {costs.alerts:,} alerts; microseconds per event of the stream:",
        "  parse-only (orjson):                 "
        + (f"{us(costs.parse_s):6.2f}" if costs.parse_s else "not measured (archives of your own)"),
        f"  reading (parse, validation, copies): {us(costs.read_s):6.2f}",
        f"  replay into SQLite:                  {us(costs.replay_s):6.2f}"
        f"  ({costs.events / max(costs.replay_s, 1e-9):,.0f} events/s)",
        f"  replay with detectors timed:         {us(costs.timed_replay_s):6.2f}, of which in detectors "
        f"{us(detect_s):6.2f} ({detect_s / max(costs.timed_replay_s, 1e-9):.0%}); routing, stream clock, loop "
        f"and store {us(costs.timed_replay_s - detect_s - costs.read_s):.2f}",
        f"{'detector':<44} {'kind':<18} {'calls':>9} {'us/call':>8} {'us/event':>8} {'share':>6}",
    ]
    for c in costs.detectors[:top]:
        lines.append(
            f"{c.id:<44} {c.kind:<18} {c.calls:>9,} {c.seconds / max(c.calls, 1) * 1e6:>8.2f} "
            f"{us(c.seconds):>8.2f} {c.seconds / max(costs.timed_replay_s, 1e-9):>6.1%}"
        )
    rest = costs.detectors[top:]
    if rest:
        rest_s = sum(c.seconds for c in rest)
        lines.append(f"{f'the other {len(rest)}':<44} {'':<18} {sum(c.calls for c in rest):>9,} {'':>8} "
                     f"{us(rest_s):>8.2f} {rest_s / max(costs.timed_replay_s, 1e-9):>6.1%}")  # fmt: skip
    lines.append(
        f"events={costs.events} parse_us={us(costs.parse_s):.2f} read_us={us(costs.read_s):.2f} "
        f"replay_us={us(costs.replay_s):.2f} detect_us={us(detect_s):.2f}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detector_cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="archives to measure (default: the realistic "
                        "stream, generated); parse-only is measured only for the generated one")  # fmt: skip
    parser.add_argument("--days", type=more_than(0), default=2, help="days of the realistic stream (default 2)")
    parser.add_argument("--rules", action="append", help="rule pack, file or directory (repeatable; default builtin)")
    parser.add_argument("--top", type=at_least(0), default=20, help="detectors listed one by one (default 20)")
    parser.add_argument("--rounds", type=at_least(1), default=2, help="rounds of the four passes; the fastest counts")
    args = parser.parse_args()
    rules = args.rules or ["builtin"]
    loaded_rules(parser, rules)
    if args.paths:
        problem = unreadable(args.paths)
        if problem:
            parser.error(problem)
    tune_gc()  # as `auditwatch replay` does
    with tempfile.TemporaryDirectory(prefix="auditwatch-cost-") as tmp:
        workdir = Path(tmp)
        parse_path: Path | None = None
        if not args.paths:
            parse_path = workdir / "events.jsonl"
            make_noisy_events(parse_path, args.days)
        print(describe())
        costs = measure(args.paths or [str(parse_path)], rules, workdir, parse_path=parse_path, rounds=args.rounds)
        print("\n".join(report(costs, args.top)))


def unreadable(paths: list[str]) -> str | None:
    """Why `paths` hold no event to measure (a missing file, nothing but rejected lines), or None."""
    stats = ReplayStats()
    try:
        for _events, _rejected in read_archives(paths, stats):
            pass
    except OSError as exc:
        return f"cannot read {exc.filename or paths[0]}: {exc.strerror or exc}"
    if stats.events:
        return None
    reasons = "; ".join(f"{r.origin}: {r.reason}" for r in stats.rejected_examples[:3])
    return f"no audit event in {', '.join(paths)}" + (f" ({reasons})" if reasons else "")


if __name__ == "__main__":
    main()
