"""bidirectional-and-depth: do bidirectional and deeper RNNs capture more context? MR sentiment with
forward-only and bidirectional LSTMs of 1, 2 and 3 layers, and character language models of 1, 2
and 3 LSTM layers on tinyshakespeare."""

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
    mean,
    mean_std,
    register_experiment,
)
from archzoo.lab.runner import run_training

MR_ARGS = {"embedding_dim": 128, "hidden_size": 100, "dropout": 0.5, "pooling": "max"}
LM_ARGS = {"embedding_dim": 64, "hidden_size": 192, "dropout": 0.0}


@register_experiment
class BidirectionalAndDepth(Experiment):
    name = "bidirectional-and-depth"
    title = "Do bidirectional and deeper RNNs capture more context? MR sentiment and a character LM"
    quick_seeds = 1
    full_minutes = ("50 min of compute measured for the three seeds on one thread of this project's shared 2-core "
                    "machine (seed 0 33 min at load 5-11, seeds 1 and 2 17 min together at load about 2)")
    claims = (
        Claim("bidirectional-helps",
              "The BRNN can be trained without the limitation of using input information just up to a preset future "
              "frame. This is accomplished by training it simultaneously in positive and negative time direction.",
              "Schuster & Paliwal 1997, \"Bidirectional Recurrent Neural Networks\", IEEE Trans. Signal Processing "
              "45(11), abstract (the articles: \"bidirectional RNNs capture more context\").",
              "on MR: supported if at every depth the bidirectional LSTM's test accuracy (mean over seeds, each seed "
              "its own test fold) exceeds the forward-only LSTM's by at least 0.5 points; refuted if it is lower at "
              "every depth; depends otherwise."),
        Claim("depth-helps",
              "This paper investigates deep recurrent neural networks, which combine the multiple levels of "
              "representation that have proved so effective in deep networks with the flexible use of long range "
              "context that empowers RNNs.",
              "Graves, Mohamed & Hinton 2013, \"Speech Recognition with Deep Recurrent Neural Networks\", "
              "arXiv:1303.5778, abstract (the articles: \"deeper RNNs capture more context\").",
              "supported if on both tasks the better of the 2- and 3-layer models beats the 1-layer model (MR, "
              "bidirectional: by >= 0.5 accuracy points; character LM: by >= 0.02 nats/char validation loss); refuted "
              "if the 1-layer model is the best on both tasks; depends otherwise."),
    )

    def depths(self, quick: bool) -> list[int]:
        return [1, 2] if quick else [1, 2, 3]

    def setup(self, quick: bool) -> str:
        mr = "a seeded subset of 3,000 sentences, 1 epoch" if quick else "all 10,662 sentences, 3 epochs"
        steps = 100 if quick else 600
        return (f"**MR** (rt-polarity, Kim's tokenizer): `bilstm_classifier` {MR_ARGS} with `bidirectional` true or "
                f"false and `num_layers` in {self.depths(quick)} (dropout between layers too), on {mr}, batch 50, Adam "
                "2e-3, clipping at 5, early stopping on a 10% dev slice (patience 2), the best-on-dev weights scored on "
                "the held-out fold; seed s trains on the folds other than fold s, so the seeds also vary the test "
                "fold, and every configuration sees the same folds. A bidirectional layer has two directions of "
                f"{MR_ARGS['hidden_size']} units (twice the forward-only parameters). **Character LM**: `lstm_lm` "
                f"{LM_ARGS} with `num_layers` in {self.depths(quick)} on tinyshakespeare, {steps} steps of 32 x 128 "
                "characters, AdamW 2e-3, clipping at 1; validation loss on the whole validation text.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        cells = []
        for s in seeds:
            for layers in self.depths(quick):
                for bidirectional in (False, True):
                    cells.append(Cell({"task": "mr", "layers": layers, "bidirectional": bidirectional,
                                       "max_examples": 3000 if quick else 0, "epochs": 1 if quick else 3}, s,
                                      f"MR {'bi' if bidirectional else 'uni'} {layers} layer(s)"))
            for layers in self.depths(quick):
                cells.append(Cell({"task": "lm", "layers": layers, "steps": 100 if quick else 600}, s,
                                  f"char LM {layers} layer(s)"))
        return cells

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        if c["task"] == "mr":
            config = {"task": "sentence_classification",
                      "model": {"name": "bilstm_classifier",
                                "args": {**MR_ARGS, "num_layers": c["layers"], "bidirectional": c["bidirectional"]}},
                      "data": {"dataset": "rt-polarity", "fold": cell.seed % 10, "max_examples": c["max_examples"]},
                      "train": {"epochs": c["epochs"], "batch_size": 50, "optimizer": "adam", "lr": 2e-3,
                                "clip_grad_norm": 5.0, "early_stopping_patience": 2, "eval_batch_size": 500,
                                "log_every_steps": 50, "seed": cell.seed}}
            result = run_training(config, work_dir, data_dir)
            return {"test_accuracy": result.test["accuracy"], "best_val": result.best, "steps": result.step,
                    "train_seconds": round(result.train_seconds, 1)}
        steps = c["steps"]
        config = {"task": "language_model",
                  "model": {"name": "lstm_lm", "args": {**LM_ARGS, "num_layers": c["layers"]}},
                  "data": {"dataset": "tinyshakespeare", "context": 128},
                  "train": {"epochs": 1, "max_steps": steps, "batch_size": 32, "optimizer": "adamw", "lr": 2e-3,
                            "betas": [0.9, 0.99], "clip_grad_norm": 1.0, "eval_every_steps": steps,
                            "eval_batch_size": 64, "log_every_steps": 50, "seed": cell.seed}}
        result = run_training(config, work_dir, data_dir)
        return {"val_loss": result.best["loss"], "steps": result.step, "train_seconds": round(result.train_seconds, 1)}

    def _mr(self, results: list[CellResult]) -> dict[tuple[int, bool], list[float]]:
        out: dict[tuple[int, bool], list[float]] = {}
        for r in results:
            if r.config["task"] == "mr":
                out.setdefault((r.config["layers"], r.config["bidirectional"]), []).append(r.result["test_accuracy"])
        return out

    def _lm(self, results: list[CellResult]) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for r in results:
            if r.config["task"] == "lm":
                out.setdefault(r.config["layers"], []).append(r.result["val_loss"])
        return out

    def tables(self, results: list[CellResult]) -> list[Table]:
        mr, lm = self._mr(results), self._lm(results)
        depths = sorted(lm)
        return [Table("MR test accuracy (%), mean ± std over seeds (each seed its own test fold)",
                      ["layers", "forward only", "bidirectional", "bidirectional − forward"],
                      [[str(d), mean_std(mr[(d, False)], 2, 100), mean_std(mr[(d, True)], 2, 100),
                        f"{100 * (mean(mr[(d, True)]) - mean(mr[(d, False)])):+.2f}"] for d in depths]),
                Table("Character LM validation loss (nats/char), mean ± std over seeds",
                      ["layers", "validation loss", "change from 1 layer"],
                      [[str(d), mean_std(lm[d], 4), f"{mean(lm[d]) - mean(lm[depths[0]]):+.4f}"] for d in depths])]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        mr, lm = self._mr(results), self._lm(results)
        depths = sorted(lm)
        spread = lambda v: (max(v) - min(v)) / 2 if len(v) > 1 else 0.0
        path = plot_panels([
            Panel("MR sentiment", "LSTM layers", "test accuracy (%)",
                  {label: (depths, [100 * mean(mr[(d, b)]) for d in depths], [100 * spread(mr[(d, b)]) for d in depths])
                   for label, b in (("forward only", False), ("bidirectional", True))}),
            Panel("tinyshakespeare character LM", "LSTM layers", "validation loss (nats/char)",
                  {"lstm_lm": (depths, [mean(lm[d]) for d in depths], [spread(lm[d]) for d in depths])}),
        ], out_dir / "bidirectional-and-depth.png", "Direction and depth")
        return [Figure(path, "Seed means against depth; bands span the seeds' range.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        mr, lm = self._mr(results), self._lm(results)
        depths = sorted(lm)
        gains = [100 * (mean(mr[(d, True)]) - mean(mr[(d, False)])) for d in depths]
        numbers = {f"bi_minus_uni_points_{d}_layers": round(g, 2) for d, g in zip(depths, gains, strict=True)}
        if all(g >= 0.5 for g in gains):
            bi = Verdict("bidirectional-helps", "supported", numbers, "the bidirectional LSTM beats the forward-only one "
                         "by at least 0.5 points at every depth.")
        elif all(g < 0 for g in gains):
            bi = Verdict("bidirectional-helps", "refuted", numbers, "the forward-only LSTM is more accurate at every "
                         "depth.")
        else:
            bi = Verdict("bidirectional-helps", "depends", numbers, "reading both directions helps by at least 0.5 "
                         "points at some depths only (or by less).")
        mr_gain = 100 * (max(mean(mr[(d, True)]) for d in depths[1:]) - mean(mr[(1, True)]))
        lm_gain = mean(lm[1]) - min(mean(lm[d]) for d in depths[1:])
        numbers = {"mr_bi_deeper_minus_1_layer_points": round(mr_gain, 2),
                   "lm_1_layer_minus_deeper_nats": round(lm_gain, 4)}
        if mr_gain >= 0.5 and lm_gain >= 0.02:
            depth = Verdict("depth-helps", "supported", numbers, "a deeper model beats one layer on both tasks.")
        elif mr_gain <= 0 and lm_gain <= 0:
            depth = Verdict("depth-helps", "refuted", numbers, "one layer is the best on both tasks.")
        else:
            depth = Verdict("depth-helps", "depends", numbers, f"depth gains {mr_gain:+.2f} points on MR and "
                            f"{lm_gain:+.4f} nats/char on the character LM: it helps on one task, or by less than the "
                            "rule's margins.")
        return [bi, depth]
