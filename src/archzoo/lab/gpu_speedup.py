"""gpu-speedup: the same CNN and Transformer training step (a preset's, through the one Trainer) on the
CPU and on a CUDA GPU: steps per second and their ratio. Optional: without a CUDA device nothing is
measured, and the page says so instead of giving a verdict."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from archzoo.lab.base import Cell, CellResult, Claim, Experiment, Figure, Table, Verdict, register_experiment

WORKLOADS = {"cnn": ("fashion-resnet20", "CNN: ResNet-20 on Fashion-MNIST (preset fashion-resnet20, batch 128)"),
             "transformer": ("shakespeare-gpt", "Transformer: character GPT on tinyshakespeare (preset shakespeare-gpt, "
                                                "4 layers, width 256, context 256, batch 16)")}
CLAIM_OF = {"cnn": "gpu-trains-cnns-faster", "transformer": "gpu-trains-transformers-faster"}
FAST, SLOW = 10.0, 2.0  # GPU over CPU steps per second
NO_GPU = ("no GPU was present: torch saw no CUDA device (torch.cuda.is_available() is False), so nothing was "
          "measured and the claim gets no verdict; run `archzoo lab run gpu-speedup` on a machine with a GPU")


def cuda_device_name() -> str | None:
    """The first CUDA device's name, or None when torch sees none."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def steps_per_second(preset: str, device: str, work_dir: Path, warmup: int, steps: int,
                     data_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> float:
    """Optimizer steps per second of ``preset``'s training step (with ``overrides``) through the Trainer on
    ``device``, timed after ``warmup`` steps, CUDA synchronised at both marks (benchmarks/gpu.py's
    ``timed_steps``)."""
    from archzoo.benchmarks.gpu import timed_steps

    result = timed_steps(preset, list(overrides), work_dir, torch.device(device), warmup, steps, data_dir=data_dir)
    return result["steps_per_s"]


@register_experiment
class GpuSpeedup(Experiment):
    name = "gpu-speedup"
    title = "How much faster does a GPU train the same CNN and Transformer step than the CPU? (needs a GPU)"
    seeded = False
    full_minutes = "about 5 min on a machine with a GPU (the CPU steps dominate); without one, nothing runs"
    claims = (
        Claim("gpu-trains-cnns-faster",
              "To make training faster, we used non-saturating neurons and a very efficient GPU implementation of "
              "the convolution operation.",
              "Krizhevsky, Sutskever & Hinton 2012, \"ImageNet Classification with Deep Convolutional Neural "
              "Networks\", NeurIPS, abstract.",
              f"median steps per second over rounds of the fashion-resnet20 training step: supported if the GPU "
              f"runs at least {FAST:.0f}x the CPU's rate; refuted if below {SLOW:.0f}x; depends otherwise; not "
              f"measured when no CUDA device is present."),
        Claim("gpu-trains-transformers-faster",
              "The Transformer allows for significantly more parallelization and can reach a new state of the art "
              "in translation quality after being trained for as little as twelve hours on eight P100 GPUs.",
              "Vaswani et al. 2017, \"Attention Is All You Need\", NeurIPS, arXiv:1706.03762, abstract.",
              f"the same rule on the shakespeare-gpt training step: supported if the GPU runs at least {FAST:.0f}x "
              f"the CPU's steps per second; refuted if below {SLOW:.0f}x; depends otherwise; not measured when no "
              f"CUDA device is present."),
    )

    def timing(self, quick: bool) -> dict[str, int]:
        """Rounds, warm-up steps and timed steps per device (more on the GPU: its steps are short)."""
        return {"rounds": 1, "warmup": 2, "cpu_steps": 3, "cuda_steps": 20} if quick else \
            {"rounds": 5, "warmup": 5, "cpu_steps": 10, "cuda_steps": 100}

    def setup(self, quick: bool) -> str:
        t = self.timing(quick)
        return ("Two training steps, each exactly a preset's step through the one Trainer (data batching, "
                "forward, loss, backward, optimizer), on the CPU (all the torch threads of the process, "
                "`--threads`) and on the first CUDA GPU: " + "; ".join(label for _, label in WORKLOADS.values())
                + ". Both presets' precision is `auto`: bf16 autocast on a device that multiplies bf16 natively "
                "(a bf16 GPU; an AVX512-BF16 or AMX CPU), fp32 on one that would only emulate it, so neither device "
                "times emulated bf16"
                + f". Per device, {t['warmup']} warm-up steps, then {t['cpu_steps']} (CPU) or {t['cuda_steps']} "
                f"(GPU) timed steps between two CUDA synchronisations; {t['rounds']} round(s), CPU and GPU "
                "alternating, and the median steps per second of each. The GPU's name is part of each cell, so "
                "cells measured without a GPU are never reused on a machine with one.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        device = cuda_device_name() or "none"
        return [Cell({"workload": w, "gpu": device, **self.timing(quick)}, 0, w) for w in WORKLOADS]

    def runs_alone(self, cell: Cell) -> bool:
        return True  # every cell times CPU and GPU training steps

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        c = cell.config
        if c["gpu"] == "none" or not torch.cuda.is_available():
            return {"measured": False, "reason": NO_GPU}
        preset = WORKLOADS[c["workload"]][0]
        rates: dict[str, list[float]] = {"cpu": [], "cuda": []}
        for r in range(c["rounds"]):
            for device in rates:
                rates[device].append(steps_per_second(preset, device, work_dir / f"{device}-{r}", c["warmup"],
                                                      c[f"{device}_steps"], data_dir))
        cpu, cuda = statistics.median(rates["cpu"]), statistics.median(rates["cuda"])
        return {"measured": True, "gpu": c["gpu"], "cpu_threads": torch.get_num_threads(),
                "cpu_steps_per_s": cpu, "cuda_steps_per_s": cuda, "speedup": cuda / cpu,
                "rounds": {k: [round(v, 3) for v in vs] for k, vs in rates.items()}}

    def tables(self, results: list[CellResult]) -> list[Table]:
        rows = []
        for r in results:
            label = WORKLOADS[r.config["workload"]][1]
            if r.result["measured"]:
                rows.append([label, r.result["gpu"], f"{r.result['cpu_steps_per_s']:.2f} "
                             f"({r.result['cpu_threads']} threads)", f"{r.result['cuda_steps_per_s']:.2f}",
                             f"{r.result['speedup']:.1f}x"])
            else:
                rows.append([label, "none present", "not measured", "not measured", "—"])
        return [Table("Training steps per second, median over rounds", ["workload", "GPU", "CPU steps/s",
                                                                        "GPU steps/s", "GPU / CPU"], rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        measured = [r for r in results if r.result["measured"]]
        if not measured:
            return []  # nothing measured: no figure
        from archzoo.viz.plots import Panel, plot_panels

        xs = list(range(len(measured)))
        series = {"GPU / CPU steps per second": (xs, [r.result["speedup"] for r in measured], None)}
        path = plot_panels([Panel(", ".join(f"{i}: {r.config['workload']}" for i, r in enumerate(measured)),
                                  "workload", "speed-up (x)", series, logy=True,
                                  hlines={f"{FAST:.0f}x": FAST, f"{SLOW:.0f}x": SLOW})],
                           out_dir / "speedup.png", f"GPU ({measured[0].result['gpu']}) against CPU")
        return [Figure(path, "The GPU's training steps per second over the CPU's, per workload.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        verdicts = []
        for r in results:
            claim = CLAIM_OF[r.config["workload"]]
            if not r.result["measured"]:
                verdicts.append(Verdict(claim, "not measured", {"gpu": "none"}, r.result["reason"] + "."))
                continue
            ratio = r.result["speedup"]
            numbers = {"gpu": r.result["gpu"], "cpu_steps_per_s": round(r.result["cpu_steps_per_s"], 3),
                       "gpu_steps_per_s": round(r.result["cuda_steps_per_s"], 3), "speedup": round(ratio, 2)}
            outcome = "supported" if ratio >= FAST else "refuted" if ratio < SLOW else "depends"
            verdicts.append(Verdict(claim, outcome, numbers, f"the GPU runs the step {ratio:.1f}x as fast as the "
                                    f"CPU (the rule: supported from {FAST:.0f}x, refuted below {SLOW:.0f}x)."))
        order = [c.key for c in self.claims]
        return sorted(verdicts, key=lambda v: order.index(v.claim))
