"""Contract of the GPT language model (models/gpt.py): shapes, KV-cached generation equals full
recomputation, the cache's sliding window, causality, reference = fused = a torch.nn twin, save/load,
tied weights, learning on real text, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from archzoo.benchmarks.gpt import TorchGPT, flops_per_token
from archzoo.config import to_dict
from archzoo.data.text import CharVocab, load_text
from archzoo.errors import UserError
from archzoo.layers.attention import KVBuffer
from archzoo.layers.impl import use_impl
from archzoo.models import create_model
from archzoo.tasks.sampling import generate
from archzoo.training.checkpoint import load_model, save_weights
from archzoo.training.config import resolve_config
from helpers import MODEL_FAMILIES

SMALL = {"vocab_size": 11, "context": 16, "d_model": 16, "num_layers": 2, "num_heads": 4, "dropout": 0.0}
POSITIONS = ["learned", "sinusoidal", "rotary"]


def small(**overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gpt", **{**SMALL, **overrides}).eval()


def test_family_is_registered() -> None:
    assert MODEL_FAMILIES["transformer_lm"] == ["gpt"]


@pytest.mark.parametrize("positions", POSITIONS)
def test_shapes_and_cache_layout(positions: str) -> None:
    model = small(positions=positions)
    (x,) = model.example_inputs(3)
    with torch.no_grad():
        logits, cache = model(x)
    assert logits.shape == (3, x.shape[1], 11) and torch.isfinite(logits).all()
    assert torch.equal(cache[0], x) and len(cache) == 1 + 2
    assert all(t.shape == (3, 4, x.shape[1], 4) for kv in cache[1:] for t in kv)  # (B, H, T, d_k) per layer
    with torch.no_grad():
        _, cache = model(x[:, :1], cache)  # continuing under no_grad grows the cache in place
    assert all(isinstance(kv, KVBuffer) and kv.keys.shape == (3, 4, x.shape[1] + 1, 4) for kv in cache[1:])


@pytest.mark.parametrize("positions", POSITIONS)
def test_chunked_calls_with_the_cache_equal_one_pass(positions: str) -> None:
    model = small(positions=positions)
    x = torch.randint(0, 11, (2, 16))
    with torch.no_grad():
        full, _ = model(x)
        first, cache = model(x[:, :5])
        second, cache = model(x[:, 5:11], cache)
        third, _ = model(x[:, 11:], cache)
    torch.testing.assert_close(torch.cat([first, second, third], 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", POSITIONS)
def test_cached_generation_equals_full_recomputation_token_for_token(positions: str) -> None:
    model = small(positions=positions)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    tokens = list(generate(model, prompt, 13, generator=torch.Generator().manual_seed(1)))  # fills the context
    seq = torch.cat([prompt, torch.stack(tokens, 1)], 1)
    assert seq.shape[1] == 16
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t, token in enumerate(tokens):  # nanoGPT's generate: recompute the whole prefix for every token
            logits, _ = model(seq[:, :prompt.shape[1] + t])
            probs = logits[:, -1].softmax(-1)
            assert torch.equal(torch.multinomial(probs, 1, generator=generator).squeeze(1), token)


def test_generation_past_the_context_slides_the_window() -> None:
    model = small()
    with torch.no_grad():
        x = torch.randint(0, 11, (1, 16))
        _, cache = model(x)  # the cache is full
        nxt = torch.tensor([[7]])
        logits, cache = model(nxt, cache)
        # keeps the last context/2 = 8 tokens, recomputes them with the new one at positions 0..8
        expected, _ = model(torch.cat([x[:, -8:], nxt], 1))
    torch.testing.assert_close(logits, expected[:, -1:], atol=1e-6, rtol=1e-6)
    assert cache[0].shape == (1, 9) and torch.equal(cache[0][:, -1], nxt[:, 0])
    assert sum(1 for _ in generate(model, torch.tensor([[1]]), 40)) == 40  # runs on past 2 x context


def test_causality_later_tokens_leave_earlier_outputs_alone() -> None:
    model = small()
    x = torch.randint(0, 11, (2, 12))
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 3) % 11
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.equal(a[:, :7], b[:, :7]) and not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("positions", POSITIONS)
def test_reference_path_equals_fused_path_outputs_and_gradients(positions: str) -> None:
    model = small(positions=positions, dropout=0.0).double().train()
    x = torch.randint(0, 11, (3, 10))
    grads = {}
    for impl in ("reference", "fused"):
        model.zero_grad()
        with use_impl(impl):
            logits, _ = model(x)
        F.cross_entropy(logits.flatten(0, 1), x.roll(-1, 1).flatten()).backward()
        grads[impl] = (logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(grads["reference"][0], grads["fused"][0], atol=1e-10, rtol=1e-10)
    for name, g in grads["reference"][1].items():
        torch.testing.assert_close(g, grads["fused"][1][name], atol=1e-10, rtol=1e-10, msg=name)


def test_equals_the_same_model_built_from_torch_nn_layers() -> None:
    """gpt's weights load into nn.TransformerEncoderLayer blocks (strict) and compute the same function."""
    model = small().double()
    twin = TorchGPT(11, 16, 16, 2, 4, 64, 0.0, True).double().eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    x = torch.randint(0, 11, (2, 9))
    ours, _ = model.train()(x)
    theirs = twin.train()(x)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)
    ours.sum().backward()
    theirs.sum().backward()
    twin_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, twin_params[name].grad, atol=1e-10, rtol=1e-10, msg=name)


@pytest.mark.parametrize("tie", [False, True])
def test_save_then_load_gives_identical_outputs(tie: bool, tmp_path: Path) -> None:
    overrides = ["model.name='gpt'", "task='language_model'"] + [
        f"model.args.{k}={v}" for k, v in {**SMALL, "tie_weights": str(tie).lower()}.items()]
    cfg = resolve_config(None, overrides)
    torch.manual_seed(1)
    model = create_model("gpt", **cfg.model.args).eval()
    assert (model.head.weight is model.token_embedding.weight) == tie
    save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), step=3)
    loaded, _ = load_model(tmp_path)
    assert (loaded.head.weight is loaded.token_embedding.weight) == tie
    (x,) = model.example_inputs(2)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def test_flops_per_token_counts_matmul_weights_and_attention() -> None:
    model = small()
    blocks = 2 * (16 * 48 + 48 + 16 * 16 + 16 + 16 * 64 + 64 + 64 * 16 + 16 + 4 * 16)
    n = blocks + 2 * 16 + 16 * 11  # final norm and the readout
    assert flops_per_token(model, 16) == 6 * n + 12 * 2 * 16 * 16


def test_learns_real_text() -> None:
    """A few dozen steps on tinyshakespeare drop the loss well below uniform (ln 65 = 4.17)."""
    text = load_text("tinyshakespeare")[:50_000]
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    torch.manual_seed(0)
    model = create_model("gpt", vocab_size=len(vocab), context=32, d_model=32, num_layers=1, num_heads=2,
                         dropout=0.0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        starts = torch.randint(0, len(ids) - 33, (32,))
        window = ids[starts[:, None] + torch.arange(33)]
        logits, _ = model(window[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 3.0 < losses[0]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"d_model": 18, "num_heads": 4}, "not divisible by num_heads"),
    ({"positions": "alibi"}, "positions must be one of"),
    ({"vocab_size": 1}, "vocab_size >= 2"),
])
def test_bad_configuration(overrides: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        small(**overrides)


def test_bad_input() -> None:
    model = small()
    with pytest.raises(UserError, match="longer than the model's context of 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(UserError, match=r"ids of shape \(B, T\)"):
        model(torch.zeros(16, dtype=torch.long))
