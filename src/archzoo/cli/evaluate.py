"""``archzoo eval RUN_DIR``: test-set report of a checkpoint (rebuilt with no flags)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run on its test set",
                       description="Accuracy, per-class accuracy, confusion matrix and misclassified examples.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--which", choices=["best", "last"], default="best", help="best validation or last weights")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=int, default=1000)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError
    from archzoo.fileio import ensure_writable_dir
    from archzoo.tasks import TASKS
    from archzoo.training.checkpoint import load_model
    from archzoo.training.distributed import resolve_device
    from archzoo.training.trainer import autocast

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, cfg = load_model(args.run_dir, args.which)
    device = resolve_device(args.device)
    out = ensure_writable_dir(args.run_dir if args.run_dir.is_dir() else args.run_dir.parent,
                              "copy the run folder somewhere writable and evaluate the copy")
    task = TASKS.get(cfg.task)(cfg.data, args.data_dir)
    task.to(device)
    with autocast(device, cfg.train.precision):
        result = task.report(model.to(device), out, args.batch_size)
    lines = task.summary_lines(result)
    print("\n".join([f"{cfg.model.name} on {lines[0]}", *lines[1:]]))
    written = [out / name for name in ("eval.json", "confusion.png", "misclassified.png", "samples.png", "forecast.png",
                                               "bleu_by_length.png", "ctc_posteriors.png", "recall.png", "recall_curve.png")
               if (out / name).exists()]
    print("wrote " + ", ".join(map(str, written)))
    return 0
