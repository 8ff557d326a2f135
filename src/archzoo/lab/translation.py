"""translation-invariance: accuracy against shift (0-8 pixels, along both axes and the diagonals, with
background padding) for a CNN with global average pooling, a CNN with a flatten head and an MLP, trained
on centred MNIST digits, then again with shift augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from archzoo.lab.base import (
    Cell,
    CellResult,
    Claim,
    Experiment,
    Figure,
    Table,
    Verdict,
    group,
    mean,
    register_experiment,
    std,
)
from archzoo.lab.runner import run_training
from archzoo.lab.vision import DIRECTIONS, classification_run, error_rate, fixed_subset, shift_images

MODELS = {  # key -> (label, model, args)
    "cnn-gap": ("CNN, global average pooling head", "simple_cnn", {"head": "global_avg", "dropout": 0.0}),
    "cnn-flatten": ("CNN, flatten head", "simple_cnn", {"dropout": 0.0}),
    "mlp": ("MLP (800-800)", "mlp", {"hidden_sizes": [800, 800], "dropout": 0.0}),
}
AUGMENTS = {"none": "centred training images", "shift": "trained with random shifts of up to 4 pixels"}
TRAIN_SHIFT = 4
MAX_SHIFT = 8
PROBE = 4  # the verdict reads the retention at this shift
INVARIANT = 0.9  # keeps at least this fraction of its unshifted accuracy
USEFUL = 0.9  # unshifted accuracy a CNN needs for its retention to count as invariance
ARCHITECTURE_GAIN = 0.1  # retention points above the MLP's that count as "the architecture gives invariance"


def shifted_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fill: float) -> list[float]:
    """Accuracy at shifts 0..MAX_SHIFT pixels: at d > 0 the mean over the eight directions (left, right,
    up, down and the four diagonals, d pixels along each axis moved)."""
    out = [1 - error_rate(model, x, y)]
    for d in range(1, MAX_SHIFT + 1):
        out.append(mean([1 - error_rate(model, shift_images(x, dy * d, dx * d, fill), y) for dy, dx in DIRECTIONS]))
    return out


@register_experiment
class TranslationInvariance(Experiment):
    name = "translation-invariance"
    title = "Are CNNs translation invariant, and is it the architecture or the augmentation? Accuracy against shift"
    quick_seeds = 1
    full_minutes = "20 min measured for 3 seeds on one thread of this project's shared 2-core machine (load about 2)"
    claims = (
        Claim("pooling-gives-invariance",
              "In all cases, pooling helps to make the representation approximately invariant to small translations "
              "of the input.",
              "Goodfellow, Bengio & Courville 2016, \"Deep Learning\", MIT Press, Sec. 9.3 (the articles: "
              "\"pooling/convolution make CNNs translation invariant\").",
              f"retention = accuracy at a shift of {PROBE} pixels (mean over the eight directions) / unshifted "
              f"accuracy, mean over seeds, for models trained on centred images only: supported if both CNNs keep "
              f"at least {INVARIANT:.0%} and score at least {USEFUL:.0%} unshifted (a constant guess keeps all of "
              f"its accuracy); refuted if neither CNN's retention exceeds the MLP's by "
              f"{ARCHITECTURE_GAIN * 100:.0f} points or more; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 200 if quick else 430

    def test_images(self, quick: bool) -> int:
        return 1000 if quick else 2000

    def setup(self, quick: bool) -> str:
        models = "; ".join(f"**{label}** (`{m}` {args})" for label, m, args in MODELS.values())
        return (f"MNIST. Three models: {models}. The two CNNs differ only in the head: the flatten head feeds the "
                f"7x7x64 feature map to the hidden layer position by position; the global-average head averages it "
                f"over space first, so the head cannot see where a feature was. Each is trained by the one Trainer "
                f"for {self.steps(quick)} steps of batch 128 (Adam, lr 1e-3), once on the centred training images "
                f"and once with `data.augment = \"shift\"` (every training image moved by a random offset of up to "
                f"{TRAIN_SHIFT} pixels along each axis, background filled in). The test: a fixed set of "
                f"{self.test_images(quick)} test images, each shifted exactly by d = 0..{MAX_SHIFT} pixels in eight "
                f"directions (right, left, down, up and the four diagonals, which move d pixels along both axes), "
                f"the uncovered border filled with background (black) and the pixels pushed out lost; accuracy at d "
                f"is the mean over the directions. *How much comes from the architecture and how much from the "
                f"augmentation*: at each shift, the architecture's share is the CNN's gain over the MLP without "
                f"augmentation, and the augmentation's share is what shift augmentation adds to the CNN.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"model": m, "augment": a, "steps": self.steps(quick), "test_images": self.test_images(quick)},
                     s, f"{m} augment={a}") for s in seeds for a in AUGMENTS for m in MODELS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        from archzoo.tasks import TASKS
        from archzoo.tasks.classification import normalise
        from archzoo.training.checkpoint import load_model

        c = cell.config
        _, name, args = MODELS[c["model"]]
        run = classification_run("mnist", name, args, steps=c["steps"], seed=cell.seed, augment=c["augment"],
                                 shift_pixels=TRAIN_SHIFT)
        result = run_training(run, work_dir, data_dir)
        model, cfg = load_model(work_dir)
        task = TASKS.get("classification")(cfg.data, data_dir)
        x, y = fixed_subset(*task.split("test"), c["test_images"])
        fill = float(normalise(torch.zeros(1, dtype=torch.uint8), task.mean, task.std))
        return {"accuracy_by_shift": shifted_accuracy(model, x, y, fill), "test_accuracy": result.test["accuracy"]}

    # -- analysis ---------------------------------------------------------------------------------
    def _curves(self, results: list[CellResult]) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
        """(model, augment) -> mean and std over seeds of the accuracy at each shift."""
        out = {}
        for (model, augment), runs in group(results, "model", "augment").items():
            curves = [r.result["accuracy_by_shift"] for r in runs]
            out[(model, augment)] = ([mean([c[d] for c in curves]) for d in range(MAX_SHIFT + 1)],
                                     [std([c[d] for c in curves]) for d in range(MAX_SHIFT + 1)])
        return out

    def _retention(self, results: list[CellResult]) -> dict[tuple[str, str], float]:
        return {k: m[PROBE] / m[0] for k, (m, _) in self._curves(results).items()}

    def tables(self, results: list[CellResult]) -> list[Table]:
        curves = self._curves(results)
        rows = [[MODELS[m][0], AUGMENTS[a]] + [f"{mu[d] * 100:.1f}" + (f" ± {sd[d] * 100:.1f}" if len(results) > 6 else "")
                                               for d in range(MAX_SHIFT + 1)]
                for (m, a), (mu, sd) in curves.items()]
        share = []
        for cnn in ("cnn-gap", "cnn-flatten"):
            for d in (2, PROBE, 6, MAX_SHIFT):
                arch = curves[(cnn, "none")][0][d] - curves[("mlp", "none")][0][d]
                aug = curves[(cnn, "shift")][0][d] - curves[(cnn, "none")][0][d]
                total = arch + aug
                share.append([MODELS[cnn][0], str(d), f"{arch * 100:+.1f}", f"{aug * 100:+.1f}",
                              f"{curves[(cnn, 'shift')][0][d] * 100:.1f}",
                              f"{arch / total:.0%}" if total > 0.005 else "—"])
        return [Table("Accuracy (%) against shift d in pixels (mean over directions and seeds)",
                      ["model", "training", *(f"d={d}" for d in range(MAX_SHIFT + 1))], rows),
                Table("Where the accuracy on shifted digits comes from (points of accuracy, means over seeds)",
                      ["CNN", "shift d", "architecture: CNN - MLP, no augmentation", "augmentation: CNN with - "
                       "without", "CNN with augmentation", "architecture's share"], share)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        curves = self._curves(results)
        panels = [Panel(AUGMENTS[a], "shift d (pixels)", "test accuracy (%)",
                        {MODELS[m][0]: (list(range(MAX_SHIFT + 1)), [v * 100 for v in curves[(m, a)][0]],
                                        [v * 100 for v in curves[(m, a)][1]]) for m in MODELS},
                        hlines={"chance": 10.0}) for a in AUGMENTS]
        path = plot_panels(panels, out_dir / "accuracy-by-shift.png", "MNIST test accuracy against an exact shift "
                                                                       "of the test images")
        return [Figure(path, f"Left: trained on centred digits; right: trained with random shifts of up to "
                             f"{TRAIN_SHIFT} pixels. Bands: ± std over seeds.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        keep = self._retention(results)
        numbers = {f"retention at {PROBE} px, {m} (no augmentation)": round(keep[(m, "none")], 3) for m in MODELS}
        numbers.update({f"retention at {PROBE} px, {m} (shift augmentation)": round(keep[(m, "shift")], 3)
                        for m in MODELS})
        cnns = [keep[(m, "none")] for m in ("cnn-gap", "cnn-flatten")]
        unshifted = [self._curves(results)[(m, "none")][0][0] for m in ("cnn-gap", "cnn-flatten")]
        numbers.update({f"unshifted accuracy, {m} (no augmentation)": round(a, 4)
                        for m, a in zip(("cnn-gap", "cnn-flatten"), unshifted, strict=True)})
        if all(v >= INVARIANT for v in cnns) and all(a >= USEFUL for a in unshifted):
            return [Verdict("pooling-gives-invariance", "supported", numbers,
                            f"both CNNs trained on centred digits keep at least {INVARIANT:.0%} of their accuracy "
                            f"at a {PROBE}-pixel shift.")]
        if all(v < keep[("mlp", "none")] + ARCHITECTURE_GAIN for v in cnns):
            return [Verdict("pooling-gives-invariance", "refuted", numbers,
                            f"neither CNN keeps {ARCHITECTURE_GAIN * 100:.0f} points more of its accuracy than the "
                            f"MLP at a {PROBE}-pixel shift.")]
        return [Verdict("pooling-gives-invariance", "depends", numbers,
                        f"at a {PROBE}-pixel shift the global-pooling CNN keeps {cnns[0]:.0%} of its "
                        f"{unshifted[0]:.1%} and the flatten-head CNN {cnns[1]:.0%} of its {unshifted[1]:.1%} (the MLP "
                        f"{keep[('mlp', 'none')]:.0%}): the invariance depends on the head, and the rule also asks for "
                        f"{USEFUL:.0%} unshifted accuracy.")]
