"""parallelism: training time per batch against sequence length for recurrent, attention and
convolutional sequence models of similar size, and per-token generation latency against context
length for a recurrent state and a KV cache.

Every architecture is timed in the same process, round after round in turn (so a change in the
machine's load touches all of them alike), and the median of the rounds is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from archzoo.lab.base import (
    Cell,
    CellResult,
    Claim,
    Experiment,
    Figure,
    Table,
    Verdict,
    count_parameters,
    register_experiment,
)
from archzoo.lab.runner import interleaved_medians
from archzoo.models import create_model

FEATURES = 64  # input and output width of the sequence models
BATCH = 8
# similar parameter counts (about 0.26M; the page lists them): width chosen per architecture
SEQUENCE_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "RNN": ("seq_rnn", {"hidden_size": 480}),
    "LSTM": ("seq_lstm", {"hidden_size": 224}),
    "GRU": ("seq_gru", {"hidden_size": 260}),
    "Transformer": ("seq_transformer", {"d_model": 128, "num_layers": 2, "num_heads": 4, "dim_feedforward": 256}),
    "CNN (TCN)": ("seq_tcn", {"channels": 80, "num_layers": 11, "kernel_size": 2}),
}
RECURRENT = ("RNN", "LSTM", "GRU")
TRANSFORMER_WIDTH = 128
# generation: a character LSTM and a GPT of similar size (about 0.8M parameters)
GENERATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "LSTM (recurrent state)": ("lstm_lm", {"embedding_dim": 64, "hidden_size": 256, "num_layers": 2, "dropout": 0.0}),
    "GPT (KV cache)": ("gpt", {"d_model": 128, "num_layers": 4, "num_heads": 4, "dropout": 0.0,
                               "positions": "sinusoidal", "context": 4096 + 64}),
}
NEW_TOKENS = 32


def train_step_seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Wall seconds of one forward and backward pass over ``x`` (loss: mean square of the outputs)."""
    start = time.perf_counter()
    model(x).pow(2).mean().backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds


@torch.inference_mode()
def token_seconds(model: torch.nn.Module, context: int, generator: torch.Generator) -> float:
    """Median seconds to generate one token at batch 1 after a prompt of ``context`` tokens: the prompt
    builds the state (the recurrent state, or the KV cache of every layer) untimed, then each of
    NEW_TOKENS steps feeds one token with that state."""
    prompt = torch.randint(0, 65, (1, context), generator=generator)
    logits, state = model(prompt)
    token = logits[:, -1:].argmax(-1)
    times = []
    for _ in range(NEW_TOKENS):
        start = time.perf_counter()
        logits, state = model(token, state)
        token = logits[:, -1:].argmax(-1)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def crossover(lengths: list[int], ours: list[float], theirs: list[float]) -> int | None:
    """The length where ``ours`` overtakes ``theirs`` (log-log interpolation between the measured lengths
    around the first sign change), the first length if it is above from the start, or None if it never is."""
    if ours[0] > theirs[0]:
        return lengths[0]
    for i in range(1, len(lengths)):
        if ours[i - 1] <= theirs[i - 1] and ours[i] > theirs[i]:
            a = math.log(ours[i - 1] / theirs[i - 1])
            b = math.log(ours[i] / theirs[i])
            frac = a / (a - b)
            return round(math.exp(math.log(lengths[i - 1]) + frac * math.log(lengths[i] / lengths[i - 1])))
    return None


@register_experiment
class Parallelism(Experiment):
    name = "parallelism"
    title = "Can recurrence be parallelised? Training time against sequence length, and generation latency"
    seeded = False
    full_minutes = "6 min measured on one thread of this project's shared 2-core machine (load 5-11)"
    claims = (
        Claim("recurrence-is-sequential",
              "This inherently sequential nature precludes parallelization within training examples, which becomes "
              "critical at longer sequence lengths, as memory constraints limit batching across examples.",
              "Vaswani et al. 2017, \"Attention Is All You Need\", arXiv:1706.03762, Sec. 1 (on recurrent models).",
              "on this machine (one CPU thread, batch 8): supported if at every length up to 1,024 the Transformer's "
              "forward+backward time per batch is below each recurrent model's (RNN, LSTM, GRU) at similar parameter "
              "count; refuted if it is above the fastest recurrent model's at every length up to 1,024; depends "
              "otherwise."),
        Claim("attention-faster-below-d",
              "In terms of computational complexity, self-attention layers are faster than recurrent layers when the "
              "sequence length n is smaller than the representation dimensionality d.",
              "Vaswani et al. 2017, arXiv:1706.03762, Sec. 4.",
              f"with d = {TRANSFORMER_WIDTH} (the Transformer's width): supported if the Transformer is faster than "
              "every recurrent model at every measured n < d; refuted if it is slower than every recurrent model at "
              "every n < d; depends otherwise. Where attention's time overtakes the LSTM's is reported beside it."),
        Claim("kv-cache-grows-with-context",
              "Transformers achieve remarkable performance in several tasks but due to their quadratic complexity, "
              "with respect to the input's length, they are prohibitively slow for very long sequences.",
              "Katharopoulos, Vyas, Pappas & Fleuret 2020, \"Transformers are RNNs: Fast Autoregressive Transformers "
              "with Linear Attention\", arXiv:2006.16236, abstract; measured here on generation with a KV cache.",
              "with growth = per-token latency at the longest context / at the shortest: supported if the GPT's "
              "growth (KV cache) is at least 2 and at least twice the LSTM's (recurrent state); refuted if the GPT's "
              "growth is below 1.25x the LSTM's; depends otherwise."),
    )

    def lengths(self, quick: bool) -> list[int]:
        return [32, 128, 512, 1024] if quick else [32, 64, 128, 256, 512, 1024, 2048, 4096]

    def rounds(self, quick: bool) -> int:
        return 3 if quick else 7

    def setup(self, quick: bool) -> str:
        models = ", ".join(f"{label} `{name}` {args}" for label, (name, args) in SEQUENCE_MODELS.items())
        gens = ", ".join(f"{label} `{name}` {args}" for label, (name, args) in GENERATORS.items())
        return (f"Training time: forward + backward of one batch of {BATCH} random sequences of {FEATURES} features "
                f"(loss: mean square of the outputs) at lengths T = {self.lengths(quick)}, for five sequence models of "
                f"similar size, all causal, on the fused paths (PyTorch's RNN kernels, "
                f"`F.scaled_dot_product_attention`, `F.conv2d`): {models}. Each cell builds all five, runs one warm-up "
                f"pass each, then {self.rounds(quick)} rounds in which every model is timed once in turn; the table "
                f"holds the medians.\n\nGeneration: per-token latency at batch 1 after a prompt of T tokens (which "
                f"builds the recurrent state or the KV cache, untimed), the median of {NEW_TOKENS} single-token steps, "
                f"for {gens}; {self.rounds(quick)} interleaved rounds, median.\n\nAll timings run on the threads "
                "torch uses (recorded below) on a CPU shared with other processes: compare architectures within a "
                "length, where they were measured side by side.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"length": t, "batch": BATCH, "rounds": self.rounds(quick), "new_tokens": NEW_TOKENS}, 0, f"T={t}")
                for t in self.lengths(quick)]

    def runs_alone(self, cell: Cell) -> bool:
        return True  # every cell times training steps and decoding

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        length, rounds = cell.config["length"], cell.config["rounds"]
        torch.manual_seed(0)
        models = {label: create_model(name, input_size=FEATURES, output_size=FEATURES, **args)
                  for label, (name, args) in SEQUENCE_MODELS.items()}
        x = torch.randn(cell.config["batch"], length, FEATURES)
        for model in models.values():
            train_step_seconds(model, x)  # warm-up: allocations, kernel choice
        train = interleaved_medians({k: (lambda m=m: train_step_seconds(m, x)) for k, m in models.items()}, rounds)
        generators = {label: create_model(name, **args).eval() for label, (name, args) in GENERATORS.items()}
        generator = torch.Generator().manual_seed(0)
        for model in generators.values():
            token_seconds(model, min(length, 32), generator)
        generate = interleaved_medians({k: (lambda m=m: token_seconds(m, length, generator))
                                        for k, m in generators.items()}, rounds)
        return {"train_seconds": train, "token_seconds": generate, "threads": torch.get_num_threads(),
                "params": {k: count_parameters(m) for k, m in models.items()},
                "generator_params": {k: count_parameters(m) for k, m in generators.items()}}

    def _series(self, results: list[CellResult]) -> tuple[list[int], dict[str, list[float]], dict[str, list[float]]]:
        ordered = sorted(results, key=lambda r: r.config["length"])
        lengths = [r.config["length"] for r in ordered]
        train = {k: [r.result["train_seconds"][k]["median"] for r in ordered] for k in SEQUENCE_MODELS}
        tokens = {k: [r.result["token_seconds"][k]["median"] for r in ordered] for k in GENERATORS}
        return lengths, train, tokens

    def tables(self, results: list[CellResult]) -> list[Table]:
        lengths, train, tokens = self._series(results)
        params = results[0].result["params"]
        rows = [[k, f"{params[k]:,}"] + [f"{v * 1000:,.1f}" for v in vals] for k, vals in train.items()]
        cross = []
        for k in (*RECURRENT, "CNN (TCN)"):
            at = crossover(lengths, train["Transformer"], train[k])
            cross.append([k, f"slower from the shortest length, T={at}" if at == lengths[0]
                          else str(at) if at else f"faster up to T={lengths[-1]}"])
        gparams = results[0].result["generator_params"]
        grows = [[k, f"{gparams[k]:,}"] + [f"{v * 1000:.3f}" for v in vals] for k, vals in tokens.items()]
        return [Table(f"Forward + backward milliseconds per batch of {BATCH} (median)",
                      ["model", "parameters"] + [f"T={t}" for t in lengths], rows),
                Table("Length where the Transformer becomes slower than each model (log-log interpolation)",
                      ["model", "crossover length"], cross),
                Table("Milliseconds per generated token at batch 1 after a prompt of T tokens (median)",
                      ["model", "parameters"] + [f"T={t}" for t in lengths], grows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        lengths, train, tokens = self._series(results)
        per_token = {k: [v / (t * BATCH) * 1e6 for v, t in zip(vals, lengths, strict=True)] for k, vals in train.items()}
        path = plot_panels([
            Panel(f"training: forward+backward per batch of {BATCH}", "sequence length T", "seconds",
                  {k: (lengths, v, None) for k, v in train.items()}, logx=True, logy=True),
            Panel("training cost per token", "sequence length T", "microseconds per token",
                  {k: (lengths, v, None) for k, v in per_token.items()}, logx=True, logy=True),
            Panel("generation: latency per token at batch 1", "context length T", "milliseconds",
                  {k: (lengths, [x * 1000 for x in v], None) for k, v in tokens.items()}, logx=True, logy=True),
        ], out_dir / "parallelism.png", "Sequence models of similar size, timed side by side")
        return [Figure(path, "Left and middle: training time per batch and per token against length (median of the "
                             "interleaved rounds). Right: per-token generation latency with a recurrent state and with "
                             "a KV cache.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        lengths, train, tokens = self._series(results)
        short = [i for i, t in enumerate(lengths) if t <= 1024]
        ratio = {k: [train["Transformer"][i] / train[k][i] for i in short] for k in RECURRENT}
        numbers = {f"transformer_over_{k.lower()}_time_T<=1024": [round(r, 3) for r in v] for k, v in ratio.items()}
        fastest = [min(train[k][i] for k in RECURRENT) for i in short]
        if all(r < 1 for v in ratio.values() for r in v):
            parallel = Verdict("recurrence-is-sequential", "supported", numbers, "the Transformer's batch is faster than "
                               "every recurrent model's at every length up to 1,024.")
        elif all(train["Transformer"][i] > f for i, f in zip(short, fastest, strict=True)):
            parallel = Verdict("recurrence-is-sequential", "refuted", numbers, "the Transformer is slower than the "
                               "fastest recurrent model at every length up to 1,024 on this machine.")
        else:
            parallel = Verdict("recurrence-is-sequential", "depends", numbers, "the Transformer is faster than some "
                               "recurrent models or at some lengths only.")
        below = [i for i, t in enumerate(lengths) if t < TRANSFORMER_WIDTH]
        faster = [[train["Transformer"][i] < train[k][i] for k in RECURRENT] for i in below]
        lstm_cross = crossover(lengths, train["Transformer"], train["LSTM"])
        numbers = {"lengths_below_d": [lengths[i] for i in below],
                   **{f"transformer_over_{k.lower()}": [round(train['Transformer'][i] / train[k][i], 3) for i in below]
                      for k in RECURRENT}, "crossover_with_lstm": lstm_cross or "none"}
        if all(all(row) for row in faster):
            below_d = Verdict("attention-faster-below-d", "supported", numbers, f"below n = d = {TRANSFORMER_WIDTH} the "
                              "Transformer is faster than every recurrent model"
                              + (f"; its time overtakes the LSTM's at n ≈ {lstm_cross}." if lstm_cross else
                                 f"; it stays faster than the LSTM up to n = {lengths[-1]}."))
        elif not any(any(row) for row in faster):
            below_d = Verdict("attention-faster-below-d", "refuted", numbers, f"below n = d = {TRANSFORMER_WIDTH} the "
                              "Transformer is slower than every recurrent model.")
        else:
            below_d = Verdict("attention-faster-below-d", "depends", numbers, "below n = d the Transformer beats some "
                              "recurrent models and not others.")
        gpt, lstm = tokens["GPT (KV cache)"], tokens["LSTM (recurrent state)"]
        gpt_growth, lstm_growth = gpt[-1] / gpt[0], lstm[-1] / lstm[0]
        numbers = {"gpt_latency_growth": round(gpt_growth, 2), "lstm_latency_growth": round(lstm_growth, 2),
                   "contexts": [lengths[0], lengths[-1]]}
        if gpt_growth >= 2 and gpt_growth >= 2 * lstm_growth:
            kv = Verdict("kv-cache-grows-with-context", "supported", numbers, f"a GPT token costs {gpt_growth:.1f}x more "
                         f"after {lengths[-1]} tokens than after {lengths[0]}; an LSTM token {lstm_growth:.2f}x.")
        elif gpt_growth < 1.25 * lstm_growth:
            kv = Verdict("kv-cache-grows-with-context", "refuted", numbers, "the GPT's per-token latency grows no faster "
                         "than the LSTM's at these lengths.")
        else:
            kv = Verdict("kv-cache-grows-with-context", "depends", numbers, f"the GPT's latency grows {gpt_growth:.1f}x, "
                         f"the LSTM's {lstm_growth:.2f}x: short of the rule's margins.")
        return [parallel, below_d, kv]
