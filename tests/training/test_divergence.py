"""Divergence (training/trainer.py): a NaN or infinite loss stops the run with a UserError naming the
last good checkpoint, which stays on disk untouched; the CLI says so on one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from archzoo.cli.main import main
from archzoo.errors import TrainingDiverged, UserError
from archzoo.tasks.classification import ImageClassification
from archzoo.training import checkpoint
from archzoo.training.config import RunConfig, resolve_config
from archzoo.training.trainer import Trainer
from helpers import small_run_overrides


def small_config(**overrides: object) -> RunConfig:
    base: dict[str, object] = {"model.name": "mlp", "model.args.hidden_sizes": [32], "train.max_steps": 30,
                               "train.eval_every_steps": 5, "train.log_every_steps": 5}
    base.update(overrides)
    return resolve_config("quickstart", small_run_overrides(**base))


def nan_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """Make the task's loss NaN from its ``calls``+1-th call on (a bug, a bad batch, an overflow)."""
    original = ImageClassification.loss
    count = 0

    def loss(self: ImageClassification, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        nonlocal count
        count += 1
        value = original(self, model, batch)
        return value * math.nan if count > calls else value

    monkeypatch.setattr(ImageClassification, "loss", loss)


def test_nan_loss_stops_with_the_last_good_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nan_after(monkeypatch, 12)  # steps 1-12 are fine, step 13 computes NaN, its update poisons the weights
    saved: dict[int, dict[str, torch.Tensor]] = {}

    def remember(trainer: Trainer) -> None:  # the weights each evaluation (steps 5, 10) will save
        saved[trainer.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    trainer = Trainer(small_config(), tmp_path, progress=False, verbose=False, on_step=remember)
    with pytest.raises(UserError) as info:
        trainer.fit()
    message = str(info.value)
    assert "diverged" in message and "\n" not in message
    assert str(tmp_path / "model.safetensors") in message and "step 10" in message
    assert trainer.step == 15  # noticed at the first log after the NaN, before anything was saved

    tensors, meta = checkpoint.read_weights(tmp_path / "model.safetensors")
    assert meta["step"] == 10 and checkpoint.load_checkpoint(tmp_path)[2]["step"] == 10
    for key, value in tensors.items():
        assert torch.isfinite(value).all()
        assert torch.equal(value, saved[10][key])
    assert not all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())  # it did blow up


def test_divergence_between_logs_is_caught_before_an_evaluation_saves(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging every 7 steps, evaluating every 5: the NaN of step 8 must not reach the save at step 10."""
    nan_after(monkeypatch, 7)
    trainer = Trainer(small_config(**{"train.log_every_steps": 7}), tmp_path, progress=False, verbose=False)
    with pytest.raises(UserError, match="diverged"):
        trainer.fit()
    assert checkpoint.read_weights(tmp_path / "model.safetensors")[1]["step"] == 5


def test_absurd_learning_rate_diverges(tmp_path: Path) -> None:
    cfg = small_config(**{"train.optimizer": "sgd", "train.lr": 1e6, "train.schedule": "constant"})
    with pytest.raises(UserError, match="diverged") as info:
        Trainer(cfg, tmp_path, progress=False, verbose=False).fit()
    assert "\n" not in str(info.value) and "train.lr" in str(info.value)
    assert isinstance(info.value, TrainingDiverged)  # the type the lab's sweeps catch to record a diverged run
    if (tmp_path / "model.safetensors").exists():  # whatever was saved is finite
        tensors, _ = checkpoint.read_weights(tmp_path / "model.safetensors")
        assert all(torch.isfinite(v).all() for v in tensors.values())


def test_cli_reports_divergence_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [32], "train.optimizer": "sgd",
                                  "train.lr": 1e6, "train.schedule": "constant"})
    code = main(["train", "quickstart", *[a for s in sets for a in ("--set", s)], "--max-steps", "20",
                 "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0 and code != 130
    assert len(err.strip().splitlines()) == 1 and "diverged" in err and "Traceback" not in err


def test_dry_run_diverges_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nan_after(monkeypatch, 0)
    with pytest.raises(UserError, match="diverged.*no checkpoint"):
        Trainer(small_config(), tmp_path / "run", progress=False, verbose=False).fit(dry_run=True)
    assert not (tmp_path / "run").exists()
