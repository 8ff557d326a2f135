"""The one sampler for every language model: temperature, top-k and nucleus (top-p) sampling,
streaming one token at a time with the model's state (recurrent state, or a KV cache) carried.

Models follow the language-model contract ``model(ids (B, T), state) -> (logits (B, T, V), state)``:
the prompt is read once, then each step feeds only the newest token, so the work per generated
token is constant for a recurrent model. A model may also offer ``incremental_decoder()``: an object
with ``prefill(ids (B, P)) -> logits (B, V)`` and ``step(ids (B,)) -> logits (B, V)`` computing the
same logits faster (GPT's static KV cache, the recurrent models' cell kernels: the same to float32
rounding). The sampler uses it unless told not to; the tokens drawn are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from archzoo.errors import UserError


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature > 0:
        raise UserError(f"--temperature must be > 0, got {temperature} (1.0 samples the model as trained)")
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {top_p}")


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Scale by 1/temperature, keep the ``top_k`` largest, then the smallest set whose probability
    reaches ``top_p`` (Holtzman et al. 2020, arXiv:1904.09751); the rest become -inf.

    Shapes: logits (B, V) -> (B, V).
    """
    logits = logits.float()
    if temperature != 1.0:  # x / 1.0 == x exactly: skip the kernel call (one per generated token)
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the tokens ranked above it already reach top_p; the first always stays
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.inference_mode()
def generate(model: nn.Module, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
             stop_token: int | None = None, use_decoder: bool = True) -> Iterator[torch.Tensor]:
    """Yield the next token ids (B,) one step at a time, ``max_new_tokens`` times at most.

    With ``stop_token``, a row that produced it keeps producing it, and generation ends when every
    row has. ``use_decoder=False`` is the reference path: it steps through ``model(ids, state)`` even
    where the model offers a faster ``incremental_decoder()`` and draws with ``torch.multinomial``; the
    default path draws the same tokens with ``draw_tokens`` (the flag exists to compare the two).
    Shapes: prompt (B, P) with P >= 1.
    """
    check_sampling(temperature, top_k, top_p)
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise UserError("generation needs a prompt of at least one token")
    model.eval()
    logits, step = start_decoding(model, prompt, use_decoder)
    draw = draw_tokens if use_decoder else lambda probs, gen: torch.multinomial(probs, 1, generator=gen).squeeze(1)
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
        token = draw(probs.cpu(), generator).to(prompt.device)
        if stop_token is not None:
            token = token.masked_fill(done, stop_token)
            done |= token == stop_token
        yield token
        if stop_token is not None and bool(done.all()):
            return
        logits = step(token)


def draw_tokens(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row, exactly the draw of ``torch.multinomial(probs, 1, generator=generator)``.

    Math: argmax_i p_i / E_i with E_i ~ Exp(1) picks i with probability p_i (the exponential race:
    -log U_i / p_i is Exp(p_i), and the first of independent exponentials to fire is i with
    probability p_i / Σp); ATen's multinomial draws one sample without replacement this way, from the
    same generator, so the tokens are identical (tests/tasks/test_sampling.py), minus its per-call
    input checks (about ten kernel calls, a tenth of a fast decode step at batch 1).
    Shapes: probs (B, V), rows summing to 1 -> ids (B,).
    """
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return torch.div(probs, race, out=race).argmax(-1)


def start_decoding(model: nn.Module, prompt: torch.Tensor, use_decoder: bool = True
                   ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Read the prompt (B, P): the last position's logits (B, V) and a step function, ids (B,) -> the
    next logits (B, V), through the model's ``incremental_decoder()`` if it offers one (and ``use_decoder``), else
    through ``model(ids, state)``."""
    make = getattr(model, "incremental_decoder", None) if use_decoder else None
    decoder = make() if make is not None else None
    if decoder is not None:
        return decoder.prefill(prompt), decoder.step
    logits, state = model(prompt)

    def step(token: torch.Tensor) -> torch.Tensor:
        nonlocal state
        logits, state = model(token[:, None], state)
        return logits[:, -1]

    return logits[:, -1], step
