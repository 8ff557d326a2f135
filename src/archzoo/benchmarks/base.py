"""The benchmark registry and what benchmarks share: ``register_benchmark``, the result record, the machine
description and the timing helpers. Benchmark modules import from here; ``archzoo.benchmarks`` imports
every benchmark module explicitly (no cycle).

Named benchmarks: each measures one figure on the real test split and returns a result record.

Results are JSON with at least benchmark, metric, value, target, direction, wall_seconds, command,
machine, torch and date; ``archzoo bench NAME --json FILE`` writes them, and the committed ones live
in the repository's ``benchmarks/results/``. Benchmarks measure; tests assert.
"""

from __future__ import annotations

import datetime
import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from archzoo.errors import UserError
from archzoo.hardware import native_bf16
from archzoo.registry import Registry


@dataclass(frozen=True)
class Benchmark:
    name: str
    metric: str
    target: float
    direction: str  # ">=" or "<="
    description: str
    run: Callable[..., dict[str, Any]]  # (work_dir, [resume=]) -> {"value": ..., extra figures}

    @property
    def resumable(self) -> bool:
        """Whether ``archzoo bench --resume`` can continue the benchmark (one training run, or per-model records)."""
        return "resume" in inspect.signature(self.run).parameters


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def register_benchmark(name: str, metric: str, target: float, direction: str, description: str):
    def add(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        BENCHMARKS.add(name, Benchmark(name, metric, target, direction, description, fn))
        return fn

    return add


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # the vector unit decides CPU speed as much as the model name: one "AMD EPYC" has AVX2 only, another
    # AVX-512 with native bf16, and their timings differ severalfold
    info: dict[str, Any] = {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "native_bf16": native_bf16(torch.device("cpu")), "cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def resume_run(work_dir: Path, resume: bool) -> bool:
    """Whether a benchmark continues the run saved in ``work_dir/run`` (asked for, and one was saved)."""
    from archzoo.training.checkpoint import latest_checkpoint

    return resume and latest_checkpoint(work_dir / "run") is not None


def trainer_seconds(cfg: Any, run_dir: Path, warmup: int, steps: int) -> float:
    """Wall seconds the one Trainer takes for ``steps`` optimizer steps after ``warmup`` steps
    (``cfg`` must allow at least ``warmup + steps`` steps); marks are taken between steps."""
    from archzoo.training.trainer import Trainer

    marks: dict[int, float] = {}

    def mark(trainer: Trainer) -> None:
        if trainer.step in (warmup, warmup + steps):
            marks[trainer.step] = time.perf_counter()
        if trainer.step == warmup + steps:
            trainer.stop_reason = "measured"

    result = Trainer(cfg, run_dir, progress=False, verbose=False, overwrite=True, on_step=mark).fit()
    if len(marks) < 2:
        raise UserError(f"the timed run stopped ({result.status}) after fewer than {warmup + steps} steps; "
                        "raise train.max_steps/train.epochs or lift train.time_budget")
    return marks[warmup + steps] - marks[warmup]


def alternate(bare: Callable[[], float], ours: Callable[[], float], rounds: int) -> dict[str, Any]:
    """Rates of a bare loop and of archzoo measured alternately; the value is the median ratio."""
    bare_rates, our_rates = [], []
    for _ in range(rounds):
        bare_rates.append(bare())
        our_rates.append(ours())
    ratios = [o / b for o, b in zip(our_rates, bare_rates, strict=True)]
    return {"value": round(statistics.median(ratios), 4), "archzoo_rates": [round(r) for r in our_rates],
            "bare_rates": [round(r) for r in bare_rates]}


def run_benchmark(name: str, work_dir: Path, command: str, resume: bool = False) -> dict[str, Any]:
    bench = BENCHMARKS.get(name)
    if resume and not bench.resumable:
        raise UserError(f"benchmark {name} cannot be resumed (it does not save its progress); run it without --resume")
    start = time.perf_counter()
    figures = bench.run(work_dir, resume=True) if resume else bench.run(work_dir)
    value = figures.pop("value")
    passed = value >= bench.target if bench.direction == ">=" else value <= bench.target
    return {
        "benchmark": name, "metric": bench.metric, "value": value, "target": bench.target,
        "direction": bench.direction, "passed": passed, "wall_seconds": round(time.perf_counter() - start, 2),
        "command": command, "machine": machine(), "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "description": bench.description, **figures,
    }
