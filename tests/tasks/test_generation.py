"""Image generation (tasks/generation.py): the two adversarial phases, label smoothing, deterministic
sampling, and a short real-data run through the one Trainer with its sample grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks.generation import GenerationConfig, ImageGeneration
from archzoo.training.config import RunConfig, resolve_config
from archzoo.training.trainer import Trainer


def gan_config(model: str = "gan_mlp", **overrides: object) -> RunConfig:
    """mnist-small with a 600-image training split (9 steps of batch 64 per epoch) and tiny networks."""
    base: dict[str, object] = {
        "task": "'image_generation'", "model.name": repr(model), "data.dataset": "'mnist-small'", "data.val_size": 9400,
        "data.grid_size": 16, "train.batch_size": 64, "train.optimizer": "'adam'", "train.lr": 2e-4,
        "train.betas": [0.5, 0.999], "train.log_every_steps": 5, "train.eval_batch_size": 5000}
    base.update({"model.args.g_hidden": [32], "model.args.d_hidden": [32], "model.args.latent_dim": 16}
                if model != "dcgan" else {"model.args.channels": 8, "model.args.latent_dim": 16})
    base.update(overrides)
    return resolve_config(None, [f"{k}={v}" for k, v in base.items()])


@pytest.fixture(scope="module")
def task() -> ImageGeneration:
    return ImageGeneration(GenerationConfig(dataset="mnist-small", val_size=9400))


def first_batch(task: ImageGeneration, seed: int = 5) -> tuple[torch.Tensor, ...]:
    return task.train_batch(torch.arange(32), slice(0, 32), seed)


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_each_phase_reaches_only_its_own_network(task: ImageGeneration, name: str) -> None:
    cfg = gan_config(name)
    model = create_model(name, **{**cfg.model.args, "in_channels": 1, "image_size": 28})
    batch = first_batch(task)
    task.phase_loss("discriminator", model, batch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator.parameters())
    assert all(p.grad is None for p in model.generator.parameters())  # the samples were detached
    model.zero_grad(set_to_none=True)
    task.phase_loss("generator", model, batch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())
    assert all(p.grad is None for p in model.discriminator.parameters())  # D was frozen, and is trainable again
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_one_adversarial_step_changes_both_networks(tmp_path: Path) -> None:
    trainer = Trainer(gan_config("dcgan"), tmp_path, device="cpu", progress=False, verbose=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert [name for name, _ in trainer.phases] == ["discriminator", "generator"] and len(trainer.optimizers) == 2
    assert trainer.fit(dry_run=True).step == 1
    after = trainer.model.state_dict()
    for net in ("generator", "discriminator"):
        weights = [k for k in before if k.startswith(net) and k.endswith("weight")]
        assert weights and all(not torch.equal(before[k], after[k]) for k in weights), net
    assert not torch.equal(before["generator.project.1.running_mean"], after["generator.project.1.running_mean"])


def test_label_smoothing_moves_the_real_target(task: ImageGeneration) -> None:
    """BCE-with-logits l(x, t) = max(x, 0) - x t + log(1 + e^-|x|), so a real target of 1 - s adds s * mean D(x)."""
    model = create_model("gan_mlp", g_hidden=(32,), d_hidden=(32,), latent_dim=16).eval()
    smooth = ImageGeneration(GenerationConfig(dataset="mnist-small", val_size=9400, label_smoothing=0.1))
    batch = first_batch(task)
    with torch.no_grad():
        plain = task.phase_loss("discriminator", model, batch)
        smoothed = smooth.phase_loss("discriminator", model, batch)
        real_logits = model.discriminator(batch[0]).mean()
    torch.testing.assert_close(smoothed - plain, 0.1 * real_logits)
    with pytest.raises(UserError, match="label_smoothing"):
        GenerationConfig(label_smoothing=0.6)


def test_sampling_is_deterministic_for_a_seed(task: ImageGeneration) -> None:
    torch.manual_seed(0)
    model = create_model("dcgan", channels=8).train()
    running = model.generator.project[1].running_mean.clone()
    a, b, c = (task.generate(model, 12, seed=s) for s in (3, 3, 4))
    assert a.shape == (12, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    assert model.training and torch.equal(model.generator.project[1].running_mean, running)  # eval mode, restored
    strip = task.interpolate(model, 5, seed=3)
    assert torch.equal(strip, task.interpolate(model, 5, seed=3)) and strip.shape == (5, 1, 28, 28)
    # conditional: the labels cycle through the classes unless given
    cgan = create_model("cgan", g_hidden=(32,), d_hidden=(32,), latent_dim=16)
    threes = task.generate(cgan, 4, seed=1, labels=torch.full((4,), 3))
    assert torch.equal(threes, task.generate(cgan, 4, seed=1, labels=torch.full((4,), 3)))
    assert not torch.equal(threes, task.generate(cgan, 4, seed=1))


def test_losses_stay_finite_on_real_data_and_grids_are_written(tmp_path: Path) -> None:
    cfg = gan_config("dcgan", **{"train.max_steps": 18})
    result = Trainer(cfg, tmp_path, device="cpu", progress=False, verbose=False).fit()
    train = [r for r in result.history if r["split"] == "train"]
    val = [r for r in result.history if r["split"] == "val"]
    assert [r["step"] for r in train] == [5, 9, 10, 15, 18] and [r["step"] for r in val] == [9, 18]
    for r in train:
        assert math.isfinite(r["discriminator_loss"]) and math.isfinite(r["generator_loss"])
        assert r["loss"] == pytest.approx(r["discriminator_loss"] + r["generator_loss"])
    assert all(math.isfinite(r[k]) for r in val for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-000009.png", "step-000018.png"]
    for name in ("samples.png", "progress.png", "curves.png", "model.safetensors", "best.safetensors"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["split"] == "test" and report["examples"] == 10_000 and math.isfinite(report["d_loss"])


def test_a_conditional_model_must_match_the_dataset_classes(tmp_path: Path) -> None:
    cfg = gan_config("cgan", **{"model.args.num_classes": 7, "train.max_steps": 1})
    with pytest.raises(UserError, match="conditioned on 7 classes but mnist-small has 10"):
        Trainer(cfg, tmp_path, device="cpu", progress=False, verbose=False).fit(dry_run=True)


def test_a_gan_cannot_train_on_a_text_dataset() -> None:
    with pytest.raises(UserError, match="not an image dataset"):
        ImageGeneration(GenerationConfig(dataset="tinyshakespeare"))
