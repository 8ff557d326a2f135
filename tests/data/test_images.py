"""Image datasets and user images (data/images.py): IDX splits, and photos/drawings prepared like MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from archzoo.data.idx import read_idx
from archzoo.data.images import load_idx_split, load_user_image
from archzoo.data.sources import BUILTIN_DIR
from archzoo.errors import UserError
from helpers import needs_shared_data

MNIST_TEST = read_idx(BUILTIN_DIR / "mnist-small" / "t10k-images-idx3-ubyte.gz")


# ---------------------------------------------------------------- IDX splits


def test_builtin_split_pairs_images_and_labels() -> None:
    train = load_idx_split("mnist-small", "train")
    assert train.images.shape == (10_000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.shape == (10_000,) and train.labels.dtype == torch.int64
    assert len(train) == 10_000 and set(train.labels.unique().tolist()) == set(range(10))


@needs_shared_data
def test_staged_mnist_test_split_equals_builtin_copy() -> None:
    test = load_idx_split("mnist", "test")
    assert len(test) == 10_000
    assert torch.equal(test.images[:, 0], torch.from_numpy(MNIST_TEST))


def test_unknown_split_and_dataset_are_user_errors() -> None:
    with pytest.raises(UserError, match="choose train or test"):
        load_idx_split("mnist-small", "validation")
    with pytest.raises(UserError, match="did you mean: mnist"):
        load_idx_split("mnsit", "test")


# ---------------------------------------------------------------- user images


def save(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path


def digit(index: int, side: int = 100) -> np.ndarray:
    """A real MNIST test digit scaled up, white on black, as a camera or paint program would give it."""
    return np.asarray(Image.fromarray(MNIST_TEST[index]).resize((side, side), Image.Resampling.BICUBIC))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_light_on_dark_and_dark_on_light_give_the_same_tensor(tmp_path: Path, index: int) -> None:
    white_on_black = load_user_image(save(digit(index), tmp_path / "w.png"), 1, 28)
    black_on_white = load_user_image(save(255 - digit(index), tmp_path / "b.png"), 1, 28)
    assert white_on_black.shape == (1, 28, 28) and white_on_black.dtype == torch.float32
    assert (white_on_black - black_on_white).abs().max() < 1e-3
    # and it looks like the MNIST digit it came from (crop, 20x20 box, centre of mass)
    assert cosine(white_on_black[0], torch.from_numpy(MNIST_TEST[index] / 255.0).float()) > 0.85


@pytest.mark.parametrize(("channels", "shape"), [(1, (1, 28, 28)), (3, (3, 28, 28))])
def test_rgb_odd_size_image_becomes_a_framed_digit(tmp_path: Path, channels: int, shape: tuple[int, ...]) -> None:
    img = Image.new("RGB", (100, 60), (250, 245, 235))  # paper, wider than tall
    ImageDraw.Draw(img).line([(50, 8), (50, 52)], fill=(20, 20, 120), width=5)  # a blue-ink "1"
    img.save(tmp_path / "one.png")
    out = load_user_image(tmp_path / "one.png", channels, 28)
    assert out.shape == shape and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0.5
    grey = out.mean(0)
    assert grey[0].sum() == 0 and grey[:, 0].sum() == 0  # background became black and the border is empty
    rows = torch.nonzero(grey.sum(1) > 0.1).flatten()
    assert 18 <= rows.max() - rows.min() + 1 <= 21  # the long side fills the 20-pixel box


def test_jpeg_and_greyscale_modes_work(tmp_path: Path) -> None:
    reference = load_user_image(save(digit(0), tmp_path / "d.png"), 1, 28)
    Image.fromarray(digit(0)).convert("RGB").save(tmp_path / "d.jpg", quality=95)
    assert cosine(load_user_image(tmp_path / "d.jpg", 1, 28), reference) > 0.98
    Image.fromarray(digit(0).astype(np.uint16) * 257).save(tmp_path / "d16.png")  # 16-bit grey
    assert cosine(load_user_image(tmp_path / "d16.png", 1, 28), reference) > 0.98


@pytest.mark.parametrize("ink", [(0, 0, 0), (255, 255, 255)])
def test_transparent_canvas_drawing_is_not_blank(tmp_path: Path, ink: tuple[int, int, int]) -> None:
    """Web canvases save strokes with alpha over a transparent (0,0,0,0) background."""
    mask = digit(3)
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = mask
    out = load_user_image(save(rgba, tmp_path / "canvas.png"), 1, 28)
    reference = load_user_image(save(mask, tmp_path / "plain.png"), 1, 28)
    assert cosine(out, reference) > 0.98


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    upright = load_user_image(save(digit(0), tmp_path / "up.png"), 1, 28)
    img = Image.fromarray(digit(0)).rotate(90, expand=True)  # stored sideways, as phones do
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to display
    img.convert("RGB").save(tmp_path / "side.jpg", exif=exif, quality=95)
    assert cosine(load_user_image(tmp_path / "side.jpg", 1, 28), upright) > 0.95


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a picture\n", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_non_images_are_user_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(UserError) as excinfo:
        load_user_image(path, 1, 28)
    assert str(path) in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_truncated_png_and_missing_file_are_user_errors(tmp_path: Path) -> None:
    full = save(digit(0), tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    with pytest.raises(UserError, match="not a readable image"):
        load_user_image(tmp_path / "cut.png", 1, 28)
    with pytest.raises(UserError, match="does not exist"):
        load_user_image(tmp_path / "nope.png", 1, 28)
    with pytest.raises(UserError, match="does not exist"):
        load_user_image(tmp_path, 1, 28)


def test_blank_image_gives_zeros(tmp_path: Path) -> None:
    for value in (0, 255):
        out = load_user_image(save(np.full((40, 30), value, np.uint8), tmp_path / "blank.png"), 1, 28)
        assert out.shape == (1, 28, 28) and out.abs().sum() == 0
