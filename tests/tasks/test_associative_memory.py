"""Associative memory (tasks/associative_memory.py): corruption, storing through the trainer, the report,
a reloaded memory recalling the same, and the step-by-step grid of `archzoo sample --corrupt`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.tasks.associative_memory import AssociativeMemory, AssociativeMemoryConfig, flip, occlude
from archzoo.training.checkpoint import load_model
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer
from helpers import cli


def test_flip_negates_exactly_the_asked_fraction_and_occlude_erases_the_lower_half() -> None:
    x = torch.ones(3, 100)
    flipped = flip(x, 0.3, torch.Generator().manual_seed(0))
    assert ((flipped == -1).sum(1) == 30).all() and not torch.equal(flipped[0], flipped[1])
    img = torch.ones(2, 16)
    out = occlude(img, (4, 4)).view(2, 4, 4)
    assert (out[:, 2:] == -1).all() and (out[:, :2] == 1).all()


@pytest.mark.parametrize(("preset", "expected", "occluded"), [("hopfield-mnist", 1.0, 1.0),
                                                               ("hopfield-mnist-modern", 0.99, 0.8)])
def test_a_run_stores_the_patterns_reports_recall_and_reloads(preset: str, expected: float, occluded: float,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Built-in MNIST subset, no staged data needed: the classic preset holds its 2 digits, the modern one
    its 100 (20 here), recalled from 30% flipped pixels and from their upper halves; the saved memory
    recalls exactly as the stored one."""
    overrides = ["data.trials=2"] + (["data.num_patterns=20"] if "modern" in preset else [])
    cfg = resolve_config(preset, overrides)
    result = Trainer(cfg, tmp_path / "run", progress=False, verbose=False).fit()
    assert result.step == 0 and result.test is not None
    assert result.test["recall_accuracy"] >= expected
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(report["by_corruption"]) == {"0.1", "0.2", "0.3", "0.4", "0.5"}
    assert report["occluded"]["recall_accuracy"] >= occluded  # half-occluded digits too (modern: 17 of 20 here)
    assert (tmp_path / "run" / "recall.png").is_file() and (tmp_path / "run" / "recall_curve.png").is_file()
    model, loaded_cfg = load_model(tmp_path / "run")
    task = AssociativeMemory(loaded_cfg.data)
    assert torch.equal(model.patterns, task.patterns())
    assert task.evaluate(model, "test", 100) == pytest.approx({k: report[k] for k in ("recall_accuracy", "bit_error",
                                                                                       "nearest_is_right")})
    rc, out, _ = cli(capsys, "sample", str(tmp_path / "run"), "--corrupt", "0.3", "-n", "2")
    assert rc == 0 and (tmp_path / "run" / "recall-corrupt0.3-seed0.png").is_file()
    rc, out, _ = cli(capsys, "sample", str(tmp_path / "run"), "--occlude", "--out", str(tmp_path / "o.png"))
    assert rc == 0 and (tmp_path / "o.png").is_file()
    for bad, needle in ((["--corrupt", "1.5"], "in [0, 1]"), ([], "--corrupt 0.3"), (["--corrupt", "0.3", "-n", "0"], ">= 1")):
        rc, _, err = cli(capsys, "sample", str(tmp_path / "run"), *bad)
        assert rc == 2 and needle in err and err.count("\n") == 1


def test_mistakes_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="corruptions"):
        AssociativeMemoryConfig(corruptions=(0.1, 1.5))
    with pytest.raises(UserError, match="exceeds"):
        AssociativeMemory(AssociativeMemoryConfig(num_patterns=10**6)).patterns()
    cfg = resolve_config(None, ["task='associative_memory'", "model.name='simple_cnn'"])
    with pytest.raises(UserError, match="simple_cnn"):  # it takes no Hopfield sizes
        Trainer(cfg, Path("/nonexistent-never-written"), progress=False, verbose=False)


@pytest.mark.parametrize("name", ["hopfield", "modern_hopfield"])
def test_one_pattern_recalled_step_by_step_with_falling_energy(name: str) -> None:
    """``sample(pattern=i)``'s recall: the cue is the stored image with exactly the asked fraction flipped,
    the last state's sign is the recall, energy never rises along the way, and a lightly corrupted digit
    comes back exactly (2 stored digits)."""
    from archzoo.models import create_model

    task = AssociativeMemory(AssociativeMemoryConfig(num_patterns=2))
    model = create_model(name, num_patterns=2)
    task.init_model(model)
    r = task.sample(model, corrupt=0.1, seed=3, pattern=1).recall()
    assert r.indices == [1] and torch.equal(r.stored, task.patterns()[1:2])
    assert int((r.cues != r.stored).sum()) == round(0.1 * 784)
    assert len(r.energies) == len(r.states) + 1 and (r.energies[1:] <= r.energies[:-1] + 1e-3).all()
    assert torch.equal(r.recalled, torch.sign(r.states[-1])) and torch.equal(r.recalled, r.stored)
    assert r.bit_errors.tolist() == [0.0] and r.nearest.tolist() == [1]
    occluded = task.sample(model, occlude=True, pattern=0).recall()
    assert (occluded.cues.view(28, 28)[14:] == -1).all()
    with pytest.raises(UserError, match="pattern must be the number of a stored image, 0 to 1; got 2"):
        task.sample(model, corrupt=0.1, pattern=2)
