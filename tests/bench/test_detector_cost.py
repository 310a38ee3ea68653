"""bench/detector_cost.py: timing detectors changes nothing they do, every call is counted, the report has every
figure (no timing checked), and a user's mistake is a clear error with exit status 2."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.detector_cost import Timed, main, measure, report, unreadable
from bench.replay import make_noisy_events
from detectors.base import Clocked, Stateful, StateSized, Transactional
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.scope import Scoped, scope_of

ABILITIES = (Stateful, Transactional, StateSized, Clocked, Scoped)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cost") / "events.jsonl"
    make_noisy_events(path, 0.05)  # ~25k events of the realistic stream, its campaigns in the second half
    return path


def test_a_timed_detector_has_the_abilities_and_scope_of_the_one_it_wraps() -> None:
    for detector in load_rules(["builtin"], LoadOptions()):
        timed = Timed(detector)
        assert [isinstance(timed, a) for a in ABILITIES] == [isinstance(detector, a) for a in ABILITIES]
        assert scope_of(timed) == scope_of(detector) and timed.id == detector.id


def test_timed_detectors_raise_the_same_alerts_and_count_every_call(stream: Path) -> None:
    detectors = load_rules(["builtin"], LoadOptions())
    events = [AuditEvent(orjson.loads(line), f"x:{n}") for n, line in enumerate(stream.read_bytes().splitlines())]
    plain, timed = Pipeline(detectors).fresh(), Pipeline([Timed(d) for d in detectors]).fresh()
    expected = [a.id for a in plain.process_all(events)]
    assert expected, "the stream's campaigns should raise alerts"
    assert [a.id for a in timed.process_all(events)] == expected
    routed = Pipeline(detectors).fresh()
    calls = {d.id: 0 for d in detectors}
    for event in events:
        for d in routed.candidates(event):
            calls[d.id] += 1
    assert {d.id: d.calls for d in timed.detectors if isinstance(d, Timed)} == calls
    assert all(d.seconds > 0 for d in timed.detectors if isinstance(d, Timed) and d.calls)


def test_the_report_has_every_pass_and_the_costliest_detectors_first(stream: Path, tmp_path: Path) -> None:
    costs = measure([str(stream)], ["builtin"], tmp_path, parse_path=stream, rounds=1)
    lines = report(costs, top=5)
    assert costs.events == len(stream.read_bytes().splitlines()) and costs.alerts > 0
    assert min(costs.parse_s, costs.read_s, costs.replay_s, costs.timed_replay_s) > 0
    times = [c.seconds for c in costs.detectors]
    assert times == sorted(times, reverse=True) and len(costs.detectors) == len(load_rules(["builtin"], LoadOptions()))
    assert lines[-1].startswith(f"events={costs.events} parse_us=") and "detect_us=" in lines[-1]
    assert costs.detectors[0].id in lines[6] and lines[11].startswith(f"the other {len(costs.detectors) - 5}")


def test_archives_of_ones_own_are_measured_without_parse_only(stream: Path, tmp_path: Path) -> None:
    costs = measure([str(stream)], ["builtin"], tmp_path, rounds=1)
    assert costs.parse_s == 0 and costs.read_s > 0
    assert "not measured" in report(costs, top=3)[1]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["/nonexistent/audit.log"], "no audit event in /nonexistent/audit.log"),
        (["--rounds", "0"], "argument --rounds: must be at least 1, not 0"),
        (["--rules", "nosuchpack"], "nosuchpack: no such rule pack"),
    ],
)
def test_a_user_mistake_is_a_clear_error_and_exit_2(
    argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["python -m bench.detector_cost", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2 and said in capsys.readouterr().err


def test_a_file_of_no_audit_events_says_which_line_and_why(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_text("not json\n")
    said = unreadable([str(junk)])
    assert said is not None and said.startswith(f"no audit event in {junk} ({junk}:1: malformed JSON: ")
    assert unreadable([str(tmp_path / "missing.log")]) == (
        f"no audit event in {tmp_path / 'missing.log'} ({tmp_path / 'missing.log'}:1: cannot read: "
        f"[Errno 2] No such file or directory: '{tmp_path / 'missing.log'}')"
    )
