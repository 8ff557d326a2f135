"""Optimisers and schedules (training/optim.py), and the step's gradient handling in the trainer:
clipping and accumulation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.training import checkpoint
from archzoo.training.config import TrainConfig, resolve_config
from archzoo.training.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups
from archzoo.training.trainer import Trainer
from helpers import small_run_overrides


def lrs(cfg: TrainConfig, total: int, steps_per_epoch: int = 10) -> list[float]:
    """The learning rate of each optimizer step 0..total-1 through build_scheduler, as the trainer sees it."""
    opt = build_optimizer(nn.Linear(2, 2), cfg)
    sched = build_scheduler(opt, cfg, total, steps_per_epoch)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append(opt.param_groups[0]["lr"])  # after the last step
    return out


# ------------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize(("total", "pct_start"), [(100, 0.25), (37, 0.3), (10, 0.25), (1000, 0.1), (7, 0.5)])
def test_onecycle_matches_torch(total: int, pct_start: float) -> None:
    cfg = TrainConfig(lr=3e-3, schedule="onecycle", pct_start=pct_start, optimizer="sgd", momentum=0.0)
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=cfg.lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=pct_start,
                                              anneal_strategy="cos", three_phase=False, div_factor=25,
                                              final_div_factor=1e4, cycle_momentum=False)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        if len(expected) < total:
            ref.step()
    ours = lrs(cfg, total)[:total]
    assert ours == pytest.approx(expected, rel=1e-6)
    assert [cfg.lr * lr_factor(s, cfg, total, 10) for s in range(total)] == pytest.approx(expected, rel=1e-6)
    assert max(ours) == pytest.approx(cfg.lr, rel=0.05) and ours[-1] == pytest.approx(cfg.lr / 25 / 1e4, rel=1e-6)


def test_cosine_with_warmup() -> None:
    cfg = TrainConfig(lr=0.1, schedule="cosine", warmup_steps=10, min_lr_ratio=0.05)
    got = lrs(cfg, 100)
    assert got[0] == pytest.approx(0.01) and got[4] == pytest.approx(0.05)  # linear warmup from lr/warmup
    assert got[9] == pytest.approx(0.1) and got[10] == pytest.approx(0.1)  # lr reached at the end of warmup
    assert all(a >= b for a, b in zip(got[10:], got[11:], strict=False))  # then only falls
    assert got[55] == pytest.approx(0.1 * (0.05 + 0.95 / 2))  # halfway down the cosine
    assert got[100] == pytest.approx(0.1 * 0.05)  # min_lr_ratio once the last step is taken
    assert min(got) == pytest.approx(0.1 * 0.05)


def test_step_and_constant_schedules() -> None:
    step = TrainConfig(lr=1.0, schedule="step", gamma=0.5, step_every_epochs=2)
    got = lrs(step, 50, steps_per_epoch=10)
    assert got[:20] == [1.0] * 20 and got[20:40] == [0.5] * 20 and got[40:50] == [0.25] * 10
    constant = TrainConfig(lr=0.3, warmup_steps=3)
    assert lrs(constant, 6) == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3])


def test_multistep_matches_torch_multisteplr() -> None:
    """He et al. 2015's CIFAR schedule: lr / 10 at 32k and 48k iterations (here scaled down to 32 and 48)."""
    cfg = TrainConfig(lr=0.1, schedule="multistep", milestones=(32, 48), gamma=0.1)
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    theirs = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[32, 48], gamma=0.1)
    for step in range(64):
        assert lr_factor(step, cfg, 64, 10) * 0.1 == pytest.approx(theirs.get_last_lr()[0], rel=1e-12), step
        opt.step()
        theirs.step()
    for bad in ((), (48, 32), (0, 10), (5, 5)):
        with pytest.raises(UserError, match="train.milestones"):
            TrainConfig(schedule="multistep", milestones=bad)


# -------------------------------------------------------------------------- parameter groups


@pytest.mark.parametrize("name", ["simple_cnn", "mlp", "lenet5"])
@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_no_decay_group_holds_exactly_the_1d_parameters(name: str, optimizer: str) -> None:
    model = create_model(name)
    opt = build_optimizer(model, TrainConfig(optimizer=optimizer, weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = lambda params: {id(p) for p in params}
    assert ids(decay["params"]) == ids(p for p in model.parameters() if p.dim() >= 2)
    assert ids(no_decay["params"]) == ids(p for p in model.parameters() if p.dim() == 1)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert any(p.dim() == 1 for p in no_decay["params"])


def test_frozen_parameters_are_left_out() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    model[0].weight.requires_grad_(False)
    groups = parameter_groups(model, 0.1)
    assert [len(g["params"]) for g in groups] == [3]  # no empty decay group either


def test_optimizer_kinds() -> None:
    model = nn.Linear(2, 2)
    assert type(build_optimizer(model, TrainConfig(optimizer="adamw"))) is torch.optim.AdamW
    assert type(build_optimizer(model, TrainConfig(optimizer="adam"))) is torch.optim.Adam
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.8, nesterov=True))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"]
    adam = build_optimizer(model, TrainConfig(optimizer="adamw", betas=(0.8, 0.95)))
    assert adam.defaults["betas"] == (0.8, 0.95)


# ---------------------------------------------------------------- clipping and accumulation


def small_config(**overrides: object):  # noqa: ANN201
    base: dict[str, object] = {"model.name": "mlp", "model.args.hidden_sizes": [32], "model.args.dropout": 0.0,
                               "train.max_steps": 10, "train.schedule": "constant"}
    base.update(overrides)
    return resolve_config("quickstart", small_run_overrides(**base))


def test_gradients_are_clipped_to_the_norm(tmp_path: Path) -> None:
    norms: list[float] = []

    def grad_norm(trainer: Trainer) -> None:  # gradients of the step just taken are still there
        grads = [p.grad for p in trainer.model.parameters()]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    Trainer(small_config(), tmp_path / "free", progress=False, verbose=False, on_step=grad_norm).fit()
    assert min(norms) > 0.05
    norms.clear()
    Trainer(small_config(**{"train.clip_grad_norm": 0.05}), tmp_path / "clipped", progress=False, verbose=False,
            on_step=grad_norm).fit()
    assert norms == pytest.approx([0.05] * 10, rel=1e-4)


def test_accumulation_computes_the_same_step(tmp_path: Path) -> None:
    """accum_steps=2 over batch 64 is two micro-batches of 32 with the same examples and augmentation:
    the same updates as one batch of 64, up to float summation order."""
    runs = {}
    for accum in (1, 2, 4):
        cfg = small_config(**{"train.accum_steps": accum, "data.augment": "shift", "train.optimizer": "adamw"})
        Trainer(cfg, tmp_path / str(accum), progress=False, verbose=False).fit()
        runs[accum] = checkpoint.read_weights(tmp_path / str(accum) / "model.safetensors")[0]
    for accum in (2, 4):
        for key, value in runs[1].items():
            torch.testing.assert_close(runs[accum][key], value, atol=1e-5, rtol=1e-5)

