"""``archzoo train``: train a preset (or defaults) with overrides, or resume a run."""

from __future__ import annotations

import argparse
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
    p.add_argument("--out", type=Path, help="run folder: new or empty (default: a new runs/<preset>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run exactly")
    p.add_argument("--dry-run", action="store_true", help="build everything and run one step; write nothing")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    add_data_dir(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import signal

    from archzoo.errors import UserError
    from archzoo.fileio import ensure_writable_dir
    from archzoo.training.config import load_run_config, resolve_config
    from archzoo.training.run_folder import check_new, new_run_dir
    from archzoo.training.trainer import Trainer, format_metrics, override_train

    if args.resume:
        if (args.preset or args.overrides or args.model or args.dataset or args.epochs is not None or args.out
                or args.overwrite):
            raise UserError("--resume continues a run with its own config; only --max-steps, --time-budget, "
                            "--device and --data-dir may be given with it")
        if not args.resume.is_dir():
            raise UserError(f"--resume {args.resume}: {'is a file' if args.resume.exists() else 'does not exist'}; "
                            "give the run folder that `archzoo train` printed")
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
        if args.overwrite and not args.out:
            raise UserError("--overwrite replaces the run in --out; give --out too")
        run_dir = args.out
    cfg = override_train(cfg, max_steps=args.max_steps, time_budget=args.time_budget)
    if run_dir is None:  # a fresh folder of its own, unless nothing will be written
        name = Path(args.preset).stem if args.preset else cfg.model.name
        run_dir = Path("runs") / name if args.dry_run else new_run_dir(Path("runs"), name)
    elif not args.resume and not args.dry_run:  # before the data loads: refused in a second, not after a minute
        check_new(run_dir, args.overwrite)
        ensure_writable_dir(run_dir, "choose another folder with --out")
    trainer = Trainer(cfg, run_dir, data_dir=args.data_dir, device=args.device, progress=not args.no_progress,
                      resume=bool(args.resume), overwrite=args.overwrite)
    if trainer.dist.is_main:
        params = sum(p.numel() for p in trainer.model.parameters())
        print(f"{cfg.model.name}: {params:,} parameters | {cfg.task} on {cfg.data.dataset} | "
              f"{trainer.total_steps} steps of batch {cfg.train.batch_size} | device {trainer.device}"
              + (f" x {trainer.dist.world_size} ranks" if trainer.dist.enabled else ""), flush=True)
        for notice in trainer.task.notices:
            print(f"notice: {notice}", flush=True)
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
        return 128 + (trainer.stop_signal or signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    return 0
