"""Image classification: cross-entropy loss, accuracy, per-class accuracy and confusion matrix."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.images import load_image_split, load_user_image, prepare_user_image
from archzoo.data.sources import DATASETS
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, TensorPairSplits, check_count, model_device, register_task

# Batched, seeded augmentations, applied in this order; ``data.augment`` joins any of them with "+"
# ("crop+flip"), or is "none". "shift" and "crop" name one op: a random crop of the image zero-padded
# (black) by ``shift_pixels`` on each side, i.e. a translation by up to that many pixels.
AUGMENTATIONS = ("shift", "crop", "flip", "cutout")


def augment_parts(augment: str) -> set[str]:
    """The set of augmentations ``augment`` names ("none" -> empty); unknown names raise one line."""
    parts = set() if augment == "none" else set(augment.split("+"))
    bad = sorted(parts - set(AUGMENTATIONS))
    if bad:
        raise UserError(f"data.augment must be 'none' or some of {', '.join(AUGMENTATIONS)} joined by '+' "
                        f"(e.g. 'crop+flip'), got {augment!r}")
    return parts


@dataclass(frozen=True)
class ClassificationConfig:
    dataset: str = "mnist"
    val_size: int = 5000  # carved from train with ``val_seed``; 0 evaluates on nothing but test
    val_seed: int = 0
    augment: str = "none"  # none, or shift|crop (random crop with padding), flip, cutout joined by "+"
    shift_pixels: int = 2  # the crop's padding: translations by up to this many pixels
    cutout_size: int = 8  # side of the square cutout zeroes (DeVries & Taylor 2017)
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        augment_parts(self.augment)
        if self.val_size < 0 or self.shift_pixels < 0 or self.cutout_size < 0:
            raise UserError("data.val_size, data.shift_pixels and data.cutout_size must be >= 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"data.label_smoothing must be in [0, 1), got {self.label_smoothing}")


def channel_stats(value: float | list[float]) -> float | torch.Tensor:
    """A dataset's mean or std: a float for greyscale, a (C, 1, 1) tensor for per-channel statistics."""
    return float(value) if isinstance(value, int | float) else torch.tensor(value, dtype=torch.float32).view(-1, 1, 1)


def normalise(images: torch.Tensor, mean: float | list[float] | torch.Tensor,
              std: float | list[float] | torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32, scaled to [0, 1] then standardised with the dataset's (per-channel) statistics."""
    if isinstance(mean, list):
        mean, std = channel_stats(mean), channel_stats(std)
    if isinstance(mean, torch.Tensor):
        mean, std = mean.to(images.device), std.to(images.device)  # type: ignore[union-attr]
    return (images.float() / 255.0 - mean) / std


def random_shift(x: torch.Tensor, max_shift: int, fill: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own integer offset in [-max_shift, max_shift]^2, filling with ``fill``.

    One gather over a padded batch: out[b, c, i, j] = pad(x)[b, c, i + dy_b, j + dx_b].
    """
    return apply_shift(x, draw_shifts(len(x), max_shift, generator), max_shift, fill)


def draw_shifts(batch_size: int, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Offsets (2, B) in [0, 2 * max_shift] (row, column) into the image padded by ``max_shift``."""
    return torch.randint(0, 2 * max_shift + 1, (2, batch_size), generator=generator)


def apply_shift(x: torch.Tensor, offsets: torch.Tensor, max_shift: int, fill: float | torch.Tensor) -> torch.Tensor:
    """The gather of ``random_shift`` with given ``offsets`` (2, B) from ``draw_shifts``; ``fill`` is a number
    or a per-channel (C, 1, 1) tensor."""
    b, _, h, w = x.shape
    offsets = offsets.to(x.device)
    if isinstance(fill, torch.Tensor):
        padded = fill.to(x.device, x.dtype).expand(b, -1, h + 2 * max_shift, w + 2 * max_shift).clone()
        padded[:, :, max_shift:max_shift + h, max_shift:max_shift + w] = x
    else:
        padded = F.pad(x, (max_shift,) * 4, value=fill)
    rows = (torch.arange(h, device=x.device) + offsets[0, :, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device) + offsets[1, :, None])[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def apply_flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose entry of ``flips`` (B,) is True (Krizhevsky et al. 2012, Sec. 4.1)."""
    return torch.where(flips.to(x.device)[:, None, None, None], x.flip(3), x)


def apply_cutout(x: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square centred at each image's (row, column) in ``centres`` (2, B); squares may
    hang over the border. Zero is the dataset mean after normalisation.

    Reference: DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks with
        Cutout", arXiv:1708.04552, Sec. 3.
    """
    h, w = x.shape[-2:]
    centres = centres.to(x.device)
    top, left = centres[0] - size // 2, centres[1] - size // 2
    rows = torch.arange(h, device=x.device)[None, :] - top[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] - left[:, None]
    hole = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return x.masked_fill(hole[:, None], 0.0)


def accuracy_and_loss(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and accuracy of float logits (N, K) against labels (N,)."""
    return {"loss": F.cross_entropy(logits, labels).item(),
            "accuracy": (logits.argmax(1) == labels).float().mean().item()}


def confusion_matrix(labels: torch.Tensor, pred: torch.Tensor, k: int) -> tuple[torch.Tensor, list[float]]:
    """The (K, K) confusion counts (rows: true class) on the CPU and each class's accuracy."""
    confusion = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k).cpu()
    return confusion, (confusion.diag().double() / confusion.sum(1).clamp(min=1)).tolist()


@dataclass
class Predictions:
    """Class probabilities of user inputs (images or sentences), as ``Run.predict`` returns them.

    ``names`` says how each input is printed (a file path, the sentence, or "#i" for an array);
    ``probs`` is (N, K) over ``classes``; ``top`` is how many classes ``lines`` shows per input.
    """

    names: list[str]
    classes: list[str]
    probs: torch.Tensor
    top: int
    # images: the pixels the model saw (N, C, H, W) in [0, 1]; with predict(feature_maps=k), the outputs of
    # its first k convolution layers in the order they ran, (name, (N, C_l, H_l, W_l)) each
    inputs: torch.Tensor | None = None
    feature_maps: list[tuple[str, torch.Tensor]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """The most probable class of each input."""
        return [self.classes[int(i)] for i in self.probs.argmax(1)]

    def plot_feature_maps(self, path: Path, layer: int = 0, index: int = 0, channels: int = 32) -> Path:
        """One convolution layer's feature maps for input ``index``: its first ``channels`` channels, each
        scaled to its own range (black = its minimum, white = its maximum), one tile per channel."""
        from archzoo.viz.plots import plot_image_grid

        if not self.feature_maps:
            raise UserError("no feature maps were kept; predict with feature_maps=1 (or more) on a CNN run")
        if not -len(self.feature_maps) <= layer < len(self.feature_maps):
            raise UserError(f"layer {layer} is out of range: {len(self.feature_maps)} convolution layer(s) were kept")
        if not -len(self.names) <= index < len(self.names):
            raise UserError(f"input {index} is out of range: {len(self.names)} input(s) were classified")
        name, maps = self.feature_maps[layer]
        tiles = maps[index, :check_count("channels", channels, 1, 1024, "draw fewer channels")].float()
        low = tiles.amin(dim=(1, 2), keepdim=True)
        tiles = (tiles - low) / (tiles.amax(dim=(1, 2), keepdim=True) - low).clamp(min=1e-12)
        caption = f"{name}: {len(tiles)} of {maps.shape[1]} channels, {maps.shape[2]}x{maps.shape[3]}"
        return plot_image_grid(tiles[:, None], [f"ch {c}" for c in range(len(tiles))], Path(path), caption)

    def lines(self) -> list[str]:
        """One line per input: its name, a tab, then its ``top`` classes with their probabilities."""
        k = min(self.top, len(self.classes))
        out = []
        for name, p in zip(self.names, self.probs, strict=True):
            values, indices = p.topk(k)
            ranked = "  ".join(f"{self.classes[i]} {v:.3f}" for v, i in zip(values.tolist(), indices.tolist(), strict=True))
            out.append(f"{name}\t{ranked}")
        return out


def check_top(top: object) -> int:
    return check_count("--top", top, 1, 1 << 30, "ask for fewer classes")


def user_images(inputs: Any, shape: tuple[int, int, int], photo: bool) -> tuple[torch.Tensor, list[str]]:
    """User images as one float batch (N, C, H, W) in [0, 1] and a printable name for each.

    Accepts one input or a list of them: file paths (``str`` or ``Path``) and PIL images are prepared
    as the dataset's images were (``data.images.prepare_user_image``); tensors and numpy arrays are taken
    as pixels already of the model's size, (H, W), (C, H, W) or a batch (N, C, H, W), uint8 in 0..255 or
    float in [0, 1].
    """
    from PIL import Image

    c, h, w = shape
    single = isinstance(inputs, str | Path | Image.Image | np.ndarray | torch.Tensor)
    items = [inputs] if single else list(inputs) if isinstance(inputs, Sequence) else None
    if not items:
        got = type(inputs).__name__ if items is None else "an empty list"
        raise UserError(f"predict takes an image, a file path or a list of them, got {got}")
    images, names = [], []
    for index, item in enumerate(items):
        if isinstance(item, str | Path):
            images.append(load_user_image(item, c, h, photo)[None])
            names.append(str(item))
        elif isinstance(item, Image.Image):
            images.append(prepare_user_image(item, c, h, photo)[None])
            names.append(f"#{index}")
        elif isinstance(item, np.ndarray | torch.Tensor):
            batch = pixel_batch(torch.as_tensor(item), shape)
            names += [f"#{index}" if len(batch) == 1 else f"#{index}.{i}" for i in range(len(batch))]
            images.append(batch)
        else:
            raise UserError(f"predict cannot read a {type(item).__name__}; give file paths, PIL images, numpy arrays "
                            "or tensors")
    return torch.cat(images), names


def pixel_batch(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Pixels (H, W), (C, H, W) or (N, C, H, W) as a float batch in [0, 1]; a wrong shape or range raises one line."""
    c, h, w = shape
    if x.dim() == 2 and c == 1:
        x = x[None]
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise UserError(f"the model takes images of shape ({c}, {h}, {w}) or a batch (N, {c}, {h}, {w}), got an array "
                        f"of shape {tuple(x.shape)}; pass a file path or a PIL image to have it resized")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise UserError(f"image arrays must be uint8 (0..255) or float (0..1), got {x.dtype}")
    x = x.float()
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise UserError(f"float image arrays must hold pixels in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]; "
                        "divide 0..255 pixels by 255")
    return x


def first_conv_outputs(model: nn.Module, x: torch.Tensor, count: int, batch_size: int,
                       logits: Any) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """``logits(model, x, batch_size)`` and, recorded on the way by forward hooks, the outputs of the first
    ``count`` convolution layers to run (named as in ``model.named_modules()``), float32 on the CPU."""
    convs = {m: name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if not convs:
        raise UserError(f"{type(model).__name__} has no convolution layers, so no feature maps; use a CNN run "
                        "(simple_cnn, lenet5, resnet20, ...)")
    check_count("feature_maps", count, 1, len(convs), f"{type(model).__name__} has {len(convs)} convolution layers")
    seen: dict[nn.Module, list[torch.Tensor]] = {}
    caller = threading.get_ident()  # another thread predicting with the same model meanwhile is not recorded

    def keep(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        if threading.get_ident() == caller and (module in seen or len(seen) < count):
            # a copy: an in-place activation (ReLU(inplace=True)) overwrites the output right after the hook
            seen.setdefault(module, []).append(output.detach().to("cpu", torch.float32, copy=True))

    hooks = [m.register_forward_hook(keep) for m in convs]
    try:
        out = logits(model, x, batch_size)
    finally:
        for hook in hooks:
            hook.remove()
    return out, [(convs[m], torch.cat(parts)) for m, parts in seen.items()]


@register_task("classification")
class ImageClassification(TensorPairSplits, Task):
    Config = ClassificationConfig
    primary_metric = "accuracy"
    higher_is_better = True
    verbs = ("predict",)

    def __init__(self, cfg: ClassificationConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        spec = DATASETS.get(cfg.dataset)
        self.classes: list[str] = list(spec.meta["classes"])  # type: ignore[arg-type]
        self.mean = channel_stats(spec.meta["mean"])  # type: ignore[arg-type]
        self.std = channel_stats(spec.meta["std"])  # type: ignore[arg-type]
        self.augmentations = augment_parts(cfg.augment)
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.device = torch.device("cpu")
        self._image_shape: tuple[int, ...] | None = None

    def _load(self, name: str) -> None:
        """Read a split on first use: ``archzoo eval`` needs only the test images, training all but them."""
        cfg = self.cfg
        if name == "test":
            test = load_image_split(cfg.dataset, "test", self.data_dir)
            self._splits["test"] = (normalise(test.images, self.mean, self.std).to(self.device),
                                    test.labels.to(self.device))
            return
        train = load_image_split(cfg.dataset, "train", self.data_dir)
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

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        x_all, y_all = self.split("train")
        mine = indices.to(self.device)[shard]
        x = x_all[mine]
        cfg, parts = self.cfg, self.augmentations
        if not parts:
            return x, y_all[mine]
        # every draw is for the whole global batch, in a fixed order, so every rank applies its slice of
        # the same draw and a resumed run repeats it exactly
        generator = torch.Generator().manual_seed(seed)
        if parts & {"shift", "crop"} and cfg.shift_pixels:
            offsets = draw_shifts(len(indices), cfg.shift_pixels, generator)
            x = apply_shift(x, offsets[:, shard], cfg.shift_pixels, -self.mean / self.std)
        if "flip" in parts:
            x = apply_flip(x, (torch.rand(len(indices), generator=generator) < 0.5)[shard])
        if "cutout" in parts and cfg.cutout_size:
            h, w = x.shape[-2:]
            centres = torch.stack([torch.randint(0, h, (len(indices),), generator=generator),
                                   torch.randint(0, w, (len(indices),), generator=generator)])
            x = apply_cutout(x, centres[:, shard], cfg.cutout_size)
        return x, y_all[mine]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=self.cfg.label_smoothing)

    @torch.no_grad()
    def logits(self, model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Logits for ``x`` computed in batches (float32 on the way out)."""
        model.eval()
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        x, y = self.split(split)
        return accuracy_and_loss(self.logits(model, x, batch_size), y)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Any, top: int = 3, batch_size: int = 256,
                feature_maps: int = 0) -> Predictions:
        """Class probabilities of user images: file paths, PIL images, numpy arrays or tensors (see
        ``user_images``), normalised with the dataset's statistics like its own images. With
        ``feature_maps`` = k, also the outputs of the model's first k convolution layers (what its
        filters respond to, before any activation; ``Predictions.plot_feature_maps`` draws them).

        Shapes: images -> probs (N, K); inputs (N, C, H, W); feature maps (N, C_l, H_l, W_l) per layer.
        """
        top = check_top(top)
        photo = DATASETS.get(self.cfg.dataset).meta.get("format") == "cifar10-binary"  # photographs: no centring
        pixels, names = user_images(images, tuple(model.input_shape), photo)
        device = model_device(model)
        x = normalise(pixels.to(device) * 255.0, self.mean, self.std)
        if feature_maps:
            logits, maps = first_conv_outputs(model, x, feature_maps, batch_size, self.logits)
        else:
            logits, maps = self.logits(model, x, batch_size), []
        return Predictions(names, self.classes, logits.softmax(-1).cpu(), top, pixels.cpu(), maps)

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"{self.cfg.dataset} test ({result['examples']} examples): accuracy {result['accuracy']:.4f}, "
                 f"loss {result['loss']:.4f}", "per-class accuracy:"]
        return lines + [f"  {name:>12}  {acc:.4f}" for name, acc in result["per_class_accuracy"].items()]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        from archzoo.viz.plots import plot_confusion, plot_image_grid

        x, y = self.split("test")
        logits = self.logits(model, x, batch_size)
        pred = logits.argmax(1)
        confusion, per_class = confusion_matrix(y, pred, len(self.classes))
        wrong = (pred != y).nonzero().flatten()[:64].cpu()
        images = (x[wrong].float().cpu() * self.std + self.mean).clamp(0, 1)  # (per-channel) stats broadcast
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
