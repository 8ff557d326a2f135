"""Inference speed: torch fp32, torch bf16 (autocast), torch int8 (dynamic, Linear/LSTM/GRU) and
onnxruntime (the fp32 ONNX export) on five trained runs, with the quality change each causes.

Latency is the fastest wall time of one call at batch 1 (one image, one generated character with
its state, one 64-token GPT window, one sentence translated greedily); throughput is items per
second at batch 64. Quality is the run's own measure on real held-out data, computed through each
variant: test accuracy (MNIST, Fashion-MNIST), validation nats/char (char LM, GPT; GPT over
independent windows of its context), greedy sacreBLEU on test2016 (translation; onnxruntime drives
archzoo's greedy search through the exported encoder and decoder step). Torch and onnxruntime both
use the process's thread count (one thread in the committed record).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from archzoo.benchmarks.base import register_benchmark

# the runs measured: a name, the preset, and the short training that is enough to measure speed and a
# quality change (each far shorter than its preset's benchmark)
RUNS = {
    "mnist": ("mnist-simple_cnn", ["train.epochs=3"]),
    "fashion": ("fashion-resnet20", ["train.epochs=3"]),
    "lstm": ("shakespeare-lstm", ["train.max_steps=250", "train.eval_every_steps=125"]),
    "gpt": ("shakespeare-gpt-fast", []),
    "mt": ("multi30k-transformer", ["train.epochs=2", "data.length_penalties=[]", "data.test_sets=['test2016']"]),
}
VARIANTS = ("torch fp32", "torch bf16", "torch int8", "onnxruntime")


def timed(call: Callable[[], Any], min_seconds: float = 1.0, min_calls: int = 5) -> float:
    """Fastest seconds of one call, after two warm-up calls, over at least ``min_calls`` and ``min_seconds``.

    The minimum, not the median (as ``timeit`` advises): other processes on the machine only ever add
    time, so the fastest call is the one that measures the code rather than the load."""
    for _ in range(2):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


class OnnxModel:
    """An exported graph behind the call a task makes of a model, so the task's own evaluation and
    decoding run through onnxruntime: ``eval()``, ``__call__`` and, for an encoder-decoder, ``encode``,
    ``start`` and ``step``."""

    attention_kind = "none"

    def __init__(self, paths: list[Path], threads: int, source: torch.nn.Module):
        import onnxruntime as ort

        for key in ("pad_id", "bos_id", "eos_id"):  # the special ids decoding reads off the model
            if hasattr(source, key):
                setattr(self, key, getattr(source, key))

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
        self.names = [[i.name for i in s.get_inputs()] for s in self.sessions]

    def eval(self) -> OnnxModel:
        return self

    def parameters(self) -> Any:
        return iter([torch.zeros(0)])

    def run(self, index: int, *inputs: Tensor) -> list[Tensor]:
        feed = {n: x.detach().cpu().numpy() for n, x in zip(self.names[index], inputs, strict=True)}
        return [torch.from_numpy(o) for o in self.sessions[index].run(None, feed)]

    # a classifier, or GPT's forward (the language-model contract without a carried state)
    def __call__(self, x: Tensor, state: Any = None) -> Any:
        if len(self.names[0]) == 1:
            out = self.run(0, x)[0]
            return out if x.is_floating_point() else (out, None)
        return self.recurrent(x, state)

    def recurrent(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """The char LM's exported step over a window, one character at a time, the state carried."""
        names = self.names[0][1:]
        if state is None:
            shape = self.sessions[0].get_inputs()[1].shape
            state = tuple(torch.zeros(shape[0], x.shape[0], shape[2]) for _ in names)
        state = state if isinstance(state, tuple) else (state,)
        logits = []
        for t in range(x.shape[1]):
            out, *state = self.run(0, x[:, t:t + 1], *state)
            logits.append(out)
        return torch.cat(logits, 1), tuple(state) if len(state) > 1 else state[0]

    # the encoder-decoder contract (models/seq2seq.py)
    def encode(self, src: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.run(0, src))

    def start(self, memory: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        k = memory[1]
        layers = (len(memory) - 1) // 2
        return tuple(k.new_zeros(k.shape[0], k.shape[1], 0, k.shape[3]) for _ in range(2 * layers))

    def step(self, memory: tuple[Tensor, ...], state: tuple[Tensor, ...], tokens: Tensor,
             need_weights: bool = False) -> tuple[Tensor, tuple[Tensor, ...], None]:
        logits, *new_state = self.run(1, tokens, *memory, *state)
        return logits, tuple(new_state), None


class StatelessLM(torch.nn.Module):
    """GPT scored over independent windows (no cache across them), as its export computes."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, None]:
        return self.model(x)[0], None


def ensure_run(work_dir: Path, name: str) -> Path:
    """The trained run ``name`` in ``work_dir`` (trained with its short recipe if it is not there)."""
    from archzoo.training.checkpoint import latest_checkpoint
    from archzoo.training.config import resolve_config
    from archzoo.training.trainer import Trainer

    folder = work_dir / name
    if not (folder / "eval.json").is_file():
        preset, overrides = RUNS[name]
        resume = folder.is_dir() and latest_checkpoint(folder) is not None
        Trainer(resolve_config(preset, overrides), folder, progress=False, verbose=False, resume=resume,
                overwrite=folder.is_dir() and not resume).fit()  # a run killed before its first checkpoint restarts
    return folder


def measure_run(folder: Path, name: str, threads: int) -> dict[str, Any]:
    """Latency, throughput and quality of one run under every variant."""
    from archzoo.api import load

    runs = {"torch fp32": load(folder, device="cpu"), "torch bf16": load(folder, device="cpu", dtype="bf16"),
            "torch int8": load(folder, device="cpu", quantize="int8")}
    task = runs["torch fp32"].task
    with tempfile.TemporaryDirectory() as tmp:
        onnx = OnnxModel(runs["torch fp32"].export("onnx", Path(tmp) / "model.onnx"), threads, runs["torch fp32"].model)
        results = {}
        for variant in VARIANTS:
            run = runs.get(variant)
            model = onnx if run is None else run.model
            context = torch.autocast("cpu", torch.bfloat16, enabled=variant == "torch bf16")
            with torch.no_grad(), context:
                results[variant] = measure(name, task, model)
    base = results["torch fp32"]["quality"]
    for r in results.values():
        r["quality_change"] = round(r["quality"] - base, 4)
    return results


def measure(name: str, task: Any, model: Any) -> dict[str, Any]:
    """One variant of one run: {latency_ms, throughput, unit, quality, quality_metric}."""
    if name in ("mnist", "fashion"):
        x = task.split("test")[0]
        latency = timed(lambda: model(x[:1]))
        per_batch = timed(lambda: model(x[:64]))
        quality = task.evaluate(model, "test", 500)["accuracy"]
        return record(latency, 64 / per_batch, "images/s", 100 * quality, "test accuracy, %")
    if name == "lstm":
        ids = task._splits["val"][:64 * 2].view(64, 2)
        latency = timed(lambda: model(ids[:1, :1]))
        per_batch = timed(lambda: model(ids[:, :1]))
        quality = task.evaluate(model, "val", 64)["loss"]
        return record(latency, 64 / per_batch, "chars/s (one step of 64 streams)", quality, "val nats/char")
    if name == "gpt":
        stateless = model if isinstance(model, OnnxModel) else StatelessLM(model)
        context = task.cfg.context
        val = task._splits["val"]
        windows = val[:(len(val) - 1) // context * context].view(-1, context)
        latency = timed(lambda: stateless(windows[:1]))
        per_batch = timed(lambda: stateless(windows[:64]))
        quality = window_loss(stateless, val, context)
        return record(latency, 64 * context / per_batch, "tokens/s (windows of 64)", quality,
                      "val nats/char, independent windows")
    src = task.split("test2016")[0]
    latency = timed(lambda: task.decode_ids(model, src[:1], 1), min_calls=5)
    per_batch = timed(lambda: task.decode_ids(model, src[:64], 1), min_calls=3)
    from archzoo.tasks.translation import sacrebleu_scores

    hypotheses = task.detokenize(task.decode_ids(model, src, 1))
    quality = sacrebleu_scores(hypotheses, task.text("test2016")[1])["bleu"]
    return record(latency, 64 / per_batch, "sentences/s (greedy)", quality, "test2016 greedy sacreBLEU")


def window_loss(model: Any, ids: Tensor, context: int) -> float:
    """Mean NLL per character over non-overlapping windows of ``context`` (each from an empty context)."""
    n = (len(ids) - 1) // context
    x, y = ids[:n * context].view(n, context), ids[1:n * context + 1].view(n, context)
    total = 0.0
    for i in range(0, n, 256):
        logits = model(x[i:i + 256])[0].float()
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[i:i + 256].flatten(), reduction="sum").item()
    return total / y.numel()


def record(latency: float, throughput: float, unit: str, quality: float, metric: str) -> dict[str, Any]:
    return {"latency_ms": round(latency * 1000, 3), "throughput": round(throughput, 1), "throughput_unit": unit,
            "quality": round(quality, 4), "quality_metric": metric}


@register_benchmark("inference-speed", "largest |quality change| of onnxruntime vs torch fp32 (relative)", 0.001, "<=",
                    "latency (batch 1) and throughput (batch 64) of torch fp32 / bf16 / int8 and onnxruntime on MNIST, "
                    "Fashion ResNet-20, char LSTM, GPT and Transformer translation runs, with each variant's quality")
def inference_speed(work_dir: Path, resume: bool = False) -> dict[str, Any]:
    threads = torch.get_num_threads()
    table = {}
    for name in RUNS:
        table[name] = {"run": RUNS[name][0] + " " + " ".join(RUNS[name][1]),
                       **measure_run(ensure_run(work_dir, name), name, threads)}
    onnx_drift = max(abs(t["onnxruntime"]["quality_change"]) / max(abs(t["torch fp32"]["quality"]), 1e-9)
                     for t in table.values())
    return {"value": round(onnx_drift, 6), "threads": threads, "table": table}
