"""Translation benchmarks (Multi30K de->en): sacreBLEU on test2016 of each encoder-decoder, beam search
against greedy for the Transformer, translation speed, and BLEU by source length for every model.

Each model trains with its preset (tokenizers from the training split, best-validation-BLEU
checkpoint chosen by greedy decoding of val) and is scored once on test2016, test2017 and test2018
with sacreBLEU's default signature on detokenised, cased output. The anchors (ANCHORS.md) are
tokenised lower-cased BLEU with greedy decoding, usually a couple of points above sacreBLEU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from archzoo.benchmarks.base import register_benchmark, resume_run
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer

MODELS = ("lstm", "gru_context", "attention", "transformer")


def plot_all_lengths(bench_dir: Path) -> Path | None:
    """One BLEU-by-source-length plot of every translation run finished under ``bench_dir``."""
    from archzoo.viz.plots import plot_bleu_by_length

    series = {}
    for model in MODELS:
        report = bench_dir / f"multi30k-{model}" / "run" / "eval.json"
        if report.exists():
            buckets = json.loads(report.read_text())["test_sets"]["test2016"]["bleu_by_length"]
            series[model] = [(f"{label}\n(n={n})", bleu) for label, bleu, n in buckets]
    if not series:
        return None
    return plot_bleu_by_length(series, bench_dir / "multi30k-bleu-by-length.png",
                               "Multi30K de-en test2016, beam 5: sacreBLEU by source length")


def train_translator(preset: str, work_dir: Path, overrides: list[str] | None = None,
                     resume: bool = False) -> dict[str, Any]:
    """Train ``preset`` into ``work_dir/run`` and gather its test report; the value is test2016 beam BLEU.
    ``resume`` continues a saved run there (a finished one is only reported again)."""
    cfg = resolve_config(preset, overrides or [])
    start = time.perf_counter()
    result = Trainer(cfg, work_dir / "run", progress=False, verbose=True, overwrite=True,
                     resume=resume_run(work_dir, resume)).fit()
    wall = time.perf_counter() - start
    assert result.test is not None
    test = result.test["test_sets"]
    headline = test["test2016"]
    plot = plot_all_lengths(work_dir.parent)
    return {
        "value": round(headline["beam"]["bleu"], 2),
        "greedy_bleu": round(headline["greedy"]["bleu"], 2),
        "beam_minus_greedy": round(headline["beam"]["bleu"] - headline["greedy"]["bleu"], 2),
        "chrf": round(headline["beam"]["chrf"], 2), "perplexity": round(headline["perplexity"], 3),
        "bleu_signature": result.test["bleu_signature"], "chrf_signature": result.test["chrf_signature"],
        "other_test_sets": {name: {"beam_bleu": round(r["beam"]["bleu"], 2), "greedy_bleu": round(r["greedy"]["bleu"], 2),
                                   "chrf": round(r["beam"]["chrf"], 2)} for name, r in test.items() if name != "test2016"},
        "sentences_per_s": {"greedy": round(headline["greedy"]["sentences_per_s"], 1),
                            f"beam{result.test['beam_size']}": round(headline["beam"]["sentences_per_s"], 1)},
        "bleu_by_length": headline["bleu_by_length"], "bleu_by_length_plot": str(plot) if plot else None,
        "best_val": result.best, "steps": result.step, "status": result.status, "precision": result.precision,
        "train_seconds": round(result.train_seconds, 1), "train_plus_eval_seconds": round(wall, 1),
        "preset": preset, "overrides": overrides or [], "model": cfg.model.name, "model_args": cfg.model.args,
        "run_dir": str(work_dir / "run"),
    }


_PROTOCOL = ("Multi30K de->en, preset {preset} trained on the 29,000 training pairs (best-val-BLEU checkpoint), "
             "sacreBLEU (13a, cased, detokenised) on the 1,000 test2016 pairs with beam 5; also greedy, chrF, "
             "perplexity, test2017/2018, sentences/s and BLEU by source length; {why}")
for _model, _target, _why in (
        ("lstm", 15.0, "target 15 (anchor: bentrevett's LSTM 13.76, tokenised lower-cased BLEU, greedy)"),
        ("gru_context", 22.0, "target 22 (anchor: bentrevett's GRU with context 20.61)"),
        ("attention", 30.0, "target 30 (anchor: bentrevett's Bahdanau attention 28.30)"),
        ("transformer", 37.0, "target 37 (anchor: bentrevett's Transformer 36.52); beam 5 should beat greedy "
                              "by >= 0.5 (field beam_minus_greedy)")):
    def _run(work_dir: Path, model: str = _model, resume: bool = False) -> dict[str, Any]:
        return train_translator(f"multi30k-{model}", work_dir, resume=resume)

    register_benchmark(f"multi30k-{_model}", "test2016_sacrebleu_beam5", _target, ">=",
                       _PROTOCOL.format(preset=f"multi30k-{_model}", why=_why))(_run)
