"""Generation speed at batch 1: the models' incremental decoders (GPT's static KV cache, the recurrent
models' cell kernels) against stepping through the language-model contract ``model(ids, state)``,
both through the one sampler in one process, and both against the memory-bandwidth bound of reading
every weight once per token."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archzoo.benchmarks.base import register_benchmark
from archzoo.models import create_model
from archzoo.tasks.sampling import generate, start_decoding
from archzoo.training.config import resolve_config

GENERATION_SPEEDUP = 3.0  # issue 23: batch-1 tokens/s of the decoder >= 3x the contract path's


def copy_bandwidth(megabytes: float, repeats: int = 5) -> float:
    """GB/s of ``dst.copy_(src)`` over a ``megabytes`` buffer, counting the bytes read and written
    (STREAM's "copy"), best of ``repeats``: DRAM's bandwidth for buffers far beyond the caches."""
    n = int(megabytes * 1e6) // 4
    src, dst = torch.randn(n), torch.empty(n)
    dst.copy_(src)
    best = min(_seconds(lambda: dst.copy_(src)) for _ in range(repeats))
    return 2 * 4 * n / best / 1e9


def _seconds(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_weights(model: nn.Module) -> list[torch.Tensor]:
    """The parameters a batch-1 step reads whole: every matrix and vector (a tied readout is its
    embedding), not the input and position embeddings, of which a step reads one row."""
    readout = {id(p) for p in model.head.parameters()}
    return [p for name, p in model.named_parameters()
            if id(p) in readout or not name.startswith(("token_embedding", "embedding", "position"))]


def matmul_floor_tokens_per_s(model: nn.Module, kernel: str = "torch", repeats: int = 200) -> float:
    """Tokens/s of the step's matrix-vector products alone: one vector through every weight matrix in
    turn, back to back (the weights stay as warm in the caches as they can), median of 5 timings.
    ``kernel`` "torch": ``F.linear`` on the (out, in) matrices (MKL, the state path's kernel); "numpy":
    ``np.dot`` of the row with the (in, out) transposes (OpenBLAS, GPT's decoder on CPU). A decoder that
    uses that kernel cannot pass it; the rest of its step is overhead and cache misses."""
    matrices = [w.detach() for w in step_weights(model) if w.dim() == 2]
    if kernel == "numpy":
        arrays = [w.t().contiguous().numpy() for w in matrices]
        rows = {a.shape[0]: np.ones((1, a.shape[0]), dtype=a.dtype) for a in arrays}

        def one_token() -> None:
            for a in arrays:
                np.dot(rows[a.shape[0]], a)
    else:
        inputs = {w.shape[1]: torch.randn(1, w.shape[1]) for w in matrices}

        def one_token() -> None:
            for w in matrices:
                F.linear(inputs[w.shape[1]], w)

    with torch.inference_mode():
        one_token()
        timings = [_seconds(lambda: [one_token() for _ in range(repeats)]) for _ in range(5)]
    return repeats / statistics.median(timings)


def max_logit_difference(model: nn.Module, tokens: list[int]) -> float:
    """Largest |decoder logit - state-path logit| over the prompt and ``tokens`` fed to both paths."""
    prompt = torch.zeros(1, 1, dtype=torch.long)
    with torch.inference_mode():
        (fast, step_fast), (slow, step_slow) = start_decoding(model, prompt), start_decoding(model, prompt, False)
        worst = (fast - slow).abs().max().item()
        for token in torch.tensor(tokens)[:, None]:
            worst = max(worst, (step_fast(token) - step_slow(token)).abs().max().item())
    return worst


def weight_bytes_per_token(model: nn.Module) -> int:
    """Bytes of the parameters a batch-1 step reads (``step_weights``), each once."""
    return sum(p.numel() * p.element_size() for p in step_weights(model))


def compare_generation(model: nn.Module, new_tokens: int, rounds: int) -> dict[str, Any]:
    """Tokens/s of the sampler with the model's incremental decoder and through ``model(ids, state)``,
    alternating after a warm-up, seed 0, no filtering; the tokens of every round must agree."""
    prompt = torch.zeros(1, 1, dtype=torch.long)

    def rate(use_decoder: bool, tokens: int = new_tokens) -> tuple[float, float, list[int]]:
        generator = torch.Generator().manual_seed(0)
        wall, cpu = time.perf_counter(), time.process_time()
        ids = [int(t) for t in generate(model, prompt, tokens, generator=generator, use_decoder=use_decoder)]
        return tokens / (time.perf_counter() - wall), tokens / (time.process_time() - cpu), ids

    rate(False, 32), rate(True, 32)  # warm-up: allocator, kernels, rotary tables
    old, new = [], []
    for _ in range(rounds):
        old.append(rate(False))
        new.append(rate(True))
    identical = all(o[2] == n[2] for o, n in zip(old, new, strict=True))
    identical_other_seeds = all(tokens_agree(model, prompt, new_tokens, seed) for seed in (1, 2, 3, 4))
    ratios = [n[0] / o[0] for o, n in zip(old, new, strict=True)]
    weight_bytes = weight_bytes_per_token(model)
    dram, cached = copy_bandwidth(256), copy_bandwidth(weight_bytes / 1e6)
    decoder_rate = statistics.median(n[0] for n in new)
    floors = {kernel: round(matmul_floor_tokens_per_s(model, kernel)) for kernel in ("torch", "numpy")}
    return {
        "value": round(statistics.median(ratios) if identical and identical_other_seeds else 0.0, 3),
        "identical_tokens": identical,
        "decoder_tokens_per_s": [round(n[0]) for n in new], "state_path_tokens_per_s": [round(o[0]) for o in old],
        "decoder_tokens_per_cpu_s": [round(n[1]) for n in new],
        "state_path_tokens_per_cpu_s": [round(o[1]) for o in old],
        "weight_megabytes_per_token": round(weight_bytes / 1e6, 2),
        "copy_gb_per_s_256mb": round(dram, 1), "copy_gb_per_s_weights_size": round(cached, 1),
        "bandwidth_bound_tokens_per_s_dram": round(dram * 1e9 / weight_bytes),
        "bandwidth_bound_tokens_per_s_weights_size": round(cached * 1e9 / weight_bytes),
        "decoder_fraction_of_dram_bound": round(decoder_rate * weight_bytes / (dram * 1e9), 3),
        "identical_tokens_seeds_1_to_4": identical_other_seeds, "matmuls_alone_tokens_per_s": floors,
        "max_logit_difference": max_logit_difference(model, new[0][2]),
        "new_tokens": new_tokens, "rounds": rounds, "threads": torch.get_num_threads(), "precision": "fp32",
    }


def tokens_agree(model: nn.Module, prompt: torch.Tensor, new_tokens: int, seed: int) -> bool:
    """Whether both paths draw the same ``new_tokens`` tokens for ``seed``."""
    runs = [torch.cat(list(generate(model, prompt, new_tokens, generator=torch.Generator().manual_seed(seed),
                                    use_decoder=fast))) for fast in (True, False)]
    return torch.equal(*runs)


def preset_model(preset: str) -> nn.Module:
    cfg = resolve_config(preset, [])
    torch.manual_seed(0)
    return create_model(cfg.model.name, **cfg.model.args).eval()


_DESCRIPTION = ("batch-1 tokens/s generating {tokens} tokens with preset {preset}'s model (random weights, fp32, "
                "eval): the sampler with the model's incremental decoder ({decoder}) divided by the sampler stepping "
                "through model(ids, state), same seed, median ratio of 5 alternating rounds after a warm-up; 0 if "
                "any round's tokens differ, or those of seeds 1-4. Beside it: bytes of weights read per token and the "
                "copy bandwidth measured in the same run (256 MB and weights-sized buffers), as tokens/s bounds, and the "
                "matrix products alone")


def gpt_step_rates(model: nn.Module, steps: int = 200) -> dict[str, float]:
    """Decode steps/s of GPT's static-cache decoder without the sampler, prompt of one token: the C step
    (models/gpt_step.c) and the numpy path, best of 3 timings each (absent: the C step cannot be built)."""
    from archzoo.models.gpt import StaticCacheDecoder

    rates, token = {}, torch.zeros(1, dtype=torch.long)
    for path, native in (("c", None), ("numpy", False)):  # None: the C step where it builds
        decoder = StaticCacheDecoder(model, native=native)
        with torch.inference_mode():
            decoder.prefill(token[:, None])
            if path == "c" and decoder.native is None:
                continue

            def run(decoder: StaticCacheDecoder = decoder) -> None:
                decoder.prefill(token[:, None])
                for _ in range(steps):
                    decoder.step(token)
            rates[path] = round(steps / min(_seconds(run) for _ in range(3)))
    return rates


@register_benchmark("gpt-generation", "decoder_speedup", GENERATION_SPEEDUP, ">=", _DESCRIPTION.format(
    tokens=512, preset="shakespeare-gpt", decoder="static KV cache; on CPU the whole step after the embedding as one "
    "C call where a C compiler exists, else numpy's BLAS; logits to float32 rounding") + "; and decode steps/s of the "
    "C step and the numpy path without the sampler")
def gpt_generation(work_dir: Path, new_tokens: int = 512, rounds: int = 5) -> dict[str, Any]:
    model = preset_model("shakespeare-gpt")
    steps = gpt_step_rates(model)
    return {**compare_generation(model, new_tokens, rounds), "context": model.context,
            "decoder_path": "c" if "c" in steps else "numpy", "decoder_steps_per_s": steps}


@register_benchmark("lstm-generation", "decoder_speedup", 1.0, ">=", _DESCRIPTION.format(
    tokens=512, preset="shakespeare-lstm", decoder="cell kernels, logits equal to float32 rounding"))
def lstm_generation(work_dir: Path, new_tokens: int = 512, rounds: int = 5) -> dict[str, Any]:
    return compare_generation(preset_model("shakespeare-lstm"), new_tokens, rounds)
