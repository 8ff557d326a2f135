"""``archzoo predict RUN_DIR INPUT...``: classify user images (top-3 probabilities) or, with a
sentence-classification run, sentences (the label and its probability)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files or sentences with a trained run",
                       description="Images: any size or colour; dark-on-light images are inverted automatically. "
                       "Sentences (a sentence_classification run): e.g. "
                       "`archzoo predict RUN \"the film is a delight\"`.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("images", nargs="+", metavar="INPUT", help="image files, or sentences for a sentence classifier")
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
    if cfg.task == "sentence_classification":
        return predict_sentences(model, cfg, args.images)
    if cfg.task != "classification":
        raise UserError(f"{args.run_dir} is a {cfg.task} run; predict classifies images with a classification run "
                        "and sentences with a sentence_classification run")
    args.images = [Path(p) for p in args.images]
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


def predict_sentences(model: Any, cfg: Any, sentences: list[str]) -> int:
    """Print each sentence with its predicted label and that label's probability."""
    import torch

    from archzoo.tasks.sentence_classification import SentenceClassification

    task = SentenceClassification(cfg.data)
    with torch.no_grad():
        probs = model(task.encode(sentences)).float().softmax(-1)
    for sentence, p in zip(sentences, probs, strict=True):
        value, index = p.max(0)
        print(f"{sentence}\t{task.classes[int(index)]} {float(value):.3f}")
    return 0
