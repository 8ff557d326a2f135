#!/usr/bin/env bash
# The GPU suite of issue 23, unattended, under 8 minutes on one GPU: matmul peak, GPT tokens/s and MFU,
# MNIST time to 99% (5 seeds), one epoch of the LSTM LM and of the translation Transformer, DDP on
# every visible GPU. Writes benchmarks/results/gpu-suite.json (device named inside); extra arguments
# go to `python -m archzoo.benchmarks.gpu` (--help). Without a CUDA device it stops with a one-line
# error; `--device cpu --dry-run` exercises every part on the CPU in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ARCHZOO_DATA:-}" ]; then  # the staged datasets: beside the repository, or inside it
  for dir in ../shared/data shared/data; do
    if [ -d "$dir" ]; then export ARCHZOO_DATA=$dir; break; fi
  done
fi
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec "$python" -m archzoo.benchmarks.gpu "$@"
