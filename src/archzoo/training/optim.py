"""Optimisers with decay / no-decay parameter groups, and learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

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


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
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
