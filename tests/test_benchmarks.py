"""The benchmark harness runs (tiny settings); benchmarks measure, so nothing here asserts a speed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from archzoo.benchmarks import BENCHMARKS, run_benchmark
from archzoo.benchmarks.base import alternate
from archzoo.benchmarks.gpt import gpt_generation, gpt_throughput
from archzoo.benchmarks.lm import lstm_throughput
from archzoo.benchmarks.mnist import throughput
from archzoo.benchmarks.sentence import cross_validate
from archzoo.benchmarks.translation import train_translator
from archzoo.errors import UserError
from helpers import SHARED_DATA, needs_mr, needs_shared_data


def test_alternate_reports_the_median_ratio() -> None:
    bare, ours = iter([10.0, 10.0, 10.0]), iter([5.0, 20.0, 9.0])
    rates = alternate(lambda: next(bare), lambda: next(ours), rounds=3)
    assert rates == {"value": 0.9, "archzoo_rates": [5, 20, 9], "bare_rates": [10, 10, 10]}


def test_every_issue_benchmark_is_registered() -> None:
    assert set(BENCHMARKS.names()) == {
        "mnist-simple_cnn", "mnist-lenet5", "mnist-mlp", "mnist-time-to-99", "mnist-throughput",
        "shakespeare-lstm", "shakespeare-gru", "shakespeare-rnn", "names-lstm", "names-gru", "lstm-throughput",
        "mnist-gans", "fashion-gans",
        "fashion-simple_cnn", "fashion-resnet20", "fashion-resnet18", "mnist-resnet20", "fashion-degradation",
        "cifar10-resnet20", "cnn-throughput",
        "matmul-peak", "gpt-nanogpt-cpu", "shakespeare-gpt", "gpt-mfu", "gpt-generation", "gpt-throughput",
        "mr-textcnn", "mr-bilstm", "mr-bigru", "mr-bert", "mr-nbsvm",
        "etth1-h96", "etth1-horizons", "airline-1960", "sunspots-1937",
        "multi30k-lstm", "multi30k-gru_context", "multi30k-attention", "multi30k-transformer", "inference-speed", "compile-speed"}


@needs_shared_data
def test_throughput_benchmarks_run(tmp_path: Path) -> None:
    result = throughput(tmp_path, steps=2, warmup=1, rounds=1)
    assert result["value"] > 0 and len(result["trainer_images_per_s"]) == 1
    result = lstm_throughput(tmp_path, steps=1, warmup=1, rounds=1)
    assert result["value"] > 0 and result["generation_chars_per_s_batch1_fp32"] > 0


@needs_shared_data
def test_gpt_benchmarks_run(tmp_path: Path) -> None:
    result = gpt_throughput(tmp_path, steps=1, warmup=1, rounds=1)
    assert result["value"] > 0 and len(result["torch_nn_tokens_per_s"]) == 1
    result = gpt_generation(tmp_path, new_tokens=4, rounds=1)
    assert result["value"] > 0 and len(result["kv_cache_tokens_per_s"]) == 1 and result["kv_cache_tokens_per_s"][0] > 0


@needs_mr
def test_cross_validation_benchmark_runs(tmp_path: Path) -> None:
    result = cross_validate("mr-nbsvm", tmp_path, folds=[0, 1], overrides=[
        "data.max_examples=600", "model.args.bigram_buckets=1024", "train.max_steps=4", "train.log_every_steps=2"])
    assert len(result["fold_accuracies"]) == 2 and 0 <= result["value"] <= 1 and result["std"] >= 0
    assert abs(result["value"] - sum(result["fold_accuracies"]) / 2) < 1e-3


def test_translation_benchmark_runs_and_plots_every_model(tmp_path: Path) -> None:
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip("../shared/data/multi30k not staged")
    tiny = ["data.max_train_pairs=200", "data.max_eval_pairs=16", "data.vocab_size=150", "train.max_steps=3",
            "train.batch_size=32", "train.precision='fp32'", "model.args.d_model=32", "model.args.num_heads=4",
            "model.args.dim_feedforward=32", "model.args.num_encoder_layers=1", "model.args.num_decoder_layers=1"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHZOO_DATA", str(SHARED_DATA))
        result = train_translator("multi30k-transformer", tmp_path / "multi30k-transformer", tiny)
    assert 0 <= result["value"] <= 100 and result["steps"] == 3
    assert set(result["other_test_sets"]) == {"test2017", "test2018"} and result["sentences_per_s"]["greedy"] > 0
    assert Path(result["bleu_by_length_plot"]).stat().st_size > 0
    # --resume of the finished run trains no further and reports again, now choosing the length penalty
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHZOO_DATA", str(SHARED_DATA))
        again = train_translator("multi30k-transformer", tmp_path / "multi30k-transformer",
                                 [*tiny, "data.length_penalties=[0.0, 1.0]"], resume=True)
    assert again["steps"] == 3 and again["train_seconds"] <= result["train_seconds"]
    report = json.loads((tmp_path / "multi30k-transformer" / "run" / "eval.json").read_text())
    assert set(report["length_penalty_search"]["val_beam_bleu"]) == {"0.0", "1.0"}


def test_only_benchmarks_that_save_their_progress_resume(tmp_path: Path) -> None:
    assert BENCHMARKS.get("multi30k-transformer").resumable and BENCHMARKS.get("fashion-resnet20").resumable
    assert BENCHMARKS.get("cnn-throughput").resumable  # keeps the models it had measured
    with pytest.raises(UserError, match="benchmark fashion-degradation cannot be resumed"):
        run_benchmark("fashion-degradation", tmp_path, "archzoo bench fashion-degradation --resume", resume=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None, reason="no C++ compiler for inductor")
def test_compile_benchmark_runs_and_resumes(tmp_path: Path) -> None:
    from archzoo.benchmarks.compile import compile_speed

    result = compile_speed(tmp_path, {"mlp": ("quickstart", ())}, warmup=1, steps=2, rounds=1)
    record = result["families"]["mlp"]
    assert result["value"] == record["ratio"] > 0 and len(record["compiled_steps_per_s"]) == 1
    again = compile_speed(tmp_path, {"mlp": ("quickstart", ())}, resume=True)  # the saved record, nothing measured
    assert again["families"]["mlp"] == record
