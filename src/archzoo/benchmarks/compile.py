"""``train.compile``'s effect on training speed, one preset per family: optimizer steps per second through
the one Trainer with the eager model and with ``torch.compile`` (inductor), measured in alternating rounds
on the preset's own batch, precision and data. Compilation happens in the warm-up steps, so the figure is
the steady state; the compile time itself is recorded beside it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from archzoo.benchmarks.base import register_benchmark, trainer_seconds
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text

# one preset per family, with overrides that keep its final evaluation short (the steps are what is timed);
# the translation batches vary in length, so its compiled model recompiles for new shapes until dynamo
# marks the length dynamic: hence a warm-up of several steps for every preset
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "mlp": ("mnist-mlp", ()),
    "cnn": ("mnist-simple_cnn", ()),
    "resnet": ("fashion-resnet20", ()),
    "char lstm": ("shakespeare-lstm", ()),
    "gpt": ("shakespeare-gpt-fast", ()),
    "sentence cnn": ("mr-textcnn", ()),
    "translation transformer": ("multi30k-transformer", ("data.test_sets=['test2016']", "data.beam_size=1",
                                                         "data.length_penalties=[]")),
    "gan": ("mnist-dcgan", ()),
    "forecaster": ("etth1-transformer", ()),
}


@register_benchmark("compile-speed", "median_compiled_over_eager_step_rate", 1.0, ">=",
                    "train.compile (torch.compile, inductor) against eager: training steps/s of one preset per family "
                    "through the Trainer, alternating rounds, the preset's batch and precision; the value is the "
                    "median over families of each family's median ratio (> 1: compiled is faster)")
def compile_speed(work_dir: Path, families: dict[str, tuple[str, tuple[str, ...]]] = FAMILIES, warmup: int = 8, steps: int = 20,
                  rounds: int = 2, resume: bool = False) -> dict[str, Any]:
    """Each family's record is saved in ``work_dir/<preset>/compile.json`` as soon as it is measured; with
    ``resume`` the saved ones are kept."""
    import statistics

    per_family = {}
    for family, (preset, overrides) in families.items():
        record = work_dir / preset / "compile.json"
        if resume and record.is_file():
            try:
                per_family[family] = json.loads(record.read_text())
                float(per_family[family]["ratio"])
                continue
            except (OSError, ValueError, KeyError, TypeError):
                raise UserError(f"{record} is not a compile-speed record; delete it to measure again") from None
        per_family[family] = family_speed(preset, overrides, work_dir / preset, warmup, steps, rounds)
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps(per_family[family], indent=2) + "\n")
        print(f"compile-speed {family} ({preset}): compiled/eager {per_family[family]['ratio']:.3f}", file=sys.stderr,
              flush=True)
    ratios = [r["ratio"] for r in per_family.values()]
    return {"value": round(statistics.median(ratios), 4), "families": per_family, "warmup_steps": warmup,
            "timed_steps": steps, "rounds": rounds}


def family_speed(preset: str, overrides: tuple[str, ...], work_dir: Path, warmup: int, steps: int, rounds: int) -> dict[str, Any]:
    """Eager and compiled step rates of ``preset`` in alternating rounds (the median ratio of the rounds),
    and how many more wall seconds a whole compiled run of ``warmup + steps`` steps takes, beyond its
    faster timed steps (compilation and recompilations)."""
    import statistics

    from archzoo.training.config import resolve_config

    # no time budget: a compiled run's first steps (compilation) can outlast a preset's budget
    common = ["train.schedule='constant'", "train.log_every_steps=1000", "train.eval_every_steps=100000", "train.time_budget=0",
              f"train.max_steps={warmup + steps}", "train.epochs=1000", *overrides]
    configs = {"eager": resolve_config(preset, common), "compiled": resolve_config(preset, [*common, "train.compile=true"])}
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    walls: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(rounds):
        for variant, cfg in configs.items():
            start = time.perf_counter()
            timed = trainer_seconds(cfg, work_dir / "run", warmup, steps)
            walls[variant].append(time.perf_counter() - start - timed)
            rates[variant].append(steps / timed)
    ratios = [c / e for c, e in zip(rates["compiled"], rates["eager"], strict=True)]
    return {"preset": preset, "overrides": list(overrides), "ratio": round(statistics.median(ratios), 4),
            "eager_steps_per_s": [round(r, 2) for r in rates["eager"]],
            "compiled_steps_per_s": [round(r, 2) for r in rates["compiled"]],
            "compile_overhead_seconds": round(statistics.median(walls["compiled"]) - statistics.median(walls["eager"]), 1)}
