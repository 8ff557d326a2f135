"""The contract between the one trainer and a task (STYLE.md convention 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from archzoo.registry import Registry


class Task:
    """A job: it loads its data, supplies data-derived model arguments, builds training batches,
    computes the loss and evaluates. The trainer never branches on model or task type.

    Data order and augmentation are functions of (seed, epoch, step) alone, so a run resumed
    mid-epoch, or sharded over ranks, sees exactly the batches an uninterrupted run would.
    """

    Config: ClassVar[type]
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]

    def __init__(self, cfg: Any, data_dir: str | Path | None = None):
        self.cfg = cfg
        self.data_dir = data_dir

    def model_args(self) -> dict[str, Any]:
        """Arguments the data decides (input shape, number of classes); merged into the model config."""
        return {}

    def is_better(self, new: dict[str, float], best: dict[str, float]) -> bool:
        """Whether evaluation ``new`` beats ``best`` on the primary metric; ties (common for accuracy on
        a small validation set) go to the lower loss."""
        a, b = new[self.primary_metric], best[self.primary_metric]
        if a != b:
            return a > b if self.higher_is_better else a < b
        return new.get("loss", float("inf")) < best.get("loss", float("inf"))

    def has_split(self, name: str) -> bool:
        raise NotImplementedError

    def num_train_examples(self) -> int:
        raise NotImplementedError

    def to(self, device: torch.device) -> None:
        """Move the in-memory data to ``device`` once, so batching never copies from the host."""

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, ...]:
        """The batch for global example ``indices``, restricted to this rank's ``shard``;
        randomness (augmentation) is drawn from ``seed`` over the whole global batch."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        raise NotImplementedError

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        """Full evaluation on the test split with plots; returns the figures."""
        raise NotImplementedError


TASKS: Registry[type[Task]] = Registry("task")
register_task = TASKS.register
