"""The benchmark harness runs (tiny settings); benchmarks measure, so nothing here asserts a speed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from archzoo.benchmarks import BENCHMARKS, run_benchmark
from archzoo.benchmarks.base import alternate
from archzoo.benchmarks.generation import gpt_generation, lstm_generation, weight_bytes_per_token
from archzoo.benchmarks.gpt import gpt_throughput
from archzoo.benchmarks.lm import lstm_throughput
from archzoo.benchmarks.mnist import check_steps, throughput, time_to_99
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
        "lstm-generation",
        "mr-textcnn", "mr-bilstm", "mr-bigru", "mr-bert", "mr-nbsvm",
        "etth1-h96", "etth1-horizons", "airline-1960", "sunspots-1937",
        "multi30k-lstm", "multi30k-gru_context", "multi30k-attention", "multi30k-transformer", "inference-speed", "compile-speed",
        "spoken-digits-cnn", "spoken-digits-lstm", "spoken-digits-bilstm", "spoken-digits-crnn", "spoken-digits-transformer",
        "spoken-digits-loso-cnn", "spoken-digits-loso-crnn", "spoken-digits-loso-bilstm", "spoken-digits-loso-cnn-warp",
        "connected-digits-bilstm", "connected-digits-lstm",
        "hopfield-capacity", "hopfield-storkey-capacity", "hopfield-mnist-recall"}


@needs_shared_data
def test_throughput_benchmarks_run(tmp_path: Path) -> None:
    result = throughput(tmp_path, steps=2, warmup=1, rounds=1)
    assert result["value"] > 0 and len(result["trainer_images_per_s"]) == 1
    result = lstm_throughput(tmp_path, steps=1, warmup=1, rounds=1)
    assert result["value"] > 0 and result["generation_chars_per_s_batch1_fp32"] > 0


def test_time_to_99_checks_the_end_of_the_run_and_its_last_step() -> None:
    assert check_steps(350, 25, 0.8) == {300, 325, 350}
    assert check_steps(340, 25, 0.8) == {275, 300, 325, 340}
    assert check_steps(2, 25, 0.8) == {2} and check_steps(100, 50, 0.0) == {50, 100}


@needs_shared_data
def test_time_to_99_runs_every_seed_and_counts_a_miss_as_infinity(tmp_path: Path) -> None:
    import math

    result = time_to_99(tmp_path, seeds=2, overrides=("train.max_steps=3", "train.precision='fp32'"))
    assert [r["seed"] for r in result["runs"]] == [0, 1] and result["preset"] == "mnist-time-to-99"
    assert all(r["steps"] == 3 and [t[0] for t in r["trajectory_step_seconds_accuracy"]] == [3] for r in result["runs"])
    assert not result["all_reached_99"] and result["value"] == result["worst_seconds"] == math.inf
    assert result["runs"][0]["final_test_accuracy"] != result["runs"][1]["final_test_accuracy"]  # other seeds


@needs_shared_data
def test_gpt_benchmarks_run(tmp_path: Path) -> None:
    # a small batch: the preset's 64 x 256 tokens cost ~25 s a step in fp32 on an AVX2-only CPU
    result = gpt_throughput(tmp_path, steps=1, warmup=1, rounds=1, overrides=["train.batch_size=4"])
    assert result["value"] > 0 and len(result["torch_nn_tokens_per_s"]) == 1 and result["batch_size"] == 4


def test_generation_benchmarks_run_and_agree_token_for_token(tmp_path: Path) -> None:
    for bench in (gpt_generation, lstm_generation):
        result = bench(tmp_path, new_tokens=4, rounds=1)
        assert result["identical_tokens"] and result["value"] > 0 and len(result["decoder_tokens_per_s"]) == 1
        assert result["bandwidth_bound_tokens_per_s_dram"] > 0 and result["copy_gb_per_s_256mb"] > 0
        assert min(result["matmuls_alone_tokens_per_s"].values()) > 0 and result["identical_tokens_seeds_1_to_4"]
        assert 0 <= result["max_logit_difference"] < 1e-4


def test_weight_bytes_count_a_tied_readout_once_and_skip_embedding_rows() -> None:
    from archzoo.models import create_model

    tied = create_model("gpt", vocab_size=10, context=8, d_model=8, num_layers=1, num_heads=2, tie_weights=True)
    untied = create_model("gpt", vocab_size=10, context=8, d_model=8, num_layers=1, num_heads=2)
    blocks = sum(p.numel() for n, p in untied.named_parameters() if n.startswith(("layers", "norm"))) * 4
    assert weight_bytes_per_token(tied) == blocks + 10 * 8 * 4
    assert weight_bytes_per_token(untied) == blocks + 10 * 8 * 4  # its own readout; embeddings read by the row


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


def test_hopfield_benchmarks_run(tmp_path: Path) -> None:
    from archzoo.benchmarks.hopfield import hopfield_capacity, mnist_recall

    result = hopfield_capacity(tmp_path, sizes=(40,), loads=(0.05, 0.3), min_patterns=20)
    assert 0 <= result["value"] and set(result["capacity_at_50pct"]) == {"hebbian", "storkey"}
    assert (tmp_path / "capacity.png").is_file()
    result = mnist_recall(tmp_path, counts=(2, 3), dataset="mnist-small")  # built-in data: runs everywhere
    assert 0 <= result["value"] <= 1 and result["spurious"]["random_3_mixture_is_fixed_point"] >= 0.5
    for figure in ("recall_vs_patterns.png", "recall_vs_corruption.png", "spurious.png", "beta.png"):
        assert (tmp_path / figure).is_file()


@pytest.mark.skipif(not (SHARED_DATA / "spoken-digits").is_dir(), reason="../shared/data/spoken-digits not staged")
def test_speech_benchmarks_run(tmp_path: Path) -> None:
    from archzoo.benchmarks.speech import connected, leave_one_speaker_out

    tiny = ["train.max_steps=2", "train.batch_size=8", "train.log_every_steps=1"]
    result = leave_one_speaker_out("spoken-digits-cnn", tmp_path / "loso", overrides=[
        *tiny, "model.args.channels=[4, 8]", "model.args.time_strides=[2, 2]"], speakers=("theo",))
    assert list(result["per_speaker"]) == ["theo"] and 0 <= result["value"] <= 1
    assert json.loads((tmp_path / "loso" / "folds.json").read_text())["theo"]["steps"] == 2
    result = connected("connected-digits-lstm", tmp_path / "ctc", overrides=[
        *tiny, "model.args.hidden_size=8", "model.args.num_layers=1", "data.train_utterances=16",
        "data.val_utterances=4", "data.test_utterances=4", "data.beam_size=2"])
    assert result["test_utterances"] == 4 and 0 <= result["value"] and "greedy" in result


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None, reason="no C++ compiler for inductor")
def test_compile_benchmark_runs_and_resumes(tmp_path: Path) -> None:
    from archzoo.benchmarks.compile import compile_speed

    result = compile_speed(tmp_path, {"mlp": ("quickstart", ())}, warmup=1, steps=2, rounds=1)
    record = result["families"]["mlp"]
    assert result["value"] == record["ratio"] > 0 and len(record["compiled_steps_per_s"]) == 1
    again = compile_speed(tmp_path, {"mlp": ("quickstart", ())}, resume=True)  # the saved record, nothing measured
    assert again["families"]["mlp"] == record
