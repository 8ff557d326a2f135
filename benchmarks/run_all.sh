#!/usr/bin/env bash
# Re-measure every committed benchmark. Needs the full datasets: set ARCHZOO_DATA (or --data-dir)
# to a folder laid out like ../shared/data. Run on a quiet machine: several time things or train on
# a wall-clock budget; about 75 minutes in all on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA=${ARCHZOO_DATA:-../shared/data}
for name in mnist-simple_cnn mnist-lenet5 mnist-mlp mnist-time-to-99 mnist-throughput \
            shakespeare-lstm shakespeare-gru shakespeare-rnn names-lstm names-gru lstm-throughput \
            gpt-nanogpt-cpu shakespeare-gpt matmul-peak gpt-mfu gpt-generation gpt-throughput; do
  .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
