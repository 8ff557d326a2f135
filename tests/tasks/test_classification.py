"""Image classification task (tasks/classification.py): augmentation, sharding, metrics and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from archzoo.data.images import load_idx_split
from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks import TASKS
from archzoo.tasks.classification import ClassificationConfig, ImageClassification, normalise, random_shift
from helpers import SHARED_DATA, needs_shared_data

# Per-class counts of the MNIST test set, a fixed property of the real file.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def task() -> ImageClassification:
    return ImageClassification(ClassificationConfig(dataset="mnist-small", val_size=500, augment="shift"))


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """A few real MNIST training digits, normalised, (8, 1, 28, 28)."""
    return normalise(load_idx_split("mnist-small", "train").images[:8], MEAN, STD)


def manual_shift(img: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Move the content of (..., H, W) by dy rows down and dx columns right: a roll whose wrapped-around
    rows and columns are replaced by ``fill``."""
    out = torch.roll(img, shifts=(dy, dx), dims=(-2, -1)).clone()
    h, w = img.shape[-2:]
    if dy > 0:
        out[..., :dy, :] = fill
    elif dy < 0:
        out[..., h + dy:, :] = fill
    if dx > 0:
        out[..., :, :dx] = fill
    elif dx < 0:
        out[..., :, w + dx:] = fill
    return out


OFFSETS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]


def find_offset(shifted: torch.Tensor, original: torch.Tensor, fill: float) -> tuple[int, int]:
    """The one offset in [-2, 2]^2 whose manual shift reproduces ``shifted`` exactly."""
    matches = [o for o in OFFSETS if torch.equal(manual_shift(original, *o, fill), shifted)]
    assert len(matches) == 1, f"output matches shifts {matches}, expected exactly one"
    return matches[0]


def test_normalise_maps_black_and_white() -> None:
    out = normalise(torch.tensor([0, 255], dtype=torch.uint8), MEAN, STD)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([-MEAN / STD, (1 - MEAN) / STD]))


def test_random_shift_moves_each_image_by_exactly_one_offset(digits: torch.Tensor) -> None:
    img = digits[0]
    # the 25 candidate shifts of a real digit are all different, so the offset is identifiable
    assert len({manual_shift(img, *o, 0.0).numpy().tobytes() for o in OFFSETS}) == 25
    batch = img.expand(200, -1, -1, -1).contiguous()
    out = random_shift(batch, 2, 0.0, torch.Generator().manual_seed(3))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    seen = {find_offset(out[i], img, 0.0) for i in range(len(out))}
    assert seen == set(OFFSETS)  # every offset in [-2, 2]^2 is drawn, none outside it


def test_random_shift_fills_vacated_pixels_and_moves_channels_together(digits: torch.Tensor) -> None:
    fill = -MEAN / STD  # black after normalisation, as the task uses
    rgb = torch.cat([digits[:4], -digits[:4], digits[4:8]], dim=1)  # (4, 3, 28, 28), channels differ
    out = random_shift(rgb, 2, fill, torch.Generator().manual_seed(0))
    offsets = [find_offset(out[i], rgb[i], fill) for i in range(4)]
    for i, (dy, dx) in enumerate(offsets):
        for c in range(3):
            assert torch.equal(out[i, c], manual_shift(rgb[i, c], dy, dx, fill))
    assert any(o != (0, 0) for o in offsets)


def test_random_shift_is_a_function_of_the_seed(digits: torch.Tensor) -> None:
    a = random_shift(digits, 2, 0.0, torch.Generator().manual_seed(7))
    b = random_shift(digits, 2, 0.0, torch.Generator().manual_seed(7))
    c = random_shift(digits, 2, 0.0, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(random_shift(digits, 0, 0.0, torch.Generator().manual_seed(7)), digits)


def test_task_splits_and_model_args(task: ImageClassification) -> None:
    assert TASKS.get("classification") is ImageClassification
    assert task.model_args() == {"in_channels": 1, "image_size": 28, "num_classes": 10}
    x_train, y_train = task.split("train")
    x_val, y_val = task.split("val")
    assert task.num_train_examples() == len(y_train) == 9_500 and len(y_val) == 500
    assert x_train.shape == (9_500, 1, 28, 28) and x_train.dtype == torch.float32
    # train and val partition the 10,000 images: together they hold exactly the original label counts
    full = load_idx_split("mnist-small", "train").labels
    assert torch.equal(torch.bincount(torch.cat([y_train, y_val]), minlength=10), torch.bincount(full, minlength=10))
    assert task.has_split("val") and task.has_split("test") and not task.has_split("dev")
    with pytest.raises(UserError, match="no 'dev' split"):
        task.split("dev")


def test_val_split_is_fixed_by_val_seed(task: ImageClassification) -> None:
    again = ImageClassification(ClassificationConfig(dataset="mnist-small", val_size=500))
    other = ImageClassification(ClassificationConfig(dataset="mnist-small", val_size=500, val_seed=1))
    assert torch.equal(again.split("val")[0], task.split("val")[0])
    assert not torch.equal(other.split("val")[0], task.split("val")[0])
    no_val = ImageClassification(ClassificationConfig(dataset="mnist-small", val_size=0))
    assert not no_val.has_split("val") and no_val.num_train_examples() == 10_000
    with pytest.raises(UserError, match=r"no 'val' split \(data.val_size is 0\); choose one of train, test"):
        no_val.split("val")


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"augment": "rotate"}, "data.augment must be 'none' or some of shift, crop, flip, cutout"),
    ({"augment": "crop+mixup"}, "got 'crop+mixup'"),
    ({"cutout_size": -1}, "must be >= 0"),
    ({"val_size": -1}, "must be >= 0"),
    ({"shift_pixels": -2}, "must be >= 0"),
    ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
])
def test_config_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(UserError) as excinfo:
        ClassificationConfig(**kwargs)
    assert needle in str(excinfo.value)


def test_val_size_larger_than_train_is_refused() -> None:
    task = ImageClassification(ClassificationConfig(dataset="mnist-small", val_size=10_000))
    with pytest.raises(UserError, match="leaves no training data"):
        task.model_args()  # the Trainer asks for these first, before building anything


@needs_shared_data
def test_test_split_needs_no_training_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `archzoo eval` reads only the test images: a data dir holding just those is enough
    (tmp_path / "mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / name).symlink_to(SHARED_DATA / "mnist" / name)
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path))
    task = ImageClassification(ClassificationConfig(dataset="mnist"))
    x, y = task.split("test")
    assert x.shape == (10_000, 1, 28, 28) and torch.bincount(y).tolist() == MNIST_TEST_COUNTS
    with pytest.raises(UserError, match="is missing train-images-idx3-ubyte.gz"):
        task.split("train")


def test_train_batch_shards_are_slices_of_the_global_batch(task: ImageClassification) -> None:
    indices = torch.randperm(task.num_train_examples(), generator=torch.Generator().manual_seed(0))[:64]
    x_full, y_full = task.train_batch(indices, slice(0, 64), seed=123)
    x_all, y_all = task.split("train")
    assert torch.equal(y_full, y_all[indices])
    assert not torch.equal(x_full, x_all[indices])  # the shift augmentation is applied...
    fill = -MEAN / STD
    for i in range(8):  # ...as a pure translation of each selected image
        find_offset(x_full[i, 0], x_all[indices[i], 0], fill)
    for ranks in (2, 4):
        per = 64 // ranks
        parts = [task.train_batch(indices, slice(r * per, (r + 1) * per), seed=123) for r in range(ranks)]
        assert torch.equal(torch.cat([p[0] for p in parts]), x_full)
        assert torch.equal(torch.cat([p[1] for p in parts]), y_full)
    again = task.train_batch(indices, slice(0, 64), seed=123)
    assert torch.equal(again[0], x_full)
    assert not torch.equal(task.train_batch(indices, slice(0, 64), seed=124)[0], x_full)


def test_train_batch_without_augmentation_is_the_data() -> None:
    plain = ImageClassification(ClassificationConfig(dataset="mnist-small", val_size=500))
    indices = torch.arange(40, 72)
    x, y = plain.train_batch(indices, slice(8, 16), seed=0)
    x_all, y_all = plain.split("train")
    assert torch.equal(x, x_all[indices[8:16]]) and torch.equal(y, y_all[indices[8:16]])


def test_loss_is_cross_entropy_with_label_smoothing(task: ImageClassification) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5")
    x, y = task.split("val")[0][:16], task.split("val")[1][:16]
    assert torch.allclose(task.loss(model, (x, y)), F.cross_entropy(model(x), y))
    smooth = ImageClassification.__new__(ImageClassification)
    smooth.cfg = ClassificationConfig(label_smoothing=0.1)
    assert torch.allclose(smooth.loss(model, (x, y)), F.cross_entropy(model(x), y, label_smoothing=0.1))
    assert not torch.allclose(smooth.loss(model, (x, y)), task.loss(model, (x, y)))


class Lookup(nn.Module):
    """An oracle classifier: it recognises each image of a reference set (by a random projection) and
    returns confident logits for its label, optionally relabelled by ``remap``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int = 10, remap: dict[int, int] | None = None):
        super().__init__()
        self.proj = torch.randn(x[0].numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        keys = x.flatten(1).double() @ self.proj
        self.keys, order = keys.sort()
        labels = y[order].clone()
        for src, dst in (remap or {}).items():
            labels[y[order] == src] = dst
        self.labels = labels
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.flatten(1).double() @ self.proj
        hi = torch.searchsorted(self.keys, q).clamp(max=len(self.keys) - 1)
        lo = (hi - 1).clamp(min=0)
        nearest = torch.where((self.keys[hi] - q).abs() < (self.keys[lo] - q).abs(), hi, lo)
        return F.one_hot(self.labels[nearest], self.num_classes).float() * 30.0 - 15.0


def test_evaluate_perfect_model_has_accuracy_one(task: ImageClassification) -> None:
    for split in ("val", "test"):
        x, y = task.split(split)
        metrics = task.evaluate(Lookup(x, y), split, batch_size=256)
        assert metrics["accuracy"] == 1.0 and metrics["loss"] < 1e-6
        # a wrong-everywhere model scores 0
        wrong = Lookup(x, y, remap={c: (c + 1) % 10 for c in range(10)})
        assert task.evaluate(wrong, split, batch_size=256)["accuracy"] == 0.0


def test_report_of_a_perfect_model(task: ImageClassification, tmp_path: Path) -> None:
    x, y = task.split("test")
    result = task.report(Lookup(x, y), tmp_path, batch_size=4096)
    assert result["accuracy"] == 1.0 and set(result["per_class_accuracy"].values()) == {1.0}
    assert torch.equal(torch.tensor(result["confusion"]), torch.diag(torch.tensor(MNIST_TEST_COUNTS)))
    with Image.open(tmp_path / "misclassified.png") as im:  # a figure saying there are none
        assert im.format == "PNG" and im.width > 200


def test_report_writes_consistent_figures_and_plots(task: ImageClassification, tmp_path: Path) -> None:
    x, y = task.split("test")
    model = Lookup(x, y, remap={7: 1, 3: 8})  # perfect except that every 7 is called a 1 and every 3 an 8
    result = task.report(model, tmp_path, batch_size=1000)
    confusion = torch.tensor(result["confusion"])
    assert result["examples"] == 10_000 and confusion.sum() == 10_000
    assert confusion.sum(1).tolist() == MNIST_TEST_COUNTS  # rows are the true classes
    assert confusion[7, 1] == 1028 and confusion[3, 8] == 1010 and confusion[7, 7] == confusion[3, 3] == 0
    assert (confusion - torch.diag(confusion.diag())).sum() == 1028 + 1010  # no other mistakes
    assert confusion.sum(0)[1] == 1135 + 1028  # columns are the predictions
    assert result["accuracy"] == pytest.approx(1 - (1028 + 1010) / 10_000)
    per_class = result["per_class_accuracy"]
    assert list(per_class) == [str(c) for c in range(10)]
    for c in range(10):
        assert per_class[str(c)] == pytest.approx(confusion[c, c].item() / confusion[c].sum().item())
    assert per_class["7"] == per_class["3"] == 0.0 and per_class["1"] == per_class["8"] == 1.0
    assert json.loads((tmp_path / "eval.json").read_text()) == result
    for name in ("confusion.png", "misclassified.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 200 and im.height > 200


def test_best_checkpoint_ties_on_accuracy_go_to_the_lower_loss() -> None:
    task = object.__new__(ImageClassification)  # is_better needs no data
    best = {"accuracy": 0.995, "loss": 0.0213}
    assert task.is_better({"accuracy": 0.996, "loss": 0.5}, best)
    assert not task.is_better({"accuracy": 0.994, "loss": 0.001}, best)
    assert task.is_better({"accuracy": 0.995, "loss": 0.0188}, best)
    assert not task.is_better({"accuracy": 0.995, "loss": 0.0213}, best)


def test_predict_keeps_the_first_convolution_outputs_in_call_order(task: ImageClassification, tmp_path: Path) -> None:
    model = create_model("simple_cnn", **task.model_args()).eval()
    digits = load_idx_split("mnist-small", "test").images[:3]  # (3, 28, 28) uint8
    plain = task.predict(model, digits)
    kept = task.predict(model, digits, feature_maps=2)
    assert torch.equal(plain.probs, kept.probs) and plain.feature_maps == []
    assert [name for name, _ in kept.feature_maps] == ["features.0", "features.3"]
    x = normalise(kept.inputs * 255.0, MEAN, STD)
    first = model.features[0](x)  # the convolution's own output: before the in-place ReLU that follows it
    assert kept.feature_maps[0][1].shape == (3, 32, 28, 28) and kept.feature_maps[1][1].shape == (3, 64, 14, 14)
    torch.testing.assert_close(kept.feature_maps[0][1], first)
    assert (kept.feature_maps[0][1] < 0).any()
    torch.testing.assert_close(kept.feature_maps[1][1], model.features[3](model.features[:3](x)))
    assert kept.inputs.shape == (3, 1, 28, 28) and 0 <= kept.inputs.min() and kept.inputs.max() <= 1
    assert kept.plot_feature_maps(tmp_path / "maps.png", layer=1, index=2, channels=8).stat().st_size > 0
    assert Image.open(tmp_path / "maps.png").size[0] > 100


@pytest.mark.parametrize(("model", "count", "needle"), [
    ("mlp", 1, "MLP has no convolution layers, so no feature maps; use a CNN run"),
    ("simple_cnn", 3, "feature_maps = 3 is more than 2: SimpleCNN has 2 convolution layers"),
    ("simple_cnn", -1, "feature_maps must be >= 1"),
])
def test_feature_maps_of_a_model_without_enough_convolutions_is_one_line(task: ImageClassification, model: str,
                                                                        count: int, needle: str) -> None:
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        task.predict(create_model(model, **task.model_args()), torch.zeros(28, 28), feature_maps=count)


def test_plot_feature_maps_needs_kept_maps(task: ImageClassification, tmp_path: Path) -> None:
    result = task.predict(create_model("simple_cnn", **task.model_args()), torch.zeros(28, 28))
    with pytest.raises(UserError, match="no feature maps were kept"):
        result.plot_feature_maps(tmp_path / "x.png")
    result = task.predict(create_model("simple_cnn", **task.model_args()), torch.zeros(28, 28), feature_maps=1)
    with pytest.raises(UserError, match="layer 1 is out of range: 1 convolution layer"):
        result.plot_feature_maps(tmp_path / "x.png", layer=1)
