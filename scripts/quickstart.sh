#!/usr/bin/env bash
# Set up, then run the main job offline on the data built into the package: simple_cnn trained on
# 10,000 MNIST images, tested on the full 10,000-image MNIST test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/archzoo train quickstart --out runs/quickstart "$@"
.venv/bin/archzoo eval runs/quickstart
