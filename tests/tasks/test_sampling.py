"""The shared sampler (tasks/sampling.py): filtering, determinism, stop tokens, and that
state-carrying generation equals recomputing the whole sequence, and the models' fast
incremental decoders sample the same tokens as the state contract."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers.impl import use_impl
from archzoo.models import create_model
from archzoo.tasks.sampling import draw_tokens, filter_logits, generate, start_decoding


def test_top_k_keeps_the_k_largest() -> None:
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.79)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()


def test_temperature_sharpens() -> None:
    logits = torch.tensor([[1.0, 2.0]])
    cold = filter_logits(logits, temperature=0.5).softmax(-1)[0, 1]
    assert cold > logits.softmax(-1)[0, 1]


@pytest.mark.parametrize(("kwargs", "message"), [({"temperature": 0.0}, "temperature"),
                                                 ({"top_k": 0}, "top-k"), ({"top_p": 0.0}, "top-p"),
                                                 ({"top_p": 1.5}, "top-p")])
def test_bad_sampling_parameters(kwargs: dict, message: str) -> None:
    model = create_model("rnn_lm", vocab_size=5, embedding_dim=4, hidden_size=4, num_layers=1)
    with pytest.raises(UserError, match=message):
        next(generate(model, torch.zeros(1, 1, dtype=torch.long), 3, **kwargs))


@pytest.mark.parametrize("name", ["lstm_lm", "gru_lm", "rnn_lm"])
def test_generation_with_state_equals_full_recomputation(name: str) -> None:
    """Each generated token is drawn from the same distribution full recomputation would give."""
    torch.manual_seed(0)
    model = create_model(name, vocab_size=9, embedding_dim=6, hidden_size=12, num_layers=2).eval()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    tokens = list(generate(model, prompt, 20, generator=torch.Generator().manual_seed(1)))
    seq = torch.cat([prompt, torch.stack(tokens, 1)], 1)
    with torch.no_grad():
        full, _ = model(seq)
    # replay: the same generator draws the same tokens from the recomputed distributions
    generator = torch.Generator().manual_seed(1)
    for t, token in enumerate(tokens):
        probs = full[:, prompt.shape[1] - 1 + t].softmax(-1)
        assert torch.equal(torch.multinomial(probs, 1, generator=generator).squeeze(1), token)


def test_sampling_is_deterministic_for_a_seed_and_stops_at_the_stop_token() -> None:
    torch.manual_seed(0)
    model = create_model("gru_lm", vocab_size=4, embedding_dim=4, hidden_size=8, num_layers=1).eval()
    prompt = torch.zeros(6, 1, dtype=torch.long)
    run = lambda seed: torch.stack(list(generate(model, prompt, 50, generator=torch.Generator().manual_seed(seed),
                                                 stop_token=0)), 1)
    a, b = run(3), run(3)
    assert torch.equal(a, b)
    assert a.shape[1] < 50 or (a == 0).any(1).all()
    for row in a:  # after the first stop token, only stop tokens
        hits = (row == 0).nonzero()
        if len(hits):
            assert (row[hits[0, 0]:] == 0).all()


SAMPLERS = [{}, {"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.8}, {"temperature": 1.3, "top_k": 7, "top_p": 0.9}]
DECODING_MODELS = {
    "gpt-rotary": ("gpt", {"vocab_size": 11, "context": 16, "d_model": 16, "num_layers": 2, "num_heads": 4,
                           "dropout": 0.0, "positions": "rotary", "tie_weights": True}),
    "gpt-learned": ("gpt", {"vocab_size": 11, "context": 16, "d_model": 16, "num_layers": 2, "num_heads": 4,
                            "dropout": 0.0, "positions": "learned", "bias": False}),
    "lstm_lm": ("lstm_lm", {"vocab_size": 11, "embedding_dim": 6, "hidden_size": 12, "num_layers": 2}),
    "gru_lm": ("gru_lm", {"vocab_size": 11, "embedding_dim": 6, "hidden_size": 12, "num_layers": 2}),
    "rnn_lm": ("rnn_lm", {"vocab_size": 11, "embedding_dim": 6, "hidden_size": 12, "num_layers": 2}),
}


def decoding_model(key: str) -> torch.nn.Module:
    name, args = DECODING_MODELS[key]
    torch.manual_seed(0)
    return create_model(name, **args).eval()


@pytest.mark.parametrize("key", DECODING_MODELS)
def test_incremental_decoder_gives_the_logits_of_the_state_contract(key: str) -> None:
    """The fast decoder against ``model(ids, state)`` on the same tokens, well past GPT's context (its
    window slides twice): GPT's static cache and the recurrent models' cell kernels sum in other orders
    than ``forward``'s kernels, so the logits differ by float32 rounding only."""
    model = decoding_model(key)
    prompt = torch.randint(0, 11, (2, 5))
    with torch.inference_mode():
        fast, step_fast = start_decoding(model, prompt)
        slow, step_slow = start_decoding(model, prompt, use_decoder=False)
        assert model.incremental_decoder() is not None
        pairs = [(fast, slow)]
        for token in torch.randint(0, 11, (40, 2)):
            pairs.append((step_fast(token), step_slow(token)))
    for a, b in pairs:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_gpt_decoder_torch_products_match_the_state_path() -> None:
    """The decoder's products through ``torch.addmm`` (its path off the CPU, e.g. CUDA) on CPU."""
    from archzoo.models.gpt import StaticCacheDecoder

    model = decoding_model("gpt-rotary")
    decoder = StaticCacheDecoder(model, numpy_blas=False)
    prompt = torch.randint(0, 11, (2, 5))
    with torch.inference_mode():
        fast, (slow, step_slow) = decoder.prefill(prompt), start_decoding(model, prompt, use_decoder=False)
        assert not decoder.numpy_blas
        for token in torch.randint(0, 11, (30, 2)):
            fast, slow = decoder.step(token), step_slow(token)
            torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_gpt_decoder_in_float64_matches_to_double_rounding() -> None:
    model = decoding_model("gpt-rotary").double()
    prompt = torch.randint(0, 11, (1, 3))
    with torch.inference_mode():
        fast, step_fast = start_decoding(model, prompt)
        slow, step_slow = start_decoding(model, prompt, use_decoder=False)
        for token in torch.randint(0, 11, (20, 1)):
            fast, slow = step_fast(token), step_slow(token)
            torch.testing.assert_close(fast, slow, atol=1e-12, rtol=1e-12)


def test_draw_tokens_is_torch_multinomial() -> None:
    """The fast path's draw is the one ``torch.multinomial`` makes, from the same generator state."""
    torch.manual_seed(0)
    for seed in range(20):
        probs = (torch.randn(3, 65) * 3).softmax(-1)
        probs[0, 10:] = 0  # top-k / top-p leave zeros
        probs[0] /= probs[0].sum()
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(10):
            assert torch.equal(draw_tokens(probs, ours), torch.multinomial(probs, 1, generator=theirs).squeeze(1))


def test_shakespeare_gpt_decoder_samples_the_state_paths_tokens() -> None:
    """The benchmark's model (preset ``shakespeare-gpt``, 3.2M parameters, random weights): both paths
    draw the same 300 tokens (past the context of 256, so the window slides) for three seeds."""
    from archzoo.training.config import resolve_config

    cfg = resolve_config("shakespeare-gpt", [])
    torch.manual_seed(0)
    model = create_model(cfg.model.name, **cfg.model.args).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    for seed in (0, 1, 2):
        runs = [torch.cat(list(generate(model, prompt, 300, generator=torch.Generator().manual_seed(seed),
                                        use_decoder=fast))) for fast in (True, False)]
        assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "plain")
@pytest.mark.parametrize("key", DECODING_MODELS)
def test_fast_and_contract_paths_sample_identical_tokens(key: str, sampler: dict) -> None:
    model = decoding_model(key)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    for seed in (0, 1, 2):
        runs = [torch.stack(list(generate(model, prompt, 40, generator=torch.Generator().manual_seed(seed),
                                          use_decoder=fast, **sampler)), 1) for fast in (True, False)]
        assert torch.equal(runs[0], runs[1])


def test_decoder_steps_aside_for_the_reference_path_and_training() -> None:
    for key in ("gpt-rotary", "lstm_lm"):
        model = decoding_model(key)
        with use_impl("reference"):
            assert model.incremental_decoder() is None
        assert model.train().incremental_decoder() is None
    assert decoding_model("gpt-rotary").bfloat16().incremental_decoder() is None
