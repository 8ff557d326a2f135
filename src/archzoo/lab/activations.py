"""activations: ReLU against tanh against sigmoid in the same CNN and the same deep MLP on Fashion-MNIST:
steps and wall time to a fixed training-error level (AlexNet's fig. 1) and gradient norms per layer at
initialisation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import TrainingDiverged
from archzoo.lab.base import Cell, CellResult, Claim, Experiment, Figure, Table, Verdict, register_experiment
from archzoo.lab.runner import run_training
from archzoo.lab.vision import ErrorCurve, classification_run, fixed_subset
from archzoo.models import create_model

ACTIVATIONS = ("relu", "tanh", "sigmoid")
NETWORKS = {  # key -> (label, model, args)
    "cnn": ("CNN (simple_cnn 16-32-128, 4 layers)", "simple_cnn", {"channels": [16, 32], "hidden": 128, "dropout": 0.0}),
    "mlp": ("deep MLP (6 layers of 256)", "mlp", {"hidden_sizes": [256] * 5, "dropout": 0.0}),
}
TARGET = 0.15  # training error to reach (AlexNet fig. 1: 25% on CIFAR-10)
SEVERAL = 2.0  # "several times faster": at least this ratio of steps
PROBE_EVERY = 20
PROBE_IMAGES = 2000


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖∂L/∂W‖ of each convolution and linear layer's weight, input to output, for one batch's mean
    cross-entropy at the model's current (initial) weights."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [float(m.weight.grad.norm()) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    model.zero_grad()
    return norms


def steps_to(points: list[dict[str, float]], target: float, key: str = "step") -> float | None:
    """The first probe's ``key`` (step or seconds) at which the training error is at or below ``target``."""
    for p in points:
        if p["train_error"] <= target:
            return p[key]
    return None


@register_experiment
class Activations(Experiment):
    name = "activations"
    title = "Does ReLU train several times faster than tanh and sigmoid? Steps to a training-error level"
    quick_seeds = 1
    full_minutes = "26 min measured for 3 seeds on one thread of this project's shared 2-core machine (load about 2)"
    claims = (
        Claim("relu-trains-faster",
              "Deep convolutional neural networks with ReLUs train several times faster than their equivalents with "
              "tanh units.",
              "Krizhevsky, Sutskever & Hinton 2012, \"ImageNet Classification with Deep Convolutional Neural "
              "Networks\", NIPS, Sec. 3.1 and fig. 1 (a four-layer CNN reaches 25% training error on CIFAR-10 six "
              "times faster with ReLUs than with tanh).",
              f"steps to a training error of {TARGET:.0%} on a fixed set of {PROBE_IMAGES} training images "
              f"(probed every {PROBE_EVERY} steps; a run that never gets there counts as its step budget, a lower "
              f"bound), median over seeds: supported if tanh needs at least {SEVERAL:g}x ReLU's steps in both the "
              f"CNN and the MLP; refuted if tanh needs no more steps than ReLU in both; depends otherwise, and "
              f"whenever ReLU itself misses the level in some seed (no ratio measured)."),
    )

    def budget(self, quick: bool) -> int:
        return 400 if quick else 1500

    def learning_rates(self, quick: bool) -> list[float]:
        return [0.05] if quick else [0.01, 0.05, 0.2]

    def setup(self, quick: bool) -> str:
        nets = "; ".join(f"**{label}**: `{m}` {args}" for label, m, args in NETWORKS.values())
        lrs = self.learning_rates(quick)
        choice = ("" if len(lrs) == 1 else " Each (network, activation) is trained at every learning rate and the "
                  "fastest one counts, as AlexNet chose each network's rate \"to make training as fast as possible\".")
        return (f"Fashion-MNIST (CIFAR-10 is not staged here). Two networks, each with every hidden nonlinearity set "
                f"to ReLU, tanh or the logistic sigmoid and nothing else changed: {nets}. PyTorch's default "
                f"initialisation for every activation. Trained by the one Trainer with SGD, momentum 0.9, batch 128, "
                f"constant learning rate {' / '.join(f'{lr:g}' for lr in lrs)}, no dropout, no augmentation, for at "
                f"most {self.budget(quick)} steps; every {PROBE_EVERY} steps the training error on a fixed set of "
                f"{PROBE_IMAGES} training images (eval mode) is probed and the run stops once it is at most "
                f"{TARGET:.0%} (AlexNet fig. 1 used 25% on CIFAR-10, a harder set).{choice} A run whose loss turns "
                f"non-finite (the Trainer stops it) counts as never reaching the level. Wall time to the level "
                f"excludes the probes. Gradient norms: ‖∂L/∂W‖ of each layer's weight on one batch of 256 training "
                f"images at initialisation (the seed's fresh model).")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"network": n, "activation": a, "lr": lr, "budget": self.budget(quick)}, s,
                     f"{n} {a} lr={lr:g}")
                for s in seeds for n in NETWORKS for a in ACTIVATIONS for lr in self.learning_rates(quick)]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        from archzoo.tasks import TASKS
        from archzoo.tasks.classification import ClassificationConfig

        c = cell.config
        _, name, args = NETWORKS[c["network"]]
        args = {**args, "activation": c["activation"]}
        task = TASKS.get("classification")(ClassificationConfig(dataset="fashion-mnist"), data_dir)
        x, y = fixed_subset(*task.split("train"), 256, seed=99)
        torch.manual_seed(cell.seed)
        norms = gradient_norms(create_model(name, **args), x, y)
        curve = ErrorCurve(PROBE_EVERY, PROBE_IMAGES, stop_below=TARGET)
        run = classification_run("fashion-mnist", name, args, steps=c["budget"], seed=cell.seed, optimizer="sgd",
                                 lr=c["lr"], momentum=0.9)
        try:
            accuracy, diverged = run_training(run, work_dir, data_dir, on_step=curve).test["accuracy"], False
        except TrainingDiverged:  # the Trainer stops on a non-finite loss: at this rate the run never gets there
            accuracy, diverged = None, True
        return {"curve": curve.points, "steps": steps_to(curve.points, TARGET),
                "seconds": steps_to(curve.points, TARGET, "seconds"), "gradient_norms": norms,
                "test_accuracy": accuracy, "diverged": diverged}

    # -- analysis ---------------------------------------------------------------------------------
    def _best(self, results: list[CellResult]) -> dict[tuple[str, str], list[CellResult]]:
        """(network, activation) -> per seed, the run at the learning rate that reached the level first."""
        by_seed: dict[tuple[str, str, int], list[CellResult]] = {}
        for r in results:
            by_seed.setdefault((r.config["network"], r.config["activation"], r.seed), []).append(r)
        out: dict[tuple[str, str], list[CellResult]] = {}
        for (net, act, _), runs in by_seed.items():
            out.setdefault((net, act), []).append(min(runs, key=lambda r: (self._steps(r), r.config["lr"])))
        return out

    @staticmethod
    def _steps(r: CellResult) -> float:
        return r.result["steps"] if r.result["steps"] is not None else r.config["budget"]

    @staticmethod
    def _seconds(r: CellResult) -> float:
        if r.result["seconds"] is not None:
            return r.result["seconds"]
        return r.result["curve"][-1]["seconds"] if r.result["curve"] else math.nan

    def tables(self, results: list[CellResult]) -> list[Table]:
        best = self._best(results)
        rows = []
        for (net, act), runs in best.items():
            diverged = sum(bool(r.result.get("diverged")) for r in results
                           if (r.config["network"], r.config["activation"]) == (net, act))
            accuracies = [r.result["test_accuracy"] for r in runs if r.result["test_accuracy"] is not None]
            steps = [self._steps(r) for r in runs]
            reached = sum(r.result["steps"] is not None for r in runs)
            relu = statistics.median(self._steps(r) for r in best[(net, "relu")])
            rows.append([NETWORKS[net][0], act, ", ".join(f"{r.config['lr']:g}" for r in runs),
                         f"{statistics.median(steps):.0f}" + ("" if reached == len(runs) else " (not reached: >=)"),
                         f"{statistics.median(self._seconds(r) for r in runs):.1f}",
                         f"{statistics.median(steps) / relu:.1f}x",
                         f"{statistics.fmean(accuracies) * 100:.1f}" if accuracies else "diverged",
                         f"{diverged} of {sum((r.config['network'], r.config['activation']) == (net, act) for r in results)}"])
        grads = []
        for (net, act), runs in best.items():
            norms = [statistics.median(r.result["gradient_norms"][k] for r in runs)
                     for k in range(len(runs[0].result["gradient_norms"]))]
            grads.append([NETWORKS[net][0], act, *(f"{v:.2e}" for v in norms)])
        width = max(len(g) for g in grads)
        grads = [g + [""] * (width - len(g)) for g in grads]
        return [Table(f"Steps and seconds to {TARGET:.0%} training error (median over seeds; fastest learning rate)",
                      ["network", "activation", "learning rate (per seed)", "steps", "seconds (probes excluded)",
                       "steps / ReLU's", "test accuracy at stop (%)", "runs diverged (every rate and seed)"], rows),
                Table("Gradient norm ‖∂L/∂W‖ per layer at initialisation, input to output (median over seeds)",
                      ["network", "activation", *(f"layer {k + 1}" for k in range(width - 2))], grads)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        best = self._best(results)
        panels = []
        for net in NETWORKS:
            series = {}
            for act in ACTIVATIONS:
                run = best[(net, act)][0]
                series[f"{act} (lr {run.config['lr']:g}, seed {run.seed})"] = (
                    [p["step"] for p in run.result["curve"]], [p["train_error"] * 100 for p in run.result["curve"]], None)
            panels.append(Panel(NETWORKS[net][0], "step", "training error (%)", series,
                                hlines={f"{TARGET:.0%} level": TARGET * 100}))
        for net in NETWORKS:
            series = {}
            for act in ACTIVATIONS:
                runs = best[(net, act)]
                norms = [statistics.median(r.result["gradient_norms"][k] for r in runs)
                         for k in range(len(runs[0].result["gradient_norms"]))]
                series[act] = (list(range(1, len(norms) + 1)), norms, None)
            panels.append(Panel(f"{NETWORKS[net][0]}: gradients at initialisation", "layer (input to output)",
                                "‖∂L/∂W‖", series, logy=True))
        path = plot_panels(panels, out_dir / "training-error.png", "ReLU, tanh and sigmoid in the same networks",
                           columns=2)
        return [Figure(path, "Top: training error on the fixed probe set against step, until the level or the budget "
                             "(first seed's fastest run). Bottom: gradient norm per layer at initialisation.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        best = self._best(results)
        ratio = {net: statistics.median(self._steps(r) for r in best[(net, "tanh")])
                 / statistics.median(self._steps(r) for r in best[(net, "relu")]) for net in NETWORKS}
        numbers: dict[str, Any] = {f"{net} tanh/ReLU steps": round(v, 2) for net, v in ratio.items()}
        numbers.update({f"{net} sigmoid/ReLU steps": round(statistics.median(self._steps(r) for r in best[(net, "sigmoid")])
                                                           / statistics.median(self._steps(r) for r in best[(net, "relu")]), 2)
                        for net in NETWORKS})
        relu_missed = [net for net in NETWORKS if any(r.result["steps"] is None for r in best[(net, "relu")])]
        if relu_missed:
            return [Verdict("relu-trains-faster", "depends", numbers,
                            f"ReLU itself did not reach {TARGET:.0%} training error within the step budget in "
                            f"{', '.join(relu_missed)}, so no ratio is measured there.")]
        if all(v >= SEVERAL for v in ratio.values()):
            return [Verdict("relu-trains-faster", "supported", numbers,
                            f"tanh needs {min(ratio.values()):.1f}x ReLU's steps or more in both networks.")]
        if all(v <= 1 for v in ratio.values()):  # ReLU reached the level, so tanh did too
            return [Verdict("relu-trains-faster", "refuted", numbers,
                            "tanh reaches the level in no more steps than ReLU in both networks.")]
        return [Verdict("relu-trains-faster", "depends", numbers,
                        "tanh needs " + " and ".join(f"{v:.1f}x" for v in ratio.values()) + " ReLU's steps (CNN, MLP); "
                        f"the rule asks for {SEVERAL:g}x in both.")]
