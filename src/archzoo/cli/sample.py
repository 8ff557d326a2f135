"""``archzoo sample RUN_DIR``: generate from a trained language model, streaming to stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate text (or names) from a trained language model",
                       description='e.g. archzoo sample RUN_DIR --prompt "ROMEO:" --tokens 500 --temperature 0.8 '
                                   "--top-k 40 --top-p 0.95 --seed 1")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--prompt", default="", help="text to continue (names: the first letters)")
    p.add_argument("--tokens", type=int, default=500, help="characters to generate (names: at most, per name)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--unknown", choices=["error", "skip"], default="error",
                   help="prompt characters outside the vocabulary: refuse (default) or drop them")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError
    from archzoo.tasks import TASKS
    from archzoo.training.checkpoint import load_model
    from archzoo.training.distributed import resolve_device

    model, cfg = load_model(args.run_dir)
    task = TASKS.get(cfg.task)(cfg.data, args.data_dir)
    if not hasattr(task, "sample"):
        raise UserError(f"{args.run_dir} is a {cfg.task} run; `archzoo sample` needs a generative model's run")
    model = model.to(resolve_device(args.device))
    result = task.sample(model, sys.stdout, prompt=args.prompt, tokens=args.tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, seed=args.seed, num_samples=args.num_samples,
                         unknown=args.unknown)
    if "new" in result:
        print(f"{result['new']} of {len(result['samples'])} are new (not in the training set)", file=sys.stderr)
    return 0
