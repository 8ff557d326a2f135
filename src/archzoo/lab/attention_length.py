"""attention-and-length: BLEU by source-length bucket on Multi30k test2016 (de -> en) for the LSTM seq2seq,
the GRU context-vector model, Bahdanau attention and the Transformer, from the committed presets
(Bahdanau et al. 2015, fig. 2). Each full-mode cell is one preset trained with its full recipe at one seed.
A cell reads a finished run of that preset and seed instead of training when ``ARCHZOO_LAB_TRANSLATION_RUNS``
names a folder holding one: a run folder named after the preset (``multi30k-attention/eval.json``, its
``config.json`` giving the seed) or an ``archzoo bench`` record (``multi30k-attention.json``, trained with the
preset's own seed and no overrides), e.g. the committed ``benchmarks/results``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
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
    trained_precision,
)
from archzoo.lab.runner import run_training

PRESETS = {  # preset -> label
    "multi30k-lstm": "LSTM seq2seq (Sutskever et al.)",
    "multi30k-gru_context": "GRU context vector (Cho et al.)",
    "multi30k-attention": "GRU + attention (Bahdanau et al.)",
    "multi30k-transformer": "Transformer",
}
CONTEXT_VECTOR = ("multi30k-lstm", "multi30k-gru_context")
ATTENTION = "multi30k-attention"
REUSE_ENV = "ARCHZOO_LAB_TRANSLATION_RUNS"
DROP_MARGIN = 2.0  # BLEU points
MIN_SENTENCES = 100  # the "long" bucket is the longest holding at least this many test sentences
LONG_MARGIN = 1.0


def bucket_scores(report: dict[str, Any]) -> list[list[Any]]:
    """test2016's [bucket, beam BLEU, sentences] from a translation run's test report (eval.json)."""
    try:
        return [list(b) for b in report["test_sets"]["test2016"]["bleu_by_length"]]
    except KeyError:
        raise UserError("the translation run's test report has no test2016 BLEU by length; rerun its test "
                        "(`archzoo eval RUN`)") from None


def finished_run(folder: Path, preset: str, seed: int) -> tuple[dict[str, Any], str] | None:
    """The test report of a finished full-recipe run of ``preset`` at ``seed`` in ``folder``, and where it
    came from; None when the folder holds none for that seed."""
    from archzoo.training.config import load_preset

    run = folder / preset
    if (run / "eval.json").is_file() and (run / "config.json").is_file():
        train = json.loads((run / "config.json").read_text())["train"]
        if train.get("seed", 0) == seed:
            # a named precision is what ran; "auto" depended on a machine the folder does not record
            precision = None if train.get("precision", "auto") == "auto" else train["precision"]
            return {**json.loads((run / "eval.json").read_text()), "precision": precision}, str(run / "eval.json")
        return None
    record_path = folder / f"{preset}.json"
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if record.get("preset") != preset or record.get("status") != "completed" or record.get("overrides"):
        raise UserError(f"{record_path} is not a completed `archzoo bench {preset}` record without overrides; "
                        f"remove it from ${REUSE_ENV} or rerun the benchmark")
    if load_preset(preset)["train"].get("seed", 0) != seed:
        return None
    report = {"test_sets": {"test2016": {"bleu_by_length": record["bleu_by_length"]}}, "bleu": record["value"],
              "precision": record.get("precision")}  # records before the field existed do not say
    return report, str(record_path)


def long_bucket(buckets: list[list[Any]]) -> int:
    """Index of the longest source-length bucket with at least MIN_SENTENCES sentences (test2016's 25+ bucket
    holds only a handful, too few for a corpus BLEU)."""
    return max(k for k, b in enumerate(buckets) if b[2] >= MIN_SENTENCES)


def bucket_bleu(run: CellResult) -> list[float]:
    """A run's BLEU per source-length bucket, shortest first."""
    return [b[1] for b in run.result["buckets"]]


def length_drop(run: CellResult, k: int) -> float:
    """BLEU lost from the shortest bucket to bucket ``k``: the claim's measure of the bottleneck."""
    bleu = bucket_bleu(run)
    return bleu[0] - bleu[k]


@register_experiment
class AttentionAndLength(Experiment):
    name = "attention-and-length"
    title = "Does attention remove the context vector's trouble with long sentences? BLEU by source length"
    quick_seeds = 1
    # each model is one preset run (hours), but one seed's BLEU moves by about 1 point (the buckets by more),
    # the size of the rule's margins, so the verdict stands on three
    default_seeds = 3
    # the four presets' benchmark runs trained 60 + 69 + 99 + 83 min (benchmarks/results/multi30k-*.json)
    resumable = True  # a cell is hours of one training: an interrupted one continues from its checkpoint
    # seeds 1-2 (fp32, AVX2 EPYC, two cells side by side) took 9,336 + 6,460 + 6,183 + 5,444 s at their fastest
    full_minutes = ("about 5.2 h per seed on one thread of an EPYC with native bf16, about 7.5 h in fp32 on an "
                    "AVX2-only one (the presets' full training)")
    claims = (
        Claim("context-vector-hurts-long-sentences",
              "A potential issue with this encoder-decoder approach is that a neural network needs to be able to "
              "compress all the necessary information of a source sentence into a fixed-length vector. This may "
              "make it difficult for the neural network to cope with long sentences, especially those that are "
              "longer than the sentences in the training corpus.",
              "Bahdanau, Cho & Bengio 2015, \"Neural Machine Translation by Jointly Learning to Align and Translate\", "
              "ICLR, arXiv:1409.0473, Sec. 1 and fig. 2.",
              f"drop = BLEU on the shortest source bucket (1-9 tokens) minus BLEU on the long bucket (the longest "
              f"holding at least {MIN_SENTENCES} of the test2016 sentences), beam: supported if both "
              f"context-vector models (LSTM, GRU context) drop at least {DROP_MARGIN:g} "
              f"BLEU more than the attention model and the attention model scores at least {LONG_MARGIN:g} BLEU "
              f"above both on the long bucket; refuted if the attention model scores no higher than the better "
              f"context-vector model on the long bucket; depends otherwise."),
    )

    def steps(self, quick: bool) -> int:
        return 300 if quick else 0  # 0: the presets' own epochs

    def setup(self, quick: bool) -> str:
        budget = (f"trained by the one Trainer for {self.steps(quick)} steps each (a quick run: far from the "
                  f"presets' quality), float32, test2016 only, beam 1, no length-penalty search" if quick else
                  "each trained by the one Trainer with its preset's full recipe (about 5.2 h for the four on one "
                  "thread of an EPYC with native bf16, about 7.5 h in fp32 on an AVX2-only one), or read from a "
                  "finished run of the same preset and seed (the second table names "
                  "each run's source and, where its record says, the precision it trained in: the presets' `auto` "
                  "is bf16 on a device with native bf16 and fp32 elsewhere; a run read from a benchmark record was "
                  "trained on the record's machine, not the one that read it)")
        presets = ", ".join(f"`{p}` ({label})" for p, label in PRESETS.items())
        return (f"Multi30k de -> en. The four committed presets ({presets}), "
                f"{budget}. The test report of each run gives the corpus sacreBLEU of the beam hypotheses of "
                f"test2016 (1,000 sentences) in source-length buckets of 1-9, 10-14, 15-19, 20-24 and 25+ tokens "
                f"(whitespace tokens of the German source); the figure is Bahdanau et al.'s fig. 2 on this data.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"preset": p, "steps": self.steps(quick)}, s, p) for s in seeds for p in PRESETS]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        from archzoo.training.config import load_preset

        c = cell.config
        reuse = os.environ.get(REUSE_ENV, "")
        if reuse and not c["steps"]:  # a finished full-recipe run of this preset and seed is this cell's result
            if not Path(reuse).is_dir():
                raise UserError(f"${REUSE_ENV}={reuse} is not a folder: point it at finished translation runs "
                                f"(run folders or `archzoo bench` records) or unset it")
            found = finished_run(Path(reuse), c["preset"], cell.seed)
            if found is not None:
                data, source = found
                return {"buckets": bucket_scores(data), "bleu": data.get("bleu"), "source": source,
                        "precision": data["precision"]}
        config = load_preset(c["preset"])
        config.pop("description", None)
        config["train"] = {**config["train"], "seed": cell.seed}
        if c["steps"]:
            config["train"].update({"max_steps": c["steps"], "eval_every_steps": c["steps"], "precision": "fp32"})
            config["data"] = {**config["data"], "test_sets": ["test2016"], "beam_size": 1, "length_penalties": []}
        result = run_training(config, work_dir, data_dir, resume=True)
        return {"buckets": bucket_scores(result.test), "bleu": result.test.get("bleu"), "source": "trained",
                "precision": result.precision}

    # -- analysis ---------------------------------------------------------------------------------
    def _runs(self, results: list[CellResult]) -> dict[str, list[CellResult]]:
        """preset -> its runs, one per seed."""
        return {preset: runs for (preset,), runs in group(results, "preset").items()}

    def _scores(self, results: list[CellResult]) -> dict[str, list[float]]:
        """preset -> mean BLEU per bucket over seeds."""
        return {p: [mean(bleu) for bleu in zip(*(bucket_bleu(r) for r in runs), strict=True)]
                for p, runs in self._runs(results).items()}

    def tables(self, results: list[CellResult]) -> list[Table]:
        k = long_bucket(results[0].result["buckets"])
        labels = [f"{b[0]} (n={b[2]})" for b in results[0].result["buckets"]]
        rows = [[PRESETS[p], *(mean_std(bleu, digits=1) for bleu in zip(*(bucket_bleu(r) for r in runs), strict=True)),
                 mean_std([length_drop(r, k) for r in runs], digits=1, signed=True),
                 mean_std([r.result["bleu"] or 0.0 for r in runs], digits=1)]
                for p, runs in self._runs(results).items()]
        long_label = results[0].result["buckets"][k][0]
        runs = [[PRESETS[r.config["preset"]], str(r.seed), f"{r.result['bleu'] or 0.0:.2f}",
                 f"{bucket_bleu(r)[k]:.2f}", f"{length_drop(r, k):+.2f}", trained_precision(r), r.result["source"]]
                for r in sorted(results, key=lambda r: (r.config["preset"], r.seed))]
        return [Table("test2016 beam BLEU by source length (tokens), mean ± std over seeds",
                      ["model", *labels, f"drop (1-9 minus {long_label})", "corpus BLEU"], rows),
                Table("Each run", ["model", "seed", "corpus BLEU", f"BLEU {long_label}", f"drop (1-9 minus {long_label})",
                                   "precision", "source"], runs)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        buckets = results[0].result["buckets"]
        series = {}
        for p, runs in self._runs(results).items():
            per_bucket = list(zip(*(bucket_bleu(r) for r in runs), strict=True))
            series[PRESETS[p]] = (range(len(buckets)), [mean(v) for v in per_bucket],
                                  [std(v) for v in per_bucket] if len(runs) > 1 else None)
        panel = Panel("Multi30k de -> en, test2016", "source length (German tokens), sentences in the bucket", "BLEU",
                      series, xticks=[f"{b[0]}\n(n={b[2]})" for b in buckets])
        path = plot_panels([panel], out_dir / "bleu-by-length.png", "BLEU against source length (Bahdanau et al. fig. 2)")
        return [Figure(path, "Corpus BLEU of each source-length bucket (mean over seeds; bands ± std where there "
                             "are several); a context-vector model's line falling faster than the attention model's "
                             "is the bottleneck the claim describes.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        scores = self._scores(results)
        k = long_bucket(results[0].result["buckets"])
        drop = {p: v[0] - v[k] for p, v in scores.items()}
        longest = {p: v[k] for p, v in scores.items()}
        numbers: dict[str, Any] = {"long bucket": results[0].result["buckets"][k][0]}
        numbers.update({f"{p} drop": round(d, 2) for p, d in drop.items()})
        numbers.update({f"{p} long-bucket BLEU": round(v, 2) for p, v in longest.items()})
        att = ATTENTION
        if all(drop[p] >= drop[att] + DROP_MARGIN and longest[att] >= longest[p] + LONG_MARGIN for p in CONTEXT_VECTOR):
            return [Verdict("context-vector-hurts-long-sentences", "supported", numbers,
                            "both context-vector models lose more BLEU from the shortest to the long sources than "
                            "the attention model, which leads on the long bucket.")]
        if longest[att] <= max(longest[p] for p in CONTEXT_VECTOR):
            return [Verdict("context-vector-hurts-long-sentences", "refuted", numbers,
                            "the attention model scores no higher than the better context-vector model on the long "
                            "sources.")]
        return [Verdict("context-vector-hurts-long-sentences", "depends", numbers,
                        "attention leads on the long sources, but not by the margins the rule asks for in both "
                        "comparisons.")]
