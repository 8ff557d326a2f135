"""Synthetic long-range tasks: the adding problem and delayed recall, drawn from a seeded generator.

Both put the information the answer needs at the start (or anywhere) of a length-T sequence and ask
for it only at the end, so the time lag the model must bridge grows with T while the task itself
stays the same. Each function returns float inputs (N, T, features) and the targets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archzoo.errors import UserError

ADDING_FEATURES = 2  # value, marker


def adding_problem(n: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The adding problem: add the two marked numbers of a sequence of random numbers.

    Math: v_t ~ U(0, 1) for t < T; one marker at i ~ U{0, ..., ⌈T/2⌉ - 1}, the other at
        j ~ U{⌈T/2⌉, ..., T - 1}; x_t = (v_t, [t ∈ {i, j}]); y = v_i + v_j. So E[y] = 1 and
        Var[y] = 1/6: always answering 1 scores MSE 1/6 ≈ 0.167, the baseline to beat.
    Reference: Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", Sec. 5.4 (Experiment 4);
        this variant (one marker in each half, no -1 end markers, target not rescaled) is Le, Jaitly &
        Hinton 2015, arXiv:1504.00941, Sec. 4.1, and Arjovsky, Shah & Bengio 2016, arXiv:1511.06464.
    Shapes: -> x (n, T, 2) float32, y (n,) float32. T >= 2.
    """
    if length < 2 or n < 1:
        raise UserError(f"the adding problem needs a length >= 2 and n >= 1, got length={length}, n={n}")
    half = (length + 1) // 2
    values = torch.rand(n, length, generator=generator)
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    return torch.stack([values, markers], dim=2), values[rows, first] + values[rows, second]


def recall_features(num_categories: int) -> int:
    """Input width of delayed recall: one channel per symbol category, a blank and the recall cue."""
    return num_categories + 2


def delayed_recall(n: int, length: int, num_symbols: int, num_categories: int,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Delayed recall (the copy-memory task): remember K symbols shown first, repeat them at the end.

    Math: s_1..s_K ~ U{0, ..., C - 1} are shown at steps 0..K-1 (one-hot over C categories), the
        blank channel is on at every other step, the cue channel is on at step T - K - 1, and the
        model must output s_1..s_K at steps T - K .. T - 1. Chance accuracy is 1/C; a model that
        bridges the lag of T - K steps reaches 1.
    Reference: Hochreiter & Schmidhuber 1997, Sec. 5.2 (noise-free long time lags); the copy task of
        Arjovsky, Shah & Bengio 2016, arXiv:1511.06464, Sec. 4.1.
    Differs from paper: Arjovsky et al. show 10 symbols from 8 categories followed by T blanks (total
        length T + 20); here T is the whole sequence, so the lag is T - K.
    Shapes: -> x (n, T, C + 2) float32, y (n, K) int64. T >= 2K + 1.
    """
    if num_symbols < 1 or num_categories < 2 or n < 1:
        raise UserError(f"delayed recall needs >= 1 symbol, >= 2 categories and n >= 1, got {num_symbols}, "
                        f"{num_categories}, {n}")
    if length < 2 * num_symbols + 1:
        raise UserError(f"delayed recall of {num_symbols} symbols needs a length >= {2 * num_symbols + 1}, got {length}")
    symbols = torch.randint(0, num_categories, (n, num_symbols), generator=generator)
    blank, cue = num_categories, num_categories + 1
    channel = torch.full((n, length), blank, dtype=torch.long)
    channel[:, :num_symbols] = symbols
    channel[:, length - num_symbols - 1] = cue
    return torch.nn.functional.one_hot(channel, recall_features(num_categories)).float(), symbols
