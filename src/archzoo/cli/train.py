"""``archzoo train``: train a preset (or defaults) with overrides, or resume a run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from archzoo.cli.common import add_data_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a preset or a model; "
                       "e.g. `archzoo train mnist-simple_cnn --set train.lr=2e-3`.")
    p.add_argument("preset", nargs="?", help="preset name (see `archzoo list presets`) or a TOML file")
    p.add_argument("--model", help="shortcut for --set model.name=NAME")
    p.add_argument("--dataset", help="shortcut for --set data.dataset=NAME")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. train.lr=3e-4 (repeatable)")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop cleanly after this much training, then evaluate")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<preset>-<time>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run exactly")
    p.add_argument("--dry-run", action="store_true", help="build everything and run one step; write nothing")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    add_data_dir(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError
    from archzoo.training.config import load_run_config, resolve_config
    from archzoo.training.trainer import Trainer, format_metrics, override_train

    if args.resume:
        if args.preset or args.overrides or args.model or args.dataset or args.epochs is not None or args.out:
            raise UserError("--resume continues a run with its own config; only --max-steps, --time-budget, "
                            "--device and --data-dir may be given with it")
        cfg, run_dir = load_run_config(args.resume), args.resume
    else:
        overrides = list(args.overrides)
        if args.model:
            overrides.append(f"model.name={args.model!r}")
        if args.dataset:
            overrides.append(f"data.dataset={args.dataset!r}")
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        cfg = resolve_config(args.preset, overrides)
        name = Path(args.preset).stem if args.preset else cfg.model.name
        run_dir = args.out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = override_train(cfg, max_steps=args.max_steps, time_budget=args.time_budget)
    trainer = Trainer(cfg, run_dir, data_dir=args.data_dir, device=args.device,
                      progress=not args.no_progress, resume=bool(args.resume))
    if trainer.dist.is_main:
        params = sum(p.numel() for p in trainer.model.parameters())
        print(f"{cfg.model.name}: {params:,} parameters | {cfg.task} on {cfg.data.dataset} | "
              f"{trainer.total_steps} steps of batch {cfg.train.batch_size} | device {trainer.device}"
              + (f" x {trainer.dist.world_size} ranks" if trainer.dist.enabled else ""), flush=True)
    result = trainer.fit(dry_run=args.dry_run)
    if not trainer.dist.is_main:
        return 0
    if args.dry_run:
        print(f"dry run ok: one step, train loss {result.test['train_loss']:.4f}; nothing written")
        return 0
    print(f"stopped: {result.status} after {result.step} steps, {result.train_seconds:.1f} s of training")
    if result.best:
        print(f"best val: {format_metrics(result.best)}")
    if result.test:
        floats = {k: v for k, v in result.test.items() if isinstance(v, float)}
        print(f"{result.test.get('split', 'test')}: {format_metrics(floats)}")
    print(f"run folder: {run_dir}")
    if result.status == "interrupted":
        print(f"resume with: archzoo train --resume {run_dir}")
        return 130
    return 0
