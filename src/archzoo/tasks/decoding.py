"""Autoregressive decoding of encoder-decoder models: batched greedy search and beam search.

Both run over the ``EncoderDecoder`` contract (models/seq2seq.py): ``encode`` once per source,
then ``step`` once per output position for the whole batch (and, in beam search, all its beams).
A hypothesis ends at the model's EOS id; finished rows are padded with its padding id while the others continue.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from archzoo.errors import UserError
from archzoo.models.seq2seq import EncoderDecoder, select_rows


@dataclass
class Decoded:
    """Decoder output per source: ``tokens`` (B, T) ending in ``eos_id`` (unless cut at the maximum length),
    right-padded with ``pad_id``; ``scores`` (B,) the summed log-probabilities; ``attention`` (B, T, ...)
    the model's attention weights at each output step, when asked for."""

    tokens: Tensor
    scores: Tensor
    pad_id: int
    eos_id: int
    attention: Tensor | None = None

    def rows(self) -> list[list[int]]:
        """Each hypothesis as ids without EOS and padding."""
        out = []
        for row in self.tokens.tolist():
            out.append(row[:row.index(self.eos_id)] if self.eos_id in row else [t for t in row if t != self.pad_id])
        return out


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016, arXiv:1609.08144, Sec. 7, eq. 14); α = 0 ranks
    by raw log-probability, larger α favours longer hypotheses."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


def next_token_log_probs(model: EncoderDecoder, logits: Tensor) -> Tensor:
    """log p(y_t | y_<t, x) in float32, with padding and BOS ruled out (a trained model gives them almost
    no mass; an untrained one may, and a hypothesis must not end or restart through them)."""
    log_probs = logits.float().log_softmax(-1)
    log_probs[:, [model.pad_id, model.bos_id]] = float("-inf")
    return log_probs


def row_limits(max_len: int | Tensor, batch: int, device: torch.device) -> Tensor:
    """Each source's maximum output length (B,), so a sentence decodes the same alone or in any batch."""
    limits = torch.as_tensor(max_len, device=device).expand(batch).long()
    if int(limits.min()) < 1:
        raise UserError(f"the maximum output length must be >= 1, got {int(limits.min())}")
    return limits


def _stack(weights: list[Tensor | None]) -> Tensor | None:
    return None if not weights or weights[0] is None else torch.stack(weights, dim=1)  # type: ignore[arg-type]


@torch.no_grad()
def greedy_decode(model: EncoderDecoder, src: Tensor, max_len: int | Tensor, need_weights: bool = False) -> Decoded:
    """Pick the most probable token at every step, for the whole batch at once.

    Math: y_t = argmax_y p(y | y_<t, x), until EOS or ``max_len`` tokens (one limit, or one per source (B,)).
    Shapes: src (B, S) -> Decoded with tokens (B, T <= max_len).
    """
    B = src.shape[0]
    limits = row_limits(max_len, B, src.device)
    memory = model.encode(src)
    state = model.start(memory)
    tokens = torch.full((B,), model.bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    scores = torch.zeros(B, device=src.device)
    out, weights = [], []
    for t in range(int(limits.max())):
        logits, state, w = model.step(memory, state, tokens, need_weights)
        log_probs = next_token_log_probs(model, logits)
        tokens = log_probs.argmax(-1).masked_fill(finished, model.pad_id)
        scores += log_probs.gather(1, tokens[:, None])[:, 0].masked_fill(finished, 0.0)
        out.append(tokens)
        weights.append(w)
        finished |= (tokens == model.eos_id) | (limits <= t + 1)
        if bool(finished.all()):
            break
    return Decoded(torch.stack(out, dim=1), scores, model.pad_id, model.eos_id, _stack(weights))


@torch.no_grad()
def beam_search(model: EncoderDecoder, src: Tensor, beam_size: int, max_len: int | Tensor, alpha: float = 1.0,
                need_weights: bool = False) -> Decoded:
    """Keep the ``beam_size`` most probable prefixes of every source; return the best finished one
    under GNMT's length penalty.

    Math: at step t each of the K beams extends by every token; the K highest sums of log-probabilities
        log p(y_1..y_t | x) survive; a beam that has emitted EOS extends only by padding at no cost, so
        it keeps its score. At the end the hypothesis maximising log p(Y | x) / lp(Y) is chosen.
    Reference: Sutskever et al. 2014, arXiv:1409.3215, Sec. 3.2 (left-to-right beam search); length
        penalty: Wu et al. 2016, arXiv:1609.08144, Sec. 7.
    Shapes: src (B, S) -> Decoded with tokens (B, T <= max_len); the B * K beams run as one batch.
    Beam size 1 is greedy search.
    """
    if beam_size < 1:
        raise UserError(f"the beam size must be >= 1, got {beam_size}")
    B, K, device = src.shape[0], beam_size, src.device
    limits = row_limits(max_len, B, device).repeat_interleave(K)
    memory = model.encode(src)
    memory = select_rows(memory, torch.arange(B, device=device).repeat_interleave(K))
    state = model.start(memory)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start as the same empty prefix: expand only the first
    tokens = torch.full((B * K,), model.bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)
    attention: Tensor | None = None
    base = (torch.arange(B, device=device) * K)[:, None]
    for t in range(int(limits.max())):
        logits, state, w = model.step(memory, state, tokens, need_weights)
        log_probs = next_token_log_probs(model, logits)  # (B*K, V)
        V = log_probs.shape[1]
        padding_only = torch.full_like(log_probs[0], float("-inf"))
        padding_only[model.pad_id] = 0.0
        log_probs = torch.where(finished[:, None], padding_only, log_probs)
        scores, flat = (scores.view(-1, 1) + log_probs).view(B, K * V).topk(K, dim=1)
        rows = (base + flat // V).view(-1)  # the beam each survivor extends
        tokens = (flat % V).view(-1)
        state = select_rows(state, rows)
        history = torch.cat([history[rows], tokens[:, None]], dim=1)
        if w is not None:
            attention = w[rows][:, None] if attention is None else torch.cat([attention[rows], w[rows][:, None]], 1)
        finished = finished[rows] | (tokens == model.eos_id) | (limits <= t + 1)
        if bool(finished.all()):
            break
    lengths = (history != model.pad_id).sum(1).view(B, K)
    best = (scores / length_penalty(lengths, alpha)).argmax(1)
    pick = base[:, 0] + best
    return Decoded(history[pick], scores[torch.arange(B, device=device), best], model.pad_id, model.eos_id,
                   None if attention is None else attention[pick])


def decode(model: EncoderDecoder, src: Tensor, beam_size: int, max_len: int | Tensor, alpha: float = 1.0,
           need_weights: bool = False) -> Decoded:
    """Greedy search for beam size 1, beam search otherwise."""
    if beam_size == 1:
        return greedy_decode(model, src, max_len, need_weights)
    return beam_search(model, src, beam_size, max_len, alpha, need_weights)
