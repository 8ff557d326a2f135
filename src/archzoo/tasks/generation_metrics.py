"""Sample-quality metrics of image generators on the features of an archzoo classifier.

Inception weights are not available offline, so the Fréchet distance and precision/recall are
computed on the penultimate-layer features of a classifier trained on the same dataset. The numbers
compare generators with each other (and with the real-vs-real floor) on that classifier only; they
are not comparable with Inception-based FID from the literature.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archzoo.errors import UserError


class ClassifierFeatures:
    """Penultimate-layer features (the input of the last linear layer) and predicted classes of an
    image classifier, for images in [-1, 1] as generators make them."""

    def __init__(self, classifier: nn.Module, mean: float, std: float):
        linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise UserError(f"{type(classifier).__name__} has no linear output layer to take features from; "
                            "use an image classifier such as simple_cnn")
        self.classifier, self.head = classifier.eval(), linears[-1]
        self.mean, self.std = mean, std

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """images (N, C, H, W) in [-1, 1] -> features (N, F) float64 on the CPU, predictions (N,)."""
        captured: list[torch.Tensor] = []
        hook = self.head.register_forward_hook(lambda mod, args, out: captured.append(args[0].detach()))
        device = next(self.classifier.parameters()).device
        predictions = []
        try:
            for i in range(0, len(images), batch_size):
                x = ((images[i:i + batch_size].to(device).float() + 1) / 2 - self.mean) / self.std
                predictions.append(self.classifier(x).argmax(1).cpu())
        finally:
            hook.remove()
        return torch.cat([c.double().cpu() for c in captured]), torch.cat(predictions)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) and (M, F), in float64.

    Math: FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}); the trace of the square root
        is the sum of sqrt(eigenvalues) of S_a^{1/2} S_b S_a^{1/2}, a symmetric PSD matrix with the
        same spectrum as S_a S_b, so two symmetric eigendecompositions replace a general sqrtm.
    Reference: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
        Nash Equilibrium", arXiv:1706.08500, Eq. 6 (on Inception features; here on a classifier's).
    Shapes: a (N, F), b (M, F) -> scalar.
    """
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(s_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = root_a @ s_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + s_a.trace() + s_b.trace() - 2 * trace_root)


def knn_radii(features: torch.Tensor, k: int, chunk: int = 1000) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row (N,)."""
    radii = []
    for i in range(0, len(features), chunk):
        d = torch.cdist(features[i:i + chunk], features)
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the row itself
    return torch.cat(radii)


def coverage(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 1000) -> float:
    """Fraction of ``queries`` inside at least one ball (support[j], radii[j])."""
    inside = 0
    for i in range(0, len(queries), chunk):
        d = torch.cdist(queries[i:i + chunk], support)
        inside += int((d <= radii[None, :]).any(1).sum())
    return inside / len(queries)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall: how much of the generated set lies on the real manifold, and
    how much of the real set lies on the generated one, each manifold being the union of k-NN balls.

    Math: precision = mean_j 1[exists i: ||f_j - r_i|| <= NN_k(r_i)]; recall swaps real and fake.
    Reference: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
        Generative Models", arXiv:1904.06991, Eq. 1-3 (k = 3).
    Shapes: real (N, F), fake (M, F) -> two fractions in [0, 1].
    """
    real, fake = real.float(), fake.float()
    return coverage(fake, real, knn_radii(real, k)), coverage(real, fake, knn_radii(fake, k))


def class_histogram(predictions: torch.Tensor, num_classes: int) -> list[float]:
    """Fraction of samples the classifier puts in each class (mode coverage)."""
    return (torch.bincount(predictions, minlength=num_classes).double() / max(len(predictions), 1)).tolist()


def compare_sets(features: ClassifierFeatures, real: torch.Tensor, other: torch.Tensor,
                 num_classes: int) -> dict[str, Any]:
    """FID, precision, recall of ``other`` against ``real`` (images in [-1, 1]) and the class
    histogram of ``other``."""
    real_features, _ = features(real)
    other_features, predictions = features(other)
    precision, recall = precision_recall(real_features, other_features)
    return {"fid": frechet_distance(real_features, other_features), "precision": precision, "recall": recall,
            "class_histogram": class_histogram(predictions, num_classes), "samples": len(other)}
