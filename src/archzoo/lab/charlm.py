"""Character language models on tinyshakespeare compared on cost and quality: gru-vs-lstm (parameters,
step time, validation loss at equal parameter count and at equal wall time) and
transformer-vs-rnn-time-to-quality (validation loss against training wall-clock for LSTM, GRU and GPT
of similar size).

Wall-clock is the sum of the training steps' durations only: the evaluations the experiments make
are timed out of it, so a model with a slower evaluation is not charged for it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def train_with_clock(config: dict[str, Any], work_dir: Path, data_dir: str | Path | None, budget: float,
                     evals: int) -> dict[str, Any]:
    """Train until ``budget`` seconds of training steps have passed, validating at ``evals`` evenly spaced
    points of that clock; the validations are timed out of the clock. Returns the validation curve as
    (training seconds, step, loss) triples."""
    clock = {"seconds": 0.0, "last": None, "next": budget / evals}
    curve: list[tuple[float, int, float]] = []

    def on_step(trainer: Any) -> None:
        now = time.perf_counter()
        if clock["last"] is not None:
            clock["seconds"] += now - clock["last"]
        if clock["seconds"] >= clock["next"] - 1e-9:
            loss = trainer.evaluate("val")["loss"]
            curve.append((round(clock["seconds"], 2), trainer.step, loss))
            clock["next"] += budget / evals
        if clock["seconds"] >= budget:
            trainer.stop_reason = "time_budget"
        clock["last"] = time.perf_counter()

    result = run_training(config, work_dir, data_dir, on_step=on_step)
    return {"curve": curve, "steps": result.step, "train_seconds": round(clock["seconds"], 2)}


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


def n_params(model_cfg: dict[str, Any]) -> int:
    return sum(p.numel() for p in create_model(model_cfg["name"], **model_cfg["args"]).parameters())


def loss_at(curve: list[Sequence[float]], seconds: float) -> float:
    """Validation loss at ``seconds`` of training, interpolated linearly between the curve's points."""
    xs, ys = [p[0] for p in curve], [p[-1] for p in curve]
    return float(np.interp(seconds, xs, ys))


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
class GRUvsLSTM(Experiment):
    name = "gru-vs-lstm"
    title = "Is the GRU a cheaper LSTM of similar quality? Parameters, step time and tinyshakespeare loss"
    quick_seeds = 1
    full_minutes = ""
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
              "and, at equal wall time, its validation loss is at most the LSTM's + 0.03; refuted if its step is "
              "not faster than the LSTM's (fewer parameters and FLOPs notwithstanding); depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 150 if quick else 1200

    def setup(self, quick: bool) -> str:
        models = "; ".join(f"{k}: `{v['name']}` {v['args']}" for k, v in GVL_MODELS.items())
        return (f"Character models on tinyshakespeare (first 90% train, last 10% validation): {models}. Each trains "
                f"for {self.steps(quick)} steps with the one Trainer (batch {BATCH} x context {CONTEXT}, AdamW "
                f"{LR}, betas (0.9, 0.99), 50 warm-up steps then constant, clipping at 1, fp32), validating every "
                f"{self.steps(quick) // 6} steps on the whole validation text (state carried over 32 streams). "
                "**Step time** is measured in one cell: a training step of each model on random ids of the same "
                "shape, the three interleaved for 15 rounds, median. **Equal wall time** reads each model's "
                "validation curve at the same training time, where a model's time is its steps times its median "
                "step time (so machine load during the long runs does not tilt the comparison); the common time is "
                "the shortest of the three runs'.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        cells = [Cell({"kind": "timing", "rounds": 5 if quick else 15}, 0, "step time")]
        cells += [Cell({"kind": "train", "model": m, "steps": self.steps(quick)}, s, f"{m}")
                  for s in seeds for m in GVL_MODELS]
        return cells

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        if c["kind"] == "timing":
            timing = interleaved_medians({k: step_seconds(v) for k, v in GVL_MODELS.items()}, c["rounds"])
            return {"step_seconds": timing, "params": {k: n_params(v) for k, v in GVL_MODELS.items()},
                    "threads": torch.get_num_threads()}
        steps = c["steps"]
        result = run_training(lm_config(GVL_MODELS[c["model"]], cell.seed, steps, steps // 6), work_dir, data_dir)
        curve = [(r["step"], r["loss"]) for r in result.history if r.get("split") == "val"]
        return {"curve": curve, "final_val_loss": curve[-1][1], "steps": result.step,
                "train_seconds": round(result.train_seconds, 1)}

    def _parts(self, results: list[CellResult]) -> tuple[dict[str, Any], dict[str, list[CellResult]]]:
        timing = next(r.result for r in results if r.config["kind"] == "timing")
        runs: dict[str, list[CellResult]] = {m: [] for m in GVL_MODELS}
        for r in results:
            if r.config["kind"] == "train":
                runs[r.config["model"]].append(r)
        return timing, runs

    def _equal_time(self, timing: dict[str, Any], runs: dict[str, list[CellResult]]) -> tuple[float, dict[str, list[float]]]:
        sec = {m: timing["step_seconds"][m]["median"] for m in GVL_MODELS}
        common = min(max(s for s, _ in rs[0].result["curve"]) * sec[m] for m, rs in runs.items())
        losses = {m: [loss_at([(s * sec[m], v) for s, v in r.result["curve"]], common) for r in rs]
                  for m, rs in runs.items()}
        return common, losses

    def tables(self, results: list[CellResult]) -> list[Table]:
        timing, runs = self._parts(results)
        common, at_time = self._equal_time(timing, runs)
        rows = [[m, f"{timing['params'][m]:,}", f"{timing['step_seconds'][m]['median'] * 1000:.1f}",
                 mean_std([r.result["final_val_loss"] for r in rs], 4), mean_std(at_time[m], 4)]
                for m, rs in runs.items()]
        return [Table(f"Cost and quality (validation nats/char, mean ± std over seeds); equal wall time = {common:.0f} s "
                      "of training steps", ["model", "parameters", "ms per training step (median)",
                                            "val loss at equal steps", "val loss at equal wall time"], rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        timing, runs = self._parts(results)
        sec = {m: timing["step_seconds"][m]["median"] for m in GVL_MODELS}
        by_step, by_time = {}, {}
        for m, rs in runs.items():
            steps = [s for s, _ in rs[0].result["curve"]]
            losses = [mean([dict(r.result["curve"])[s] for r in rs]) for s in steps]
            by_step[m] = (steps, losses, None)
            by_time[m] = ([s * sec[m] for s in steps], losses, None)
        path = plot_panels([Panel("validation loss against steps", "step", "nats/char", by_step),
                            Panel("against training time (steps x median step time)", "seconds", "nats/char", by_time)],
                           out_dir / "gru-vs-lstm.png", "GRU and LSTM on tinyshakespeare (mean over seeds)")
        return [Figure(path, "Validation loss of the three models against optimizer steps and against training time.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        timing, runs = self._parts(results)
        final = {m: mean([r.result["final_val_loss"] for r in rs]) for m, rs in runs.items()}
        gap = final[GRU_EQUAL] - final[LSTM]
        numbers = {"lstm_val_loss": round(final[LSTM], 4), "gru_equal_params_val_loss": round(final[GRU_EQUAL], 4),
                   "gru_minus_lstm": round(gap, 4)}
        if abs(gap) <= 0.03:
            comparable = Verdict("gru-comparable-to-lstm", "supported", numbers, f"at equal parameters and steps the "
                                 f"GRU's validation loss is within {abs(gap):.3f} nats/char of the LSTM's.")
        elif abs(gap) > 0.1:
            comparable = Verdict("gru-comparable-to-lstm", "refuted", numbers, f"the GRU's loss differs from the LSTM's "
                                 f"by {gap:+.3f} nats/char.")
        else:
            comparable = Verdict("gru-comparable-to-lstm", "depends", numbers, f"the GRU's loss differs by {gap:+.3f} "
                                 "nats/char: more than 0.03, less than 0.1.")
        sec = {m: timing["step_seconds"][m]["median"] for m in GVL_MODELS}
        step_ratio = sec[GRU_SAME] / sec[LSTM]
        common, at_time = self._equal_time(timing, runs)
        time_gap = mean(at_time[GRU_SAME]) - mean(at_time[LSTM])
        numbers = {"gru_over_lstm_step_time": round(step_ratio, 3),
                   "gru_over_lstm_params": round(timing["params"][GRU_SAME] / timing["params"][LSTM], 3),
                   "equal_time_seconds": round(common, 1), "gru_minus_lstm_at_equal_time": round(time_gap, 4)}
        if step_ratio <= 0.9 and time_gap <= 0.03:
            cheaper = Verdict("gru-is-cheaper", "supported", numbers, f"the GRU's step takes {step_ratio:.2f}x the "
                              f"LSTM's and its loss at equal wall time is within {time_gap:+.3f} nats/char.")
        elif step_ratio >= 1:
            cheaper = Verdict("gru-is-cheaper", "refuted", numbers, f"with {numbers['gru_over_lstm_params']:.2f}x the "
                              f"parameters the GRU's training step still takes {step_ratio:.2f}x the LSTM's here "
                              "(PyTorch's fused CPU kernels).")
        else:
            cheaper = Verdict("gru-is-cheaper", "depends", numbers, f"the GRU's step takes {step_ratio:.2f}x the "
                              f"LSTM's; at equal wall time its loss differs by {time_gap:+.3f}.")
        return [comparable, cheaper]


# -- transformer-vs-rnn-time-to-quality --------------------------------------------------------------

TTQ_MODELS: dict[str, dict[str, Any]] = {
    "LSTM 2x256": {"name": "lstm_lm", "args": {"embedding_dim": 64, "hidden_size": 256, "num_layers": 2,
                                               "dropout": 0.0}},
    "GRU 2x296": {"name": "gru_lm", "args": {"embedding_dim": 64, "hidden_size": 296, "num_layers": 2, "dropout": 0.0}},
    "GPT 4x128": {"name": "gpt", "args": {"context": CONTEXT, "d_model": 128, "num_layers": 4, "num_heads": 4,
                                          "dropout": 0.0}},
}
EVALS = 8


@register_experiment
class TimeToQuality(Experiment):
    name = "transformer-vs-rnn-time-to-quality"
    title = "Does the Transformer train faster? Validation loss against wall-clock for LSTM, GRU and GPT"
    quick_seeds = 1
    full_minutes = ""
    claims = (
        Claim("transformer-trains-faster",
              "For translation tasks, the Transformer can be trained significantly faster than architectures based "
              "on recurrent or convolutional layers.",
              "Vaswani et al. 2017, \"Attention Is All You Need\", arXiv:1706.03762, Sec. 7 (tested here on "
              "character-level language modelling, on a CPU).",
              "supported if the GPT's validation loss (mean over seeds) is below both recurrent models' at every "
              "evaluation from the second on, and below the better one by at least 0.05 nats/char at the end of the "
              "budget; refuted if at the end it is above the better recurrent model's by at least 0.05; depends "
              "otherwise."),
    )

    def budget(self, quick: bool) -> float:
        return 30.0 if quick else 240.0

    def setup(self, quick: bool) -> str:
        models = "; ".join(f"{k}: `{v['name']}` {v['args']}" for k, v in TTQ_MODELS.items())
        return (f"Three character models of similar size on tinyshakespeare: {models}. Each trains with the one "
                f"Trainer for {self.budget(quick):.0f} s of training steps (batch {BATCH} x context {CONTEXT}, AdamW "
                f"{LR}, betas (0.9, 0.99), 50 warm-up steps then constant, clipping at 1, fp32), and is validated "
                f"{EVALS} times at evenly spaced points of that clock on the whole validation text; validation time "
                "is kept off the clock. The recurrent models carry their state across the 32 validation streams, "
                "the GPT reads independent windows of its context (as nanoGPT evaluates). Runs are ordered seed by "
                "seed (LSTM, GRU, GPT, then the next seed), so a change in the machine's load during the experiment "
                "falls on all three models.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"model": m, "budget_seconds": self.budget(quick), "evals": EVALS}, s, m)
                for s in seeds for m in TTQ_MODELS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        config = lm_config(TTQ_MODELS[c["model"]], cell.seed, 1_000_000, 10**9)
        out = train_with_clock(config, work_dir, data_dir, c["budget_seconds"], c["evals"])
        out["params"] = n_params(TTQ_MODELS[c["model"]])
        return out

    def _curves(self, results: list[CellResult]) -> dict[str, list[list[float]]]:
        """model -> per seed, the validation losses at the EVALS points of the clock."""
        out: dict[str, list[list[float]]] = {m: [] for m in TTQ_MODELS}
        for r in results:
            out[r.config["model"]].append([loss for _, _, loss in r.result["curve"]])
        return out

    def tables(self, results: list[CellResult]) -> list[Table]:
        curves = self._curves(results)
        budget = results[0].config["budget_seconds"]
        points = [budget * (k + 1) / EVALS for k in range(EVALS)]
        rows = []
        for m in TTQ_MODELS:
            rs = [r for r in results if r.config["model"] == m]
            rows.append([m, f"{rs[0].result['params']:,}", mean_std([r.result["steps"] for r in rs], 0)]
                        + [mean_std([c[k] for c in curves[m]], 3) for k in range(EVALS)])
        return [Table("Validation loss (nats/char, mean ± std over seeds) after t seconds of training steps",
                      ["model", "parameters", "steps in the budget"] + [f"t={p:.0f}s" for p in points], rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        series = {}
        for m in TTQ_MODELS:
            rs = [r for r in results if r.config["model"] == m]
            seconds = [statistics.fmean(r.result["curve"][k][0] for r in rs) for k in range(EVALS)]
            losses = [[r.result["curve"][k][2] for r in rs] for k in range(EVALS)]
            series[m] = (seconds, [mean(v) for v in losses], [statistics.stdev(v) if len(v) > 1 else 0.0 for v in losses])
        path = plot_panels([Panel("validation loss against training wall-clock", "seconds of training steps",
                                  "nats/char", series)], out_dir / "time-to-quality.png",
                           "LSTM, GRU and GPT of similar size on tinyshakespeare")
        return [Figure(path, "Validation loss against training time (evaluations off the clock); bands are ± std over "
                             "seeds.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        curves = self._curves(results)
        mean_curve = {m: [mean([c[k] for c in curves[m]]) for k in range(EVALS)] for m in TTQ_MODELS}
        gpt, rnns = mean_curve["GPT 4x128"], [mean_curve["LSTM 2x256"], mean_curve["GRU 2x296"]]
        ahead = all(gpt[k] < min(r[k] for r in rnns) for k in range(1, EVALS))
        best_rnn_end = min(r[-1] for r in rnns)
        margin = best_rnn_end - gpt[-1]
        numbers = {"gpt_final": round(gpt[-1], 4), "lstm_final": round(rnns[0][-1], 4), "gru_final": round(rnns[1][-1], 4),
                   "best_rnn_minus_gpt_at_end": round(margin, 4), "gpt_ahead_from_second_eval": ahead}
        if ahead and margin >= 0.05:
            return [Verdict("transformer-trains-faster", "supported", numbers, f"the GPT leads both recurrent models "
                            f"from the second evaluation on and ends {margin:.3f} nats/char below the better one.")]
        if margin <= -0.05:
            return [Verdict("transformer-trains-faster", "refuted", numbers, f"at the end of the budget the GPT is "
                            f"{-margin:.3f} nats/char above the better recurrent model.")]
        return [Verdict("transformer-trains-faster", "depends", numbers, f"the GPT ends {margin:+.3f} nats/char from "
                        "the better recurrent model, or does not lead at every evaluation.")]
