"""mode-collapse: the class coverage of a GAN's samples over training, read by an MNIST classifier, for the
fully connected GAN and DCGAN over seeds: how often does a run collapse onto a few digits?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from archzoo.lab.base import Cell, CellResult, Claim, Experiment, Figure, Table, Verdict, group, mean, register_experiment
from archzoo.lab.runner import run_training
from archzoo.lab.vision import classification_run

SAMPLES = 1000  # generated images per probe, from fixed noise
COVERED = 0.02  # a digit is covered if at least this share of the samples is classified as it (uniform: 0.10)
COLLAPSED = 8  # a run is collapsed when fewer digits than this are covered
SUPPORTED_RATE = 1 / 3


def coverage(predictions: torch.Tensor, classes: int = 10) -> dict[str, Any]:
    """The share of samples per class, how many classes reach COVERED, and the histogram's entropy (nats;
    ln 10 = 2.303 for ten equally frequent digits)."""
    shares = torch.bincount(predictions, minlength=classes).double() / len(predictions)
    nonzero = shares[shares > 0]
    return {"shares": [round(float(s), 4) for s in shares], "covered": int((shares >= COVERED).sum()),
            "entropy": max(0.0, float(-(nonzero * nonzero.log()).sum())), "largest": float(shares.max())}


def collapsed(point: dict[str, Any]) -> bool:
    return point["covered"] < COLLAPSED


class CoverageProbe:
    """An ``on_step`` hook: every ``every`` steps, SAMPLES images from fixed noise classified by ``classifier``."""

    def __init__(self, every: int, classify: Any):
        self.every, self.classify = every, classify
        self.points: list[dict[str, Any]] = []

    def __call__(self, trainer: Any) -> None:
        if trainer.step % self.every:
            return
        images = trainer.task.generate(trainer.model, SAMPLES, seed=4321)
        self.points.append({"step": trainer.step, **coverage(self.classify(images))})


MODELS = {
    "gan_mlp": ("fully connected GAN (gan_mlp, mnist-gan_mlp recipe)", {}, {"label_smoothing": 0.1}),
    "dcgan": ("DCGAN (dcgan, no minibatch std)", {}, {}),
}


@register_experiment
class ModeCollapse(Experiment):
    name = "mode-collapse"
    title = "Do GANs collapse onto a few modes? Class coverage of MNIST samples over training and seeds"
    quick_seeds = 3
    full_minutes = ("28 min wall measured with --jobs 2 --threads 1 on this project's shared 2-core machine (51 min "
                    "of compute, load 2-3)")
    claims = (
        Claim("gans-collapse",
              "Mode collapse, also known as the Helvetica scenario, is a problem that occurs when the generator "
              "learns to map several different input z values to the same output point.",
              "Goodfellow 2016, \"NIPS 2016 Tutorial: Generative Adversarial Networks\", arXiv:1701.00160, Sec. "
              "5.1.1 (the articles: \"GANs suffer from mode collapse and unstable training\").",
              f"a run is collapsed at a probe when fewer than {COLLAPSED} of the 10 digits each get {COVERED:.0%} of "
              f"{SAMPLES} samples (as an MNIST classifier reads them): supported if at least a third of the runs "
              f"(models x seeds) end collapsed; refuted if no run is collapsed at any probe after the first quarter "
              f"of training; depends otherwise (collapse that comes and goes, or in fewer runs)."),
    )

    def steps(self, quick: bool) -> dict[str, int]:
        return {"gan_mlp": 1500, "dcgan": 300} if quick else {"gan_mlp": 8600, "dcgan": 4300}

    def channels(self, quick: bool) -> int:
        return 32 if quick else 64

    def setup(self, quick: bool) -> str:
        s = self.steps(quick)
        return (f"MNIST. The judge: `simple_cnn` (16-32-64) trained by the one Trainer for 300 steps (seed 0, about "
                f"97-98% test accuracy), the same in every cell. The generators: **{MODELS['gan_mlp'][0]}**, "
                f"{s['gan_mlp']} steps, and **{MODELS['dcgan'][0]}** with {self.channels(quick)} channels, "
                f"{s['dcgan']} steps; both trained by the one Trainer with Adam 2e-4, betas (0.5, 0.999), batch 64, "
                f"float32. Every {self.every(quick)} steps {SAMPLES} images from fixed noise are classified; a digit "
                f"is covered when it gets at least {COVERED:.0%} of them (ten equal digits: 10% each), and the "
                f"entropy of the class histogram is recorded (ln 10 = 2.30 nats for a uniform one).")

    def every(self, quick: bool) -> int:
        return 100 if quick else 430

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"model": m, "steps": self.steps(quick)[m], "every": self.every(quick),
                      "channels": self.channels(quick)}, s, m) for s in seeds for m in MODELS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        from archzoo.tasks.generation_metrics import ClassifierFeatures
        from archzoo.training.checkpoint import load_model

        c = cell.config
        judge_dir = work_dir / "classifier"
        judge = run_training(classification_run("mnist", "simple_cnn", {"channels": [16, 32], "hidden": 64},
                                                steps=300, seed=0), judge_dir, data_dir)
        classifier, cfg = load_model(judge_dir)
        from archzoo.tasks import TASKS

        task = TASKS.get("classification")(cfg.data, data_dir)
        features = ClassifierFeatures(classifier, float(task.mean), float(task.std))
        probe = CoverageProbe(c["every"], lambda images: features(images)[1])
        _, extra_model, extra_data = MODELS[c["model"]]
        args = {"channels": c["channels"]} if c["model"] == "dcgan" else {}
        config = {"task": "image_generation", "model": {"name": c["model"], "args": {**args, **extra_model}},
                  "data": {"dataset": "mnist", "val_size": 1000, **extra_data},
                  "train": {"epochs": 1000, "max_steps": c["steps"], "batch_size": 64, "optimizer": "adam",
                            "lr": 2e-4, "betas": [0.5, 0.999], "eval_every_steps": c["steps"], "eval_batch_size": 500,
                            "log_every_steps": 100, "seed": cell.seed}}
        run_training(config, work_dir / "gan", data_dir, on_step=probe)
        return {"judge_accuracy": judge.test["accuracy"], "curve": probe.points}

    # -- analysis ---------------------------------------------------------------------------------
    def tables(self, results: list[CellResult]) -> list[Table]:
        rows = []
        for r in results:
            last = r.result["curve"][-1]
            rows.append([MODELS[r.config["model"]][0], str(r.seed), str(last["covered"]), f"{last['entropy']:.2f}",
                         f"{last['largest']:.0%}", "yes" if collapsed(last) else "no",
                         str(sum(collapsed(p) for p in r.result["curve"])) + f"/{len(r.result['curve'])}",
                         " ".join(f"{s:.0%}" for s in last["shares"]), f"{r.result['judge_accuracy']:.2%}"])
        return [Table("Class coverage of the last probe per run (the judge's reading of the samples)",
                      ["model", "seed", "digits covered", "entropy (nats)", "largest class", "collapsed at the end",
                       "probes collapsed", "share per digit 0-9", "judge's test accuracy"], rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        panels = []
        for key, what in (("covered", "digits covered"), ("entropy", "class entropy (nats)")):
            series = {f"{m} seed {r.seed}": ([p["step"] for p in r.result["curve"]], [p[key] for p in r.result["curve"]],
                                             None)
                      for (m,), runs in group(results, "model").items() for r in runs}
            panels.append(Panel(what, "step", what, series,
                                hlines={"collapse line": COLLAPSED - 0.5} if key == "covered" else {"uniform": math.log(10)}))
        path = plot_panels(panels, out_dir / "coverage.png", "Class coverage of generated digits over training")
        return [Figure(path, f"Left: digits that get at least {COVERED:.0%} of {SAMPLES} samples; right: entropy of the "
                             "class histogram; one line per run.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        ends = [collapsed(r.result["curve"][-1]) for r in results]
        late = [any(collapsed(p) for p in r.result["curve"] if p["step"] > r.config["steps"] / 4) for r in results]
        rate = mean([float(e) for e in ends])
        numbers = {"runs collapsed at the end": f"{sum(ends)}/{len(ends)}",
                   "runs collapsed at some probe after the first quarter": f"{sum(late)}/{len(late)}",
                   **{f"{m} mean digits covered at the end": round(mean([r.result["curve"][-1]["covered"] for r in runs]), 2)
                      for (m,), runs in group(results, "model").items()}}
        if rate >= SUPPORTED_RATE:
            return [Verdict("gans-collapse", "supported", numbers, f"{sum(ends)} of {len(ends)} runs end with fewer than "
                            f"{COLLAPSED} digits covered.")]
        if not any(late):
            return [Verdict("gans-collapse", "refuted", numbers, "no run is collapsed at any probe after the first "
                            "quarter of training.")]
        return [Verdict("gans-collapse", "depends", numbers, f"{sum(late)} of {len(late)} runs collapse at some probe "
                        f"after the first quarter but only {sum(ends)} end collapsed.")]
