"""The GPU suite: the benchmarks that mean something on a GPU, unattended, in under 8 minutes on one.

Parts, in order (each records its figures or why it did not run; a part that raises is recorded and
the suite goes on, exiting non-zero at the end):
  matmul       bf16 and fp32 matmul peak of the device (the MFU denominator)
  gpt          preset shakespeare-gpt's training tokens/s and model FLOPs utilisation against that
               peak, at the preset's batch and at a GPU-sized one
  mnist        MNIST time to 99% test accuracy (the ``mnist-time-to-99`` protocol), several seeds
  lstm         seconds for one epoch of preset shakespeare-lstm (cuDNN LSTM)
  translation  seconds for one epoch of preset multi30k-transformer
  ddp          the gpt part under torchrun on every visible GPU (global batch = GPUs x per-GPU batch)
               against one GPU: scaling efficiency

``benchmarks/gpu.sh`` runs it; ``python -m archzoo.benchmarks.gpu --help`` lists the options. Without a
CUDA device it stops with a one-line error unless ``--device cpu`` asks to exercise it on the CPU;
``--dry-run`` shrinks every part to a few steps of tiny models (the tests run that on the CPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from archzoo.benchmarks.base import machine
from archzoo.errors import UserError
from archzoo.training.trainer import resolve_precision

PARTS = ("matmul", "gpt", "mnist", "lstm", "translation", "ddp")
BUDGET_SECONDS = 450.0  # parts not started by then are skipped: the suite stays under 8 minutes
GPT_PRESET, LSTM_PRESET, TRANSLATION_PRESET = "shakespeare-gpt", "shakespeare-lstm", "multi30k-transformer"
# tiny settings of --dry-run: every code path, seconds on a CPU
TINY_GPT = ["model.args.d_model=32", "model.args.num_layers=1", "model.args.num_heads=2", "model.args.context=16",
            "data.context=16", "train.batch_size=4", "train.precision='fp32'"]
TINY_LSTM = ["model.args.hidden_size=16", "model.args.embedding_dim=8", "data.context=16", "train.batch_size=4",
             "train.precision='fp32'"]
TINY_TRANSLATION = ["data.max_train_pairs=64", "data.max_eval_pairs=8", "data.vocab_size=150", "train.batch_size=16",
                    "train.precision='fp32'", "model.args.d_model=32", "model.args.num_heads=4",
                    "model.args.dim_feedforward=32", "model.args.num_encoder_layers=1", "model.args.num_decoder_layers=1"]
QUIET = ["train.eval_every_steps=1000000000", "train.time_budget=0", "train.log_every_steps=1000000"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m archzoo.benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (default; stops with an error if none is visible) or cpu to exercise the suite")
    p.add_argument("--dry-run", action="store_true", help="a few steps of tiny models per part (plumbing check)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu-suite.json"), help="result JSON")
    p.add_argument("--work-dir", type=Path, default=None, help="run folders (default: a temporary folder)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                   help="seconds after which parts not yet started are skipped")
    p.add_argument("--seeds", type=int, default=5, help="MNIST time-to-99 runs (seeds 0..N-1)")
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)  # one torchrun rank of the ddp part
    return p.parse_args(argv)


def check_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device is visible, and the GPU suite measures GPUs: run it on a machine with one, "
                        "or pass --device cpu to exercise it on the CPU")
    return torch.device(name)


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"device": "cpu", "device_count": 0}
    props = torch.cuda.get_device_properties(device)
    return {"device": torch.cuda.get_device_name(device), "device_count": torch.cuda.device_count(),
            "memory_gib": round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda}


def timed_steps(preset: str, overrides: list[str], run_dir: Path, device: torch.device, warmup: int,
                steps: int | None = None, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Wall seconds of ``steps`` optimizer steps (None: one epoch) after ``warmup`` steps of ``preset``
    through the Trainer on ``device``, CUDA synchronised at both marks; evaluation off until the end."""
    from archzoo.training.config import resolve_config
    from archzoo.training.trainer import Trainer

    cfg = resolve_config(preset, [*overrides, *QUIET, "train.max_steps=0", "train.epochs=1000"])
    marks: dict[str, Any] = {}

    def mark(t: Trainer) -> None:
        count = t.steps_per_epoch if steps is None else steps
        if t.step in (warmup, warmup + count):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            marks[t.step] = time.perf_counter()
        if t.step == warmup + count:
            marks["steps"], marks["batch"] = count, cfg.train.batch_size
            t.stop_reason = "measured"

    Trainer(cfg, run_dir, data_dir=data_dir, device=device.type, progress=False, verbose=False, overwrite=True,
            on_step=mark).fit()
    seconds = marks[warmup + marks["steps"]] - marks[warmup]
    return {"seconds": round(seconds, 3), "steps": marks["steps"], "batch_size": marks["batch"],
            "steps_per_s": round(marks["steps"] / seconds, 2), "preset": preset, "overrides": overrides}


def matmul_part(device: torch.device, tiny: bool, **_: Any) -> dict[str, Any]:
    from archzoo.benchmarks.gpt import matmul_peak

    size = 256 if tiny else 8192 if device.type == "cuda" else 2048
    repeats = 2 if tiny else 20 if device.type == "cuda" else 10
    return {"bf16_gflops": round(matmul_peak(torch.bfloat16, size, repeats, device), 1),
            "fp32_gflops": round(matmul_peak(torch.float32, size, repeats, device), 1), "size": size,
            "tf32": torch.backends.cuda.matmul.allow_tf32}


def gpt_rate(device: torch.device, run_dir: Path, batch: int, tiny: bool) -> dict[str, Any]:
    from archzoo.benchmarks.gpt import flops_per_token
    from archzoo.models import create_model
    from archzoo.training.config import resolve_config

    overrides = [*(TINY_GPT if tiny else []), f"train.batch_size={batch}"]
    timing = timed_steps(GPT_PRESET, overrides, run_dir, device, warmup=1 if tiny else 10, steps=2 if tiny else 50)
    cfg = resolve_config(GPT_PRESET, overrides)
    tokens_per_s = timing["steps_per_s"] * batch * cfg.data.context
    model_flops = flops_per_token(create_model("gpt", **cfg.model.args), cfg.data.context) * tokens_per_s
    return {**timing, "tokens_per_s": round(tokens_per_s), "model_gflops_per_s": round(model_flops / 1e9, 1),
            "precision": resolve_precision(cfg.train.precision, device)}


def gpt_part(device: torch.device, tiny: bool, work: Path, results: dict[str, Any], **_: Any) -> dict[str, Any]:
    peak = results.get("matmul", {}).get("bf16_gflops")
    batches = (4, 8) if tiny else (16, 128)  # the preset's batch, and one that fills a GPU
    out: dict[str, Any] = {"bf16_peak_gflops": peak}
    for batch in batches:
        rate = gpt_rate(device, work / f"gpt-{batch}", batch, tiny)
        rate["mfu"] = round(rate["model_gflops_per_s"] / peak, 6) if peak else None
        out[f"batch_{batch}"] = rate
    return out


def mnist_part(device: torch.device, tiny: bool, work: Path, seeds: int, **_: Any) -> dict[str, Any]:
    from archzoo.benchmarks.mnist import time_to_99

    overrides = ("train.max_steps=2", "train.precision='fp32'") if tiny else ()
    result = time_to_99(work / "mnist", seeds, device=device.type, overrides=overrides)
    return {k: result[k] for k in ("median_seconds", "worst_seconds", "all_reached_99", "seconds", "preset")} | {
        "steps": [r["steps"] for r in result["runs"]]}


def lstm_part(device: torch.device, tiny: bool, work: Path, **_: Any) -> dict[str, Any]:
    return {"epoch": timed_steps(LSTM_PRESET, TINY_LSTM if tiny else [], work / "lstm", device,
                                 warmup=1 if tiny else 5, steps=2 if tiny else None)}


def translation_part(device: torch.device, tiny: bool, work: Path, **_: Any) -> dict[str, Any]:
    # greedy decoding of the final test report: the epoch is timed, the report is not worth minutes here
    overrides = ["data.beam_size=1", "data.length_penalties=[]", *(TINY_TRANSLATION if tiny else [])]
    return {"epoch": timed_steps(TRANSLATION_PRESET, overrides, work / "translation", device,
                                 warmup=1 if tiny else 5, steps=2 if tiny else None)}


def ddp_part(device: torch.device, tiny: bool, work: Path, results: dict[str, Any], **_: Any) -> dict[str, Any]:
    """The gpt part's batch-128 measurement on every visible GPU (2 CPU processes on gloo for --device cpu)."""
    world = torch.cuda.device_count() if device.type == "cuda" else 2
    if world < 2:
        return {"skipped": f"{world} GPU visible: DDP scaling needs at least 2", "world_size": world}
    per_rank = 8 if tiny else 128
    out = work / "ddp.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
               "-m", "archzoo.benchmarks.gpu", "--ddp-worker", "--device", device.type, "--work-dir", str(work),
               "--out", str(out), *(["--dry-run"] if tiny else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"torchrun exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    rate = json.loads(out.read_text())
    single = results.get("gpt", {}).get(f"batch_{per_rank}", {}).get("tokens_per_s")
    return {**rate, "world_size": world, "per_rank_batch": per_rank, "single_device_tokens_per_s": single,
            "scaling_efficiency": round(rate["tokens_per_s"] / (world * single), 3) if single else None}


def ddp_worker(args: argparse.Namespace) -> int:
    device = check_device(args.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_rank = 8 if args.dry_run else 128
    rate = gpt_rate(device, args.work_dir / "ddp-run", per_rank * world, args.dry_run)
    if int(os.environ.get("RANK", "0")) == 0:
        args.out.write_text(json.dumps(rate) + "\n")
    return 0


PART_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "matmul": matmul_part, "gpt": gpt_part, "mnist": mnist_part, "lstm": lstm_part,
    "translation": translation_part, "ddp": ddp_part}


def run_suite(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise UserError(f"unknown --parts {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    device = check_device(args.device)
    start = time.perf_counter()
    results: dict[str, Any] = {}
    for name in parts:
        if time.perf_counter() - start > args.budget:
            results[name] = {"skipped": f"the suite's budget of {args.budget:.0f} s was spent before this part"}
            continue
        part_start = time.perf_counter()
        try:
            results[name] = PART_FUNCTIONS[name](device=device, tiny=args.dry_run, work=work, results=results,
                                                 seeds=1 if args.dry_run else args.seeds)
        except Exception as err:  # unattended: record the failure, run the other parts, exit non-zero
            results[name] = {"error": f"{type(err).__name__}: {err}"}
        results[name]["part_seconds"] = round(time.perf_counter() - part_start, 1)
        print(f"gpu suite: {name} done in {results[name]['part_seconds']:.0f} s", file=sys.stderr, flush=True)
    return {"suite": "gpu", **device_info(device), "dry_run": args.dry_run,
            "wall_seconds": round(time.perf_counter() - start, 1), "machine": machine(), "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "parts": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.ddp_worker:
            return ddp_worker(args)
        check_device(args.device)
        with tempfile.TemporaryDirectory(prefix="archzoo-gpu-") as tmp:
            work = args.work_dir or Path(tmp)
            record = run_suite(args, work)
        record["command"] = " ".join(["python -m archzoo.benchmarks.gpu", *(sys.argv[1:] if argv is None else argv)])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    except UserError as err:
        print(f"archzoo gpu suite: error: {err}", file=sys.stderr)
        return 2
    failed = [name for name, part in record["parts"].items() if "error" in part]
    print(f"gpu suite on {record['device']}: {record['wall_seconds']:.0f} s, "
          f"{len(failed)} part(s) failed{': ' + ', '.join(failed) if failed else ''}; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
