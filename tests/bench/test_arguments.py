"""The benchmark tools' command lines: a mistake is one line on stderr and exit status 2, found before any
generation or measurement, never a traceback or a report of rules other than the ones asked for."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import archives, cli, ingest, loadgen, memory, replay, scale
from bench import detection as detection_bench
from bench.arguments import at_least, loaded_rules, more_than, rule_dir


def test_at_least_takes_whole_numbers_from_its_minimum() -> None:
    assert at_least(1)("1") == 1 and at_least(0)("0") == 0 and at_least(2)("40") == 40
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1, not 0"):
        at_least(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="'2.5' is not a whole number"):
        at_least(1)("2.5")


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf"])
def test_more_than_refuses_the_floor_below_it_and_what_is_no_finite_number(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be a number more than 0"):
        more_than(0)(text)


def test_more_than_takes_fractions() -> None:
    assert more_than(0)("0.25") == 0.25
    with pytest.raises(argparse.ArgumentTypeError, match="'two' is not a number"):
        more_than(0)("two")


def test_rule_dir_needs_a_directory_with_rule_files(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a directory"):
        rule_dir(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("no rules here\n")
    with pytest.raises(argparse.ArgumentTypeError, match=r"holds no rule file \(\*\.yaml, \*\.yml\)"):
        rule_dir(str(tmp_path))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "a.yml").write_text("id: a\n")
    assert rule_dir(str(tmp_path)) == tmp_path


def test_loaded_rules_is_the_parsers_error_with_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="tool")
    assert len(loaded_rules(parser, ["builtin"])) > 10
    with pytest.raises(SystemExit) as exited:
        loaded_rules(parser, ["nosuchpack", "nosuchfile.yaml"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "tool: error: the rules do not load:" in err and "nosuchpack" in err and "nosuchfile.yaml" in err


MAINS: dict[str, Callable[[], object]] = {
    "replay": replay.main,
    "ingest": ingest.main,
    "scale": scale.main,
    "archives": archives.main,
    "memory": memory.main,
    "cli": cli.main,
}


@pytest.mark.parametrize(
    ("tool", "argv", "said"),
    [
        ("replay", ["--rules", "nosuchpack"], "the rules do not load:\nnosuchpack: no such rule pack"),
        ("replay", ["--repeat", "0"], "argument --repeat: must be at least 1, not 0"),
        ("replay", ["--world", "noisy", "--days", "0"], "argument --days: must be a number more than 0, not 0"),
        ("replay", ["--events", "0"], "argument --events: must be at least 1, not 0"),
        ("ingest", ["--workers", "0"], "argument --workers: must be at least 1, not 0"),
        ("ingest", ["--seconds", "-5"], "argument --seconds: must be a number more than 0, not -5"),
        ("scale", ["--clients", "1"], "argument --clients: must be at least 2, not 1"),
        ("scale", ["--repeat", "0"], "argument --repeat: must be at least 1, not 0"),
        ("archives", ["--size-mb", "0"], "argument --size-mb: must be at least 1, not 0"),
        ("memory", ["--every", "0"], "argument --every: must be at least 1, not 0"),
        ("cli", ["--runs", "0"], "argument --runs: must be at least 1, not 0"),
    ],
)
def test_a_mistake_on_a_tools_command_line_is_exit_2_and_one_line(
    tool: str, argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", [f"python -m bench.{tool}", *argv])
    with pytest.raises(SystemExit) as exited:
        MAINS[tool]()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and said in err and "Traceback" not in err


def test_loadgen_refuses_no_clients(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["python -m bench.loadgen", "http://127.0.0.1:1/", "bodies", "--clients", "0"])
    with pytest.raises(SystemExit) as exited:
        loadgen.main()
    assert exited.value.code == 2 and "argument --clients: must be at least 1, not 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # argparse would otherwise take `--rules` for `--rules-dir`, and an empty directory for the built-in pack
        (["--rules", "nosuchpack"], "unrecognized arguments: --rules nosuchpack"),
        (["--rules-dir", "/nonexistent/rules"], "argument --rules-dir: /nonexistent/rules is not a directory"),
        (["--nodes", "0"], "argument --nodes: must be at least 1, not 0"),
        (["--days", "0"], "argument --days: must be a number more than 0, not 0"),
    ],
)
def test_a_mistake_on_the_detection_benchmarks_command_line_is_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        detection_bench.main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and said in err and "Traceback" not in err


def test_the_detection_benchmark_refuses_a_directory_without_rule_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        detection_bench.main(["--rules-dir", str(tmp_path)])
    assert exited.value.code == 2 and "holds no rule file" in capsys.readouterr().err
