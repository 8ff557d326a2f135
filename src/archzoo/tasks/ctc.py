"""Connectionist temporal classification: the loss written from its forward recursion, greedy and prefix
beam-search decoding, and edit distance.

``ctc_loss_reference`` is the readable twin of ``torch.nn.functional.ctc_loss`` (the tests prove them
equal, values and gradients); training uses the fused one. Label sequences are lists of class ids;
``blank`` is one of the V classes (0 in archzoo's connected-digit task).

Shapes: B batch, T frames, V classes (blank included), S label positions.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor

NEG_INF = float("-inf")
# log of an impossible path in ``ctc_loss_reference``: finite, so that the gradient of a log-sum-exp over
# only impossible terms is 0 rather than NaN (exp(-inf - -inf)); e^-1e30 is 0 in every float type
IMPOSSIBLE = -1e30


def ctc_loss_reference(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                       blank: int = 0) -> Tensor:
    """Negative log-likelihood of each target labelling, summed over all its alignments (forward algorithm).

    Math: l' = the labels with blanks between and around them (|l'| = 2|l| + 1); in log space,
          α_1(1) = y^1_blank, α_1(2) = y^1_{l'_2}, α_1(s) = 0 (log: -∞) for s > 2;
          α_t(s) = [α_{t-1}(s) + α_{t-1}(s-1) + 1{l'_s ≠ blank and l'_s ≠ l'_{s-2}} α_{t-1}(s-2)] · y^t_{l'_s};
          -log p(l | x) = -log(α_T(|l'|) + α_T(|l'| - 1)), with T each sequence's own length.
    Reference: Graves, Fernández, Gomez & Schmidhuber 2006, "Connectionist Temporal Classification", ICML,
        Sec. 4.1, eqs. (6)-(8).
    Shapes: log_probs (B, T, V) (log-softmax over V), targets (B, S) padded, input_lengths (B,),
        target_lengths (B,) -> (B,) losses (``F.ctc_loss(..., reduction="none")`` on (T, B, V)).
    Differs from F.ctc_loss: a labelling no alignment can produce (too few frames) costs about 1e30, not ∞.
    """
    B, T, _ = log_probs.shape
    S = targets.shape[1]
    extended = torch.full((B, 2 * S + 1), blank, dtype=torch.long, device=log_probs.device)
    extended[:, 1::2] = targets
    # the skip from s - 2 is allowed into a label that differs from the label two places back
    skip = torch.zeros(B, 2 * S + 1, dtype=torch.bool, device=log_probs.device)
    skip[:, 2:] = (extended[:, 2:] != blank) & (extended[:, 2:] != extended[:, :-2])
    emit = log_probs.gather(2, extended[:, None, :].expand(B, T, -1))  # (B, T, 2S + 1): y^t_{l'_s}
    alpha = torch.full((B, 2 * S + 1), IMPOSSIBLE, dtype=log_probs.dtype, device=log_probs.device)
    alpha[:, 0] = emit[:, 0, 0]
    if S:
        alpha[:, 1] = torch.where(target_lengths > 0, emit[:, 0, 1], IMPOSSIBLE)
    for t in range(1, T):
        stay = alpha
        step = torch.cat([alpha.new_full((B, 1), IMPOSSIBLE), alpha[:, :-1]], 1)
        jump = torch.cat([alpha.new_full((B, 2), IMPOSSIBLE), alpha[:, :-2]], 1).masked_fill(~skip, IMPOSSIBLE)
        new = torch.logsumexp(torch.stack([stay, step, jump]), 0) + emit[:, t]
        alpha = torch.where((t < input_lengths)[:, None], new, alpha)  # a finished sequence keeps its α_T
    last = (2 * target_lengths)[:, None]
    ends = torch.cat([alpha.gather(1, last), alpha.gather(1, (last - 1).clamp(min=0))], 1)
    ends[:, 1] = torch.where(target_lengths > 0, ends[:, 1], IMPOSSIBLE)
    return -torch.logsumexp(ends, 1)


def greedy_decode(log_probs: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: the most probable class per frame, repeats merged, blanks removed.

    Reference: Graves et al. 2006, Sec. 3.2 (best path decoding).
    Shapes: log_probs (B, T, V), lengths (B,) -> B label lists.
    """
    best = log_probs.argmax(2).cpu()
    out = []
    for path, n in zip(best.tolist(), lengths.tolist(), strict=True):
        labels, previous = [], blank
        for c in path[:n]:
            if c != previous and c != blank:
                labels.append(c)
            previous = c
        out.append(labels)
    return out


def _add(a: float, b: float) -> float:
    """log(e^a + e^b) without overflow."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    top = max(a, b)
    return top + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(log_probs: Tensor, beam_size: int, blank: int = 0) -> list[tuple[list[int], float]]:
    """The ``beam_size`` most probable labellings found by CTC prefix beam search, best first, with their
    log-probabilities (summed over every alignment the beam kept).

    Math: each prefix ℓ carries p_b(ℓ) and p_nb(ℓ), the probability of the frames so far being read as ℓ
        with the last frame blank / not blank. At frame t with y^t: p_b(ℓ) ← (p_b + p_nb)(ℓ) y^t_blank;
        extending by c: p_nb(ℓc) += y^t_c · (p_b(ℓ) if c is ℓ's last label else p_b(ℓ) + p_nb(ℓ));
        repeating ℓ's last label c: p_nb(ℓ) += p_nb(ℓ) y^t_c. Keep the ``beam_size`` prefixes of highest
        p_b + p_nb.
    Reference: Hannun, Maas, Jurafsky & Ng 2014, "First-Pass Large Vocabulary Continuous Speech Recognition
        using Bi-Directional Recurrent DNNs", arXiv:1408.2873, Algorithm 1 (without a language model);
        Graves 2012, "Supervised Sequence Labelling with Recurrent Neural Networks", Sec. 7.5 (prefix search).
    Shapes: log_probs (T, V) of one utterance (its real frames) -> up to beam_size (labels, log p) pairs.
    """
    frames = log_probs.detach().double().cpu().tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for row in frames:
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (p_b, p_nb) in beams.items():
            total = _add(p_b, p_nb)
            entry = nxt[prefix]
            entry[0] = _add(entry[0], total + row[blank])
            for c, p in enumerate(row):
                if c == blank:
                    continue
                extended = nxt[prefix + (c,)]
                if prefix and prefix[-1] == c:
                    extended[1] = _add(extended[1], p_b + p)  # "c c" needs a blank between
                    entry[1] = _add(entry[1], p_nb + p)  # the repeat merges into the same label
                else:
                    extended[1] = _add(extended[1], total + p)
        # a repeated label right after a non-blank frame has probability 0 until a blank comes: drop it
        alive = [kv for kv in nxt.items() if _add(*kv[1]) > NEG_INF]
        ranked = sorted(alive, key=lambda kv: _add(*kv[1]), reverse=True)[:beam_size]
        beams = {prefix: (p[0], p[1]) for prefix, p in ranked}
    return [(list(prefix), _add(*p)) for prefix, p in beams.items()]


def edit_distance(reference: list[int], hypothesis: list[int]) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions turning one into the other."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rates(references: list[list[int]], hypotheses: list[list[int]]) -> dict[str, float]:
    """Label error rate (total edit distance / total reference length) and sentence accuracy."""
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    labels = sum(len(r) for r in references)
    exact = sum(r == h for r, h in zip(references, hypotheses, strict=True))
    return {"error_rate": edits / max(labels, 1), "sentence_accuracy": exact / max(len(references), 1)}
