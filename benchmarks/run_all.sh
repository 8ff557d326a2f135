#!/usr/bin/env bash
# Re-measure every committed benchmark. Needs the full datasets: set ARCHZOO_DATA (or --data-dir)
# to a folder laid out like ../shared/data. Run on a quiet machine: several time things or train on
# a wall-clock budget; about 75 minutes in all on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCHZOO_DATA=${ARCHZOO_DATA:-../shared/data}
for name in mnist-simple_cnn mnist-lenet5 mnist-mlp mnist-time-to-99 mnist-throughput \
            shakespeare-lstm shakespeare-gru shakespeare-rnn names-lstm names-gru lstm-throughput \
            gpt-nanogpt-cpu shakespeare-gpt matmul-peak gpt-mfu gpt-generation lstm-generation gpt-throughput; do
  .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
for name in etth1-h96 etth1-horizons airline-1960 sunspots-1937; do   # forecasting: about 35 minutes
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
for name in mr-nbsvm mr-textcnn mr-bilstm mr-bigru mr-bert; do   # MR 10-fold CV: about 2 hours alone on 2 cores
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
for name in multi30k-transformer multi30k-attention multi30k-gru_context multi30k-lstm; do   # translation: hours on 2 cores
  .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
cp runs/bench/multi30k-bleu-by-length.png benchmarks/results/   # every model's BLEU by source length
for name in spoken-digits-cnn spoken-digits-lstm spoken-digits-bilstm spoken-digits-crnn spoken-digits-transformer \
            spoken-digits-loso-cnn spoken-digits-loso-cnn-warp connected-digits-bilstm connected-digits-lstm; do   # speech: hours on one thread
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
for name in hopfield-capacity hopfield-storkey-capacity hopfield-mnist-recall; do   # Hopfield: minutes
  OMP_NUM_THREADS=1 .venv/bin/archzoo bench "$name" --json "benchmarks/results/$name.json"
done
cp runs/bench/hopfield-capacity/capacity.png benchmarks/results/hopfield-capacity.png
for figure in recall_vs_patterns recall_vs_corruption spurious beta; do
  cp "runs/bench/hopfield-mnist-recall/$figure.png" "benchmarks/results/hopfield-mnist-$figure.png"
done
