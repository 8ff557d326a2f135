"""``archzoo predict RUN_DIR IMAGE...``: classify user images with top-3 probabilities."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files with a trained run",
                       description="Any size or colour; dark-on-light images are inverted automatically.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=3, help="how many classes to show (default 3)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from archzoo.data.images import load_user_image
    from archzoo.data.sources import DATASETS
    from archzoo.errors import UserError
    from archzoo.tasks.classification import normalise
    from archzoo.training.checkpoint import load_model

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    model, cfg = load_model(args.run_dir)
    if cfg.task != "classification":
        raise UserError(f"{args.run_dir} is a {cfg.task} run; predict classifies images with a classification run")
    spec = DATASETS.get(cfg.data.dataset)
    classes = list(spec.meta["classes"])
    top = min(args.top, len(classes))
    c, size, _ = model.input_shape
    photo = spec.meta.get("format") == "cifar10-binary"  # photographs, not centred digits or garments
    batch = torch.stack([load_user_image(path, c, size, photo) for path in args.images])
    x = normalise(batch * 255.0, spec.meta["mean"], spec.meta["std"])  # type: ignore[arg-type]
    with torch.no_grad():
        probs = model(x).float().softmax(-1)
    for path, p in zip(args.images, probs, strict=True):
        values, indices = p.topk(top)
        ranked = "  ".join(f"{classes[i]} {v:.3f}" for v, i in zip(values.tolist(), indices.tolist(), strict=True))
        print(f"{path}\t{ranked}")
    return 0
