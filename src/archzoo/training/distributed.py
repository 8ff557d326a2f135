"""torch.distributed set-up: one process per device under ``torchrun``; rank 0 logs and saves."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


def resolve_device(name: str, info_local_rank: int | None = None) -> torch.device:
    """``auto`` picks CUDA when present; under torchrun each process takes cuda:LOCAL_RANK."""
    from archzoo.errors import UserError

    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
        local_rank = int(os.environ.get("LOCAL_RANK", "0")) if info_local_rank is None else info_local_rank
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def agree(reason: str | None, reasons: tuple[str, ...], info: DistInfo, device: torch.device) -> str | None:
    """The same stop reason on every rank: the latest of ``reasons`` that any rank holds (None: go on).

    A reason outside ``reasons`` (set by an ``on_step`` hook) outranks them all; a rank that holds
    it keeps its own wording, the others stop with "stopped".
    """
    if not info.enabled:
        return reason
    custom = len(reasons) + 1
    code = 0 if reason is None else reasons.index(reason) + 1 if reason in reasons else custom
    t = torch.tensor([code], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    agreed = int(t.item())
    if agreed == custom:
        return reason if code == custom else "stopped"
    return None if agreed == 0 else reasons[agreed - 1]


def mean_over_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over ranks (the global figure of a per-rank statistic)."""
    if not info.enabled:
        return value
    value = value.detach().float().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
