"""Where things are: the repository, the test data, the scenario log, the interpreter running the tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SCENARIO = DATA / "scenario.jsonl"
PYTHON = sys.executable
