#!/usr/bin/env bash
# One command: set up, then run the whole test suite (unit, rule cases, real-process integration tests),
# plus the type checker and linter. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
