"""CTC (tasks/ctc.py): the forward-recursion loss equal to torch's, prefix beam search against brute force,
greedy decoding, edit distance and error rates."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from archzoo.tasks.ctc import ctc_loss_reference, edit_distance, error_rates, greedy_decode, prefix_beam_search


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("blank", [0, 3])
def test_reference_loss_equals_torch_ctc_loss_with_gradients(dtype: torch.dtype, blank: int) -> None:
    """Repeated labels (which need a blank between), an empty target, a target as long as its input allows,
    sequences of different lengths; the values and the gradients through log-softmax agree."""
    torch.manual_seed(0)
    B, T, V = 5, 11, 5
    logits = torch.randn(B, T, V, dtype=dtype, requires_grad=True)
    labels = [c for c in range(V) if c != blank]
    targets = torch.tensor([[labels[0], labels[1], labels[1], labels[2]], [labels[3], labels[0], 0, 0],
                            [labels[2], 0, 0, 0], [0, 0, 0, 0], [labels[0]] * 4])
    target_lengths = torch.tensor([4, 2, 1, 0, 4])
    input_lengths = torch.tensor([11, 6, 1, 3, 7])  # four repeats need 4 + 3 blanks = 7 frames
    log_probs = logits.log_softmax(2)
    ours = ctc_loss_reference(log_probs, targets, input_lengths, target_lengths, blank)
    theirs = F.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths, blank=blank, reduction="none")
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(ours, theirs, **tol)
    weights = torch.rand(B, dtype=dtype)
    (g1,) = torch.autograd.grad((ours * weights).sum(), logits, retain_graph=True)
    (g2,) = torch.autograd.grad((theirs * weights).sum(), logits)
    torch.testing.assert_close(g1, g2, **tol)


def brute_force(log_probs: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """log p(labelling) by summing every path of the (T, V) grid."""
    T, V = log_probs.shape
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(V), repeat=T):
        labels, previous = [], blank
        for c in path:
            if c != previous and c != blank:
                labels.append(c)
            previous = c
        p = math.exp(sum(log_probs[t, c].item() for t, c in enumerate(path)))
        totals[tuple(labels)] = totals.get(tuple(labels), 0.0) + p
    return {k: math.log(v) for k, v in totals.items()}


@pytest.mark.parametrize("seed", range(4))
def test_prefix_beam_search_with_a_wide_beam_is_exact(seed: int) -> None:
    torch.manual_seed(seed)
    log_probs = (2 * torch.randn(5, 3, dtype=torch.float64)).log_softmax(1)
    exact = brute_force(log_probs)
    beams = prefix_beam_search(log_probs, beam_size=100)
    for labels, score in beams:  # every hypothesis carries its exact probability (nothing was pruned)
        assert score == pytest.approx(exact[tuple(labels)], abs=1e-9)
    assert tuple(beams[0][0]) == max(exact, key=exact.get)
    assert [s for _, s in beams] == sorted((s for _, s in beams), reverse=True)
    # the beam's probabilities over all labellings sum to one
    assert sum(math.exp(s) for _, s in beams) == pytest.approx(1.0)


def test_beam_search_can_beat_best_path() -> None:
    """Best path picks the likeliest frame sequence; the labelling summed over its paths can differ:
    here "1" wins by aggregation (frames: 1 or blank, 1 or blank) over best path's blank-blank."""
    p = torch.tensor([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]], dtype=torch.float64).log()
    assert greedy_decode(p[None], torch.tensor([2]))[0] == []
    # p("") = 0.16; p("1") = .35*.35 + .35*.4 + .4*.35 = .4025; p("2") = .2225
    assert prefix_beam_search(p, 4)[0][0] == [1]


def test_greedy_decoding_merges_repeats_then_drops_blanks() -> None:
    path = torch.tensor([[0, 1, 1, 0, 1, 2, 2, 0, 0, 3]])
    log_probs = F.one_hot(path, 4).double().log()
    assert greedy_decode(log_probs, torch.tensor([10])) == [[1, 1, 2, 3]]
    assert greedy_decode(log_probs, torch.tensor([4])) == [[1]]  # only the real frames


def test_edit_distance_and_error_rates() -> None:
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 5]) == 2
    assert edit_distance([1, 2, 3, 4], [2, 1, 3, 5, 4]) == 3
    rates = error_rates([[1, 2, 3], [4, 5]], [[1, 2, 3], [4]])
    assert rates == {"error_rate": 1 / 5, "sentence_accuracy": 0.5}
