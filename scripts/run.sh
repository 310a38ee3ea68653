#!/usr/bin/env bash
# One command: set up, then run auditwatch on the embedded default (webhook + detectors + SQLite + REST).
# Extra arguments go to `auditwatch serve` (e.g. --port 9000). Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/auditwatch serve "$@"
