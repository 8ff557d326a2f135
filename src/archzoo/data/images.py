"""Image datasets held in memory as tensors, and user images prepared the way a dataset's are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from archzoo.data.idx import read_idx
from archzoo.data.sources import DATASETS, locate
from archzoo.errors import UserError

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass
class ImageSplit:
    """Images as uint8 (N, C, H, W) and integer labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def load_idx_split(dataset: str, split: str, data_dir: str | Path | None = None) -> ImageSplit:
    """Read one split (train or test) of an IDX image dataset (MNIST, Fashion-MNIST)."""
    if split not in _SPLIT_FILES:
        raise UserError(f"unknown split {split!r} for {dataset!r}; choose train or test")
    spec = DATASETS.get(dataset)
    paths = locate(spec, data_dir, list(_SPLIT_FILES[split]))
    images = read_idx(paths[_SPLIT_FILES[split][0]])
    labels = read_idx(paths[_SPLIT_FILES[split][1]])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{dataset} {split}: images {images.shape} and labels {labels.shape} do not pair up; "
                        "re-fetch the dataset")
    return ImageSplit(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def load_image_split(dataset: str, split: str, data_dir: str | Path | None = None) -> ImageSplit:
    """Read one split (train or test) of any catalogued image dataset, by its format (IDX or CIFAR binary)."""
    spec = DATASETS.get(dataset)
    if spec.meta.get("format") != "cifar10-binary":
        return load_idx_split(dataset, split, data_dir)
    from archzoo.data.cifar import read_cifar_archive

    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r} for {dataset!r}; choose train or test")
    archive = str(spec.meta["archive"])
    images, labels = read_cifar_archive(locate(spec, data_dir, [archive])[archive], split)
    return ImageSplit(torch.from_numpy(images), torch.from_numpy(labels))


def load_user_image(path: str | Path, channels: int, size: int, photo: bool = False) -> torch.Tensor:
    """Load any image file as a (channels, size, size) float tensor in [0, 1], prepared as
    ``prepare_user_image`` describes."""
    if not Path(path).is_file():
        raise UserError(f"image {path} does not exist (or is not a file)")
    with open_user_image(path, str(path)) as im:
        return prepare_user_image(im, channels, size, photo)


def open_user_image(source: str | Path | BinaryIO, name: str, max_pixels: int | None = None) -> Any:
    """A PIL image read whole from a file path or a binary stream (an upload); a broken file, or one of more
    than ``max_pixels`` pixels (refused before decoding), is one line naming it as ``name``."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(source)
        if max_pixels is not None and im.width * im.height > max_pixels:
            im.close()
            raise UserError(f"{name} has {im.width} x {im.height} pixels, more than {max_pixels:,}; give a smaller image")
        im.load()
        return im
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        # Pillow reports broken files with several exception types (SyntaxError: "broken PNG file")
        raise UserError(f"{name} is not a readable image ({type(e).__name__}); give a PNG or JPEG file") from None


def prepare_user_image(im: Any, channels: int, size: int, photo: bool = False) -> torch.Tensor:
    """A PIL image as a (channels, size, size) float tensor in [0, 1], MNIST-style (or, with ``photo``,
    the whole picture resized to size x size as CIFAR's images are).

    Dark-on-light images (a bright border, as when someone draws with a pen on paper) are inverted
    to light-on-dark like MNIST; the content is then cropped to its bounding box, scaled to fit
    20/28 of the frame keeping its aspect ratio, and centred by centre of mass, following the
    MNIST preparation (LeCun et al. 1998).
    """
    from PIL import Image, ImageOps

    img = _to_8bit(_flatten_alpha(ImageOps.exif_transpose(im))).convert("RGB" if channels == 3 else "L")
    if photo:  # natural images: no inversion, cropping or centring, just the whole frame scaled down
        arr = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(arr)
        return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    grey = arr if arr.ndim == 2 else arr.mean(axis=2)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        arr, grey = 1.0 - arr, 1.0 - grey
    ys, xs = np.nonzero(grey > 0.1 * max(grey.max(), 1e-6))
    if len(ys):
        arr = arr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box = max(1, round(size * 20 / 28))
    h, w = arr.shape[:2]
    scale = box / max(h, w)
    pil = Image.fromarray(arr if arr.ndim == 2 else (arr * 255).astype(np.uint8))  # mode F or RGB
    pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    small = np.asarray(pil, dtype=np.float32)
    if small.ndim == 3:
        small = small / 255.0
    small = np.clip(small, 0.0, 1.0)
    canvas = np.zeros((size, size) + small.shape[2:], dtype=np.float32)
    weight = small if small.ndim == 2 else small.mean(axis=2)
    total = weight.sum()
    cy = (weight.sum(axis=1) @ np.arange(weight.shape[0])) / total if total > 0 else weight.shape[0] / 2
    cx = (weight.sum(axis=0) @ np.arange(weight.shape[1])) / total if total > 0 else weight.shape[1] / 2
    top = int(np.clip(round(size / 2 - cy), 0, size - small.shape[0]))
    left = int(np.clip(round(size / 2 - cx), 0, size - small.shape[1]))
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    tensor = torch.from_numpy(canvas)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def _flatten_alpha(im: Any) -> Any:
    """Composite a transparent image onto a background that contrasts with its ink.

    A digit drawn on a transparent canvas usually stores black strokes with alpha and a fully
    transparent (black) background; dropping alpha would make it all black. Dark ink goes onto white
    (then inverted like any dark-on-light image), light ink onto black.
    """
    from PIL import Image

    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return im
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    if alpha.min() >= 1.0:
        return rgba.convert("RGB")
    grey = np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0
    ink = (grey * alpha).sum() / max(alpha.sum(), 1e-6)  # mean brightness of the visible pixels
    background = (255, 255, 255) if ink < 0.5 else (0, 0, 0)
    return Image.alpha_composite(Image.new("RGBA", rgba.size, background + (255,)), rgba).convert("RGB")


def _to_8bit(im: Any) -> Any:
    """16-bit and 32-bit greyscale scaled to 8 bits (Pillow's own conversion clips them at 255)."""
    from PIL import Image

    if not (im.mode.startswith("I") or im.mode == "F"):
        return im
    arr = np.asarray(im, dtype=np.float64)
    top = 1.0 if im.mode == "F" and arr.max(initial=0) <= 1.0 else 255.0 if arr.max(initial=0) <= 255 else 65535.0
    return Image.fromarray(np.clip(np.nan_to_num(arr) / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
