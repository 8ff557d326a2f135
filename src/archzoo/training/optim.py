"""Optimisers with decay / no-decay parameter groups, and learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from archzoo.hardware import native_bf16
from archzoo.training.config import TrainConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and conv kernels only; biases, norm scales and other 1-D parameters are not
    decayed (Loshchilov & Hutter 2019 decouple the decay; decaying norm gains only hurts)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights inside the network: every matrix except embedding tables and the readout
    (the last ``nn.Linear`` registered), which Muon's authors leave to AdamW."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    excluded = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    if linears:
        excluded |= {id(p) for p in linears[-1].parameters()}
    return [p for p in model.parameters() if p.requires_grad and p.dim() == 2 and id(p) not in excluded]


def newton_schulz(update: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> torch.Tensor:
    """Approximately orthogonalise a batch of matrices: X ↦ a X + (b A + c A²) X with A = X Xᵀ, five
    times in bf16 from X = G / ||G||_F, as torch.optim.Muon does for one matrix at a time; in fp32 on a
    device without native bf16, where emulated bf16 products made this ~9 s of a GPT step (AVX2 CPU).

    Shapes: update (N, rows, cols) -> (N, rows, cols).
    """
    a, b, c = coefficients
    x = update.bfloat16() if native_bf16(update.device) else update.float()
    tall = update.shape[-2] > update.shape[-1]
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class BatchedMuon(torch.optim.Muon):
    """torch.optim.Muon with the Newton-Schulz iterations of equal-shaped matrices run as one batch.

    A Transformer's hidden matrices come in a few shapes repeated per layer; iterating them one by
    one costs 30 small kernel launches per matrix and step, which at small widths is a sizeable part
    of the step on a CPU. Same hyperparameters, update rule and ``state`` layout as torch's (the
    tests compare the two).
    """

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001,ANN201 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(tuple(p.shape), []).append(p)
            for shape, params in by_shape.items():
                grads = [p.grad for p in params]
                buffers = []
                for p in params:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                    buffers.append(state["momentum_buffer"])
                torch._foreach_lerp_(buffers, grads, 1 - momentum)
                stacked = torch.stack(grads)
                updates = stacked.lerp(torch.stack(buffers), momentum) if group["nesterov"] else torch.stack(buffers)
                orthogonal = newton_schulz(updates, group["ns_coefficients"], group["ns_steps"], group["eps"])
                scale = {"match_rms_adamw": 0.2 * math.sqrt(max(shape[0], shape[1]))}.get(
                    group["adjust_lr_fn"], math.sqrt(max(1, shape[0] / shape[1])))
                torch._foreach_mul_(params, 1 - lr * weight_decay)
                torch._foreach_add_(params, list(orthogonal.unbind(0)), alpha=-lr * scale)
        return loss


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on the hidden matrices and AdamW on everything else, stepped as one optimizer.

    Math: Muon keeps a Nesterov momentum M of each matrix's gradient and applies its nearest
        semi-orthogonal matrix, O = NewtonSchulz5(M) ≈ U Vᵀ for M = U Σ Vᵀ, scaled to AdamW's update
        RMS (0.2 √max(rows, cols)) so ``muon_lr`` reads on AdamW's scale.
    Reference: Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein 2024, "Muon: An optimizer for
        hidden layers in neural networks" (kellerjordan.github.io/posts/muon, no arXiv); Liu et al.
        2025, "Muon is Scalable for LLM Training", arXiv:2502.16982 (the AdamW-matched scale).
    The two inner optimizers' parameter groups are this optimizer's ``param_groups`` (the same dicts),
    so one learning-rate schedule scales both; ``state_dict`` holds both states.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, fused: bool = False):
        hidden = hidden_matrices(model)
        hidden_ids = {id(p) for p in hidden}
        rest = [{**g, "params": [p for p in g["params"] if id(p) not in hidden_ids]}
                for g in parameter_groups(model, cfg.weight_decay)]
        self.muon = BatchedMuon(hidden, lr=cfg.muon_lr, weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW([g for g in rest if g["params"]], lr=cfg.lr, betas=cfg.betas,
                                       **({"fused": True} if fused else {"foreach": True}))
        super().__init__([{"params": g["params"]} for g in self.muon.param_groups + self.adamw.param_groups], {})
        self.param_groups = self.muon.param_groups + self.adamw.param_groups

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001,ANN201 (torch's signature)
        loss = closure() if closure is not None else None
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    if cfg.optimizer == "muon":
        return MuonWithAdamW(model, cfg, fused)
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # foreach (multi-tensor) is the fast path on CPU; fused kernels exist for CUDA
    return cls(groups, lr=cfg.lr, betas=cfg.betas, **({"fused": True} if fused else {"foreach": True}))


def lr_factor(step: int, cfg: TrainConfig, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` (0-based).

    constant: 1 after linear warmup. cosine: linear warmup, then
    min + (1 - min) * (1 + cos(pi * t)) / 2 with t going 0 -> 1 over the remaining steps (Loshchilov &
    Hutter 2017, SGDR without restarts). step: gamma ** (epoch // step_every_epochs). multistep: gamma **
    (number of milestones <= step), torch's MultiStepLR with milestones in optimizer steps (He et al. 2015
    divide by 10 at 32k and 48k iterations).
    onecycle: Smith & Topin 2018, cosine rise from lr/25 to lr over pct_start of the steps, then a
    cosine fall to lr/(25 * 1e4) at the last step, exactly as torch.optim.lr_scheduler.OneCycleLR
    (anneal_strategy='cos', three_phase=False, div_factor=25, final_div_factor=1e4; the learning
    rate only: momentum is not cycled).
    """
    if cfg.schedule == "onecycle":
        # the phase boundaries of OneCycleLR(three_phase=False): the peak at step pct_start * total - 1
        # (a float, as torch has it) and the floor exactly at the last step, total - 1
        peak_step, last_step = cfg.pct_start * total_steps - 1, total_steps - 1
        start, peak, end = 1 / 25, 1.0, 1 / 25 / 1e4
        if step <= peak_step:
            t, lo, hi = (step / peak_step if peak_step > 0 else 1.0), start, peak
        else:
            t = min(1.0, (step - peak_step) / (last_step - peak_step)) if last_step > peak_step else 1.0
            lo, hi = peak, end
        return hi + (lo - hi) * (1 + math.cos(math.pi * t)) / 2
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        t = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * (1 + math.cos(math.pi * t)) / 2
    if cfg.schedule == "step":
        return cfg.gamma ** (step // steps_per_epoch // cfg.step_every_epochs)
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(step >= m for m in cfg.milestones)
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg, total_steps, steps_per_epoch))
