#!/usr/bin/env bash
# Create .venv and install archzoo with its dev tools. torch comes from `pip install torch==2.13.0`
# (on this project's machines that is the CPU build on local disk; elsewhere, PyPI's).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
