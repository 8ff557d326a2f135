"""GAN benchmarks of the GAN issue: classifier-feature FID of DCGAN against the MLP GAN on MNIST and
Fashion-MNIST, with precision/recall, the real-vs-real floor, mode coverage and the FID curve.

FID here is computed on the penultimate-layer features of an archzoo ``simple_cnn`` trained on the
same dataset, not on Inception features: the figures compare these generators with each other and
with the floor only, never with Inception-based FID from the literature.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from archzoo.benchmarks.base import register_benchmark
from archzoo.data.sources import DATASETS
from archzoo.tasks.generation import ImageGeneration
from archzoo.tasks.generation_metrics import ClassifierFeatures, compare_sets
from archzoo.training.checkpoint import load_model
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer

SAMPLES = 10_000  # generated images per FID (and real training images for the floor): the test set's size
CLASSIFIER_EPOCHS = 3


def fid_classifier(dataset: str, work_dir: Path) -> tuple[ClassifierFeatures, dict[str, Any]]:
    """The feature network: simple_cnn trained on ``dataset`` (preset mnist-simple_cnn's recipe, fewer
    epochs), trained once into ``work_dir/../fid-classifier-DATASET`` and reused from there."""
    run_dir = work_dir.parent / f"fid-classifier-{dataset}"
    start = time.perf_counter()
    if not (run_dir / "eval.json").exists():
        cfg = resolve_config("mnist-simple_cnn", [f"data.dataset={dataset!r}", f"train.epochs={CLASSIFIER_EPOCHS}"])
        Trainer(cfg, run_dir, progress=False, verbose=False, overwrite=True).fit()
    accuracy = json.loads((run_dir / "eval.json").read_text())["accuracy"]
    model, _ = load_model(run_dir)
    spec = DATASETS.get(dataset)
    features = ClassifierFeatures(model, float(spec.meta["mean"]), float(spec.meta["std"]))
    return features, {"run_dir": str(run_dir), "model": "simple_cnn", "test_accuracy": accuracy,
                      "seconds": round(time.perf_counter() - start, 1)}


def rounded(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v] if isinstance(v, list) else v)
            for k, v in scores.items()}


def train_gan(preset: str, work_dir: Path, features: ClassifierFeatures, test: torch.Tensor) -> dict[str, Any]:
    """Train ``preset``, scoring 10,000 samples against the test images at the end of every epoch."""
    cfg = resolve_config(preset, [])
    curve: list[dict[str, Any]] = []
    scoring = 0.0
    final: dict[str, Any] = {}

    def score(trainer: Trainer) -> None:
        nonlocal scoring, final
        if trainer.step % trainer.steps_per_epoch == 0:
            t0 = time.perf_counter()
            task: ImageGeneration = trainer.task  # type: ignore[assignment]
            final = compare_sets(features, test, task.generate(trainer.model, SAMPLES, seed=1), len(task.classes))
            curve.append({"step": trainer.step, "epoch": trainer.step // trainer.steps_per_epoch, "fid": final["fid"]})
            scoring += time.perf_counter() - t0

    start = time.perf_counter()
    result = Trainer(cfg, work_dir / preset, progress=False, verbose=False, overwrite=True, on_step=score).fit()
    wall = time.perf_counter() - start
    return {"preset": preset, **rounded(final), "steps": result.step, "status": result.status,
            "train_seconds_without_scoring": round(result.train_seconds - scoring, 1),
            "scoring_seconds": round(scoring, 1), "wall_seconds": round(wall, 1),
            "fid_curve": [{**c, "fid": round(c["fid"], 3)} for c in curve], "run_dir": str(work_dir / preset)}


def compare_gans(dataset: str, prefix: str, work_dir: Path) -> dict[str, Any]:
    """MLP GAN and DCGAN on one dataset: their FID ratio, both scores, the floor and the FID curves."""
    from archzoo.viz.plots import plot_curves

    features, classifier = fid_classifier(dataset, work_dir)
    task = ImageGeneration(ImageGeneration.Config(dataset=dataset, val_size=0))
    test = task.split("test")[0]
    train = task.split("train")[0]
    real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:SAMPLES]]
    floor = rounded(compare_sets(features, test, real, len(task.classes)))
    models = {name: train_gan(f"{prefix}-{name}", work_dir, features, test) for name in ("gan_mlp", "dcgan")}
    records = [{"step": c["step"], "split": name, "fid": c["fid"]} for name, m in models.items() for c in m["fid_curve"]]
    plot_curves(records, work_dir / "fid_curve.png")
    ratio = models["dcgan"]["fid"] / models["gan_mlp"]["fid"]
    return {"value": round(ratio, 4), "fid_gan_mlp": models["gan_mlp"]["fid"], "fid_dcgan": models["dcgan"]["fid"],
            "real_vs_real_floor": floor, "models": models, "classifier": classifier, "classes": task.classes,
            "fid_curve_plot": str(work_dir / "fid_curve.png"),
            "note": "FID on simple_cnn penultimate features, not Inception: comparable only within this table"}


@register_benchmark("mnist-gans", "dcgan_fid_over_gan_mlp_fid", 0.70, "<=",
                    "classifier-feature FID (simple_cnn trained on MNIST) of 10,000 samples against the 10,000 test "
                    "images, DCGAN (preset mnist-dcgan) over the MLP GAN (mnist-gan_mlp); also precision/recall "
                    "(k=3), the train-vs-test floor, DCGAN's class histogram and the FID after every epoch")
def mnist_gans(work_dir: Path) -> dict[str, Any]:
    result = compare_gans("mnist", "mnist", work_dir)
    histogram = result["models"]["dcgan"]["class_histogram"]
    result["dcgan_class_fractions_within_5_to_15_percent"] = all(0.05 <= f <= 0.15 for f in histogram)
    return result


@register_benchmark("fashion-gans", "dcgan_fid_over_gan_mlp_fid", 0.70, "<=",
                    "as mnist-gans on Fashion-MNIST (presets fashion-dcgan and fashion-gan_mlp; the feature network "
                    "is a simple_cnn trained on Fashion-MNIST)")
def fashion_gans(work_dir: Path) -> dict[str, Any]:
    return compare_gans("fashion-mnist", "fashion", work_dir)
