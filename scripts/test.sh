#!/usr/bin/env bash
# One command: set up, start the real servers the integration tests use (Kafka 4.x in KRaft mode and
# PostgreSQL, on 127.0.0.1; see scripts/services.sh), build the real kube-apiserver, kubectl and etcd of the
# end-to-end test (scripts/kube-e2e.sh: from the Go module proxy, cached; ~5 min the first time), install
# Debian's chromium and chromium-driver for the console's browser tests (scripts/browser.sh), then run ruff
# (lint, and the format `ruff format` writes), mypy --strict and the whole test suite.
# Extra arguments go to pytest. The servers keep running afterwards (`scripts/services.sh down` stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/browser.sh install  # tests/integration/test_console_browser.py fails without it in CI (CI=true)
scripts/services.sh up
eval "$(scripts/services.sh env)"
if command -v go >/dev/null; then
  scripts/kube-e2e.sh build
else
  # tests/integration/test_kube_e2e.py then fails in CI (CI=true) and skips elsewhere, naming what is missing
  echo "scripts/test.sh: go is not installed: cannot build kube-apiserver for the end-to-end test" >&2
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
