"""pretraining: BERT's recipe, pre-train with a masked LM then fine-tune, at the scale of the text
available here: the mr-bert encoder pre-trained per fold on Multi30K's English captions,
tinyshakespeare and that fold's MR training sentences, then fine-tuned on MR with the 10-fold protocol
of the mr-* benchmarks, against the same model and vocabulary from scratch, TextCNN and NBSVM."""

from __future__ import annotations

import json
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
    group,
    mean,
    mean_std,
    register_experiment,
    std,
)
from archzoo.lab.runner import run_training

PRESET = "mr-bert"  # the fine-tuning recipe and model of the committed from-scratch benchmark (68.78%)
ARMS = {"scratch": "from scratch", "pretrained": "pre-trained (masked LM), then fine-tuned"}
GAIN = 0.02  # two points of test accuracy
NO_GAIN = 0.005
NUM_FOLDS = 10
# the committed 10-fold results of the same protocol (archzoo bench mr-MODEL); read when present
BENCHMARKS = {"textcnn": "TextCNN (Kim's CNN-rand)", "nbsvm": "NBSVM-bi", "bert": "mr-bert benchmark (own vocabulary)"}
BENCHMARK_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
PRETRAIN_TRAIN = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "schedule": "cosine", "batch_size": 64,
                  "clip_grad_norm": 1.0, "eval_batch_size": 500, "log_every_steps": 100}


def committed_benchmark(model: str, results_dir: Path = BENCHMARK_DIR) -> dict[str, Any] | None:
    """The committed result JSON of ``archzoo bench mr-MODEL``, or None where the source tree's
    benchmarks/results is not beside the package (an installed wheel)."""
    try:
        return json.loads((results_dir / f"mr-{model}.json").read_text())
    except (OSError, ValueError):
        return None


def fold_split(c: dict[str, Any]) -> dict[str, Any]:
    """The MR split fields shared, verbatim, by the pre-training corpus and the fine-tuning run, so the
    corpus reads exactly the fine-tuning run's training part."""
    return {"num_folds": NUM_FOLDS, "fold": c["fold"], "max_examples": c["max_examples"]}


def pretraining_config(c: dict[str, Any], model: dict[str, Any], seed: int) -> dict[str, Any]:
    """The run config (a plain dict) of the masked-LM pre-training of one cell."""
    return {"task": "masked_lm", "model": {"name": model["name"], "args": {**model["args"], "mlm_head": "scaled"}},
            "data": {**fold_split(c), "max_sentences": c["max_sentences"], "heldout_sentences": c["heldout"]},
            "train": {**PRETRAIN_TRAIN, "epochs": c["pretrain_epochs"], "warmup_steps": c["pretrain_warmup"],
                      "seed": seed}}


def finetuning_config(c: dict[str, Any], vocab: Sequence[str], seed: int) -> dict[str, Any]:
    """The mr-bert preset on the cell's fold with the shared vocabulary."""
    from archzoo.training.config import load_preset

    preset = load_preset(PRESET)
    preset.pop("description", None)
    return {**preset, "preset": PRESET, "data": {**preset["data"], **fold_split(c), "vocab": list(vocab)},
            "train": {**preset["train"], "seed": seed}}


@register_experiment
class Pretraining(Experiment):
    name = "pretraining"
    title = "Does masked-LM pre-training on the English text available here make the BERT encoder better on MR?"
    default_seeds = 1  # ten folds are ten paired comparisons; --seeds 3 triples the grid
    quick_seeds = 1
    version = 1
    full_minutes = ("65 min measured for the 10 folds on one thread of this project's shared 2-core machine (load "
                    "about 2): per fold about 4 min of masked-LM pre-training and 75 s of each fine-tuning")
    claims = (
        Claim("pretraining-helps",
              "BERT is designed to pre-train deep bidirectional representations from unlabeled text by jointly "
              "conditioning on both left and right context in all layers. As a result, the pre-trained BERT model "
              "can be fine-tuned with just one additional output layer to create state-of-the-art models for a wide "
              "range of tasks [...] / We demonstrate that large gains on these tasks can be realized by generative "
              "pre-training of a language model on a diverse corpus of unlabeled text, followed by discriminative "
              "fine-tuning on each specific task.",
              "Devlin, Chang, Lee & Toutanova 2019, \"BERT: Pre-training of Deep Bidirectional Transformers for "
              "Language Understanding\", NAACL, arXiv:1810.04805, abstract; Radford, Narasimhan, Salimans & "
              "Sutskever 2018, \"Improving Language Understanding by Generative Pre-Training\" (OpenAI), abstract.",
              f"with d = pre-trained minus from-scratch test accuracy of the same fold and seed (same model, "
              f"vocabulary, fine-tuning recipe and seed): supported if the mean d is at least {GAIN * 100:.0f} points "
              f"and d > 0 in every (fold, seed) pair; refuted if the mean d is below {NO_GAIN * 100:.1f} points; "
              f"depends otherwise. Why 2 points: the committed mr-bert folds spread by 1.6 points (std), and a gain a "
              f"user would choose pre-training for should clear that; the papers report far larger gains."),
        Claim("pretrained-matches-cnn",
              "The pre-trained BERT model can be fine-tuned with just one additional output layer to create "
              "state-of-the-art models for a wide range of tasks.",
              "Devlin et al. 2019, arXiv:1810.04805, abstract (on MR the random-init anchor is Kim 2014's "
              "CNN-rand, 76.1%).",
              "only on the benchmark protocol (all ten folds of the whole of MR; the committed mr-textcnn and "
              "mr-nbsvm results present): supported if the pre-trained model's mean accuracy reaches TextCNN's "
              "mean over the same folds; refuted if it stays 2 points or more below it; depends otherwise; not "
              "measured on any other grid (quick mode: a subset of MR and two folds)."),
    )

    def grid(self, quick: bool) -> dict[str, Any]:
        """Sizes of the mode: MR sentences (0 = all), folds, corpus cap per source, pre-training epochs."""
        if quick:
            return {"max_examples": 2000, "folds": [0, 1], "max_sentences": 1500, "heldout": 200,
                    "pretrain_epochs": 3, "pretrain_warmup": 20}
        return {"max_examples": 0, "folds": list(range(NUM_FOLDS)), "max_sentences": 0, "heldout": 500,
                "pretrain_epochs": 2, "pretrain_warmup": 200}

    def setup(self, quick: bool) -> str:
        g = self.grid(quick)
        mr = "all 10,662 MR sentences" if not g["max_examples"] else f"a seeded subset of {g['max_examples']:,} " \
            "MR sentences"
        corpus = ("Multi30K's 29,000 English training captions, tinyshakespeare's 32,000 lines (speaker headings "
                  "dropped) and the fold's 8,600 MR training sentences (about 60,000 training sentences, 0.7M "
                  "words)" if not g["max_sentences"] else
                  f"at most {g['max_sentences']:,} sentences of each of Multi30K's English captions, tinyshakespeare "
                  "and the fold's MR training sentences")
        return (f"MR, 10-fold cross-validation with the folds of the mr-* benchmarks ({mr}; folds "
                f"{', '.join(str(f) for f in g['folds'])}). **Per fold**, the `masked_lm` task pre-trains the "
                f"`{PRESET}` encoder (2 post-LN layers, width 128, 4 heads) on {corpus}: the MR part is the "
                f"fine-tuning run's own *training part* (computed by the sentence-classification task with the "
                f"same fold settings), so neither the test fold nor the dev slice is read before fine-tuning. "
                f"BERT's masking (15% of the tokens; 80% <unk>, 10% random word, 10% kept), the read-out tied to "
                f"the word embedding and scaled by 1/sqrt(128) (`mlm_head = \"scaled\"`), AdamW lr 1e-3, cosine "
                f"after {g['pretrain_warmup']} warm-up steps, batch 64, {g['pretrain_epochs']} epochs; "
                f"{g['heldout']} held-out sentences each score the masked LM (val, test). Both arms fine-tune the "
                f"`{PRESET}` preset unchanged (AdamW 5e-4, cosine, at most 5 epochs, early stopping on the dev "
                f"slice, best-on-dev weights scored on the test fold) with the **same vocabulary**: Kim's tokenizer "
                f"over the pre-training sentences (every word of the fold's MR training part and of the other "
                f"corpora), so the only difference is the encoder's starting weights. The committed benchmarks "
                f"(`benchmarks/results/mr-textcnn.json`, `mr-nbsvm.json`, `mr-bert.json`: the same folds, dev "
                f"slices and early-stopping protocol) give TextCNN, NBSVM and mr-bert with its own vocabulary; they "
                f"are compared on the full grid only. Differs from BERT: 2 layers of width 128 instead of 12 of 768, "
                f"{'about 50,000' if quick else 'about 0.7M'} words of pre-training text instead of 3.3 billion, "
                f"single sentences (no next-sentence "
                f"prediction), Kim's word tokens instead of WordPiece.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        g = self.grid(quick)
        base = {k: g[k] for k in ("max_examples", "max_sentences", "heldout", "pretrain_epochs", "pretrain_warmup")}
        return [Cell({"arm": arm, "fold": fold, **base}, s, f"{arm} fold {fold}")
                for s in seeds for fold in g["folds"] for arm in ARMS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        from archzoo.tasks.masked_lm import MaskedLM
        from archzoo.training.checkpoint import load_model
        from archzoo.training.config import load_preset, run_config_from_dict

        c = cell.config
        model = load_preset(PRESET)["model"]
        pre_cfg = pretraining_config(c, model, cell.seed)
        out: dict[str, Any] = {}
        if c["arm"] == "pretrained":
            pre = run_training(pre_cfg, work_dir / "pretrain", data_dir)
            encoder, run_cfg = load_model(work_dir / "pretrain")
            vocab = run_cfg.data.vocab
            out["pretraining"] = {"test": pre.test, "best_val": pre.best, "steps": pre.step,
                                  "train_seconds": round(pre.train_seconds, 1),
                                  "val_curve": [[r["step"], r["loss"]] for r in pre.history if r.get("split") == "val"]}
        else:  # the same vocabulary, built from the same corpus, without training on it
            vocab = MaskedLM(run_config_from_dict(pre_cfg).data, data_dir).resolved_config().vocab

        def start_from_pretrained(trainer: Any) -> None:
            trainer.model.encoder.load_state_dict(encoder.encoder.state_dict())

        fine = run_training(finetuning_config(c, vocab, cell.seed), work_dir / "finetune", data_dir,
                            prepare=start_from_pretrained if c["arm"] == "pretrained" else None)
        return {**out, "accuracy": fine.test["accuracy"], "vocab_size": len(vocab), "steps": fine.step,
                "status": fine.status, "best_val": fine.best, "train_seconds": round(fine.train_seconds, 1)}

    # -- analysis ---------------------------------------------------------------------------------
    def _pairs(self, results: list[CellResult]) -> list[tuple[int, int, float, float]]:
        """(fold, seed, scratch accuracy, pre-trained accuracy) for every pair with both arms."""
        by = {(r.config["arm"], r.config["fold"], r.seed): r.result["accuracy"] for r in results}
        return [(f, s, by[("scratch", f, s)], by[("pretrained", f, s)]) for (arm, f, s) in by
                if arm == "scratch" and ("pretrained", f, s) in by]

    def _benchmarks(self, results: list[CellResult]) -> dict[str, float] | None:
        """Mean accuracy of each committed benchmark over the folds this grid ran, or None when the grid is
        not the benchmark protocol (a subset of MR) or a result file is absent."""
        if any(r.config["max_examples"] for r in results):
            return None
        folds = sorted({r.config["fold"] for r in results})
        out = {}
        for model in BENCHMARKS:
            data = committed_benchmark(model)
            if data is None:
                return None
            out[model] = mean([data["fold_accuracies"][data["folds"].index(f)] for f in folds])
        return out

    def tables(self, results: list[CellResult]) -> list[Table]:
        rows = [[label, mean_std([r.result["accuracy"] for r in runs], 2, 100),
                 mean_std([r.result["train_seconds"] for r in runs], 0)]
                for (arm,), runs in group(results, "arm").items() for label in [ARMS[arm]]]
        bench = self._benchmarks(results)
        for model, label in BENCHMARKS.items():
            rows.append([f"{label}, committed", f"{bench[model] * 100:.2f}" if bench else
                         "— (another protocol: not comparable to this grid)", "—"])
        pairs = self._pairs(results)
        per_fold = [[str(f), str(s), f"{a * 100:.2f}", f"{b * 100:.2f}", f"{(b - a) * 100:+.2f}"]
                    for f, s, a, b in sorted(pairs)]
        pre = [r for r in results if r.config["arm"] == "pretrained"]
        pre_rows = [[str(r.config["fold"]), str(r.seed), f"{r.result['pretraining']['test']['train_sentences']:,}",
                     f"{r.result['vocab_size']:,}", f"{math.log(r.result['vocab_size']):.2f}",
                     f"{r.result['pretraining']['test']['unigram_loss']:.2f}",
                     f"{r.result['pretraining']['test']['loss']:.2f}",
                     f"{r.result['pretraining']['test']['accuracy'] * 100:.1f}", str(r.result["pretraining"]["steps"]),
                     f"{r.result['pretraining']['train_seconds']:.0f}"] for r in pre]
        return [Table("MR test accuracy (%), mean ± std over the (fold, seed) cells", ["model", "test accuracy",
                                                                                      "fine-tuning seconds"], rows),
                Table("Paired by fold and seed: test accuracy (%)", ["fold", "seed", "from scratch", "pre-trained",
                                                                     "difference (points)"], per_fold),
                Table("The masked LM after pre-training, on its held-out test sentences (nats per masked token)",
                      ["fold", "seed", "training sentences", "vocabulary", "uniform guess (ln V)",
                       "unigram guess", "masked-LM loss", "masked-token accuracy (%)", "steps", "seconds"], pre_rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        pairs = sorted(self._pairs(results))
        xs = [fold + seed / 10 for fold, seed, _, _ in pairs]  # seeds of a fold side by side
        series = {"from scratch": (xs, [a * 100 for _, _, a, _ in pairs], None),
                  "pre-trained": (xs, [b * 100 for _, _, _, b in pairs], None)}
        bench = self._benchmarks(results)
        hlines = {BENCHMARKS[m]: v * 100 for m, v in bench.items() if m != "bert"} if bench else {}
        curves = {f"fold {r.config['fold']} seed {r.seed}": ([p[0] for p in r.result["pretraining"]["val_curve"]],
                                                             [p[1] for p in r.result["pretraining"]["val_curve"]], None)
                  for r in results if r.config["arm"] == "pretrained"}
        path = plot_panels([Panel("MR test accuracy per (fold, seed) pair", "test fold (+ seed / 10)",
                                  "test accuracy (%)", series, hlines=hlines),
                            Panel("masked-LM validation loss during pre-training", "step", "nats per masked token",
                                  curves, hlines={"unigram guess (test, mean)": mean(
                                      [r.result["pretraining"]["test"]["unigram_loss"] for r in results
                                       if r.config["arm"] == "pretrained"])})],
                           out_dir / "pretraining.png", "Masked-LM pre-training, then fine-tuning on MR")
        return [Figure(path, "Left: test accuracy of the same encoder from scratch and pre-trained, per fold (lines: "
                             "the committed TextCNN and NBSVM means over the same folds, full grid only). Right: the "
                             "masked-LM loss on held-out sentences during pre-training, against the loss of guessing "
                             "by word frequency alone.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        pairs = self._pairs(results)
        deltas = [b - a for _, _, a, b in pairs]
        gain = mean(deltas)
        tests = [r.result["pretraining"]["test"] for r in results if r.config["arm"] == "pretrained"]
        beyond_unigram = mean([t["unigram_loss"] - t["loss"] for t in tests])
        numbers = {"mean_gain_points": round(gain * 100, 2), "std_gain_points": round(std(deltas) * 100, 2),
                   "pairs_won": f"{sum(d > 0 for d in deltas)}/{len(deltas)}",
                   "scratch_accuracy": round(mean([a for _, _, a, _ in pairs]), 4),
                   "pretrained_accuracy": round(mean([b for _, _, _, b in pairs]), 4),
                   "mlm_nats_below_unigram": round(beyond_unigram, 3)}
        # context for the reader, not part of the rule: did the masked LM learn more than word frequencies?
        learned = (f" The masked LM ends {beyond_unigram:.2f} nats per masked token below a word-frequency guess."
                   if beyond_unigram > 0 else f" The masked LM ends {-beyond_unigram:.2f} nats per masked token "
                   "*above* a word-frequency guess: the pre-training learned less than word frequencies.")
        if gain >= GAIN and all(d > 0 for d in deltas):
            helps = Verdict("pretraining-helps", "supported", numbers, f"pre-training adds {gain * 100:.2f} points on "
                            f"average and wins in all {len(deltas)} pairs." + learned)
        elif gain < NO_GAIN:
            helps = Verdict("pretraining-helps", "refuted", numbers, f"pre-training changes test accuracy by "
                            f"{gain * 100:+.2f} points on average (the rule asks for at least {NO_GAIN * 100:.1f} "
                            f"to call it any help): at this amount of text it does not help." + learned)
        else:
            helps = Verdict("pretraining-helps", "depends", numbers, f"pre-training adds {gain * 100:.2f} points on "
                            f"average, winning {numbers['pairs_won']} pairs (the rule asks for >= "
                            f"{GAIN * 100:.0f} points and every pair)." + learned)
        bench = self._benchmarks(results)
        folds = {r.config["fold"] for r in results}
        pretrained = numbers["pretrained_accuracy"]
        if bench is None or len(folds) < NUM_FOLDS:
            cnn = Verdict("pretrained-matches-cnn", "not measured", {"pretrained_accuracy": pretrained},
                          "this grid is not the benchmark protocol (a subset of MR or fewer than ten folds, or the "
                          "committed results are absent), so no comparison with TextCNN is made.")
        else:
            numbers = {"pretrained_accuracy": pretrained, "textcnn_accuracy": round(bench["textcnn"], 4),
                       "nbsvm_accuracy": round(bench["nbsvm"], 4)}
            short = bench["textcnn"] - pretrained
            if short <= 0:
                cnn = Verdict("pretrained-matches-cnn", "supported", numbers, f"the pre-trained encoder reaches "
                              f"{pretrained * 100:.2f}% against TextCNN's {bench['textcnn'] * 100:.2f}%.")
            elif short >= GAIN:
                cnn = Verdict("pretrained-matches-cnn", "refuted", numbers, f"the pre-trained encoder stays "
                              f"{short * 100:.2f} points below TextCNN ({pretrained * 100:.2f}% vs "
                              f"{bench['textcnn'] * 100:.2f}%).")
            else:
                cnn = Verdict("pretrained-matches-cnn", "depends", numbers, f"the pre-trained encoder is "
                              f"{short * 100:.2f} points below TextCNN, within the rule's 2.")
        return [helps, cnn]
