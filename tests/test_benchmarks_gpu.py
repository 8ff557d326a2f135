"""The GPU suite's plumbing (benchmarks/gpu.py, benchmarks/gpu.sh) on the CPU: every part runs in
--dry-run mode and lands in the JSON; without CUDA it refuses in one line unless asked for the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from archzoo.benchmarks.gpu import PARTS, main
from helpers import REPO, SHARED_DATA, needs_shared_data


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")
def test_refuses_without_cuda_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "gpu.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA device is visible" in err and "--device cpu" in err
    assert not (tmp_path / "gpu.json").exists()
    script = subprocess.run([str(REPO / "benchmarks" / "gpu.sh"), "--out", str(tmp_path / "gpu.json")],
                            capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    assert script.returncode == 2 and "no CUDA device is visible" in script.stderr


def test_unknown_part_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--device", "cpu", "--parts", "matmul,gpu-magic", "--out", str(tmp_path / "gpu.json")]) == 2
    assert "unknown --parts gpu-magic" in capsys.readouterr().err


def run_dry(tmp_path: Path, parts: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("ARCHZOO_DATA", str(SHARED_DATA))
    out = tmp_path / "gpu.json"
    assert main(["--device", "cpu", "--dry-run", "--parts", parts, "--out", str(out), "--work-dir", str(tmp_path)]) == 0
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["dry_run"] and record["command"].startswith("python -m archzoo")
    assert list(record["parts"]) == parts.split(",")
    assert not any("error" in part or "skipped" in part for part in record["parts"].values())
    return record


@needs_shared_data
def test_dry_run_measures_each_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = run_dry(tmp_path, "matmul,gpt,lstm,translation", monkeypatch)["parts"]
    assert parts["matmul"]["bf16_gflops"] > 0 and parts["matmul"]["fp32_gflops"] > 0
    for batch in ("batch_4", "batch_8"):
        gpt = parts["gpt"][batch]
        assert gpt["tokens_per_s"] > 0 and gpt["mfu"] == round(gpt["model_gflops_per_s"] / parts["matmul"]["bf16_gflops"], 6)
    assert parts["lstm"]["epoch"]["steps"] == 2 and parts["translation"]["epoch"]["seconds"] > 0


@pytest.mark.slow
@needs_shared_data
def test_dry_run_of_every_part_including_mnist_and_ddp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = run_dry(tmp_path, ",".join(PARTS), monkeypatch)["parts"]
    assert parts["mnist"]["steps"] == [2] and parts["mnist"]["median_seconds"] > 0
    assert parts["ddp"]["world_size"] == 2 and parts["ddp"]["tokens_per_s"] > 0  # two gloo ranks on the CPU


def test_budget_skips_the_parts_not_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "gpu.json"
    assert main(["--device", "cpu", "--dry-run", "--parts", "matmul,ddp", "--budget", "0", "--out", str(out)]) == 0
    parts = json.loads(out.read_text())["parts"]
    assert all("budget" in parts[name]["skipped"] for name in ("matmul", "ddp"))
