"""``archzoo sample RUN_DIR``: generate from a trained model: text streamed to stdout from a language
model, or an image grid (or latent interpolation strip) from a GAN."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate text, names or images from a trained generative model",
                       description='e.g. archzoo sample RUN_DIR --prompt "ROMEO:" --tokens 500 --temperature 0.8 '
                                   "--top-k 40 --top-p 0.95 --seed 1; for a GAN run: archzoo sample RUN_DIR -n 64 "
                                   "--out grid.png [--class 3] [--interpolate]; for a Hopfield run: archzoo sample "
                                   "RUN_DIR --corrupt 0.3 [-n 8] [--out grid.png]")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--prompt", default="", help="text to continue (names: the first letters)")
    p.add_argument("--tokens", type=int, default=500, help="characters to generate (names: at most, per name)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", "--num-samples", type=int, help="texts or names (default 1); images (default 64)")
    p.add_argument("--out", type=Path, help="GAN: the PNG to write (default RUN_DIR/samples-seed<SEED>.png)")
    p.add_argument("--class", dest="class_index", type=int, help="GAN: the class to draw (conditional models)")
    p.add_argument("--interpolate", action="store_true",
                   help="GAN: one strip of -n images between two latent points")
    p.add_argument("--corrupt", type=float, metavar="FRACTION",
                   help="Hopfield: flip this fraction of each stored image's pixels and draw the recall step by step")
    p.add_argument("--occlude", action="store_true", help="Hopfield: erase the lower half of each stored image instead")
    p.add_argument("--unknown", choices=["error", "skip"], default="error",
                   help="prompt characters outside the vocabulary: refuse (default) or drop them")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError
    from archzoo.tasks import TASKS
    from archzoo.tasks.generation import ImageGeneration
    from archzoo.training.checkpoint import load_model
    from archzoo.training.distributed import resolve_device

    model, cfg = load_model(args.run_dir)
    task = TASKS.get(cfg.task)(cfg.data, args.data_dir)
    model = model.to(resolve_device(args.device))
    if isinstance(task, ImageGeneration):
        return sample_images(args, task, model)
    if hasattr(task, "recall_grid"):
        return sample_recall(args, task, model)
    if args.corrupt is not None or args.occlude:
        raise UserError(f"--corrupt and --occlude are for Hopfield (associative_memory) runs; {args.run_dir} is a {cfg.task} run")
    if args.out or args.class_index is not None or args.interpolate:
        raise UserError(f"--out, --class and --interpolate are for GAN runs; {args.run_dir} is a {cfg.task} run")
    if not hasattr(task, "sample"):
        raise UserError(f"{args.run_dir} is a {cfg.task} run; `archzoo sample` needs a generative model's run")
    result = task.sample(model, sys.stdout, prompt=args.prompt, tokens=args.tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                         num_samples=1 if args.num_samples is None else args.num_samples, unknown=args.unknown)
    if "new" in result:
        print(f"{result['new']} of {len(result['samples'])} are new (not in the training set)", file=sys.stderr)
    return 0


def sample_images(args: argparse.Namespace, task: Any, model: Any) -> int:
    """A GAN run: -n images (or an interpolation strip) into one PNG."""
    from archzoo.errors import UserError

    text_options = {"--prompt": args.prompt != "", "--tokens": args.tokens != 500, "--temperature": args.temperature != 1.0,
                    "--top-k": args.top_k is not None, "--top-p": args.top_p is not None}
    given = [name for name, set_ in text_options.items() if set_]
    if given:
        raise UserError(f"{', '.join(given)} apply to language models; {args.run_dir} is a GAN run "
                        "(use -n, --out, --class, --interpolate, --seed)")
    count = 64 if args.num_samples is None else args.num_samples
    out = args.out or (args.run_dir if args.run_dir.is_dir() else args.run_dir.parent) / f"samples-seed{args.seed}.png"
    task.sample_grid(model, out, count, seed=args.seed, class_index=args.class_index, interpolate=args.interpolate)
    print(f"wrote {out}")
    return 0


def sample_recall(args: argparse.Namespace, task: Any, model: Any) -> int:
    """A Hopfield run: stored images, their corrupted cues and every recall step, as one PNG."""
    from archzoo.errors import UserError

    if args.corrupt is None and not args.occlude:
        raise UserError(f"{args.run_dir} is a Hopfield run: say how to corrupt the stored images, e.g. --corrupt 0.3 "
                        "(flip 30% of the pixels) or --occlude (erase the lower half)")
    if args.corrupt is not None and not 0 <= args.corrupt <= 1:
        raise UserError(f"--corrupt is the fraction of pixels to flip, in [0, 1]; got {args.corrupt}")
    count = 8 if args.num_samples is None else args.num_samples
    if count < 1:
        raise UserError(f"-n must be >= 1, got {count}")
    what = "occluded" if args.occlude else f"corrupt{args.corrupt:g}"
    out = args.out or (args.run_dir if args.run_dir.is_dir() else args.run_dir.parent) / f"recall-{what}-seed{args.seed}.png"
    task.recall_grid(model, out, args.corrupt or 0.0, occluded=args.occlude, seed=args.seed, count=count)
    print(f"wrote {out}")
    return 0
