"""Plots people would rather look at than read; each writes one PNG and returns its path."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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


def plot_image_grid(images: torch.Tensor, titles: Sequence[str], path: Path, suptitle: str = "",
                    columns: int = 8) -> Path:
    """Images (N, C, H, W) in [0, 1] on a grid of ``columns`` columns at most with a title above each
    (one row of N columns is a strip).

    The grid is one mosaic in a single axes: one ``imshow`` and one text per image. (A subplot per
    image with ``tight_layout`` took seconds per figure, the bulk of a test-set report.)
    """
    plt = _pyplot()
    n = len(images)
    cols = min(columns, max(1, n))
    rows = max(1, math.ceil(n / cols))
    c, h, w = tuple(images.shape[1:]) if n else (1, 28, 28)
    gap, band = max(1, w // 8), max(4, round(h * 0.3))  # between columns; room for a title above each image
    cell_h, cell_w = h + band, w + gap
    mosaic = np.ones((rows * cell_h, cols * cell_w, 3), dtype=np.float32)  # white paper
    pixels = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() if n else None
    grid_w = 1.3 * cols if n else 0.0  # inches
    grid_h = grid_w * mosaic.shape[0] / mosaic.shape[1]
    title_h = 0.35 if suptitle else 0.0
    width, height = max(grid_w, 4.5 if suptitle else 0.0, 1.3), max(grid_h + title_h, 0.5)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes(((1 - grid_w / width) / 2, 0.0, grid_w / width, grid_h / height))
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = r * cell_h + band, k * cell_w + gap // 2
        mosaic[top:top + h, left:left + w] = pixels[i][..., :3] if c >= 3 else pixels[i][..., :1]
        if i < len(titles):
            ax.text(left + w / 2, top - 1, titles[i], ha="center", va="bottom", fontsize=8)
    ax.imshow(mosaic, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle if n else suptitle + ": none", fontsize=9, y=1.0 - 0.08 / height, va="top")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run_comparison(runs: dict[str, Sequence[dict]], path: Path, title: str = "") -> Path:
    """Several runs' training loss and validation error (1 - accuracy) against optimizer step, one line per
    run in each of two panels (He et al. 2015, Fig. 6 style); runs named ``plain*`` are drawn dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, records in runs.items():
        style = "--" if name.startswith("plain") else "-"
        train = [(r["step"], r["loss"]) for r in records if r.get("split", "train") == "train" and "loss" in r]
        val = [(r["step"], 1 - r["accuracy"]) for r in records if r.get("split") == "val" and "accuracy" in r]
        for ax, points in zip(axes, (train, val), strict=True):
            if points:
                ax.plot(*zip(*points, strict=True), style, label=name, lw=1.2)
    for ax, label in zip(axes, ("training loss", "validation error"), strict=True):
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_forecast(times: Sequence[str], history: np.ndarray, forecast: np.ndarray, truth: np.ndarray | None,
                  path: Path, title: str = "") -> Path:
    """One variable: the look-back ``history`` (L,), then the ``forecast`` (H,) beside the ``truth`` (H,)
    when it is known; ``times`` labels the steps it covers (L, or L + H with the truth)."""
    plt = _pyplot()
    length, horizon = len(history), len(forecast)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(np.arange(length), history, color="0.35", lw=1.2, label="history")
    future = np.arange(length - 1, length + horizon)  # joined to the last observed value
    if truth is not None:
        ax.plot(future, np.concatenate([history[-1:], truth]), color="tab:blue", lw=1.2, label="truth")
    ax.plot(future, np.concatenate([history[-1:], forecast]), color="tab:red", lw=1.5, ls="--", label="forecast")
    ax.axvline(length - 0.5, color="0.6", lw=0.8, ls=":")
    ticks = np.linspace(0, len(times) - 1, num=min(6, len(times))).round().astype(int)
    ax.set_xticks(ticks, [times[i] for i in ticks], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_attention(weights: torch.Tensor, source: Sequence[str], target: Sequence[str], path: Path,
                   title: str = "") -> Path:
    """Heatmap of attention weights (T, S): one row per output token, one column per source token."""
    plt = _pyplot()
    T, S = weights.shape
    fig, ax = plt.subplots(figsize=(1.5 + 0.42 * S, 1.2 + 0.36 * T))
    ax.imshow(weights.float().numpy(), cmap="viridis", vmin=0, aspect="auto")
    ax.set_xticks(range(S), source, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(T), target, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_bleu_by_length(series: dict[str, Sequence[tuple[str, float]]], path: Path, title: str = "") -> Path:
    """Grouped bars: BLEU per source-length bucket, one bar colour per model (``series[model]`` lists
    (bucket label, BLEU) in bucket order)."""
    plt = _pyplot()
    labels = [label for label, _ in next(iter(series.values()))]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(labels), 3.8))
    for i, (name, points) in enumerate(series.items()):
        ax.bar(np.arange(len(labels)) + (i - (len(series) - 1) / 2) * width, [b for _, b in points], width, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("source length (words)")
    ax.set_ylabel("sacreBLEU")
    ax.set_title(title or "BLEU by source length")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class Panel:
    """One panel of ``plot_panels``: ``series[label] = (xs, ys, errors or None)``; errors draw a band of ±error
    (the lab's ± std over seeds). ``hlines`` are labelled horizontal reference lines (a baseline, chance);
    ``xticks`` names categorical x positions (x = 0, 1, ...: buckets)."""

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]]
    logx: bool = False
    logy: bool = False
    hlines: dict[str, float] = field(default_factory=dict)
    markers: bool = True
    xticks: Sequence[str] = ()


def plot_panels(panels: Sequence[Panel], path: Path, title: str = "", columns: int = 0) -> Path:
    """Line plots side by side (``columns`` per row; default all in one row), one line per series, with
    bands of ± error where given; log axes where a panel asks for them."""
    plt = _pyplot()
    columns = columns or len(panels)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.9 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for label, (xs, ys, errors) in panel.series.items():
            xs_, ys_ = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
            (line,) = ax.plot(xs_, ys_, marker="o" if panel.markers and len(xs_) <= 30 else None, ms=3.5, lw=1.4,
                              label=label)
            if errors is not None:
                err = np.asarray(errors, dtype=float)
                low = np.maximum(ys_ - err, ys_ * 1e-3) if panel.logy else ys_ - err
                ax.fill_between(xs_, low, ys_ + err, color=line.get_color(), alpha=0.18, lw=0)
        for k, (label, y) in enumerate(panel.hlines.items()):
            ax.axhline(y, color="0.4", lw=0.9, ls=(":", "--", "-.")[k % 3], label=label)
        if panel.logx:
            ax.set_xscale("log")
        if panel.logy:
            ax.set_yscale("log")
        if panel.xticks:
            ax.set_xticks(range(len(panel.xticks)), panel.xticks, fontsize=8)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ctc_posteriors(features: torch.Tensor, posteriors: torch.Tensor | None, labels: Sequence[str], path: Path,
                        title: str = "") -> Path:
    """One utterance: its feature frames (T, F) above the per-frame class posteriors (T', V) of a CTC model,
    one line per class (the blank dashed), on a shared time axis from 0 to 1; the features alone when
    ``posteriors`` is None (a model that reads the whole utterance at once)."""
    plt = _pyplot()
    if posteriors is None:
        fig, top = plt.subplots(1, 1, figsize=(10, 2.8))
    else:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    top.imshow(features.float().T.numpy(), origin="lower", aspect="auto", cmap="magma", extent=(0, 1, 0, features.shape[1]))
    top.set_ylabel("feature band")
    top.set_title(title, fontsize=10)
    if posteriors is None:
        top.set_xlabel("time (fraction of the utterance)")
    else:
        time = (np.arange(len(posteriors)) + 0.5) / len(posteriors)
        colours = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7] + ["black"]  # no grey: the blank's
        for v, label in enumerate(labels):
            series = posteriors[:, v].float().numpy()
            if v == 0:
                bottom.plot(time, series, color="0.6", ls="--", lw=1, label=label)
            elif series.max() > 0.05:  # classes that never show up stay out of the legend
                bottom.plot(time, series, color=colours[(v - 1) % len(colours)], lw=1.4, label=label)
        bottom.set_ylim(0, 1.02)
        bottom.set_xlabel("time (fraction of the utterance)")
        bottom.set_ylabel("posterior")
        bottom.legend(fontsize=7, ncol=6, loc="upper right")
        bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lines(series: dict[str, Sequence[tuple[float, float]]], path: Path, xlabel: str, ylabel: str, title: str = "",
               vlines: dict[str, float] | None = None, panels: dict[str, dict[str, Sequence[tuple[float, float]]]] | None = None
               ) -> Path:
    """Lines of (x, y) points, one per series (markers when few points), with optional labelled vertical
    lines; ``panels`` draws several such plots side by side (panel title -> series), sharing the y axis."""
    plt = _pyplot()
    groups = panels or {title: series}
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.8), squeeze=False, sharey=True)
    for ax, (panel_title, lines) in zip(axes[0], groups.items(), strict=True):
        for name, points in lines.items():
            xs, ys = zip(*points, strict=True) if points else ((), ())
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1.3, label=name)
        for name, x in (vlines or {}).items():
            ax.axvline(x, color="0.4", ls=":", lw=1)
            ax.text(x, ax.get_ylim()[1], f" {name}", fontsize=7, va="top", color="0.3")
        ax.set_xlabel(xlabel)
        ax.set_title(panel_title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if panels and title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
