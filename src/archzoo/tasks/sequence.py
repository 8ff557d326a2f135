"""Long-range sequence tasks: the adding problem, delayed recall and sequential (pixel-by-pixel) MNIST.

Models follow the sequence contract of models/sequence.py: x (B, T, input_size) -> y (B, T,
output_size), read left to right; the task reads the answer off the last step(s). The synthetic
tasks draw fresh training sequences every step from the step's seed (as the papers do: there is no
fixed training set to overfit), so a resumed run sees the same sequences; validation and test
sequences are fixed by ``data_seed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.data.images import load_image_split
from archzoo.data.sources import DATASETS
from archzoo.data.synthetic import ADDING_FEATURES, adding_problem, delayed_recall, recall_features
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, TensorPairSplits, register_task, step_seed
from archzoo.tasks.classification import accuracy_and_loss, normalise

ADDING_BASELINE_MSE = 1 / 6  # always answering E[y] = 1


def _check_sizes(epoch_size: int, val_size: int, test_size: int) -> None:
    if epoch_size < 1 or val_size < 1 or test_size < 1:
        raise UserError("data.epoch_size, data.val_size and data.test_size must be >= 1")


@dataclass(frozen=True)
class AddingProblemConfig:
    length: int = 100  # T: the markers lie up to T - 1 steps before the answer
    epoch_size: int = 51_200  # sequences per nominal epoch (each step draws fresh ones)
    val_size: int = 1000
    test_size: int = 2000
    data_seed: int = 0  # the fixed validation and test sequences

    def __post_init__(self) -> None:
        if self.length < 2:
            raise UserError(f"data.length must be >= 2 for the adding problem, got {self.length}")
        _check_sizes(self.epoch_size, self.val_size, self.test_size)


@dataclass(frozen=True)
class DelayedRecallConfig:
    length: int = 100  # T: the symbols are shown at the start and recalled at the last num_symbols steps
    num_symbols: int = 4  # K
    num_categories: int = 8  # C: chance accuracy is 1/C
    epoch_size: int = 51_200
    val_size: int = 1000
    test_size: int = 2000
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.num_symbols < 1 or self.num_categories < 2 or self.length < 2 * self.num_symbols + 1:
            raise UserError(f"delayed recall needs data.num_symbols >= 1, data.num_categories >= 2 and data.length >= "
                            f"2 x num_symbols + 1, got {self.num_symbols}, {self.num_categories}, {self.length}")
        _check_sizes(self.epoch_size, self.val_size, self.test_size)


class SyntheticSequenceTask(TensorPairSplits, Task):
    """Shared body of the synthetic tasks: fresh training sequences per step, fixed evaluation ones."""

    def __init__(self, cfg: Any, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        self.device = torch.device("cpu")
        self._splits = {name: self.draw(size, torch.Generator().manual_seed(step_seed(cfg.data_seed, -k)))
                        for k, (name, size) in enumerate((("val", cfg.val_size), ("test", cfg.test_size)), start=1)}

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        raise NotImplementedError

    def has_split(self, name: str) -> bool:
        return name in ("train", "val", "test")

    def num_train_examples(self) -> int:
        return self.cfg.epoch_size

    def train_batch(self, indices: Tensor, shard: slice, seed: int) -> tuple[Tensor, Tensor]:
        """Fresh sequences drawn from the step's seed for the whole global batch; this shard's slice."""
        x, y = self.draw(len(indices), torch.Generator().manual_seed(seed))
        return x[shard].to(self.device), y[shard].to(self.device)

    @torch.no_grad()
    def outputs(self, model: nn.Module, split: str, batch_size: int) -> tuple[Tensor, Tensor]:
        if split not in self._splits:
            raise UserError(f"no {split!r} split; choose one of val, test (training sequences are drawn fresh)")
        model.eval()
        x, y = self._splits[split]
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)]), y

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        return self.metrics(*self.outputs(model, split, batch_size))

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        result = {"split": "test", "examples": len(self._splits["test"][1]), **self.evaluate(model, "test", batch_size)}
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result


@register_task("adding_problem")
class AddingProblem(SyntheticSequenceTask):
    """Regress the sum of the two marked numbers, read at the last step; MSE (baseline 1/6)."""

    Config = AddingProblemConfig
    primary_metric = "mse"
    higher_is_better = False

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return adding_problem(n, self.cfg.length, generator)

    def model_args(self) -> dict[str, Any]:
        return {"input_size": ADDING_FEATURES, "output_size": 1}

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch
        return F.mse_loss(model(x)[:, -1, 0].float(), y)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        mse = F.mse_loss(outputs[:, -1, 0], targets).item()
        return {"mse": mse, "loss": mse, "baseline_ratio": mse / ADDING_BASELINE_MSE}

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        return [f"adding problem, T={self.cfg.length}, {result['examples']} test sequences: MSE {result['mse']:.5f} "
                f"({result['baseline_ratio']:.3f} x the baseline 1/6 of always answering 1)"]


@register_task("delayed_recall")
class DelayedRecall(SyntheticSequenceTask):
    """Output the K symbols shown at the start, at the last K steps; per-symbol accuracy (chance 1/C)."""

    Config = DelayedRecallConfig
    primary_metric = "accuracy"
    higher_is_better = True

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return delayed_recall(n, self.cfg.length, self.cfg.num_symbols, self.cfg.num_categories, generator)

    def model_args(self) -> dict[str, Any]:
        return {"input_size": recall_features(self.cfg.num_categories), "output_size": self.cfg.num_categories}

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch
        logits = model(x)[:, -self.cfg.num_symbols:].float()
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        logits = outputs[:, -self.cfg.num_symbols:]
        right = logits.argmax(-1) == targets
        return {"accuracy": right.float().mean().item(), "sequence_accuracy": right.all(1).float().mean().item(),
                "loss": F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()}

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        return [f"delayed recall of {self.cfg.num_symbols} symbols from {self.cfg.num_categories}, T={self.cfg.length}: "
                f"symbol accuracy {result['accuracy']:.4f} (chance {1 / self.cfg.num_categories:.3f}), all "
                f"{self.cfg.num_symbols} right {result['sequence_accuracy']:.4f}"]


@dataclass(frozen=True)
class SequentialMNISTConfig:
    dataset: str = "mnist"  # an IDX image dataset (mnist, fashion-mnist)
    val_size: int = 5000  # carved from train with val_seed
    val_seed: int = 0
    max_train: int = 0  # 0: every remaining training image; else the first N of them (quick runs)
    max_eval: int = 0  # 0: every validation and test image; else the first N of each

    def __post_init__(self) -> None:
        if self.val_size < 1 or self.max_train < 0 or self.max_eval < 0:
            raise UserError("data.val_size must be >= 1, data.max_train and data.max_eval >= 0")


@register_task("sequential_mnist")
class SequentialMNIST(TensorPairSplits, Task):
    """Classify a digit from its 784 pixels read one at a time in raster order, the label at the last step.

    Reference: Le, Jaitly & Hinton 2015, arXiv:1504.00941, Sec. 4.2 (pixel-by-pixel MNIST, T = 784).
    Shapes: images (N, 1, 28, 28) -> sequences (N, 784, 1), standardised with the dataset's statistics.
    """

    Config = SequentialMNISTConfig
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, cfg: SequentialMNISTConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        spec = DATASETS.get(cfg.dataset)
        self.mean, self.std = float(spec.meta["mean"]), float(spec.meta["std"])  # type: ignore[arg-type]
        self.device = torch.device("cpu")
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """Pixels (N, 784) as uint8 and labels (N,); standardised per batch (a quarter of the memory)."""
        if not self._splits:
            cfg = self.cfg
            train = load_image_split(cfg.dataset, "train", self.data_dir)
            test = load_image_split(cfg.dataset, "test", self.data_dir)
            if train.images.shape[1] != 1:
                raise UserError(f"sequential MNIST reads greyscale images; {cfg.dataset} has {train.images.shape[1]} channels")
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.val_seed))
            val_idx, train_idx = order[:cfg.val_size].sort().values, order[cfg.val_size:].sort().values
            if cfg.max_train:
                train_idx = train_idx[:cfg.max_train]
            eval_limit = cfg.max_eval or None
            pixels = train.images.flatten(1)
            self._splits = {"train": (pixels[train_idx], train.labels[train_idx]),
                            "val": (pixels[val_idx][:eval_limit], train.labels[val_idx][:eval_limit]),
                            "test": (test.images.flatten(1)[:eval_limit], test.labels[:eval_limit])}
            self._splits = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in self._splits.items()}
        if name not in self._splits:
            raise UserError(f"no {name!r} split; choose one of train, val, test")
        return self._splits[name]

    def sequences(self, pixels: Tensor) -> Tensor:
        return normalise(pixels, self.mean, self.std).unsqueeze(2)  # (B, 784, 1)

    def model_args(self) -> dict[str, Any]:
        return {"input_size": 1, "output_size": 10}

    def has_split(self, name: str) -> bool:
        return name in ("train", "val", "test")


    def train_batch(self, indices: Tensor, shard: slice, seed: int) -> tuple[Tensor, Tensor]:
        pixels, labels = self.split("train")
        mine = indices.to(self.device)[shard]
        return self.sequences(pixels[mine]), labels[mine]

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x)[:, -1].float(), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        model.eval()
        pixels, labels = self.split(split)
        logits = torch.cat([model(self.sequences(pixels[i:i + batch_size]))[:, -1].float()
                            for i in range(0, len(pixels), batch_size)])
        return accuracy_and_loss(logits, labels)

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        result = {"split": "test", "examples": len(self.split("test")[1]), **self.evaluate(model, "test", batch_size)}
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        return [f"sequential {self.cfg.dataset} (784 pixels one at a time), {result['examples']} test images: "
                f"accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}"]
