"""gpu-speedup: without a CUDA device nothing is measured and the page says so (no verdict is made up);
with measurements, the rule; and the step-rate measurement itself, run on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.lab import EXPERIMENTS
from archzoo.lab.base import Cell, CellResult, Verdict
from archzoo.lab.gpu_speedup import steps_per_second
from archzoo.lab.runner import run_experiment
from helpers import SHARED_DATA

EXP = EXPERIMENTS.get("gpu-speedup")


def test_without_a_gpu_the_page_says_nothing_was_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    page = run_experiment("gpu-speedup", tmp_path, progress=False).read_text()
    assert page.count("**Verdict: not measured.** no GPU was present") == 2
    assert "| none present | not measured | not measured |" in page and "![" not in page  # no figure either
    summary = json.loads((tmp_path / "gpu-speedup" / "results.json").read_text())
    assert [c["verdict"]["outcome"] for c in summary["claims"]] == ["not measured", "not measured"]
    assert all(c["config"]["gpu"] == "none" for c in summary["cells"])
    index = (tmp_path / "index.md").read_text()
    assert "2 not measured" in index and "**not measured**" in index


def test_cells_measured_without_a_gpu_are_not_reused_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    without = {c.key for c in EXP.cells(False, [0])}
    monkeypatch.setattr("archzoo.lab.gpu_speedup.cuda_device_name", lambda: "NVIDIA H200")
    assert without.isdisjoint(c.key for c in EXP.cells(False, [0]))


@pytest.mark.parametrize(("cnn", "transformer", "outcomes"), [
    (40.0, 12.0, ("supported", "supported")), (5.0, 1.5, ("depends", "refuted")), (1.0, 2.0, ("refuted", "depends"))])
def test_speedup_rule(cnn: float, transformer: float, outcomes: tuple[str, str]) -> None:
    results = [CellResult(Cell({"workload": w, "gpu": "NVIDIA H200"}, 0, w),
                          {"measured": True, "gpu": "NVIDIA H200", "cpu_steps_per_s": 2.0, "cuda_steps_per_s": 2.0 * x,
                           "speedup": x, "cpu_threads": 16}, 1.0)
               for w, x in (("transformer", transformer), ("cnn", cnn))]
    assert tuple(v.outcome for v in EXP.decide(results)) == outcomes
    assert EXP.tables(results)[0].rows[1][-1] == f"{cnn:.1f}x"


def test_verdicts_accept_not_measured_and_nothing_else_new() -> None:
    Verdict("c", "not measured", {}, "no GPU")
    with pytest.raises(ValueError, match="outcome"):
        Verdict("c", "skipped", {}, "")


@pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare").is_dir(), reason="../shared/data/tinyshakespeare not staged")
def test_steps_per_second_times_real_trainer_steps_on_the_cpu(tmp_path: Path) -> None:
    rate = steps_per_second("shakespeare-gpt", "cpu", tmp_path / "run", warmup=1, steps=2,
                            overrides=["model.args.num_layers=1", "model.args.d_model=32", "data.context=32",
                                       "model.args.context=32"])
    assert 0 < rate < 10_000
