"""Generator metrics (tasks/generation_metrics.py): Fréchet distance against closed forms, k-NN precision
and recall on constructed sets, the class histogram, and the classifier's penultimate features."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks.generation_metrics import (
    ClassifierFeatures,
    class_histogram,
    compare_sets,
    frechet_distance,
    precision_recall,
)


def test_fid_of_a_set_with_itself_is_zero_and_order_does_not_matter() -> None:
    a = torch.randn(500, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    assert abs(frechet_distance(a, a)) < 1e-8
    b = torch.randn(400, 6, dtype=torch.float64) * 2 + 1
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(a, b[torch.randperm(400)]), rel=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)  # symmetric


def test_fid_matches_the_closed_form_for_commuting_covariances() -> None:
    """With diagonal covariances, FID = ||mu_a - mu_b||^2 + sum_i (sigma_a,i - sigma_b,i)^2."""
    torch.manual_seed(0)
    n, sd_a, sd_b = 4000, torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    a = (torch.randn(n, 3) * sd_a).double()
    b = (torch.randn(n, 3) * sd_b + torch.tensor([1.0, 0.0, -2.0])).double()
    # the closed form on the samples' own statistics (their covariances are only nearly diagonal)
    a, b = a - a.mean(0), b - b.mean(0) + torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64)
    a, b = whiten_to(a, sd_a.double()), whiten_to(b, sd_b.double())
    expected = 1 + 4 + ((sd_a - sd_b) ** 2).sum().item()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def whiten_to(x: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """``x`` transformed so that its sample covariance is exactly diag(sd^2), keeping its mean."""
    mean = x.mean(0)
    centred = x - mean
    values, vectors = torch.linalg.eigh(torch.cov(centred.T))
    white = centred @ vectors @ torch.diag(values.rsqrt()) @ vectors.T
    return white * sd + mean


def test_precision_and_recall_on_constructed_sets() -> None:
    torch.manual_seed(0)
    real = torch.randn(600, 4)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = torch.randn(300, 4) + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    # a generator that covers only half of the real modes: precise, but half the recall
    modes = torch.cat([torch.randn(300, 4) * 0.1 + 5.0, torch.randn(300, 4) * 0.1 - 5.0])
    collapsed = torch.randn(300, 4) * 0.1 + 5.0
    precision, recall = precision_recall(modes, collapsed)
    assert precision > 0.9 and 0.4 < recall < 0.55


def test_class_histogram() -> None:
    assert class_histogram(torch.tensor([0, 0, 2, 2]), 4) == [0.5, 0.0, 0.5, 0.0]


def test_classifier_features_are_the_input_of_the_last_layer() -> None:
    torch.manual_seed(0)
    classifier = create_model("simple_cnn").eval()
    features = ClassifierFeatures(classifier, mean=0.1307, std=0.3081)
    images = torch.rand(7, 1, 28, 28) * 2 - 1
    feats, predictions = features(images, batch_size=3)
    assert feats.shape == (7, 128) and feats.dtype == torch.float64 and predictions.shape == (7,)
    with torch.no_grad():
        x = ((images + 1) / 2 - 0.1307) / 0.3081
        logits = classifier(x)
        torch.testing.assert_close(classifier.classifier[-1](feats.float()), logits)
    assert torch.equal(predictions, logits.argmax(1))
    assert not classifier.classifier[-1]._forward_hooks  # the hook is removed
    scores = compare_sets(features, images, images, 10)
    assert abs(scores["fid"]) < 1e-6 and scores["precision"] == scores["recall"] == 1.0
    assert sum(scores["class_histogram"]) == pytest.approx(1.0) and scores["samples"] == 7


def test_a_model_without_a_linear_layer_is_refused() -> None:
    with pytest.raises(UserError, match="no linear output layer"):
        ClassifierFeatures(torch.nn.Conv2d(1, 2, 3), 0.0, 1.0)
