"""The Muon + AdamW optimizer (training/optim.py): which parameters Muon gets, one schedule for
both, orthogonalised updates, learning, and exact resume of both states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.models import create_model
from archzoo.training import checkpoint
from archzoo.training.config import TrainConfig, load_run_config, resolve_config
from archzoo.training.optim import BatchedMuon, MuonWithAdamW, build_optimizer, build_scheduler, hidden_matrices
from archzoo.training.trainer import Trainer
from helpers import small_run_overrides


def names(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> list[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id[id(p)] for p in params]


def test_muon_gets_the_hidden_matrices_only() -> None:
    gpt = create_model("gpt", vocab_size=11, context=8, d_model=16, num_layers=1, num_heads=2, tie_weights=True)
    assert names(gpt, hidden_matrices(gpt)) == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.out_proj.weight",
                                                "layers.0.linear1.weight", "layers.0.linear2.weight"]
    mlp = create_model("mlp", hidden_sizes=[32, 16])
    hidden = names(mlp, hidden_matrices(mlp))
    assert len(hidden) == 2 and all(name.endswith("weight") for name in hidden)  # not the readout


def test_one_schedule_scales_both_and_every_parameter_is_optimised() -> None:
    torch.manual_seed(0)
    model = create_model("gpt", vocab_size=11, context=8, d_model=16, num_layers=1, num_heads=2)
    cfg = TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02, schedule="cosine", warmup_steps=4, weight_decay=0.1)
    optimizer = build_optimizer(model, cfg)
    assert isinstance(optimizer, MuonWithAdamW)
    optimised = [p for g in optimizer.param_groups for p in g["params"]]
    assert sorted(map(id, optimised)) == sorted(id(p) for p in model.parameters())
    scheduler = build_scheduler(optimizer, cfg, 20, 20)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randint(0, 11, (4, 8))
    for _ in range(2):
        logits, _ = model(x)
        logits.square().mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    assert optimizer.muon.param_groups[0]["lr"] == 0.02 * 3 / 4 and optimizer.adamw.param_groups[0]["lr"] == 1e-3 * 3 / 4
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters() if "norm" not in n)


def test_a_muon_update_is_orthogonalised() -> None:
    """Muon's step direction has its singular values pushed towards one (Newton-Schulz), unlike the gradient's."""
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.zeros(16, 32))
    optimizer = torch.optim.Muon([weight], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False)
    weight.grad = torch.randn(16, 1) @ torch.randn(1, 32) + 0.01 * torch.randn(16, 32)  # nearly rank one
    optimizer.step()
    update, gradient = torch.linalg.svdvals(-weight.detach()), torch.linalg.svdvals(weight.grad)
    assert gradient.min() < 1e-3 * gradient.max()  # one direction dominates the gradient
    assert update.min() > 0.2 * update.max() and update.max() < 1.5  # every direction moves about equally


def test_resumed_muon_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    overrides = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [32, 32], "data.val_size": 9400,
                                       "train.optimizer": "muon", "train.max_steps": 12, "train.schedule": "cosine"})
    cfg = resolve_config("quickstart", overrides)
    full = Trainer(cfg, tmp_path / "full", progress=False, verbose=False).fit()
    assert full.history[-1]["loss"] < full.history[0]["loss"]

    def stop(trainer: Trainer) -> None:
        if trainer.step == 5:
            trainer.stop_reason = "interrupted"

    Trainer(cfg, tmp_path / "part", progress=False, verbose=False, on_step=stop).fit()
    Trainer(load_run_config(tmp_path / "part"), tmp_path / "part", resume=True, progress=False, verbose=False).fit()
    a = checkpoint.read_weights(tmp_path / "part" / "model.safetensors")[0]
    b = checkpoint.read_weights(tmp_path / "full" / "model.safetensors")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("native", [True, False])
def test_batched_muon_equals_torch_muon(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same updates as torch.optim.Muon (which orthogonalises one matrix at a time, always in bf16), same
    state; where bf16 is not native BatchedMuon iterates in fp32, within bf16's rounding of torch's."""
    from archzoo.training import optim

    monkeypatch.setattr(optim, "native_bf16", lambda device: native)
    tolerance = {"atol": 1e-6, "rtol": 1e-5} if native else {"atol": 2e-3, "rtol": 2e-2}
    torch.manual_seed(0)
    shapes = [(12, 8), (12, 8), (8, 12), (8, 8), (12, 8)]
    ours = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for adjust in ("match_rms_adamw", "original"):
        a = BatchedMuon(ours, lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
        b = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
        for _ in range(3):
            for p, q in zip(ours, theirs, strict=True):
                p.grad = torch.randn_like(p)
                q.grad = p.grad.clone()
            a.step()
            b.step()
        for p, q in zip(ours, theirs, strict=True):
            torch.testing.assert_close(p, q, **tolerance)
            torch.testing.assert_close(a.state[p]["momentum_buffer"], b.state[q]["momentum_buffer"], **tolerance)
