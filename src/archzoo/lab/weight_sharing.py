"""weight-sharing: test accuracy against parameter count for CNNs and MLPs of several widths on MNIST and
Fashion-MNIST (a Pareto plot), and the parameter count each family needs to reach a given accuracy."""

from __future__ import annotations

import math
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
)
from archzoo.lab.runner import run_training
from archzoo.lab.vision import DATASET_NAMES, classification_run
from archzoo.models import create_model

CNN_WIDTHS = (2, 4, 8, 16, 32)  # simple_cnn with channels (w, 2w) and hidden 4w
MLP_WIDTHS = (8, 32, 128, 512, 2048)  # mlp with one hidden layer of this many units
FAMILIES = {"cnn": "CNN (simple_cnn)", "mlp": "MLP (one hidden layer)"}
LEVELS = {"mnist": (0.95, 0.97, 0.98, 0.99), "fashion-mnist": (0.80, 0.85, 0.88, 0.90)}
MARGIN = 0.005  # the verdict's accuracy level: the lower of the two families' best, less half a point
FAR_FEWER = 5.0


def model_of(family: str, width: int) -> tuple[str, dict[str, Any]]:
    if family == "cnn":
        return "simple_cnn", {"channels": [width, 2 * width], "hidden": 4 * width, "dropout": 0.0}
    return "mlp", {"hidden_sizes": [width], "dropout": 0.0}


def parameters(family: str, width: int) -> int:
    name, args = model_of(family, width)
    return count_parameters(create_model(name, **args))


def params_needed(points: list[tuple[int, float]], level: float) -> int | None:
    """The fewest parameters among (parameters, mean accuracy) points whose accuracy reaches ``level``."""
    reached = [p for p, acc in points if acc >= level]
    return min(reached) if reached else None


@register_experiment
class WeightSharing(Experiment):
    name = "weight-sharing"
    title = "Does weight sharing let a CNN reach an accuracy with far fewer parameters than an MLP?"
    quick_seeds = 1
    full_minutes = "9.2 min measured for 3 seeds on one thread of this project's shared 2-core machine (load 0.1-2)"
    claims = (
        Claim("cnn-needs-fewer-parameters",
              "Weight sharing lets a CNN use far fewer parameters than a fully connected network. (The articles; "
              "\"Convolution leverages three important ideas that can help improve a machine learning system: "
              "sparse interactions, parameter sharing and equivariant representations.\")",
              "the articles behind archzoo; Goodfellow, Bengio & Courville 2016, \"Deep Learning\", MIT Press, "
              "Sec. 9.2; LeCun, Bottou, Bengio & Haffner 1998, Proc. IEEE 86(11), Sec. II.",
              f"per dataset, the level is the lower of the two families' best mean test accuracy less "
              f"{MARGIN * 100:.1f} points, and each family's need is the parameter count of its smallest model "
              f"whose mean accuracy over seeds reaches that level: supported if the MLP needs at least "
              f"{FAR_FEWER:g}x the CNN's parameters on both MNIST and Fashion-MNIST; refuted if it needs no more "
              f"than the CNN on both; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 200 if quick else 430  # 430 steps of 128 = one epoch of the 55,000 training images

    def setup(self, quick: bool) -> str:
        cnn = ", ".join(f"{w}/{2 * w}/{4 * w} ({parameters('cnn', w):,})" for w in CNN_WIDTHS)
        mlp = ", ".join(f"{w} ({parameters('mlp', w):,})" for w in MLP_WIDTHS)
        return (f"Two families on **MNIST** and **Fashion-MNIST** (28x28 greyscale, 55,000 training images, "
                f"5,000 held out for validation, the 10,000 test images): `simple_cnn` (conv 3x3 - ReLU - max-pool "
                f"twice, then a hidden fully connected layer) with channels/channels/hidden units {cnn} parameters, "
                f"and `mlp` with one hidden ReLU layer of {mlp} units (parameters). No dropout, no augmentation. "
                f"Each model is trained by the one Trainer for {self.steps(quick)} steps of batch 128 (Adam, lr "
                f"1e-3) and scored on the test split with its best-on-validation weights. The Pareto plot draws "
                f"test accuracy against parameter count; the tables give the parameters each family needs to "
                f"reach fixed accuracy levels (its smallest model whose mean accuracy over seeds reaches the level).")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"dataset": d, "family": f, "width": w, "steps": self.steps(quick)}, s,
                     f"{f} width {w} {d}")
                for s in seeds for d in DATASET_NAMES for f, widths in (("cnn", CNN_WIDTHS), ("mlp", MLP_WIDTHS))
                for w in widths]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        name, args = model_of(c["family"], c["width"])
        result = run_training(classification_run(c["dataset"], name, args, steps=c["steps"], seed=cell.seed),
                              work_dir, data_dir)
        return {"test_accuracy": result.test["accuracy"], "parameters": parameters(c["family"], c["width"]),
                "train_seconds": result.train_seconds}

    # -- analysis ---------------------------------------------------------------------------------
    def _points(self, results: list[CellResult]) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
        """(dataset, family) -> (parameters, mean accuracy, std) per width, by parameters."""
        out: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
        for (dataset, family, _), runs in group(results, "dataset", "family", "width").items():
            accs = [r.result["test_accuracy"] for r in runs]
            out.setdefault((dataset, family), []).append((runs[0].result["parameters"], mean(accs), std(accs)))
        return {k: sorted(v) for k, v in out.items()}

    def _needs(self, results: list[CellResult]) -> dict[str, dict[str, Any]]:
        points = self._points(results)
        out = {}
        for dataset in DATASET_NAMES:
            if (dataset, "cnn") not in points:
                continue
            best = {f: max(acc for _, acc, _ in points[(dataset, f)]) for f in FAMILIES}
            level = min(best.values()) - MARGIN
            need = {f: params_needed([(p, a) for p, a, _ in points[(dataset, f)]], level) for f in FAMILIES}
            out[dataset] = {"level": level, "cnn": need["cnn"], "mlp": need["mlp"],
                            "ratio": need["mlp"] / need["cnn"] if need["cnn"] and need["mlp"] else math.nan}
        return out

    def tables(self, results: list[CellResult]) -> list[Table]:
        rows = []
        for (dataset, family, width), runs in group(results, "dataset", "family", "width").items():
            rows.append([DATASET_NAMES[dataset], FAMILIES[family], str(width), f"{runs[0].result['parameters']:,}",
                         mean_std([r.result["test_accuracy"] for r in runs], 2, 100),
                         f"{mean([r.result['train_seconds'] for r in runs]):.0f}"])
        points = self._points(results)
        need_rows = []
        for dataset in DATASET_NAMES:
            if (dataset, "cnn") not in points:
                continue
            for level in LEVELS[dataset]:
                need = {f: params_needed([(p, a) for p, a, _ in points[(dataset, f)]], level) for f in FAMILIES}
                ratio = f"{need['mlp'] / need['cnn']:.1f}x" if need["cnn"] and need["mlp"] else "—"
                need_rows.append([DATASET_NAMES[dataset], f"{level * 100:.0f}%",
                                  *(f"{need[f]:,}" if need[f] else "not reached" for f in FAMILIES), ratio])
        return [Table("Test accuracy (%) by model, mean ± std over seeds", ["dataset", "family", "width",
                                                                         "parameters", "test accuracy (%)",
                                                                         "training seconds"], rows),
                Table("Parameters needed to reach an accuracy level (smallest model whose mean accuracy reaches it)",
                      ["dataset", "level", "CNN", "MLP", "MLP / CNN"], need_rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        points = self._points(results)
        panels = []
        for dataset in DATASET_NAMES:
            if (dataset, "cnn") not in points:
                continue
            series = {FAMILIES[f]: ([p for p, _, _ in points[(dataset, f)]], [a * 100 for _, a, _ in points[(dataset, f)]],
                                    [s * 100 for _, _, s in points[(dataset, f)]]) for f in FAMILIES}
            panels.append(Panel(DATASET_NAMES[dataset], "parameters (log scale)", "test accuracy (%)", series, logx=True))
        path = plot_panels(panels, out_dir / "pareto.png", "Test accuracy against parameter count (mean ± std over seeds)")
        return [Figure(path, "Each point is one width of a family; a curve further left reaches the same accuracy "
                             "with fewer parameters.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        needs = self._needs(results)
        numbers: dict[str, Any] = {}
        for dataset, n in needs.items():
            numbers[f"{dataset} level"] = round(n["level"], 4)
            numbers[f"{dataset} CNN parameters"] = n["cnn"]
            numbers[f"{dataset} MLP parameters"] = n["mlp"]
            numbers[f"{dataset} MLP/CNN"] = round(n["ratio"], 2)
        ratios = [n["ratio"] for n in needs.values()]
        if all(r >= FAR_FEWER for r in ratios):
            return [Verdict("cnn-needs-fewer-parameters", "supported", numbers,
                            f"to reach the same accuracy the MLP needs {min(ratios):.0f}x or more the CNN's parameters "
                            "on both datasets.")]
        if all(r <= 1 for r in ratios):
            return [Verdict("cnn-needs-fewer-parameters", "refuted", numbers,
                            "the MLP reaches the level with no more parameters than the CNN on both datasets.")]
        return [Verdict("cnn-needs-fewer-parameters", "depends", numbers,
                        "the MLP needs " + " and ".join(f"{r:.1f}x" for r in ratios) + " the CNN's parameters "
                        f"(MNIST, Fashion-MNIST); the rule asks for {FAR_FEWER:g}x on both for supported.")]
