"""vanishing-gradients: how fast does ‖∂L/∂h_t‖ fall with the distance from the loss, for a tanh RNN
(uniform or orthogonal recurrent weights), an LSTM and a GRU, at initialisation and after training,
on tinyshakespeare and on the adding problem.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from archzoo.lab.base import Cell, CellResult, Claim, Experiment, Figure, Table, Verdict, register_experiment
from archzoo.lab.probes import hidden_state_gradients
from archzoo.lab.runner import run_training
from archzoo.models import create_model

PROBE_LENGTH = 200
PROBE_BATCH = 32
DISTANCE = 100  # the verdicts read the gradient ratio this many steps before the loss
MODELS = {  # label -> (cell, extra model arguments)
    "RNN (tanh)": ("rnn", {}),
    "RNN (tanh, orthogonal W_hh)": ("rnn", {"recurrent_init": "orthogonal"}),
    "LSTM": ("lstm", {}),
    "GRU": ("gru", {}),
}
DATASETS = {"tinyshakespeare": "tinyshakespeare, next character", "adding": "adding problem, T = 100"}
STAGES = ("init", "trained")


def model_config(dataset: str, label: str) -> dict[str, Any]:
    cell, extra = MODELS[label]
    if dataset == "tinyshakespeare":
        return {"name": f"{cell}_lm", "args": {"embedding_dim": 32, "hidden_size": 128, "num_layers": 1,
                                               "dropout": 0.0, **extra}}
    return {"name": f"seq_{cell}", "args": {"hidden_size": 64, **extra}}


def probe(model: torch.nn.Module, dataset: str, data: Any) -> dict[str, list[float]]:
    """Mean over PROBE_BATCH sequences of ‖∂L/∂h_t‖ for t < PROBE_LENGTH, L the loss at the last step only.
    Computed in float64: a vanishing gradient reaches 1e-40 within 200 steps, below float32's range."""
    x, y = data
    model = model.double().eval()
    if dataset == "tinyshakespeare":
        inputs = model.embedding(x)
        loss = lambda out: F.cross_entropy(model.head(out[:, -1]), y, reduction="sum")
    else:
        inputs, y = x.double(), y.double()
        loss = lambda out: (model.head(out[:, -1])[:, 0] - y).pow(2).sum()
    norms = hidden_state_gradients(model.rnn, inputs, loss)
    return {k: [float(v) for v in norms[k].mean(0)] for k in ("h", "c") if k in norms}


def probe_data(dataset: str, vocab: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed probe sequences: PROBE_BATCH windows of the training text (ids and the character after the
    window), or adding-problem sequences of length PROBE_LENGTH and their targets."""
    generator = torch.Generator().manual_seed(1234)
    if dataset == "tinyshakespeare":
        from archzoo.tasks.language_model import LanguageModel, LanguageModelConfig

        task = LanguageModel(LanguageModelConfig(dataset="tinyshakespeare", context=PROBE_LENGTH, vocab=vocab))
        starts = torch.randint(0, task.num_train_examples(), (PROBE_BATCH,), generator=generator)
        x, y = task.train_batch(starts, slice(0, PROBE_BATCH), 0)
        return x, y[:, -1]
    from archzoo.data.synthetic import adding_problem

    return adding_problem(PROBE_BATCH, PROBE_LENGTH, generator)


def ratio_at(norms: list[float], distance: int) -> float:
    """‖∂L/∂h_{T-1-k}‖ / ‖∂L/∂h_{T-1}‖ at k = ``distance``."""
    return norms[-1 - distance] / norms[-1]


@register_experiment
class VanishingGradients(Experiment):
    name = "vanishing-gradients"
    title = "Do RNN gradients vanish, and do LSTM and GRU keep them alive? ‖∂L/∂h_t‖ against distance from the loss"
    quick_seeds = 1
    version = 2  # probes in float64
    full_minutes = "16 min measured on one thread of this project's shared 2-core machine (load 5-11)"
    claims = (
        Claim("rnn-gradients-vanish",
              "Learning to store information over extended time intervals by recurrent backpropagation takes a very "
              "long time, mostly because of insufficient, decaying error backflow.",
              "Hochreiter & Schmidhuber 1997, \"Long Short-Term Memory\", Neural Computation 9(8), abstract; the "
              "analysis of Bengio, Simard & Frasconi 1994 and Hochreiter 1991.",
              f"supported if the tanh RNN's gradient ratio ‖∂L/∂h_(T-1-k)‖ / ‖∂L/∂h_(T-1)‖ at k = {DISTANCE} steps "
              "is below 1e-3 (median over seeds) on both datasets, at initialisation and after training; refuted "
              "if it is above 0.1 in every (dataset, stage); depends otherwise."),
        Claim("gates-keep-gradients",
              "LSTM can learn to bridge minimal time lags in excess of 1000 discrete-time steps by enforcing constant "
              "error flow through constant error carousels within special units.",
              "Hochreiter & Schmidhuber 1997, abstract; for the GRU, Cho et al. 2014, arXiv:1406.1078, and Chung et "
              "al. 2014, arXiv:1412.3555 (the articles: \"LSTM and GRU fix vanishing gradients\").",
              f"supported if in every (dataset, stage) both the LSTM's and the GRU's ratio at k = {DISTANCE} is at "
              "least 100x the tanh RNN's (medians over seeds); refuted if in no (dataset, stage) either reaches 10x "
              "the RNN's; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 100 if quick else 600

    def setup(self, quick: bool) -> str:
        return (f"Four one-layer recurrent models: a tanh RNN with torch.nn's uniform initialisation, the same with "
                f"orthogonal recurrent weights (`recurrent_init = \"orthogonal\"`, Saxe et al. 2014), an LSTM and a "
                f"GRU (torch.nn initialisation). On **tinyshakespeare**: `*_lm` with embedding 32 and hidden 128, "
                f"trained as character models (context 100, batch 32); on the **adding problem** (T = 100): `seq_*` "
                f"with hidden 64, trained on fresh sequences (batch 16). Training: the one Trainer, "
                f"{self.steps(quick)} steps, Adam lr 2e-3, gradient norm clipped at 1. The probe "
                f"(lab/probes.py) runs the trained or freshly initialised layer on its reference cells over "
                f"{PROBE_BATCH} fixed sequences of length {PROBE_LENGTH} (training-text windows; adding sequences), "
                f"puts the loss on the last step only (cross-entropy of the next character; squared error of the "
                f"sum) and takes autograd's total derivative ∂L/∂h_t at every step; the figure shows the mean norm "
                f"over the sequences divided by its value at the last step, against the distance k = T - 1 - t. The "
                f"verdicts read k = {DISTANCE}. \"At initialisation\" is the seed's fresh model; \"after training\" "
                f"is the best-on-validation checkpoint.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"dataset": d, "model": m, "steps": self.steps(quick), "probe_length": PROBE_LENGTH}, s,
                     f"{m} {d}") for s in seeds for d in DATASETS for m in MODELS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        from archzoo.training.checkpoint import load_model

        dataset, label, steps = cell.config["dataset"], cell.config["model"], cell.config["steps"]
        model_cfg = model_config(dataset, label)
        if dataset == "tinyshakespeare":
            task, data = "language_model", {"dataset": "tinyshakespeare", "context": 100}
            train = {"batch_size": 32, "eval_every_steps": steps, "eval_batch_size": 64}
        else:
            task, data = "adding_problem", {"length": 100, "val_size": 256, "test_size": 256}
            train = {"batch_size": 16, "eval_every_steps": steps // 2, "eval_batch_size": 256}
        config = {"task": task, "model": model_cfg, "data": data,
                  "train": {"epochs": 1, "max_steps": steps, "optimizer": "adam", "lr": 2e-3, "clip_grad_norm": 1.0,
                            "log_every_steps": 50, "seed": cell.seed, **train}}
        result = run_training(config, work_dir, data_dir)
        trained, run_cfg = load_model(work_dir)
        vocab = getattr(run_cfg.data, "vocab", "")
        torch.manual_seed(cell.seed)
        fresh = create_model(run_cfg.model.name, **run_cfg.model.args)  # the seed's initialisation, same sizes
        data_probe = probe_data(dataset, vocab)
        return {"init": probe(fresh, dataset, data_probe), "trained": probe(trained, dataset, data_probe),
                "test": result.test, "steps": result.step}

    # -- analysis ---------------------------------------------------------------------------------
    def _ratios(self, results: list[CellResult]) -> dict[tuple[str, str, str], list[list[float]]]:
        """(dataset, stage, model) -> per seed, the ratio curve over distances 0..T-1."""
        out: dict[tuple[str, str, str], list[list[float]]] = {}
        for r in results:
            for stage in STAGES:
                h = r.result[stage]["h"]
                out.setdefault((r.config["dataset"], stage, r.config["model"]), []).append(
                    [h[-1 - k] / h[-1] for k in range(len(h))])
        return out

    def _median_at(self, results: list[CellResult], distance: int) -> dict[tuple[str, str, str], float]:
        return {k: statistics.median(curve[distance] for curve in v) for k, v in self._ratios(results).items()}

    def tables(self, results: list[CellResult]) -> list[Table]:
        at = {k: self._median_at(results, k) for k in (10, 50, DISTANCE, PROBE_LENGTH - 1)}
        rows = []
        for dataset in DATASETS:
            for stage in STAGES:
                for model in MODELS:
                    rows.append([dataset, stage, model] + [f"{at[k][(dataset, stage, model)]:.2e}" for k in at])
        losses = []
        for model in MODELS:
            row = [model]
            for dataset in DATASETS:
                vals = [r.result["test"]["loss"] for r in results if r.config["model"] == model
                        and r.config["dataset"] == dataset]
                row.append(f"{statistics.fmean(vals):.4f}")
            losses.append(row)
        return [Table("Gradient ratio ‖∂L/∂h_(T-1-k)‖ / ‖∂L/∂h_(T-1)‖, median over seeds",
                      ["dataset", "stage", "model"] + [f"k={k}" for k in at], rows),
                Table("Loss of the trained models (tinyshakespeare: validation nats/char; adding: test MSE)",
                      ["model", *DATASETS], losses)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        ratios = self._ratios(results)
        panels = []
        for dataset in DATASETS:
            for stage in STAGES:
                series = {}
                for model in MODELS:
                    curves = ratios[(dataset, stage, model)]
                    ks = list(range(len(curves[0])))
                    series[model] = (ks, [statistics.median(c[k] for c in curves) for k in ks], None)
                panels.append(Panel(f"{DATASETS[dataset]}, {'at initialisation' if stage == 'init' else 'after training'}",
                                    "distance from the loss k (steps)", "‖∂L/∂h_(T-1-k)‖ / ‖∂L/∂h_(T-1)‖", series,
                                    logy=True, markers=False))
        path = plot_panels(panels, out_dir / "gradient-norms.png", "Backpropagated gradient norm against distance "
                           "(median over seeds)", columns=2)
        return [Figure(path, "Gradient norm with respect to the hidden state k steps before the loss, relative to the "
                             "last step, log scale: a straight falling line is geometric (exponential) decay.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        at = self._median_at(results, DISTANCE)
        keys = [(d, s) for d in DATASETS for s in STAGES]
        rnn = {f"{d} {s}": at[(d, s, "RNN (tanh)")] for d, s in keys}
        numbers = {f"rnn_ratio_k{DISTANCE} {k}": float(f"{v:.3g}") for k, v in rnn.items()}
        if all(v < 1e-3 for v in rnn.values()):
            vanish = Verdict("rnn-gradients-vanish", "supported", numbers, f"the tanh RNN's gradient {DISTANCE} steps "
                             "back is below 1e-3 of its value at the loss on both datasets, before and after training.")
        elif all(v > 0.1 for v in rnn.values()):
            vanish = Verdict("rnn-gradients-vanish", "refuted", numbers, f"the tanh RNN keeps more than 10% of the "
                             f"gradient {DISTANCE} steps back everywhere.")
        else:
            vanish = Verdict("rnn-gradients-vanish", "depends", numbers, "the tanh RNN's gradient vanishes in some "
                             "(dataset, stage) pairs and not in others.")
        factors = {f"{g} over RNN, {d} {s}": float(f"{at[(d, s, g)] / max(at[(d, s, 'RNN (tanh)')], 1e-300):.3g}")
                   for g in ("LSTM", "GRU") for d, s in keys}
        strong = all(v >= 100 for v in factors.values())
        weak = not any(v >= 10 for v in factors.values())
        if strong:
            gates = Verdict("gates-keep-gradients", "supported", factors, f"LSTM and GRU keep at least 100x the RNN's "
                            f"gradient {DISTANCE} steps back in every (dataset, stage).")
        elif weak:
            gates = Verdict("gates-keep-gradients", "refuted", factors, f"neither LSTM nor GRU keeps 10x the RNN's "
                            f"gradient {DISTANCE} steps back anywhere.")
        else:
            gates = Verdict("gates-keep-gradients", "depends", factors, "the gated models keep far more gradient than "
                            "the RNN in some (dataset, stage) pairs but not in all.")
        return [vanish, gates]
