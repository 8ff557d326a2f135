"""What the CNN experiments of the claims lab share: a classification run config for the one Trainer,
error rates on fixed subsets measured during training, exact image shifts and a receptive-field
calculator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def classification_run(dataset: str, model: str, model_args: dict[str, Any], *, steps: int, seed: int,
                       batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3, augment: str = "none",
                       shift_pixels: int = 2, eval_every_steps: int = 0, **train: Any) -> dict[str, Any]:
    """A run config (plain dict) training ``model`` on ``dataset`` for ``steps`` optimizer steps: 5,000
    training images held out for validation, evaluated once at the end unless ``eval_every_steps``."""
    return {"task": "classification", "model": {"name": model, "args": model_args},
            "data": {"dataset": dataset, "val_size": 5000, "augment": augment, "shift_pixels": shift_pixels},
            "train": {"epochs": 1000, "max_steps": steps, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                      "eval_every_steps": eval_every_steps or steps, "eval_batch_size": 1000, "log_every_steps": 50,
                      "seed": seed, **train}}


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction misclassified, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    wrong = sum(int((model(x[i:i + batch_size]).argmax(1) != y[i:i + batch_size]).sum())
                for i in range(0, len(x), batch_size))
    model.train(was_training)
    return wrong / len(x)


def fixed_subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples drawn once without replacement by a fixed generator (the same for every cell)."""
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


class ErrorCurve:
    """An ``on_step`` hook for the Trainer: every ``every`` steps (and at step 1) the error rate on fixed
    subsets of the training and test splits, so curves show *training* error, not the minibatch loss.
    ``seconds`` is the wall time since the end of step 1 without the time these measurements took.
    With ``stop_below`` the run stops once the training error is at or below it."""

    def __init__(self, every: int, subset: int, stop_below: float | None = None):
        self.every, self.subset, self.stop_below = every, subset, stop_below
        self.points: list[dict[str, float]] = []
        self._data: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._start = 0.0
        self._probe_seconds = 0.0

    def __call__(self, trainer: Any) -> None:
        if trainer.step % self.every and trainer.step != 1:
            return
        began = time.perf_counter()
        if self._data is None:
            self._start = began
            self._data = {name: fixed_subset(*trainer.task.split(name), self.subset) for name in ("train", "test")}
        point = {"step": trainer.step, "seconds": round(began - self._start - self._probe_seconds, 3)}
        point.update({f"{name}_error": error_rate(trainer.model, *data) for name, data in self._data.items()})
        self.points.append(point)
        self._probe_seconds += time.perf_counter() - began
        if self.stop_below is not None and point["train_error"] <= self.stop_below:
            trainer.stop_reason = "max_steps"


# -- exact shifts -----------------------------------------------------------------------------------

def shift_images(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Every image of ``x`` (B, C, H, W) translated by ``dy`` rows down and ``dx`` columns right; the
    pixels shifted in are ``fill`` (the background) and the pixels shifted out are lost."""
    b, c, h, w = x.shape
    out = torch.full_like(x, fill)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_rows = slice(max(0, -dy), h - max(0, dy))
    src_cols = slice(max(0, -dx), w - max(0, dx))
    dst_rows = slice(max(0, dy), h - max(0, -dy))
    dst_cols = slice(max(0, dx), w - max(0, -dx))
    out[:, :, dst_rows, dst_cols] = x[:, :, src_rows, src_cols]
    return out


DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1))  # (dy, dx) unit steps


# -- receptive fields ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """The receptive field of one output unit: its side in input pixels, and the jump (input pixels between
    neighbouring units) of the layer it belongs to."""

    size: int
    jump: int


def receptive_field(layers: Iterable[tuple[int, int, int]]) -> Field:
    """Receptive field of a chain of layers given as (kernel, stride, dilation): r_l = r_(l-1) + (k_l - 1)
    d_l j_(l-1), j_l = j_(l-1) s_l, starting from r_0 = j_0 = 1 (Araujo, Norris & Sim 2019,
    "Computing Receptive Fields of Convolutional Neural Networks", Distill, eq. 1-2)."""
    size, jump = 1, 1
    for kernel, stride, dilation in layers:
        size += (kernel - 1) * dilation * jump
        jump *= stride
    return Field(size, jump)


def _pair(value: Any) -> int:
    value = value[0] if isinstance(value, tuple | list) else value
    return int(value)


def chain_of(module: nn.Module, skip: Callable[[str], bool] = lambda name: False) -> list[tuple[int, int, int]]:
    """The (kernel, stride, dilation) of every convolution and pooling layer of ``module`` in registration
    order (which is forward order for archzoo's models), except those whose qualified name ``skip`` rejects
    (a residual block's 1x1 shortcut runs beside its branch, not after it)."""
    chain = []
    for name, layer in module.named_modules():
        if skip(name):
            continue
        if isinstance(layer, nn.Conv2d):
            chain.append((_pair(layer.kernel_size), _pair(layer.stride), _pair(layer.dilation)))
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            stride = layer.stride if layer.stride is not None else layer.kernel_size
            chain.append((_pair(layer.kernel_size), _pair(stride), _pair(getattr(layer, "dilation", 1))))
    return chain
