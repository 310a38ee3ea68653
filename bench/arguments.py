"""What the benchmark tools share on their command lines: numbers checked as argparse reads them, and rules
loaded before minutes of generation, so that a mistake is one line and exit status 2, never a traceback or a
report of nothing."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from detectors.base import Detector
from detectors.errors import DetectorError
from detectors.loading.formats import LoadOptions
from detectors.registry import load_rules


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number no less than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def more_than(floor: float) -> Callable[[str], float]:
    """An argparse `type`: a finite number greater than `floor`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not floor < value < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be a number more than {floor:g}, not {text}")
        return value

    return parse


def rule_files(rule_dir: Path) -> Iterator[Path]:
    """The rule files under a directory, at any depth."""
    return (p for p in rule_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def rule_dir(text: str) -> Path:
    """An argparse `type`: a directory that holds rule files (without any, the loader would take the built-in
    pack, and the figures would be of rules other than the ones asked for)."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory")
    if next(rule_files(path), None) is None:
        raise argparse.ArgumentTypeError(f"{text} holds no rule file (*.yaml, *.yml)")
    return path


def loaded_rules(
    parser: argparse.ArgumentParser, rules: Sequence[str], options: LoadOptions | None = None
) -> list[Detector]:
    """The detectors of `rules`; if they do not load, the parser's error (every problem, file and line)."""
    try:
        return load_rules(list(rules), options)
    except DetectorError as exc:
        parser.error(f"the rules do not load:\n{exc}")
