#!/usr/bin/env bash
# Set up, then run the test suite (slow tests excluded; run them with `-m slow`) in two pytest workers
# (ARCHZOO_TEST_WORKERS; a file stays on one worker, so its module fixtures are built once).
# Tests read the staged datasets from ../shared/data when it exists (read-only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests
.venv/bin/python -m pytest -q -m "not slow" -n "${ARCHZOO_TEST_WORKERS:-2}" --dist loadfile "$@"
