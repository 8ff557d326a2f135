"""GPT's decode step in C (models/gpt_step.c through archzoo/native.py): the same logits as the numpy
path and as ``forward``, the same sampled tokens, and the fallbacks where it cannot be built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.models.gpt import StaticCacheDecoder
from archzoo.models.gpt_step import SOURCE
from archzoo.native import native_library
from archzoo.tasks.sampling import generate, start_decoding

needs_compiler = pytest.mark.skipif(native_library(SOURCE) is None, reason="no C compiler to build gpt_step.c")

MODELS = {  # rotary and tied; learned positions without biases; sinusoidal with a non-square FFN
    "rotary": {"positions": "rotary", "tie_weights": True},
    "learned-no-bias": {"positions": "learned", "bias": False},
    "sinusoidal": {"positions": "sinusoidal", "dim_feedforward": 40},
}


def small_gpt(variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gpt", vocab_size=13, context=16, d_model=24, num_layers=3, num_heads=3, dropout=0.0,
                        **MODELS[variant]).eval()


@needs_compiler
@pytest.mark.parametrize("variant", MODELS)
def test_c_step_matches_the_numpy_step_and_the_state_path(variant: str) -> None:
    """Batch 2, 40 steps past a 16-token context (the window slides): C, numpy and ``model(ids, state)``
    agree to float32 rounding."""
    model = small_gpt(variant)
    prompt = torch.randint(0, 13, (2, 4))
    native, numpy_path = StaticCacheDecoder(model, native=True), StaticCacheDecoder(model, native=False)
    with torch.inference_mode():
        outputs = [(native.prefill(prompt), numpy_path.prefill(prompt))]
        _, step_slow = start_decoding(model, prompt, use_decoder=False)
        assert native.native is not None and numpy_path.native is None
        for token in torch.randint(0, 13, (40, 2)):
            outputs.append((native.step(token), numpy_path.step(token), step_slow(token)))
    for fast, *others in outputs[1:]:
        for other in others:
            torch.testing.assert_close(fast, other, atol=2e-5, rtol=1e-5)


@needs_compiler
def test_c_step_samples_the_tokens_of_the_reference_sampler() -> None:
    model = small_gpt("rotary")
    prompt = torch.tensor([[1, 2, 3]])
    assert model.incremental_decoder() is not None
    for seed in range(3):
        runs = [torch.stack(list(generate(model, prompt, 60, generator=torch.Generator().manual_seed(seed),
                                          use_decoder=fast, temperature=0.8, top_k=8)), 1) for fast in (True, False)]
        assert torch.equal(runs[0], runs[1])


def test_disabled_native_path_falls_back_and_required_one_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_NATIVE", "0")
    native_library.cache_clear()
    try:
        model = small_gpt("rotary")
        decoder = StaticCacheDecoder(model)
        with torch.inference_mode():
            decoder.prefill(torch.tensor([[1, 2]]))
            assert decoder.native is None and decoder.step(torch.tensor([3])).shape == (1, 13)
            with pytest.raises(UserError, match="C compiler"):
                StaticCacheDecoder(model, native=True).prefill(torch.tensor([[1, 2]]))
    finally:
        native_library.cache_clear()


def test_float64_model_keeps_the_numpy_path() -> None:
    decoder = StaticCacheDecoder(small_gpt("rotary").double())
    with torch.inference_mode():
        decoder.prefill(torch.tensor([[1, 2]]))
    assert decoder.native is None


@needs_compiler
def test_library_is_built_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = tmp_path / "add_one.c"
    source.write_text("int add_one(int x) { return x + 1; }\n")
    native_library.cache_clear()
    try:
        assert native_library(source).add_one(41) == 42
        built = list((tmp_path / "archzoo" / "native").glob("add_one-*.so"))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        native_library.cache_clear()  # a new process: loads the built library, compiles nothing
        assert native_library(source).add_one(1) == 2 and built[0].stat().st_mtime_ns == stamp
        source.write_text("int add_one(int x) { return x + 2; }\n")  # an edited source is built anew
        native_library.cache_clear()
        assert native_library(source).add_one(1) == 3
    finally:
        native_library.cache_clear()


@needs_compiler
def test_source_that_does_not_compile_gives_a_notice_and_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = tmp_path / "broken.c"
    source.write_text("int broken( {\n")
    native_library.cache_clear()
    try:
        assert native_library(source) is None
        assert "building broken.c failed" in capsys.readouterr().err
    finally:
        native_library.cache_clear()
