"""depth-and-residuals: plain-20/56 against ResNet-20/56 on Fashion-MNIST: training and test error
curves (He et al. 2016, fig. 1 and 6): with depth, does the plain network's *training* error rise, and do
shortcuts prevent it?"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archzoo.lab.base import (
    Cell,
    CellResult,
    Claim,
    Experiment,
    Figure,
    Table,
    Verdict,
    count_parameters,
    group,
    mean,
    mean_std,
    register_experiment,
    std,
    trained_precision,
)
from archzoo.lab.runner import run_training
from archzoo.lab.vision import ErrorCurve, classification_run
from archzoo.models import create_model

MODELS = ("plain20", "plain56", "resnet20", "resnet56")
LABELS = {"plain20": "plain-20", "plain56": "plain-56", "resnet20": "ResNet-20", "resnet56": "ResNet-56"}
GAP = 0.01  # one point of training error
PROBE_IMAGES = 1000


def final(r: CellResult, key: str) -> float:
    """The last probe's error (the end of training)."""
    return r.result["curve"][-1][key]


@register_experiment
class DepthAndResiduals(Experiment):
    name = "depth-and-residuals"
    title = "Does a deeper plain network train worse, and do residual connections fix it? Plain vs ResNet, 20 and 56"
    quick_seeds = 1
    full_minutes = "72 min with --jobs 2 on this project's shared 2-core machine (128 min of compute on one thread per cell)"
    claims = (
        Claim("deeper-plain-trains-worse",
              "When deeper networks are able to start converging, a degradation problem has been exposed: with the "
              "network depth increasing, accuracy gets saturated and then degrades rapidly. Unexpectedly, such "
              "degradation is not caused by overfitting, and adding more layers to a suitably deep model leads to "
              "higher training error.",
              "He, Zhang, Ren & Sun 2016, \"Deep Residual Learning for Image Recognition\", CVPR, arXiv:1512.03385, "
              "Sec. 1 and fig. 1 and 6 (plain-20 to plain-56 on CIFAR-10).",
              f"training error on a fixed set of training images ({PROBE_IMAGES}; 500 in quick mode) at the end of "
              f"training, mean over "
              f"seeds: supported if plain-56's exceeds plain-20's by at least {GAP * 100:.0f} point; refuted if it is "
              f"lower than plain-20's; depends otherwise."),
        Claim("residuals-let-deep-train",
              "We present a residual learning framework to ease the training of networks that are substantially "
              "deeper than those used previously.",
              "He, Zhang, Ren & Sun 2016, arXiv:1512.03385, abstract and fig. 6 (ResNet-56 trains to a lower error "
              "than ResNet-20).",
              f"final training error as above: supported if ResNet-56's is at least {GAP * 100:.0f} point below "
              f"plain-56's and no more than {GAP * 100:.0f} point above ResNet-20's; refuted if ResNet-56's is not "
              f"below plain-56's; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        # full: 4 epochs of 430 steps, what 3 seeds of the four networks allow in about 90 min on 2 cores of an
        # AVX-512 bf16 CPU (bf16 autocast)
        # (He et al. train 64k steps; their degradation shows from the first epochs on, fig. 1 and 6)
        return 100 if quick else 1720

    def batch(self, quick: bool) -> int:
        return 64 if quick else 128

    def probe_every(self, quick: bool) -> int:
        return 25 if quick else 215

    def probe_images(self, quick: bool) -> int:
        return 500 if quick else PROBE_IMAGES

    def setup(self, quick: bool) -> str:
        sizes = ", ".join(f"{LABELS[m]} {count_parameters(create_model(m)):,}" for m in MODELS)
        return (f"Fashion-MNIST. The four CIFAR-style networks of He et al. (Sec. 4.2; parameters: {sizes}): "
                f"`plain20`/`plain56` are `resnet20`/`resnet56` with every shortcut removed, nothing else changed. "
                f"The fashion-resnet20 preset's recipe for all four: SGD with Nesterov momentum 0.9, lr 0.1, weight "
                f"decay 5e-4, cosine schedule, random crops (padding 2) and flips, channels-last, precision `auto` "
                f"(bf16 autocast where the CPU multiplies bf16 natively, fp32 where it would only emulate it; the "
                f"table names what each network trained in); "
                f"batch {self.batch(quick)}, {self.steps(quick)} steps. Every {self.probe_every(quick)} steps the "
                f"error on fixed sets of {self.probe_images(quick)} training and {self.probe_images(quick)} test "
                f"images (eval mode, no "
                f"augmentation) is probed: the *training* error is what He et al.'s degradation is about."
                + (" The quick grid is a cold start of 100 steps at lr 0.1 with no warm-up (He et al. train 64k "
                   "steps and warm up their deepest network at lr 0.01): a network still near 90% error (chance) at "
                   "its end has not begun to learn, and the verdicts read that, not the end of training."
                   if quick else
                   " The budget is 4 epochs (the preset trains 40; He et al. train CIFAR-10 for 64k steps of batch "
                   "128, about 160 epochs): the comparison is of how far each network gets in the same short "
                   "budget, where He et al.'s fig. 1 and 6 already separate the curves."))

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"model": m, "steps": self.steps(quick), "batch": self.batch(quick), "precision": "auto",
                      "probe_every": self.probe_every(quick), "probe_images": self.probe_images(quick)}, s, LABELS[m])
                for s in seeds for m in MODELS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        curve = ErrorCurve(c["probe_every"], c["probe_images"])
        run = classification_run("fashion-mnist", c["model"], {}, steps=c["steps"], seed=cell.seed,
                                 batch_size=c["batch"], optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                                 weight_decay=5e-4, schedule="cosine", augment="crop+flip", shift_pixels=2,
                                 precision=c["precision"], channels_last=True)
        result = run_training(run, work_dir, data_dir, on_step=curve)
        return {"curve": curve.points, "test_accuracy": result.test["accuracy"], "train_seconds": result.train_seconds,
                "precision": result.precision}

    # -- analysis ---------------------------------------------------------------------------------
    def _final(self, results: list[CellResult], key: str) -> dict[str, float]:
        return {m: mean([final(r, key) for r in runs]) for (m,), runs in group(results, "model").items()}

    def tables(self, results: list[CellResult]) -> list[Table]:
        rows = []
        for (m,), runs in group(results, "model").items():
            rows.append([LABELS[m], f"{count_parameters(create_model(m)):,}",
                         mean_std([final(r, "train_error") for r in runs], 2, 100),
                         mean_std([final(r, "test_error") for r in runs], 2, 100),
                         mean_std([1 - r.result["test_accuracy"] for r in runs], 2, 100),
                         f"{mean([r.result['train_seconds'] for r in runs]):.0f}",
                         "/".join(sorted({trained_precision(r) for r in runs}))])
        return [Table("Error (%) at the end of training, mean ± std over seeds",
                      ["network", "parameters", "training error (probe set)", "test error (probe set)",
                       "test error (10,000 images, best-on-validation weights)", "training seconds", "precision"],
                      rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        panels = []
        for key, what in (("train_error", "training error (%)"), ("test_error", "test error (%)")):
            series = {}
            for (m,), runs in group(results, "model").items():
                steps = [p["step"] for p in runs[0].result["curve"]]
                vals = [[r.result["curve"][k][key] * 100 for r in runs] for k in range(len(steps))]
                series[LABELS[m]] = (steps, [mean(v) for v in vals], [std(v) for v in vals] if len(runs) > 1 else None)
            panels.append(Panel(what, "step", what, series, logy=False))
        path = plot_panels(panels, out_dir / "error-curves.png", "Plain and residual networks of depth 20 and 56 on "
                                                                 "Fashion-MNIST (He et al. fig. 1 and 6)")
        return [Figure(path, "Left: training error on a fixed probe set of training images; right: test error on a "
                             "fixed probe set of test images; mean (± std) over seeds.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        train = self._final(results, "train_error")
        numbers = {f"{LABELS[m]} training error": round(v, 4) for m, v in train.items()}
        rise = train["plain56"] - train["plain20"]
        if rise >= GAP:
            degrade = Verdict("deeper-plain-trains-worse", "supported", numbers,
                              f"plain-56 ends {rise * 100:.1f} points of training error above plain-20.")
        elif rise < 0:
            degrade = Verdict("deeper-plain-trains-worse", "refuted", numbers,
                              f"plain-56 ends {-rise * 100:.1f} points of training error below plain-20.")
        else:
            degrade = Verdict("deeper-plain-trains-worse", "depends", numbers,
                              f"plain-56 ends only {rise * 100:.1f} points above plain-20 (the rule asks for "
                              f"{GAP * 100:.0f}).")
        below_plain = train["plain56"] - train["resnet56"]
        above_20 = train["resnet56"] - train["resnet20"]
        if below_plain >= GAP and above_20 <= GAP:
            residual = Verdict("residuals-let-deep-train", "supported", numbers,
                               f"ResNet-56 ends {below_plain * 100:.1f} points below plain-56 and "
                               f"{above_20 * 100:+.1f} points from ResNet-20.")
        elif below_plain <= 0:
            residual = Verdict("residuals-let-deep-train", "refuted", numbers,
                               "ResNet-56 ends with no lower training error than plain-56.")
        else:
            residual = Verdict("residuals-let-deep-train", "depends", numbers,
                               f"ResNet-56 ends {below_plain * 100:.1f} points below plain-56 and "
                               f"{above_20 * 100:+.1f} points from ResNet-20 (the rule asks for >= {GAP * 100:.0f} "
                               f"below plain-56 and <= {GAP * 100:.0f} above ResNet-20).")
        return [degrade, residual]
