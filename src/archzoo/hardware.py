"""What the device under a computation runs natively, where that changes which path is fast (or works)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch


@functools.cache
def _cpu_native_bf16() -> bool:
    if any(getattr(torch.cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported",
                                                                     "_is_amx_tile_supported")):
        return True
    if platform.machine() in ("aarch64", "arm64"):
        try:  # the Features line of Linux's cpuinfo names the extension "bf16"
            return " bf16" in Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return False


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware: a CUDA GPU that supports it, or a CPU with AVX512-BF16
    or AMX (x86) or Arm's BF16 extension. Elsewhere torch emulates bf16 products: on an AVX2-only EPYC a
    512x512 bf16 matmul ran at 0.9 GFLOP/s against 40 for fp32 (one thread), so bf16 there is dozens of
    times slower, not faster, and oneDNN has no bf16 LSTM primitive at all."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_native_bf16()
