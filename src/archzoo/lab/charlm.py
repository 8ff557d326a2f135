"""Character language models on tinyshakespeare compared on cost and quality: gru-vs-lstm (parameters,
step time, validation loss at equal parameter count and at equal wall time) and
transformer-vs-rnn-time-to-quality (validation loss against training time for LSTM, GRU and GPT of
similar size).

Training time is measured so that the machine's load cannot tilt it: one cell times a training step
of every model, the models interleaved round after round (median), and each run's validation curve,
recorded against optimizer steps, is put on a time axis as steps x that model's median step time.
Runs are ordered seed by seed, so the models share whatever load the machine had.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from archzoo.lab.base import (
    Cell,
    CellResult,
    Claim,
    Experiment,
    Figure,
    Table,
    Verdict,
    count_parameters,
    mean,
    mean_std,
    register_experiment,
)
from archzoo.lab.runner import interleaved_medians, run_training
from archzoo.models import create_model

BATCH, CONTEXT, LR = 32, 128, 2e-3


def lm_config(model: dict[str, Any], seed: int, max_steps: int, eval_every: int) -> dict[str, Any]:
    """One training recipe for every model: AdamW 2e-3 (betas 0.9, 0.99), 50 warm-up steps then constant,
    clipping at 1, batch 32 x context 128, fp32."""
    return {"task": "language_model", "model": model, "data": {"dataset": "tinyshakespeare", "context": CONTEXT},
            "train": {"epochs": 1, "max_steps": max_steps, "batch_size": BATCH, "optimizer": "adamw", "lr": LR,
                      "betas": [0.9, 0.99], "schedule": "constant", "warmup_steps": 50, "clip_grad_norm": 1.0,
                      "eval_every_steps": eval_every, "eval_batch_size": 64, "log_every_steps": 50, "seed": seed}}


def step_seconds(model_cfg: dict[str, Any]) -> Any:
    """A function timing one training step (forward, backward, clipping, AdamW) of a fresh model on random
    ids of the experiments' batch shape."""
    torch.manual_seed(0)
    model = create_model(model_cfg["name"], **model_cfg["args"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99))
    ids = torch.randint(0, 65, (BATCH, CONTEXT + 1))

    def step() -> float:
        start = time.perf_counter()
        logits, _ = model(ids[:, :-1])
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    step()  # warm-up
    return step


class TimedCharLMs(Experiment):
    """Shared body: a step-timing cell, then one training run per (seed, model) recording the validation
    loss every steps/evals steps; analysis on a step axis and on a time axis."""

    models: ClassVar[dict[str, dict[str, Any]]]
    quick_seeds = 1

    def steps(self, quick: bool) -> int:
        raise NotImplementedError

    def evals(self, quick: bool) -> int:
        return 3 if quick else 10

    def recipe(self, quick: bool) -> str:
        models = "; ".join(f"{k}: `{v['name']}` {v['args']}" for k, v in self.models.items())
        return (f"Character models on tinyshakespeare (first 90% train, last 10% validation): {models}. Each trains "
                f"for {self.steps(quick)} steps with the one Trainer (batch {BATCH} x context {CONTEXT}, AdamW {LR}, "
                f"betas (0.9, 0.99), 50 warm-up steps then constant, clipping at 1, fp32), validated every "
                f"{self.steps(quick) // self.evals(quick)} steps on the whole validation text (the recurrent models "
                "carry their state across 32 streams; a GPT reads independent windows of its context, as nanoGPT "
                "evaluates). **Step time** is measured in one cell: a training step of each model on random ids of "
                f"the same shape, the models interleaved for {self.rounds(quick)} rounds, median. A run's training "
                "time is its steps x its model's median step time, which keeps the machine's changing load out of "
                "the comparison; the equal-time comparisons read each curve at the same training time, up to the "
                "shortest run's.")

    def rounds(self, quick: bool) -> int:
        return 5 if quick else 15

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        cells = [Cell({"kind": "timing", "rounds": self.rounds(quick), "models": sorted(self.models)}, 0, "step time")]
        cells += [Cell({"kind": "train", "model": m, "steps": self.steps(quick), "evals": self.evals(quick)}, s, m)
                  for s in seeds for m in self.models]
        return cells

    def runs_alone(self, cell: Cell) -> bool:
        return cell.config["kind"] == "timing"  # the step times every time axis is built from

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        if c["kind"] == "timing":
            timing = interleaved_medians({k: step_seconds(v) for k, v in self.models.items()}, c["rounds"])
            return {"step_seconds": timing, "params": {k: count_parameters(create_model(v["name"], **v["args"]))
                               for k, v in self.models.items()},
                    "threads": torch.get_num_threads()}
        steps = c["steps"]
        result = run_training(lm_config(self.models[c["model"]], cell.seed, steps, steps // c["evals"]), work_dir,
                              data_dir)
        curve = [(r["step"], r["loss"]) for r in result.history if r.get("split") == "val"]
        return {"curve": curve, "final_val_loss": curve[-1][1], "steps": result.step,
                "train_seconds": round(result.train_seconds, 1)}

    def parts(self, results: list[CellResult]) -> tuple[dict[str, Any], dict[str, float], dict[str, list[CellResult]]]:
        """The timing record, each model's median seconds per step, and each model's runs."""
        timing = next(r.result for r in results if r.config["kind"] == "timing")
        runs: dict[str, list[CellResult]] = {m: [] for m in self.models}
        for r in results:
            if r.config["kind"] == "train":
                runs[r.config["model"]].append(r)
        return timing, {m: timing["step_seconds"][m]["median"] for m in self.models}, runs

    def common_time(self, sec: dict[str, float], runs: dict[str, list[CellResult]]) -> float:
        """The longest training time every run reaches."""
        return min(rs[0].result["curve"][-1][0] * sec[m] for m, rs in runs.items())

    def losses_at(self, sec: dict[str, float], runs: dict[str, list[CellResult]], seconds: float) -> dict[str, list[float]]:
        """Per model, each seed's validation loss at ``seconds`` of training (linear between evaluations)."""
        return {m: [float(np.interp(seconds, [s * sec[m] for s, _ in r.result["curve"]],
                                    [v for _, v in r.result["curve"]])) for r in rs] for m, rs in runs.items()}

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        _, sec, runs = self.parts(results)
        by_step, by_time = {}, {}
        for m, rs in runs.items():
            steps = [s for s, _ in rs[0].result["curve"]]
            losses = [[dict(r.result["curve"])[s] for r in rs] for s in steps]
            spread = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in losses]
            by_step[m] = (steps, [mean(v) for v in losses], spread)
            by_time[m] = ([s * sec[m] for s in steps], [mean(v) for v in losses], spread)
        path = plot_panels([Panel("validation loss against steps", "optimizer step", "nats/char", by_step),
                            Panel("against training time", "seconds (steps x median step time)", "nats/char", by_time)],
                           out_dir / f"{self.name}.png", "tinyshakespeare validation loss (mean ± std over seeds)")
        return [Figure(path, "Validation loss against optimizer steps and against training time (steps x the model's "
                             "median step time); bands are ± std over seeds.")]


# -- gru-vs-lstm -------------------------------------------------------------------------------------

GVL_MODELS: dict[str, dict[str, Any]] = {
    "LSTM 256": {"name": "lstm_lm", "args": {"embedding_dim": 64, "hidden_size": 256, "num_layers": 1, "dropout": 0.0}},
    "GRU 256 (same width)": {"name": "gru_lm", "args": {"embedding_dim": 64, "hidden_size": 256, "num_layers": 1,
                                                         "dropout": 0.0}},
    "GRU 298 (same parameters)": {"name": "gru_lm", "args": {"embedding_dim": 64, "hidden_size": 298, "num_layers": 1,
                                                              "dropout": 0.0}},
}
LSTM, GRU_SAME, GRU_EQUAL = GVL_MODELS


@register_experiment
class GRUvsLSTM(TimedCharLMs):
    name = "gru-vs-lstm"
    title = "Is the GRU a cheaper LSTM of similar quality? Parameters, step time and tinyshakespeare loss"
    models = GVL_MODELS
    version = 2
    full_minutes = "72 min measured on one thread of this project's shared 2-core machine (load 5-11)"
    claims = (
        Claim("gru-comparable-to-lstm",
              "Also, we found GRU to be comparable to LSTM.",
              "Chung, Gulcehre, Cho & Bengio 2014, \"Empirical Evaluation of Gated Recurrent Neural Networks on "
              "Sequence Modeling\", arXiv:1412.3555, abstract.",
              "at equal parameter count and equal steps: supported if the GRU's validation loss is within 0.03 "
              "nats/char of the LSTM's (mean over seeds); refuted if it differs by more than 0.1; depends otherwise."),
        Claim("gru-is-cheaper",
              "The GRU is cheaper than the LSTM with similar quality: three gate blocks instead of four.",
              "The articles archzoo implements (as issue 18 quotes them), after Cho et al. 2014, arXiv:1406.1078, "
              "Sec. 2.3.",
              "at the same hidden size: supported if the GRU's measured training step takes at most 0.9x the LSTM's "
              "and, at equal training time, its validation loss is at most the LSTM's + 0.03; refuted if its step is "
              "not faster than the LSTM's (fewer parameters and FLOPs notwithstanding); depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 120 if quick else 800

    def setup(self, quick: bool) -> str:
        return self.recipe(quick)

    def tables(self, results: list[CellResult]) -> list[Table]:
        timing, sec, runs = self.parts(results)
        common = self.common_time(sec, runs)
        at_time = self.losses_at(sec, runs, common)
        rows = [[m, f"{timing['params'][m]:,}", f"{sec[m] * 1000:.1f}",
                 mean_std([r.result["final_val_loss"] for r in rs], 4), mean_std(at_time[m], 4)]
                for m, rs in runs.items()]
        return [Table(f"Cost and quality (validation nats/char, mean ± std over seeds); equal training time = "
                      f"{common:.0f} s", ["model", "parameters", "ms per training step (median)",
                                          "val loss at equal steps", "val loss at equal training time"], rows)]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        timing, sec, runs = self.parts(results)
        final = {m: mean([r.result["final_val_loss"] for r in rs]) for m, rs in runs.items()}
        gap = final[GRU_EQUAL] - final[LSTM]
        numbers = {"lstm_val_loss": round(final[LSTM], 4), "gru_equal_params_val_loss": round(final[GRU_EQUAL], 4),
                   "gru_minus_lstm": round(gap, 4)}
        if abs(gap) <= 0.03:
            comparable = Verdict("gru-comparable-to-lstm", "supported", numbers, f"at equal parameters and steps the "
                                 f"GRU's validation loss is within {abs(gap):.3f} nats/char of the LSTM's.")
        elif abs(gap) > 0.1:
            comparable = Verdict("gru-comparable-to-lstm", "refuted", numbers, f"the GRU's loss differs from the LSTM's "
                                 f"by {gap:+.3f} nats/char (GRU minus LSTM).")
        else:
            comparable = Verdict("gru-comparable-to-lstm", "depends", numbers, f"the GRU's loss differs by {gap:+.3f} "
                                 "nats/char (GRU minus LSTM): more than 0.03, less than 0.1.")
        step_ratio = sec[GRU_SAME] / sec[LSTM]
        common = self.common_time(sec, runs)
        at_time = self.losses_at(sec, runs, common)
        time_gap = mean(at_time[GRU_SAME]) - mean(at_time[LSTM])
        numbers = {"gru_over_lstm_step_time": round(step_ratio, 3),
                   "gru_over_lstm_params": round(timing["params"][GRU_SAME] / timing["params"][LSTM], 3),
                   "equal_time_seconds": round(common, 1), "gru_minus_lstm_at_equal_time": round(time_gap, 4)}
        if step_ratio <= 0.9 and time_gap <= 0.03:
            cheaper = Verdict("gru-is-cheaper", "supported", numbers, f"the GRU's step takes {step_ratio:.2f}x the "
                              f"LSTM's and its loss at equal training time differs by {time_gap:+.3f} nats/char.")
        elif step_ratio >= 1:
            cheaper = Verdict("gru-is-cheaper", "refuted", numbers, f"with {numbers['gru_over_lstm_params']:.2f}x the "
                              f"parameters the GRU's training step still takes {step_ratio:.2f}x the LSTM's here "
                              "(PyTorch's fused CPU kernels).")
        else:
            cheaper = Verdict("gru-is-cheaper", "depends", numbers, f"the GRU's step takes {step_ratio:.2f}x the "
                              f"LSTM's; at equal training time its loss differs by {time_gap:+.3f}.")
        return [comparable, cheaper]


# -- transformer-vs-rnn-time-to-quality --------------------------------------------------------------

TTQ_MODELS: dict[str, dict[str, Any]] = {
    "LSTM 2x256": {"name": "lstm_lm", "args": {"embedding_dim": 64, "hidden_size": 256, "num_layers": 2,
                                               "dropout": 0.0}},
    "GRU 2x296": {"name": "gru_lm", "args": {"embedding_dim": 64, "hidden_size": 296, "num_layers": 2, "dropout": 0.0}},
    "GPT 4x128": {"name": "gpt", "args": {"context": CONTEXT, "d_model": 128, "num_layers": 4, "num_heads": 4,
                                          "dropout": 0.0}},
}
FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of the common training time, where the rule compares the curves


@register_experiment
class TimeToQuality(TimedCharLMs):
    name = "transformer-vs-rnn-time-to-quality"
    title = "Does the Transformer train faster? Validation loss against training time for LSTM, GRU and GPT"
    models = TTQ_MODELS
    version = 2
    full_minutes = "60 min measured on one thread of this project's shared 2-core machine (load 1-4)"
    claims = (
        Claim("transformer-trains-faster",
              "For translation tasks, the Transformer can be trained significantly faster than architectures based "
              "on recurrent or convolutional layers.",
              "Vaswani et al. 2017, \"Attention Is All You Need\", arXiv:1706.03762, Sec. 7 (tested here on "
              "character-level language modelling, on a CPU).",
              "with training time = steps x median step time: supported if at 1/4, 1/2, 3/4 and all of the common "
              "training time the GPT's validation loss (mean over seeds) is below both recurrent models', and at the "
              "common time below the better one by at least 0.05 nats/char; refuted if at the common time it is "
              "above the better recurrent model's by at least 0.05; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 60 if quick else 600

    def setup(self, quick: bool) -> str:
        return self.recipe(quick) + " The three models have similar parameter counts (listed below)."

    def tables(self, results: list[CellResult]) -> list[Table]:
        timing, sec, runs = self.parts(results)
        common = self.common_time(sec, runs)
        points = [f * common for f in FRACTIONS]
        at = [self.losses_at(sec, runs, p) for p in points]
        rows = [[m, f"{timing['params'][m]:,}", f"{sec[m] * 1000:.1f}", f"{rs[0].result['steps']} "
                 f"({rs[0].result['steps'] * sec[m]:.0f} s)"] + [mean_std(a[m], 3) for a in at]
                for m, rs in runs.items()]
        return [Table("Validation loss (nats/char, mean ± std over seeds) after t seconds of training",
                      ["model", "parameters", "ms per step (median)", "steps (training time)"]
                      + [f"t={p:.0f}s" for p in points], rows)]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        _, sec, runs = self.parts(results)
        common = self.common_time(sec, runs)
        at = [{m: mean(v) for m, v in self.losses_at(sec, runs, f * common).items()} for f in FRACTIONS]
        gpt, recurrent = "GPT 4x128", ("LSTM 2x256", "GRU 2x296")
        ahead = all(a[gpt] < min(a[r] for r in recurrent) for a in at)
        margin = min(at[-1][r] for r in recurrent) - at[-1][gpt]
        numbers = {"common_training_seconds": round(common, 1),
                   **{f"{m}_at_common_time": round(at[-1][m], 4) for m in self.models},
                   "better_rnn_minus_gpt": round(margin, 4), "gpt_ahead_at_every_point": ahead}
        if ahead and margin >= 0.05:
            return [Verdict("transformer-trains-faster", "supported", numbers, f"at every compared training time the "
                            f"GPT's loss is the lowest, {margin:.3f} nats/char below the better recurrent model at "
                            f"{common:.0f} s.")]
        if margin <= -0.05:
            return [Verdict("transformer-trains-faster", "refuted", numbers, f"after {common:.0f} s of training the GPT "
                            f"is {-margin:.3f} nats/char above the better recurrent model.")]
        return [Verdict("transformer-trains-faster", "depends", numbers, f"after {common:.0f} s the GPT is "
                        f"{margin:+.3f} nats/char from the better recurrent model, or it does not lead at every "
                        "compared time.")]
