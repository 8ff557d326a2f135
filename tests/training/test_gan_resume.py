"""Exact resume of a two-optimizer task (a GAN): both networks, both optimizers and schedules, batch-norm
statistics, dropout RNG and the task's progress images continue bit for bit (as test_resume.py checks
for single-optimizer tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.training import checkpoint
from archzoo.training.config import RunConfig, load_run_config, resolve_config
from archzoo.training.trainer import Trainer


def gan_config(model: str) -> RunConfig:
    """mnist-small with a 600-image training split: 9 steps of batch 64 per epoch; 24 steps cross two
    evaluations (9, 18) and end at 24. gan_mlp has dropout (the RNG state), dcgan batch norm (buffers),
    and the cosine schedule makes both schedulers' state matter."""
    args = ({"model.args.channels": 4, "model.args.latent_dim": 8} if model == "dcgan" else
            {"model.args.g_hidden": [16], "model.args.d_hidden": [16], "model.args.latent_dim": 8,
             "model.args.dropout": 0.3})
    base = {"task": "'image_generation'", "model.name": repr(model), "data.dataset": "'mnist-small'",
            "data.val_size": 9400, "data.grid_size": 8, "data.label_smoothing": 0.1, "train.batch_size": 64,
            "train.optimizer": "'adam'", "train.lr": 1e-3, "train.betas": [0.5, 0.999], "train.schedule": "'cosine'",
            "train.max_steps": 24, "train.log_every_steps": 4, "train.eval_batch_size": 5000, **args}
    return resolve_config(None, [f"{k}={v}" for k, v in base.items()])


def train(cfg: RunConfig, run_dir: Path, stop_at: int | None = None) -> Trainer:
    def hook(trainer: Trainer) -> None:
        if trainer.step == stop_at:
            trainer.stop_reason = "interrupted"

    trainer = Trainer(cfg, run_dir, device="cpu", progress=False, verbose=False, on_step=hook)
    assert trainer.fit().status == ("interrupted" if stop_at else "max_steps")
    return trainer


def val_records(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "val"]


@pytest.mark.parametrize(("model", "stop_at"), [("dcgan", 13), ("gan_mlp", 18)])
def test_resumed_gan_equals_uninterrupted_gan(model: str, stop_at: int, tmp_path: Path) -> None:
    cfg = gan_config(model)
    full = train(cfg, tmp_path / "full")
    part = tmp_path / "part"
    train(cfg, part, stop_at=stop_at)
    state = checkpoint.load_checkpoint(part)[2]
    assert state["step"] == stop_at
    assert set(state["optimizer"]) == set(state["scheduler"]) == {"discriminator", "generator"}
    resumed = Trainer(load_run_config(part), part, device="cpu", resume=True, progress=False, verbose=False)
    assert resumed.step == stop_at and [s for s, _ in resumed.task.progress] == [9, 18][:stop_at // 9]
    assert resumed.fit().step == 24

    for name in ("model.safetensors", "best.safetensors"):
        a, b = checkpoint.read_weights(part / name)[0], checkpoint.read_weights(tmp_path / "full" / name)[0]
        assert a.keys() == b.keys() and any(k.startswith("generator.") for k in a)
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs after resume"
    # the same evaluations at the same steps with the same figures (an interrupted run also logs its
    # training loss at the stop, so only the evaluations line up one to one)
    assert val_records(part) == val_records(tmp_path / "full") and len(val_records(part)) == 3
    assert [s for s, _ in resumed.task.progress] == [s for s, _ in full.task.progress] == [9, 18, 24]
    for (_, x), (_, y) in zip(resumed.task.progress, full.task.progress, strict=True):
        assert torch.equal(x, y)
    assert json.loads((part / "eval.json").read_text()) == json.loads((tmp_path / "full" / "eval.json").read_text())


def test_without_the_rng_state_the_resumed_gan_differs(tmp_path: Path) -> None:
    """gan_mlp's dropout draws from the saved RNG: replacing it changes the result, so exactness is not luck."""
    cfg = gan_config("gan_mlp")
    train(cfg, tmp_path / "full")
    part = tmp_path / "part"
    train(cfg, part, stop_at=13)
    state_file = checkpoint.latest_checkpoint(part) / "state.pt"
    state = checkpoint.load_state(state_file)
    state["rng"]["torch"] = torch.manual_seed(123).get_state()
    checkpoint.save_state(state, state_file)
    Trainer(load_run_config(part), part, device="cpu", resume=True, progress=False, verbose=False).fit()
    a = checkpoint.read_weights(part / "model.safetensors")[0]
    b = checkpoint.read_weights(tmp_path / "full" / "model.safetensors")[0]
    assert not all(torch.equal(a[k], b[k]) for k in a)
