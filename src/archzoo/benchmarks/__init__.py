"""Named benchmarks: each measures one figure on the real test split and returns a result record.

Results are JSON with at least benchmark, metric, value, target, direction, wall_seconds, command,
machine, torch and date; ``archzoo bench NAME --json FILE`` writes them, and the committed ones live
in the repository's ``benchmarks/results/``. Benchmarks measure; tests assert.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from archzoo.registry import Registry


@dataclass(frozen=True)
class Benchmark:
    name: str
    metric: str
    target: float
    direction: str  # ">=" or "<="
    description: str
    run: Callable[[Path], dict[str, Any]]  # work_dir -> {"value": ..., extra figures}


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def register_benchmark(name: str, metric: str, target: float, direction: str, description: str):
    def add(fn: Callable[[Path], dict[str, Any]]) -> Callable[[Path], dict[str, Any]]:
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
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "python": platform.python_version(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_benchmark(name: str, work_dir: Path, command: str) -> dict[str, Any]:
    bench = BENCHMARKS.get(name)
    start = time.perf_counter()
    figures = bench.run(work_dir)
    value = figures.pop("value")
    passed = value >= bench.target if bench.direction == ">=" else value <= bench.target
    return {
        "benchmark": name, "metric": bench.metric, "value": value, "target": bench.target,
        "direction": bench.direction, "passed": passed, "wall_seconds": round(time.perf_counter() - start, 2),
        "command": command, "machine": machine(), "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "description": bench.description, **figures,
    }


from archzoo.benchmarks import lm, mnist  # noqa: E402,F401  (register the benchmarks)
