"""Image classification: cross-entropy loss, accuracy, per-class accuracy and confusion matrix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.images import load_idx_split
from archzoo.data.sources import DATASETS
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, register_task

AUGMENTATIONS = ("none", "shift")


@dataclass(frozen=True)
class ClassificationConfig:
    dataset: str = "mnist"
    val_size: int = 5000  # carved from train with ``val_seed``; 0 evaluates on nothing but test
    val_seed: int = 0
    augment: str = "none"  # none | shift: random translation by up to ``shift_pixels``
    shift_pixels: int = 2
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise UserError(f"data.augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.val_size < 0 or self.shift_pixels < 0:
            raise UserError("data.val_size and data.shift_pixels must be >= 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"data.label_smoothing must be in [0, 1), got {self.label_smoothing}")


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 images -> float32, scaled to [0, 1] then standardised with the dataset's statistics."""
    return (images.float() / 255.0 - mean) / std


def random_shift(x: torch.Tensor, max_shift: int, fill: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own integer offset in [-max_shift, max_shift]^2, filling with ``fill``.

    One gather over a padded batch: out[b, c, i, j] = pad(x)[b, c, i + dy_b, j + dx_b].
    """
    return apply_shift(x, draw_shifts(len(x), max_shift, generator), max_shift, fill)


def draw_shifts(batch_size: int, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Offsets (2, B) in [0, 2 * max_shift] (row, column) into the image padded by ``max_shift``."""
    return torch.randint(0, 2 * max_shift + 1, (2, batch_size), generator=generator)


def apply_shift(x: torch.Tensor, offsets: torch.Tensor, max_shift: int, fill: float) -> torch.Tensor:
    """The gather of ``random_shift`` with given ``offsets`` (2, B) from ``draw_shifts``."""
    b, _, h, w = x.shape
    offsets = offsets.to(x.device)
    padded = F.pad(x, (max_shift,) * 4, value=fill)
    rows = (torch.arange(h, device=x.device) + offsets[0, :, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device) + offsets[1, :, None])[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


@register_task("classification")
class ImageClassification(Task):
    Config = ClassificationConfig
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, cfg: ClassificationConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        spec = DATASETS.get(cfg.dataset)
        self.classes: list[str] = list(spec.meta["classes"])  # type: ignore[arg-type]
        self.mean, self.std = float(spec.meta["mean"]), float(spec.meta["std"])  # type: ignore[arg-type]
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.device = torch.device("cpu")
        self._image_shape: tuple[int, ...] | None = None

    def _load(self, name: str) -> None:
        """Read a split on first use: ``archzoo eval`` needs only the test images, training all but them."""
        cfg = self.cfg
        if name == "test":
            test = load_idx_split(cfg.dataset, "test", self.data_dir)
            self._splits["test"] = (normalise(test.images, self.mean, self.std).to(self.device),
                                    test.labels.to(self.device))
            return
        train = load_idx_split(cfg.dataset, "train", self.data_dir)
        if cfg.val_size >= len(train):
            raise UserError(f"data.val_size={cfg.val_size} leaves no training data ({len(train)} images)")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.val_seed))
        val_idx, train_idx = order[: cfg.val_size].sort().values, order[cfg.val_size:].sort().values
        self._image_shape = tuple(train.images.shape[1:])
        self._splits["train"] = (normalise(train.images[train_idx], self.mean, self.std).to(self.device),
                                 train.labels[train_idx].to(self.device))
        if cfg.val_size:
            self._splits["val"] = (normalise(train.images[val_idx], self.mean, self.std).to(self.device),
                                   train.labels[val_idx].to(self.device))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.has_split(name):
            known = ["train", "val", "test"] if self.cfg.val_size else ["train", "test"]
            why = " (data.val_size is 0)" if name == "val" else ""
            raise UserError(f"no {name!r} split{why}; choose one of {', '.join(known)}")
        if name not in self._splits:
            self._load(name)
        return self._splits[name]

    def has_split(self, name: str) -> bool:
        return name in ("train", "test") or (name == "val" and self.cfg.val_size > 0)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the dataset's images."""
        if self._image_shape is None:
            self.split("train")
        assert self._image_shape is not None
        return self._image_shape

    def model_args(self) -> dict[str, Any]:
        c, h, w = self.image_shape
        return {"in_channels": c, "image_size": h, "num_classes": len(self.classes)}

    def num_train_examples(self) -> int:
        return len(self.split("train")[1])

    def to(self, device: torch.device) -> None:
        self.device = device
        self._splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self._splits.items()}

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        x_all, y_all = self.split("train")
        mine = indices.to(self.device)[shard]
        x = x_all[mine]
        if self.cfg.augment == "shift" and self.cfg.shift_pixels:
            # offsets are drawn for the whole global batch so every rank applies its slice of the same draw
            offsets = draw_shifts(len(indices), self.cfg.shift_pixels, torch.Generator().manual_seed(seed))
            x = apply_shift(x, offsets[:, shard], self.cfg.shift_pixels, -self.mean / self.std)
        return x, y_all[mine]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=self.cfg.label_smoothing)

    @torch.no_grad()
    def predict(self, model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Logits for ``x`` computed in batches (float32 on the way out)."""
        model.eval()
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        x, y = self.split(split)
        logits = self.predict(model, x, batch_size)
        return {"loss": F.cross_entropy(logits, y).item(),
                "accuracy": (logits.argmax(1) == y).float().mean().item()}

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"{self.cfg.dataset} test ({result['examples']} examples): accuracy {result['accuracy']:.4f}, "
                 f"loss {result['loss']:.4f}", "per-class accuracy:"]
        return lines + [f"  {name:>12}  {acc:.4f}" for name, acc in result["per_class_accuracy"].items()]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        from archzoo.viz.plots import plot_confusion, plot_image_grid

        x, y = self.split("test")
        logits = self.predict(model, x, batch_size)
        pred = logits.argmax(1)
        k = len(self.classes)
        confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).cpu()
        per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1)).tolist()
        wrong = (pred != y).nonzero().flatten()[:64].cpu()
        images = (x[wrong].float().cpu() * self.std + self.mean).clamp(0, 1)
        titles = [f"{self.classes[int(y[i])]}→{self.classes[int(pred[i])]}" for i in wrong]
        plot_confusion(confusion, self.classes, out_dir / "confusion.png")
        plot_image_grid(images, titles, out_dir / "misclassified.png", "misclassified test images (true→predicted)")
        result = {
            "split": "test", "examples": len(y),
            "loss": F.cross_entropy(logits, y).item(),
            "accuracy": (pred == y).double().mean().item(),
            "per_class_accuracy": dict(zip(self.classes, per_class, strict=True)),
            "confusion": confusion.tolist(),
        }
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result
