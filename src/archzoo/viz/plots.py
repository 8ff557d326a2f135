"""Plots people would rather look at than read; each writes one PNG and returns its path."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(records: Sequence[dict], path: Path) -> Path:
    """Training loss and every evaluation metric against optimizer step, one panel per metric."""
    plt = _pyplot()
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        for key, value in r.items():
            if key in ("step", "epoch", "split", "time", "lr", "samples_per_s") or not isinstance(value, int | float):
                continue
            name = f"{r.get('split', 'train')} {key}"
            xs, ys = series.setdefault(name, ([], []))
            xs.append(r["step"])
            ys.append(value)
    metrics = sorted({name.split(" ", 1)[1] for name in series})
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=False):
        for name, (xs, ys) in sorted(series.items()):
            if name.endswith(" " + metric):
                ax.plot(xs, ys, label=name.split(" ")[0], marker="o" if len(xs) < 30 else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(confusion: torch.Tensor, classes: Sequence[str], path: Path) -> Path:
    """Row-normalised confusion matrix (rows: true class) annotated with counts."""
    plt = _pyplot()
    k = len(classes)
    counts = confusion.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (accuracy {counts.diag().sum() / counts.sum():.2%})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_image_grid(images: torch.Tensor, titles: Sequence[str], path: Path, suptitle: str = "") -> Path:
    """Images (N, C, H, W) in [0, 1] on a square-ish grid with a title under each."""
    plt = _pyplot()
    n = max(1, len(images))
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles, strict=False):
        pixels = img.permute(1, 2, 0).numpy()
        ax.imshow(pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle if len(images) else suptitle + ": none", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
