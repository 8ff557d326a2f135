"""The CNN benchmarks run end to end at tiny settings (benchmarks measure; nothing here asserts a speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.benchmarks import BENCHMARKS, cnn
from archzoo.benchmarks.cnn import cifar10_resnet20, cnn_throughput, degradation
from archzoo.errors import UserError
from helpers import needs_shared_data

TINY = ["train.max_steps=2", "train.batch_size=16", "data.val_size=100", "train.eval_batch_size=500",
        "train.log_every_steps=1"]


def test_cnn_benchmarks_are_registered_with_the_issue_targets() -> None:
    targets = {name: BENCHMARKS.get(name).target for name in (
        "fashion-simple_cnn", "fashion-resnet20", "fashion-resnet18", "mnist-resnet20", "cifar10-resnet20",
        "cnn-throughput", "fashion-degradation")}
    assert targets == {"fashion-simple_cnn": 0.92, "fashion-resnet20": 0.935, "fashion-resnet18": 0.945,
                       "mnist-resnet20": 0.996, "cifar10-resnet20": 0.915, "cnn-throughput": 0.95,
                       "fashion-degradation": 0.0}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cifar10_benchmark_refuses_to_run_without_a_gpu(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="measured on a CUDA GPU only"):
        cifar10_resnet20(tmp_path)


def test_degradation_collects_four_runs_into_one_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_train(preset: str, work_dir: Path, overrides: list[str] | None = None) -> dict:
        calls.append((preset, overrides))
        (work_dir / "run").mkdir(parents=True)
        depth = 56 if "56" in preset else 20
        good = preset.startswith("fashion-resnet")
        records = [{"step": s, "split": "train", "loss": 1.0 / (s + 1) + (0 if good else depth / 100)} for s in range(5)]
        records.append({"step": 4, "split": "val", "loss": 0.3, "accuracy": 0.9 + (0.01 if good else 0) - depth / 1000})
        (work_dir / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return {"value": records[-1]["accuracy"], "train_seconds": 1.0}

    monkeypatch.setattr(cnn, "train_preset", fake_train)
    result = degradation(tmp_path)
    assert calls == [(f"fashion-{model}", ["train.epochs=10"]) for model in ("plain20", "plain56", "resnet20", "resnet56")]
    assert result["value"] == round(0.854 - 0.844, 4) and result["plain56_minus_plain20"] < 0
    assert Path(result["plot"]).stat().st_size > 10_000


def test_throughput_saves_each_model_and_resume_keeps_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = []

    def fake_measure(name: str, work_dir: Path, *args: object) -> dict:
        measured.append(name)
        if name == "vgg16":
            raise KeyboardInterrupt  # the run is stopped on its second model
        return {"ratio": 0.97, "reference_slowdown": 40.0}

    monkeypatch.setattr(cnn, "_model_throughput", fake_measure)
    with pytest.raises(KeyboardInterrupt):
        cnn_throughput(tmp_path, models=("lenet5", "vgg16", "resnet20"))
    assert json.loads((tmp_path / "lenet5" / "throughput.json").read_text())["ratio"] == 0.97
    assert not (tmp_path / "vgg16" / "throughput.json").exists()
    (tmp_path / "lenet5" / "throughput.json").write_text(json.dumps({"ratio": 0.96, "reference_slowdown": 9.0}))
    monkeypatch.setattr(cnn, "_model_throughput", lambda name, *args: {"ratio": 0.99, "reference_slowdown": 5.0})
    result = cnn_throughput(tmp_path, models=("lenet5", "vgg16", "resnet20"), resume=True)
    assert result["value"] == 0.96 and result["slowest_model"] == "lenet5"  # the saved record was kept
    assert cnn_throughput(tmp_path, models=("lenet5",))["value"] == 0.99  # without resume, measured again
    (tmp_path / "vgg16" / "throughput.json").write_text("{not json")
    with pytest.raises(UserError, match=r"vgg16.throughput.json is not a cnn-throughput record; delete it"):
        cnn_throughput(tmp_path, models=("vgg16",), resume=True)


@pytest.mark.slow
@needs_shared_data
def test_throughput_and_degradation_run_end_to_end(tmp_path: Path) -> None:
    """Minutes on 2 cores: every Trainer run ends with the full 10,000-image test evaluation."""
    result = cnn_throughput(tmp_path, models=("resnet20",), min_steps=1, warmup=1, rounds=1, reference_steps=1)
    figures = result["models"]["resnet20"]
    assert result["value"] == figures["ratio"] > 0 and figures["reference_slowdown"] > 0
    result = degradation(tmp_path / "deg", overrides=TINY)
    assert set(result["test_accuracy"]) == {"plain20", "plain56", "resnet20", "resnet56"}
    assert Path(result["plot"]).is_file()
