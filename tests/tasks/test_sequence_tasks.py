"""The long-range tasks (tasks/sequence.py, data/synthetic.py): the generators have the stated statistics,
training sequences depend on the step seed only, the tasks read the answer off the last step(s), and
sequential MNIST reads 784 pixels in raster order."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.synthetic import adding_problem, delayed_recall
from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks.sequence import (
    ADDING_BASELINE_MSE,
    AddingProblem,
    AddingProblemConfig,
    DelayedRecall,
    DelayedRecallConfig,
    SequentialMNIST,
    SequentialMNISTConfig,
)
from helpers import needs_shared_data


def test_adding_problem_statistics() -> None:
    """Two markers, one in each half; values uniform in [0, 1]; the target is the sum of the marked values,
    so its mean is 1 and its variance 1/6 (always answering 1 scores MSE 1/6)."""
    n, length = 20_000, 31
    x, y = adding_problem(n, length, torch.Generator().manual_seed(0))
    values, markers = x[..., 0], x[..., 1]
    assert x.shape == (n, length, 2) and y.shape == (n,)
    assert ((markers == 0) | (markers == 1)).all() and (markers.sum(1) == 2).all()
    half = (length + 1) // 2
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
    torch.testing.assert_close(y, (values * markers).sum(1))
    assert 0 <= values.min() and values.max() < 1 and abs(values.mean() - 0.5) < 0.005
    assert abs(y.mean() - 1.0) < 0.01 and abs(y.var() - 1 / 6) < 0.005
    # every position of each half is used as a marker, evenly
    first = markers[:, :half].argmax(1)
    counts = torch.bincount(first, minlength=half).float()
    assert counts.min() > 0.85 * n / half and counts.max() < 1.15 * n / half


def test_delayed_recall_statistics() -> None:
    n, length, k, c = 16_000, 20, 4, 8
    x, y = delayed_recall(n, length, k, c, torch.Generator().manual_seed(1))
    assert x.shape == (n, length, c + 2) and y.shape == (n, k)
    assert (x.sum(2) == 1).all()  # one-hot at every step
    channel = x.argmax(2)
    assert torch.equal(channel[:, :k], y)  # the symbols come first
    assert (channel[:, length - k - 1] == c + 1).all()  # then the cue, K + 1 steps before the end
    blank = torch.ones(length, dtype=torch.bool)
    blank[:k] = False
    blank[length - k - 1] = False
    assert (channel[:, blank] == c).all()  # blank everywhere else, the answer steps included
    freq = torch.bincount(y.flatten(), minlength=c).float() / y.numel()
    assert (freq - 1 / c).abs().max() < 0.01  # uniform symbols: chance accuracy is 1/C


def test_generators_refuse_impossible_lengths() -> None:
    with pytest.raises(UserError, match="length >= 2"):
        adding_problem(4, 1, torch.Generator())
    with pytest.raises(UserError, match="length >= 9"):
        delayed_recall(4, 8, 4, 8, torch.Generator())
    with pytest.raises(UserError, match="data.length"):
        DelayedRecallConfig(length=5)


def test_training_sequences_depend_on_the_step_seed_only_and_are_sharded() -> None:
    task = AddingProblem(AddingProblemConfig(length=12, val_size=8, test_size=8))
    indices = torch.arange(6)
    x1, y1 = task.train_batch(indices, slice(0, 6), seed=7)
    x2, y2 = task.train_batch(indices + 100, slice(0, 6), seed=7)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    half, _ = task.train_batch(indices, slice(3, 6), seed=7)
    assert torch.equal(half, x1[3:6])  # a rank's shard is its slice of the global batch
    assert not torch.equal(task.train_batch(indices, slice(0, 6), seed=8)[0], x1)
    # validation and test are fixed by data_seed and differ from each other
    again = AddingProblem(AddingProblemConfig(length=12, val_size=8, test_size=8))
    assert torch.equal(again._splits["val"][0], task._splits["val"][0])
    assert not torch.equal(task._splits["val"][0], task._splits["test"][0])


def test_tasks_read_the_last_steps() -> None:
    adding = AddingProblem(AddingProblemConfig(length=12, val_size=64, test_size=8))
    model = create_model("seq_lstm", **adding.model_args(), hidden_size=4)
    # a model answering 1 everywhere scores the baseline
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(1.0)
    metrics = adding.evaluate(model, "val", 16)
    x, y = adding._splits["val"]
    assert metrics["mse"] == pytest.approx(((y - 1) ** 2).mean().item(), rel=1e-5)
    assert metrics["baseline_ratio"] == pytest.approx(metrics["mse"] / ADDING_BASELINE_MSE)
    recall = DelayedRecall(DelayedRecallConfig(length=12, val_size=32, test_size=8))
    assert recall.model_args() == {"input_size": 10, "output_size": 8}
    model = create_model("seq_gru", **recall.model_args(), hidden_size=4)
    loss = recall.loss(model, recall.train_batch(torch.arange(5), slice(0, 5), 0))
    assert loss.shape == () and loss > 0
    assert set(recall.evaluate(model, "val", 8)) == {"accuracy", "sequence_accuracy", "loss"}


@needs_shared_data
def test_sequential_mnist_reads_pixels_in_raster_order() -> None:
    task = SequentialMNIST(SequentialMNISTConfig(max_train=64, max_eval=32))
    pixels, labels = task.split("train")
    assert pixels.shape == (64, 784) and pixels.dtype == torch.uint8 and len(task.split("test")[0]) == 32
    x, y = task.train_batch(torch.arange(4), slice(0, 4), 0)
    assert x.shape == (4, 784, 1) and torch.equal(y, labels[:4])
    torch.testing.assert_close(x[:, :, 0], (pixels[:4].float() / 255 - 0.1307) / 0.3081)
    model = create_model("seq_rnn", **task.model_args(), hidden_size=8)
    assert set(task.evaluate(model, "val", 16)) == {"accuracy", "loss"}
