"""Speech benchmarks on the Free Spoken Digit Dataset: isolated digits on the standard split and
leave-one-speaker-out, and connected digits with CTC.

Each trains its preset once (``--resume`` continues an interrupted run) and scores the test split with
the best-on-validation weights; nothing is tuned on test recordings.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from archzoo.benchmarks.base import register_benchmark, resume_run
from archzoo.benchmarks.mnist import train_preset
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")

_STANDARD = ("test accuracy on the FSDD standard split (recording index 0-4 of every speaker and digit, 300 "
             "recordings) after preset {preset}, best-on-validation weights; reference: softmax regression 97.3%, "
             "1-nearest-neighbour 98.7% (data README); target: the issue's 99.0% for the best model")
for _model in ("cnn", "lstm", "bilstm", "crnn", "transformer"):
    def _run(work_dir: Path, model: str = _model, resume: bool = False) -> dict[str, Any]:
        return train_preset(f"spoken-digits-{model}", work_dir, resume=resume)

    register_benchmark(f"spoken-digits-{_model}", "test_accuracy", 0.99, ">=",
                       _STANDARD.format(preset=f"spoken-digits-{_model}"))(_run)


def leave_one_speaker_out(preset: str, work_dir: Path, resume: bool = False, overrides: list[str] | None = None,
                          speakers: tuple[str, ...] = SPEAKERS) -> dict[str, Any]:
    """Train ``preset`` six times, each with one speaker's 500 recordings as the test set; the value is the
    mean test accuracy. Finished folds are kept in ``folds.json`` and skipped by ``--resume``."""
    record_path = work_dir / "folds.json"
    done: dict[str, dict[str, Any]] = json.loads(record_path.read_text()) if resume and record_path.is_file() else {}
    for speaker in speakers:
        if speaker in done:
            continue
        cfg = resolve_config(preset, [*(overrides or []), f"data.holdout_speaker='{speaker}'"])
        fold_dir = work_dir / speaker
        result = Trainer(cfg, fold_dir / "run", progress=False, verbose=False, resume=resume_run(fold_dir, resume)).fit()
        assert result.test is not None
        done[speaker] = {"accuracy": round(result.test["accuracy"], 4), "train_seconds": round(result.train_seconds, 1),
                         "steps": result.step,
                         "per_digit": {k: round(v, 4) for k, v in result.test["per_class_accuracy"].items()}}
        record_path.write_text(json.dumps(done, indent=2) + "\n")
        print(f"{preset} leave out {speaker}: test accuracy {done[speaker]['accuracy']:.4f}", flush=True)
    accuracies = [done[s]["accuracy"] for s in speakers]
    return {"value": round(statistics.fmean(accuracies), 4),
            "std": round(statistics.stdev(accuracies), 4) if len(accuracies) > 1 else 0.0,
            "per_speaker": {s: done[s]["accuracy"] for s in speakers}, "folds": done, "preset": preset,
            "overrides": overrides or [], "train_seconds_total": round(sum(done[s]["train_seconds"] for s in speakers), 1),
            "reference_softmax_regression": {"mean": 0.741, "george": 0.584, "jackson": 0.826, "lucas": 0.654,
                                             "nicolas": 0.606, "theo": 0.878, "yweweler": 0.898}}


LOSO_EPOCHS = 15  # half the standard-split presets' 30: six folds in about half an hour on one thread

for _model in ("cnn", "crnn", "bilstm"):
    def _loso(work_dir: Path, model: str = _model, resume: bool = False) -> dict[str, Any]:
        return leave_one_speaker_out(f"spoken-digits-{model}", work_dir, resume, [f"train.epochs={LOSO_EPOCHS}"])

    register_benchmark(f"spoken-digits-loso-{_model}", "mean_test_accuracy", 0.85, ">=",
                       f"leave-one-speaker-out on FSDD with preset spoken-digits-{_model} trained {LOSO_EPOCHS} epochs "
                       "(half the preset's 30): six trainings, each testing on one speaker's 500 recordings (validation "
                       "drawn from the other five); mean test accuracy and every fold; reference: softmax regression "
                       "74.1% (data README); target: the issue's 85%")(_loso)


LOSO_WARP = 0.15


def _loso_warp(work_dir: Path, resume: bool = False) -> dict[str, Any]:
    return leave_one_speaker_out("spoken-digits-cnn", work_dir, resume,
                                 [f"train.epochs={LOSO_EPOCHS}", f"data.freq_warp={LOSO_WARP}"])


register_benchmark("spoken-digits-loso-cnn-warp", "mean_test_accuracy", 0.85, ">=",
                   f"spoken-digits-loso-cnn with each training utterance's log-mel axis stretched by a factor drawn "
                   f"from U[{1 - LOSO_WARP:g}, {1 + LOSO_WARP:g}] (data.freq_warp={LOSO_WARP}, VTLP-like: other "
                   f"vocal tracts); otherwise the same six trainings of {LOSO_EPOCHS} epochs; mean test accuracy and "
                   "every fold; reference: softmax regression 74.1%; target: the issue's 85%")(_loso_warp)


def connected(preset: str, work_dir: Path, resume: bool = False, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train a CTC preset; the value is the test digit error rate with prefix beam search."""
    cfg = resolve_config(preset, overrides or [])
    result = Trainer(cfg, work_dir / "run", progress=False, verbose=False, resume=resume_run(work_dir, resume)).fit()
    test = result.test
    assert test is not None
    return {"value": round(test["digit_error_rate"], 5), "sentence_accuracy": round(test["sentence_accuracy"], 4),
            "beam_size": test["beam_size"], "greedy": test["greedy"], "test_utterances": test["examples"],
            "test_digits": test["digits"], "sentence_accuracy_by_length": test["sentence_accuracy_by_length"],
            "errors": test["errors"][:20], "preset": preset, "train_seconds": round(result.train_seconds, 1),
            "steps": result.step, "best_val": result.best, "run_dir": str(work_dir / "run")}


for _model in ("bilstm", "lstm"):
    def _ctc(work_dir: Path, model: str = _model, resume: bool = False) -> dict[str, Any]:
        return connected(f"connected-digits-{model}", work_dir, resume)

    register_benchmark(f"connected-digits-{_model}", "test_digit_error_rate", 0.03, "<=",
                       f"digit error rate (edit distance / reference digits) on 500 connected-digit test utterances "
                       f"(3-7 digits, test recordings only), prefix beam search, preset connected-digits-{_model}; "
                       "sentence accuracy and greedy decoding beside it; target: the issue's 3%")(_ctc)
