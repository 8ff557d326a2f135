"""gradient-clipping: character-level RNN and LSTM trained by plain SGD at high learning rates, with and
without gradient-norm clipping: how often does training diverge, and what do the loss curves do?"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archzoo.errors import TrainingDiverged
from archzoo.lab.base import Cell, CellResult, Claim, Experiment, Figure, Table, Verdict, mean_std, register_experiment
from archzoo.lab.runner import run_training

CLIP = 1.0
VOCAB = 65  # tinyshakespeare's characters: a uniform guess scores ln 65 = 4.17 nats
UNIFORM_LOSS = math.log(VOCAB)
MODELS = ("rnn", "lstm")


def diverged(result: dict[str, Any]) -> bool:
    """A run diverged if its loss became non-finite or its final validation loss is worse than a uniform guess."""
    return result["nonfinite"] or result["val_loss"] > UNIFORM_LOSS


@register_experiment
class GradientClipping(Experiment):
    name = "gradient-clipping"
    title = "Does gradient clipping prevent explosion? RNN and LSTM at high learning rates, clipped and not"
    default_seeds = 5
    quick_seeds = 2
    full_minutes = "22 min measured on one thread of this project's shared 2-core machine (load 5-11)"
    claims = (
        Claim("clipping-prevents-divergence",
              "We propose a gradient norm clipping strategy to deal with exploding gradients and a soft constraint "
              "for the vanishing gradients problem.",
              "Pascanu, Mikolov & Bengio 2013, \"On the difficulty of training Recurrent Neural Networks\", "
              "arXiv:1211.5063, abstract (the articles: \"gradient clipping prevents explosion\").",
              f"a run diverges if its loss turns non-finite or its final validation loss exceeds ln {VOCAB} = "
              f"{UNIFORM_LOSS:.2f} nats (worse than a uniform guess): supported if, pooled over the learning rates, "
              f"clipping at norm {CLIP} lowers the divergence rate of both the RNN and the LSTM by at least 30 "
              "percentage points and raises no model's rate at any learning rate; refuted if it lowers neither "
              "model's pooled rate; depends otherwise."),
    )

    def learning_rates(self, quick: bool) -> list[float]:
        return [10.0] if quick else [3.0, 10.0, 30.0, 100.0]

    def steps(self, quick: bool) -> int:
        return 100 if quick else 250

    def setup(self, quick: bool) -> str:
        return (f"Character models on tinyshakespeare: `rnn_lm` (tanh) and `lstm_lm`, one layer of 128 units, "
                f"embedding 32, no dropout, context 64, batch 32, trained by the one Trainer with plain SGD (no "
                f"momentum) at learning rates {self.learning_rates(quick)} for {self.steps(quick)} steps, once with "
                f"the gradient norm clipped at {CLIP} (`train.clip_grad_norm`) and once without. SGD, as in Pascanu "
                f"et al., lets a gradient's size become the step's size, which is what clipping bounds (Adam would "
                f"rescale it anyway). The trainer stops a run whose loss becomes non-finite; such a run counts as "
                f"diverged, as does one whose final validation loss is worse than a uniform guess (ln {VOCAB} = "
                f"{UNIFORM_LOSS:.2f} nats). Learning rate 1 (the usual SGD rate for these models) trains the same "
                "with and without clipping here, so the grid starts above it.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"model": m, "lr": lr, "clip": clip, "steps": self.steps(quick)}, s,
                     f"{m} lr={lr:g} {'clipped' if clip else 'unclipped'}")
                for s in seeds for m in MODELS for lr in self.learning_rates(quick) for clip in (CLIP, 0.0)]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        config = {"task": "language_model",
                  "model": {"name": f"{c['model']}_lm", "args": {"embedding_dim": 32, "hidden_size": 128,
                                                                 "num_layers": 1, "dropout": 0.0}},
                  "data": {"dataset": "tinyshakespeare", "context": 64},
                  "train": {"epochs": 1, "max_steps": c["steps"], "batch_size": 32, "optimizer": "sgd", "momentum": 0.0,
                            "lr": c["lr"], "clip_grad_norm": c["clip"], "eval_every_steps": c["steps"],
                            "eval_batch_size": 64, "log_every_steps": 10, "seed": cell.seed}}
        try:
            result = run_training(config, work_dir, data_dir)
            nonfinite, val_loss, stopped = False, float(result.best["loss"]), result.step
        except TrainingDiverged:
            nonfinite, val_loss, stopped = True, math.inf, None
        records = [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        curve = [(r["step"], r["loss"]) for r in records if r.get("split") == "train"]
        if nonfinite:
            stopped = curve[-1][0] if curve else 0
        return {"nonfinite": nonfinite, "val_loss": val_loss, "steps": stopped, "train_curve": curve}

    def _rates(self, results: list[CellResult]) -> dict[tuple[str, float, float], list[bool]]:
        out: dict[tuple[str, float, float], list[bool]] = {}
        for r in results:
            out.setdefault((r.config["model"], r.config["lr"], r.config["clip"]), []).append(diverged(r.result))
        return out

    def tables(self, results: list[CellResult]) -> list[Table]:
        rates = self._rates(results)
        rows = []
        for (model, lr, clip), flags in rates.items():
            losses = [r.result["val_loss"] for r in results if (r.config["model"], r.config["lr"], r.config["clip"])
                      == (model, lr, clip)]
            finite = [x for x in losses if math.isfinite(x)]
            rows.append([model.upper(), f"{lr:g}", "clipped" if clip else "unclipped",
                         f"{sum(flags)}/{len(flags)}", mean_std(finite, 3) if finite else "—",
                         str(sum(not math.isfinite(x) for x in losses))])
        return [Table("Divergence over seeds and final validation loss (nats/char, finite runs)",
                      ["model", "learning rate", "clipping", "diverged", "validation loss", "non-finite"], rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        panels = []
        lrs = sorted({r.config["lr"] for r in results})
        for model in MODELS:
            series = {}
            for lr in lrs:
                for clip in (CLIP, 0.0):
                    runs = [r.result["train_curve"] for r in results if r.config["model"] == model
                            and r.config["lr"] == lr and r.config["clip"] == clip and r.result["train_curve"]]
                    steps = sorted({s for run in runs for s, _ in run})
                    med = [statistics.median(v for run in runs for s2, v in run if s2 == s) for s in steps]
                    series[f"lr {lr:g}, {'clipped' if clip else 'no clipping'}"] = (steps, med, None)
            panels.append(Panel(f"{model.upper()} (median over seeds)", "step", "training loss (nats/char)", series,
                                logy=True, markers=False, hlines={"uniform guess": UNIFORM_LOSS}))
        path = plot_panels(panels, out_dir / "loss-curves.png", "Plain SGD at high learning rates, with and without "
                                                                 f"gradient-norm clipping at {CLIP}")
        return [Figure(path, "Training loss against step; each line is the median over seeds of one (learning rate, "
                             "clipping) setting; a run stopped at a non-finite loss ends its line early.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        rates = self._rates(results)
        lrs = sorted({lr for _, lr, _ in rates})
        pooled = {(m, clip): statistics.fmean(f for lr in lrs for f in rates[(m, lr, clip)])
                  for m in MODELS for clip in (CLIP, 0.0)}
        drop = {m: pooled[(m, 0.0)] - pooled[(m, CLIP)] for m in MODELS}
        raised = [f"{m} lr={lr:g}" for m in MODELS for lr in lrs
                  if statistics.fmean(rates[(m, lr, CLIP)]) > statistics.fmean(rates[(m, lr, 0.0)])]
        numbers = {**{f"{m}_divergence_unclipped": round(pooled[(m, 0.0)], 3) for m in MODELS},
                   **{f"{m}_divergence_clipped": round(pooled[(m, CLIP)], 3) for m in MODELS},
                   "clipping_raises_divergence_at": raised or "none"}
        if all(d >= 0.3 for d in drop.values()) and not raised:
            return [Verdict("clipping-prevents-divergence", "supported", numbers, "clipping lowers the divergence rate "
                            f"of the RNN by {drop['rnn']:.0%} and of the LSTM by {drop['lstm']:.0%} (pooled over "
                            "learning rates) and never raises it.")]
        if not any(d > 0 for d in drop.values()):
            return [Verdict("clipping-prevents-divergence", "refuted", numbers, "clipping lowers neither model's "
                            "divergence rate.")]
        return [Verdict("clipping-prevents-divergence", "depends", numbers, f"clipping lowers the pooled divergence "
                        f"rate by {drop['rnn']:.0%} (RNN) and {drop['lstm']:.0%} (LSTM); the rule asks for 30 points "
                        "in both and no increase anywhere.")]
