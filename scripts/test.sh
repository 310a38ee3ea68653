#!/usr/bin/env bash
# One command: set up, start the real servers the integration tests use (Kafka 4.x in KRaft mode and
# PostgreSQL, on 127.0.0.1; see scripts/services.sh), then run ruff, mypy --strict and the whole test suite.
# Extra arguments go to pytest. The servers keep running afterwards (`scripts/services.sh down` stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh up
eval "$(scripts/services.sh env)"
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
