"""regularisation: one mid-size CNN on Fashion-MNIST with a full recipe (dropout, batch norm, shift and flip
augmentation, weight decay, cosine schedule with warm-up), each part switched off in turn (and the schedule
replaced by a constant or a step one): test accuracy and the train-test gap."""

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
    group,
    mean,
    mean_std,
    register_experiment,
    std,
)
from archzoo.lab.runner import run_training
from archzoo.lab.vision import ErrorCurve, classification_run

VARIANTS = {  # key -> what changes from the full recipe
    "full": "full recipe",
    "no-dropout": "without dropout",
    "no-batchnorm": "without batch norm",
    "no-augmentation": "without augmentation",
    "no-weight-decay": "without weight decay",
    "constant-lr": "constant learning rate (no schedule)",
    "step-lr": "step schedule (x0.1 at 50% and 75% of the steps)",
}
TECHNIQUES = {"no-dropout": "dropout", "no-batchnorm": "batch norm", "no-augmentation": "augmentation",
              "no-weight-decay": "weight decay", "constant-lr": "cosine schedule with warm-up"}
MIN_GAIN = 0.002  # a technique helps if removing it costs more than this (and 2 std of the full recipe)
PROBE_IMAGES = 2000


def recipe(variant: str, steps: int, seed: int) -> dict[str, Any]:
    """The full recipe's run config with ``variant``'s one change."""
    args = {"channels": [16, 32], "hidden": 128, "dropout": 0.0 if variant == "no-dropout" else 0.3,
            "batch_norm": variant != "no-batchnorm"}
    schedule: dict[str, Any] = {"schedule": "cosine", "warmup_steps": steps // 20}
    if variant == "constant-lr":
        schedule = {"schedule": "constant"}
    elif variant == "step-lr":
        schedule = {"schedule": "multistep", "milestones": [steps // 2, 3 * steps // 4], "gamma": 0.1}
    return classification_run("fashion-mnist", "simple_cnn", args, steps=steps, seed=seed, optimizer="adamw", lr=2e-3,
                              weight_decay=0.0 if variant == "no-weight-decay" else 0.05,
                              augment="none" if variant == "no-augmentation" else "shift+flip", shift_pixels=2,
                              **schedule)


@register_experiment
class Regularisation(Experiment):
    name = "regularisation"
    title = "Do dropout, batch norm, augmentation, weight decay and a schedule each improve generalisation? Ablations"
    quick_seeds = 1
    full_minutes = ("55 min wall measured with --jobs 2 --threads 1 on this project's shared 2-core machine (107 min "
                    "of compute, load 2-4)")
    claims = (
        Claim("each-technique-helps",
              "We show that dropout improves the performance of neural networks on supervised learning tasks in "
              "vision, speech recognition, document classification and computational biology. (Batch "
              "normalization) also acts as a regularizer, in some cases eliminating the need for Dropout.",
              "Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, \"Dropout: A Simple Way to Prevent "
              "Neural Networks from Overfitting\", JMLR 15, abstract; Ioffe & Szegedy 2015, arXiv:1502.03167, "
              "abstract; the articles: \"dropout, batch normalisation, data augmentation and learning-rate "
              "schedules improve generalisation\".",
              f"a technique helps if switching it off from the full recipe lowers the mean test accuracy over seeds "
              f"by more than {MIN_GAIN * 100:.1f} points and more than twice the full recipe's std over seeds (for "
              f"the schedule: cosine with warm-up against a constant rate): supported if all five help; refuted if "
              f"none does; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 300 if quick else 4300  # full: 10 epochs of 430 steps

    def setup(self, quick: bool) -> str:
        return (f"Fashion-MNIST, one mid-size CNN: `simple_cnn` with channels 16 and 32, a hidden layer of 128 "
                f"(about 0.2 M parameters). Full recipe: dropout 0.3 before the output layer, batch norm after each "
                f"convolution, random shifts of up to 2 pixels and left-right flips, AdamW (lr 2e-3, decoupled "
                f"weight decay 0.05), cosine schedule after a warm-up of 5% of the steps; batch 128, "
                f"{self.steps(quick)} steps, best-on-validation weights for the test. Each variant changes one "
                f"thing ({', '.join(VARIANTS.values())}). The train-test gap is the error on a fixed set of "
                f"{PROBE_IMAGES} test images minus the error on {PROBE_IMAGES} training images (no augmentation, "
                f"eval mode) at the last step.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"variant": v, "steps": self.steps(quick)}, s, v) for s in seeds for v in VARIANTS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        steps = cell.config["steps"]
        curve = ErrorCurve(steps, PROBE_IMAGES)
        result = run_training(recipe(cell.config["variant"], steps, cell.seed), work_dir, data_dir, on_step=curve)
        last = curve.points[-1]
        return {"test_accuracy": result.test["accuracy"], "train_error": last["train_error"],
                "test_error": last["test_error"], "gap": last["test_error"] - last["train_error"],
                "train_seconds": result.train_seconds}

    def _gains(self, results: list[CellResult]) -> dict[str, float]:
        acc = {v: mean([r.result["test_accuracy"] for r in runs]) for (v,), runs in group(results, "variant").items()}
        return {v: acc["full"] - acc[v] for v in TECHNIQUES}

    def tables(self, results: list[CellResult]) -> list[Table]:
        gains = self._gains(results)
        rows = []
        for (v,), runs in group(results, "variant").items():
            rows.append([VARIANTS[v], mean_std([r.result["test_accuracy"] for r in runs], 2, 100),
                         f"{gains[v] * 100:+.2f}" if v in gains else "—",
                         mean_std([r.result["train_error"] for r in runs], 2, 100),
                         mean_std([r.result["gap"] for r in runs], 2, 100),
                         f"{mean([r.result['train_seconds'] for r in runs]):.0f}"])
        return [Table("Test accuracy and train-test gap, mean ± std over seeds",
                      ["variant", "test accuracy (%)", "cost of removing it (points)", "training error (%)",
                       "test - training error (points)", "training seconds"], rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import _pyplot

        plt = _pyplot()
        groups = group(results, "variant")
        labels = [VARIANTS[v] for (v,) in groups]
        accs = [mean([r.result["test_accuracy"] * 100 for r in runs]) for runs in groups.values()]
        errs = [std([r.result["test_accuracy"] * 100 for r in runs]) for runs in groups.values()]
        gaps = [mean([r.result["gap"] * 100 for r in runs]) for runs in groups.values()]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        left.barh(labels, accs, xerr=errs, color="tab:blue")
        left.set_xlim(min(accs) - 2, max(accs) + 1)
        left.set_xlabel("test accuracy (%)")
        right.barh(labels, gaps, color="tab:orange")
        right.set_xlabel("test error - training error (points)")
        left.invert_yaxis()
        for ax in (left, right):
            ax.grid(alpha=0.3, axis="x")
        fig.suptitle("One CNN on Fashion-MNIST, one part of the recipe changed at a time", fontsize=11)
        fig.tight_layout()
        path = out_dir / "ablations.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [Figure(path, "Left: test accuracy (± std over seeds); right: the train-test gap.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        gains = self._gains(results)
        full_std = std([r.result["test_accuracy"] for r in results if r.config["variant"] == "full"])
        bar = max(MIN_GAIN, 2 * full_std)
        helps = {TECHNIQUES[v]: g > bar for v, g in gains.items()}
        numbers: dict[str, Any] = {f"cost of removing {TECHNIQUES[v]}": round(g, 4) for v, g in gains.items()}
        numbers["bar"] = round(bar, 4)
        helping = [t for t, h in helps.items() if h]
        if len(helping) == len(helps):
            return [Verdict("each-technique-helps", "supported", numbers,
                            "switching off any one of the five techniques lowers the test accuracy by more than the bar.")]
        if not helping:
            return [Verdict("each-technique-helps", "refuted", numbers,
                            "switching off none of the five techniques lowers the test accuracy by more than the bar.")]
        return [Verdict("each-technique-helps", "depends", numbers,
                        f"{', '.join(helping)} help{'s' if len(helping) == 1 else ''} here; "
                        f"{', '.join(t for t, h in helps.items() if not h)} do not clear the bar.")]
