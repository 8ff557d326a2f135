"""Sentence-classification benchmarks (MR, rt-polarity): 10-fold cross-validated test accuracy.

Each fold trains a fresh model with the model's preset, stops early on a dev slice carved from that
fold's training part, and is scored once on its held-out fold with the best-on-dev weights; the
folds are the task's seeded assignment, the same for every model. Nothing is tuned on test folds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from archzoo.benchmarks.base import register_benchmark
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer


def cross_validate(preset: str, work_dir: Path, folds: list[int] | None = None,
                   overrides: list[str] | None = None) -> dict[str, Any]:
    """Train and test ``preset`` on each fold; the value is the mean test accuracy over the folds."""
    cfg = resolve_config(preset, overrides or [])
    folds = list(range(cfg.data.num_folds)) if folds is None else folds
    accuracies, train_seconds, steps, stops = [], [], [], []
    for fold in folds:
        fold_cfg = resolve_config(preset, [*(overrides or []), f"data.fold={fold}"])
        start = time.perf_counter()
        result = Trainer(fold_cfg, work_dir / f"fold-{fold}", progress=False, verbose=False, overwrite=True).fit()
        assert result.test is not None
        accuracies.append(result.test["accuracy"])
        train_seconds.append(round(result.train_seconds, 1))
        steps.append(result.step)
        stops.append(result.status)
        print(f"{preset} fold {fold}: test accuracy {result.test['accuracy']:.4f} "
              f"({time.perf_counter() - start:.0f} s, {result.status} at step {result.step})", flush=True)
    mean = statistics.fmean(accuracies)
    return {"value": round(mean, 4), "std": round(statistics.stdev(accuracies), 4) if len(accuracies) > 1 else 0.0,
            "fold_accuracies": [round(a, 4) for a in accuracies], "folds": folds, "preset": preset,
            "overrides": overrides or [], "train_seconds_per_fold": train_seconds,
            "train_seconds_total": round(sum(train_seconds), 1), "steps_per_fold": steps, "stop_per_fold": stops,
            "model": cfg.model.name, "model_args": cfg.model.args}


_PROTOCOL = ("10-fold CV test accuracy on MR (seeded folds, early stopping on a 10% dev slice of each fold's "
             "training part, best-on-dev weights scored on the held-out fold), preset {preset}")
for _model, _target, _why in (
        ("textcnn", 0.765, "target: Kim 2014 CNN-rand 76.1% plus 0.4"),
        ("bilstm", 0.761, "reported; target: Kim's CNN-rand 76.1%, the random-init anchor"),
        ("bigru", 0.761, "reported; target: Kim's CNN-rand 76.1%, the random-init anchor"),
        ("bert", 0.761, "reported; target: Kim's CNN-rand 76.1%, the random-init anchor"),
        ("nbsvm", 0.78, "target: issue #8's best-model 78.0% (Wang & Manning 2012 report 79.4%)")):
    def _run(work_dir: Path, model: str = _model) -> dict[str, Any]:
        return cross_validate(f"mr-{model}", work_dir)

    register_benchmark(f"mr-{_model}", "cv10_test_accuracy", _target, ">=",
                       _PROTOCOL.format(preset=f"mr-{_model}") + f"; {_why}")(_run)
