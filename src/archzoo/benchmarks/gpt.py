"""Benchmarks of the Attention & Transformers issue: GPT on tinyshakespeare against nanoGPT's CPU
run, the 15-minute run, model FLOPs utilisation against this machine's measured matmul peak, and training throughput
against a model built from nn.TransformerEncoderLayer (generation speed: benchmarks/generation.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archzoo.benchmarks.base import alternate, register_benchmark, trainer_seconds
from archzoo.benchmarks.lm import bare_lm_rate, train_lm
from archzoo.layers.masks import causal_mask
from archzoo.models import create_model
from archzoo.models.gpt import GPT
from archzoo.training.config import resolve_config
from archzoo.training.optim import build_optimizer
from archzoo.training.trainer import Trainer, resolve_precision

NANOGPT_CPU_LOSS = 1.886  # nanoGPT's documented CPU run, measured on this machine (ANCHORS.md): 64 s
FAST_SECONDS = 13.0  # issue 23 (was 32: half of nanoGPT's 64 s)
MAIN_PRESET = "shakespeare-gpt"


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 10, device: str | torch.device = "cpu") -> float:
    """GFLOP/s of a square ``size`` matmul in ``dtype`` on ``device`` (best of three timings of
    ``repeats`` products; CUDA is synchronised around each timing)."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(3):
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def flops_per_token(model: GPT, context: int) -> float:
    """Training FLOPs per token: 6 N for the matmul weights (forward 2N, backward 4N) plus 12 L D T for
    the attention scores and weighted sums (Chowdhery et al. 2022, "PaLM", arXiv:2204.02311, App. B).
    N counts the blocks and the readout, not the embedding lookups."""
    n = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(("token_embedding", "position")))
    if model.head.weight is model.token_embedding.weight:
        n += model.head.weight.numel()
    d_model = model.token_embedding.embedding_dim
    return 6 * n + 12 * len(model.layers) * d_model * context


@register_benchmark("matmul-peak", "bf16_gflops", 0.0, ">=",
                    "this machine's matmul peak: GFLOP/s of a 2048 x 2048 matmul in bf16 (the value) and fp32, "
                    "on the threads torch uses; the denominator of model FLOPs utilisation")
def matmul_peak_benchmark(work_dir: Path) -> dict[str, Any]:
    return {"value": round(matmul_peak(torch.bfloat16), 1), "fp32_gflops": round(matmul_peak(torch.float32), 1)}


def timed_lm_run(preset: str, run_dir: Path) -> dict[str, Any]:
    """Train ``preset`` and split its wall time: from ``fit()`` to the last optimizer step, then the
    final validation over the whole validation text."""
    cfg = resolve_config(preset, [])
    last_step: list[float] = []
    trainer = Trainer(cfg, run_dir, progress=False, verbose=False, overwrite=True,
                      on_step=lambda t: last_step.append(time.perf_counter()) if t.step == t.total_steps else None)
    start = time.perf_counter()
    result = trainer.fit()
    assert result.best is not None and last_step
    return {"val_loss": round(result.best["loss"], 4), "steps": result.step,
            "seconds_to_last_step": round(last_step[0] - start, 2),
            "seconds_with_final_validation": round(result.train_seconds, 2),
            "tokens": result.step * cfg.train.batch_size * cfg.data.context, "preset": preset}


@register_benchmark("gpt-nanogpt-cpu", "train_seconds_to_val_1.886", FAST_SECONDS, "<=",
                    "gpt of nanoGPT's CPU size (4 layers, 4 heads, width 128, context 64) trained with preset "
                    "shakespeare-gpt-fast; the value is its wall seconds of training (to the last optimizer step) "
                    "if its validation loss is then <= 1.886 (nanoGPT's), else infinity. nanoGPT's own recipe "
                    "(preset shakespeare-gpt-nanogpt-cpu) runs beside it in the same process")
def gpt_nanogpt_cpu(work_dir: Path) -> dict[str, Any]:
    ours = timed_lm_run("shakespeare-gpt-fast", work_dir / "fast")
    theirs = timed_lm_run("shakespeare-gpt-nanogpt-cpu", work_dir / "nanogpt")
    reached = ours["val_loss"] <= NANOGPT_CPU_LOSS
    return {"value": ours["seconds_to_last_step"] if reached else math.inf, "val_loss": ours["val_loss"],
            "archzoo_recipe": ours, "nanogpt_recipe": theirs,
            "speedup": round(theirs["seconds_to_last_step"] / ours["seconds_to_last_step"], 2)}


@register_benchmark(MAIN_PRESET, "val_loss_nats_per_char", 1.50, "<=",
                    "gpt on tinyshakespeare (first 90% train, last 10% validation, independent context windows as "
                    f"nanoGPT evaluates) with preset {MAIN_PRESET}: at most 15 minutes of training on this machine")
def shakespeare_gpt(work_dir: Path) -> dict[str, Any]:
    result = train_lm(MAIN_PRESET, work_dir)
    cfg = resolve_config(MAIN_PRESET, [])
    model = create_model("gpt", **cfg.model.args)
    flops = flops_per_token(model, cfg.data.context) * result["chars_trained"]
    result["model_tflops_per_s"] = round(flops / result["train_seconds"] / 1e12, 4)
    return result


@register_benchmark("gpt-mfu", "model_flops_utilisation", 0.20, ">=",
                    f"model FLOPs/s of preset {MAIN_PRESET}'s training steps through the Trainer (6N + 12LDT per "
                    "token, PaLM's count) divided by the bf16 matmul peak measured in the same process")
def gpt_mfu(work_dir: Path, warmup: int = 5, steps: int = 20) -> dict[str, Any]:
    cfg = resolve_config(MAIN_PRESET, [f"train.max_steps={warmup + steps}", "train.eval_every_steps=1000",
                                       "train.time_budget=0"])
    peak = matmul_peak(torch.bfloat16)
    seconds = trainer_seconds(cfg, work_dir / "run", warmup, steps)
    model = create_model("gpt", **cfg.model.args)
    tokens = steps * cfg.train.batch_size * cfg.data.context
    achieved = flops_per_token(model, cfg.data.context) * tokens / seconds / 1e9
    return {"value": round(achieved / peak, 4), "model_gflops_per_s": round(achieved, 1),
            "bf16_peak_gflops": round(peak, 1), "tokens_per_s": round(tokens / seconds),
            "precision": resolve_precision(cfg.train.precision, torch.device("cpu")), "batch_size": cfg.train.batch_size,
            "context": cfg.data.context}


class TorchGPT(nn.Module):
    """The gpt model built from torch.nn layers only (nn.TransformerEncoderLayer, pre-LN, GELU, causal):
    its state_dict keys are gpt's, so it loads gpt's weights."""

    def __init__(self, vocab_size: int, context: int, d_model: int, num_layers: int, num_heads: int,
                 dim_feedforward: int, dropout: float, bias: bool):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, activation="gelu",
                                       batch_first=True, norm_first=True, bias=bias)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model, bias=bias)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        h = self.dropout(self.token_embedding(x) + self.position.weight[:T])
        mask = ~causal_mask(T, device=x.device)  # torch.nn: True = may not attend
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))


@register_benchmark("gpt-throughput", "trainer_over_torch_nn_ratio", 0.95, ">=",
                    f"gpt training tokens/s through the archzoo Trainer (fused path) with preset {MAIN_PRESET} "
                    "(learned positions: torch.nn has no rotary attention), divided by a bare loop over the same "
                    "model built from nn.TransformerEncoderLayer (same weights, batch, context, precision, "
                    "optimizer, clipping, dropout), alternating rounds in one process")
def gpt_throughput(work_dir: Path, steps: int = 15, warmup: int = 3, rounds: int = 3,
                   overrides: Sequence[str] = ()) -> dict[str, Any]:
    cfg = resolve_config(MAIN_PRESET, ["model.args.positions='learned'", "train.schedule='constant'",
                                       "train.warmup_steps=0",
                                       f"train.max_steps={warmup + steps}", "train.eval_every_steps=1000",
                                       "train.time_budget=0", *overrides])
    batch, context, args, tc = cfg.train.batch_size, cfg.data.context, dict(cfg.model.args), cfg.train

    def trainer_rate() -> float:
        return steps * batch * context / trainer_seconds(cfg, work_dir / "run", warmup, steps)

    def bare_rate() -> float:
        torch.manual_seed(0)
        ours = create_model("gpt", **args)
        model = TorchGPT(65, args["context"], args["d_model"], args["num_layers"], args["num_heads"],
                         ours.layers[0].linear1.out_features, args["dropout"], args.get("bias", True))
        model.load_state_dict(ours.state_dict())
        if ours.head.weight is ours.token_embedding.weight:
            model.head.weight = model.token_embedding.weight
        optimizer = build_optimizer(model, tc)  # the preset's optimizer, as the Trainer builds it
        return bare_lm_rate(model, list(model.parameters()), optimizer, batch, context, tc.precision,
                            tc.clip_grad_norm, warmup, steps)

    rates = alternate(bare_rate, trainer_rate, rounds)
    return {"value": rates["value"], "trainer_tokens_per_s": rates["archzoo_rates"],
            "torch_nn_tokens_per_s": rates["bare_rates"], "batch_size": batch, "context": context,
            "precision": resolve_precision(tc.precision, torch.device("cpu"))}
