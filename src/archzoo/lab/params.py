"""parameters-vs-length: what grows with the sequence length — parameters or computation?

Counts the parameters of one recurrent layer (RNN, LSTM, GRU) and one Transformer encoder layer with
learned or sinusoidal positions, all of width d, built for sequences of length T, and the forward
FLOPs each spends on one sequence of length T (counted by torch's FLOP counter on the reference
path, where every product is an explicit matmul).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

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
from archzoo.layers import GRU, LSTM, RNN, LearnedPositionalEmbedding, SinusoidalPositionalEncoding, use_impl
from archzoo.layers.attention import MultiheadAttention
from archzoo.layers.transformer import TransformerEncoderLayer

WIDTH = 128
HEADS = 4
RECURRENT = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def recurrent_layer(kind: str, width: int) -> nn.Module:
    return {"rnn": RNN, "lstm": LSTM, "gru": GRU}[kind](width, width)


class PositionedEncoderLayer(nn.Module):
    """A Transformer encoder layer with its position information: learned (one vector per position up
    to ``max_len``) or sinusoidal (fixed)."""

    def __init__(self, width: int, max_len: int, positions: str):
        super().__init__()
        self.position = LearnedPositionalEmbedding(max_len, width) if positions == "learned" \
            else SinusoidalPositionalEncoding(width)
        self.layer = TransformerEncoderLayer(width, HEADS, 4 * width, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.position(x))


@torch.no_grad()
def forward_flops(module: nn.Module, length: int, width: int) -> int:
    """FLOPs (a multiply-add counts 2) of one forward pass over one sequence, on the reference path.
    The module runs on the meta device: shapes flow through every op, nothing is computed."""
    module = module.to("meta")
    with use_impl("reference"), FlopCounterMode(display=False) as counter:
        module(torch.empty(1, length, width, device="meta"))
    return int(counter.get_total_flops())


def recurrent_formula(kind: str, width: int) -> int:
    """g (d·d + d·d + 2d): g gate blocks of input weights, recurrent weights and two biases (torch.nn's layout)."""
    return GATES[kind] * (2 * width * width + 2 * width)


def exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Slope of log y against log x between the last two points: how fast y grows with x there."""
    return math.log(ys[-1] / ys[-2]) / math.log(xs[-1] / xs[-2])


@register_experiment
class ParametersVsLength(Experiment):
    name = "parameters-vs-length"
    title = "Do parameters grow with sequence length? (RNN, LSTM, GRU, Transformer with learned or sinusoidal positions)"
    seeded = False
    full_minutes = "about 1 minute"
    claims = (
        Claim("rnn-parameters-grow-with-length",
              "An RNN's parameter count grows with the sequence length.",
              "The comparison table of the articles archzoo implements (as issue 18 quotes it). Against it: Elman "
              "1990, \"Finding Structure in Time\" — one set of weights is applied at every time step.",
              "supported if the parameter count of each of the RNN, LSTM and GRU layers at the longest length "
              "exceeds its count at the shortest; refuted if all three counts are identical at every length; "
              "depends otherwise."),
        Claim("only-learned-positions-grow",
              "A Transformer's parameter count grows with the sequence length only through learned position "
              "embeddings (one d-dimensional vector per position); the sinusoidal encoding has no parameters.",
              "Vaswani et al. 2017, \"Attention Is All You Need\", arXiv:1706.03762, Sec. 3.5 (sinusoidal "
              "encoding, fixed); learned positions: Gehring et al. 2017, arXiv:1705.03122, Sec. 3.1.",
              "supported if, at every length T, the learned-position layer has exactly T·d more parameters than "
              "the sinusoidal one and the sinusoidal layer's count is the same at every length; refuted otherwise."),
        Claim("complexity-per-layer",
              "Complexity per layer: self-attention O(n²·d), recurrent O(n·d²).",
              "Vaswani et al. 2017, arXiv:1706.03762, Table 1 (n the sequence length, d the representation "
              "dimension).",
              "from counted forward FLOPs at d = 128: supported if, between the two longest lengths, each recurrent "
              "layer's FLOPs grow with exponent 1 ± 0.05 and the self-attention sublayer's with exponent >= 1.8 "
              "(quadratic once n >> d); refuted if the self-attention exponent is below 1.2 or a recurrent exponent "
              "is outside 1 ± 0.2; depends otherwise."),
    )

    def lengths(self, quick: bool) -> list[int]:
        return [16, 64, 256, 1024] if quick else [16, 64, 256, 1024, 4096]

    def setup(self, quick: bool) -> str:
        return (f"One layer of each kind at width d = {WIDTH}: `RNN`, `LSTM` and `GRU` layers (input width d, hidden "
                f"width d, torch.nn's parameter layout) and a post-LN `TransformerEncoderLayer` ({HEADS} heads, "
                f"feed-forward 4d) preceded by learned positions (`LearnedPositionalEmbedding(T, d)`) or the "
                f"sinusoidal encoding, built for sequences of length T in {self.lengths(quick)}. Parameters are "
                "counted on the built modules; forward FLOPs of one sequence of length T are counted by "
                "`torch.utils.flop_counter` on the reference path (a multiply-add is 2 FLOPs; elementwise work "
                "is not counted). Counts do not depend on a seed, so there is one cell per length.")

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"length": t, "width": WIDTH}, 0, f"T={t}") for t in self.lengths(quick)]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        length, width = cell.config["length"], cell.config["width"]
        params, flops, formula = {}, {}, {}
        for kind in RECURRENT:
            layer = recurrent_layer(kind, width)
            params[kind], flops[kind] = count_parameters(layer), forward_flops(layer, length, width)
            formula[kind] = recurrent_formula(kind, width)
        for positions in ("learned", "sinusoidal"):
            params[f"transformer_{positions}"] = count_parameters(PositionedEncoderLayer(width, length, positions))
        # positions add no matmul: both Transformer variants spend the encoder layer's FLOPs
        flops["transformer_layer"] = forward_flops(TransformerEncoderLayer(width, HEADS, 4 * width, dropout=0.0),
                                                   length, width)
        flops["self_attention"] = forward_flops(MultiheadAttention(width, HEADS), length, width)
        return {"params": params, "forward_flops": flops, "recurrent_formula": formula}

    def _series(self, results: list[CellResult]) -> tuple[list[int], dict[str, list[int]], dict[str, list[int]]]:
        ordered = sorted(results, key=lambda r: r.config["length"])
        lengths = [r.config["length"] for r in ordered]
        params = {k: [r.result["params"][k] for r in ordered] for k in ordered[0].result["params"]}
        flops = {k: [r.result["forward_flops"][k] for r in ordered] for k in ordered[0].result["forward_flops"]}
        return lengths, params, flops

    def tables(self, results: list[CellResult]) -> list[Table]:
        lengths, params, flops = self._series(results)
        formula = results[0].result["recurrent_formula"]
        names = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "transformer_learned": "Transformer, learned positions",
                 "transformer_sinusoidal": "Transformer, sinusoidal", "transformer_layer": "Transformer layer (either positions)",
                 "self_attention": "self-attention sublayer"}
        rows = [[names[k]] + [f"{v:,}" for v in values] + [f"{formula[k]:,}" if k in formula else
                                                           f"{values[0] - WIDTH * lengths[0]:,} + T·{WIDTH}"
                                                           if k == "transformer_learned" else f"{values[0]:,}"]
                for k, values in params.items()]
        flop_rows = [[names[k]] + [f"{v / 1e6:,.1f}" for v in values] + [f"{exponent(lengths, values):.2f}"]
                     for k, values in flops.items()]
        return [Table(f"Parameters at width d = {WIDTH}", ["layer"] + [f"T={t}" for t in lengths] + ["formula"], rows),
                Table("Forward MFLOPs for one sequence", ["layer"] + [f"T={t}" for t in lengths]
                      + [f"growth exponent {lengths[-2]}→{lengths[-1]}"], flop_rows)]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        lengths, params, flops = self._series(results)
        path = plot_panels([
            Panel("parameters", "sequence length T", "parameters", {k: (lengths, v, None) for k, v in params.items()},
                  logx=True, logy=True),
            Panel("forward FLOPs per sequence", "sequence length T", "FLOPs",
                  {k: (lengths, v, None) for k, v in flops.items()}, logx=True, logy=True),
        ], out_dir / "parameters-and-flops.png", f"What grows with sequence length (width d = {WIDTH})")
        return [Figure(path, "Left: parameters against sequence length (only learned positions grow). Right: forward "
                             "FLOPs per sequence (recurrent layers linear in T, self-attention quadratic).")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        lengths, params, flops = self._series(results)
        grows = {k: params[k][-1] > params[k][0] for k in RECURRENT}
        constant = {k: len(set(params[k])) == 1 for k in RECURRENT}
        numbers = {f"{k}_params_T{lengths[0]}_to_T{lengths[-1]}": [params[k][0], params[k][-1]] for k in RECURRENT}
        if all(grows.values()):
            rnn = Verdict("rnn-parameters-grow-with-length", "supported", numbers, "every recurrent layer has more "
                          "parameters at the longest length than at the shortest.")
        elif all(constant.values()):
            rnn = Verdict("rnn-parameters-grow-with-length", "refuted", numbers, "the RNN, LSTM and GRU layers have the "
                          "same parameter count at every length: the weights are shared across time steps.")
        else:
            rnn = Verdict("rnn-parameters-grow-with-length", "depends", numbers, "some recurrent counts change with "
                          "length and some do not.")
        differences = [a - b for a, b in zip(params["transformer_learned"], params["transformer_sinusoidal"], strict=True)]
        exact = all(diff == t * WIDTH for diff, t in zip(differences, lengths, strict=True))
        fixed = len(set(params["transformer_sinusoidal"])) == 1
        positions = Verdict("only-learned-positions-grow", "supported" if exact and fixed else "refuted",
                            {"learned_minus_sinusoidal": differences, "T_times_d": [t * WIDTH for t in lengths],
                             "sinusoidal_params": params["transformer_sinusoidal"][0]},
                            "learned positions add exactly T·d parameters and the sinusoidal layer's count never changes."
                            if exact and fixed else "the difference is not T·d at every length, or the sinusoidal count "
                            "changes.")
        rec_exp = {k: round(exponent(lengths, flops[k]), 3) for k in RECURRENT}
        att_exp = round(exponent(lengths, flops["self_attention"]), 3)
        numbers = {**{f"{k}_flops_exponent": v for k, v in rec_exp.items()}, "self_attention_flops_exponent": att_exp,
                   "lengths": lengths[-2:]}
        if all(abs(e - 1) <= 0.05 for e in rec_exp.values()) and att_exp >= 1.8:
            complexity = Verdict("complexity-per-layer", "supported", numbers, f"recurrent FLOPs grow linearly "
                                 f"(exponents {min(rec_exp.values()):.2f}–{max(rec_exp.values()):.2f}) and self-attention's "
                                 f"quadratically (exponent {att_exp:.2f}) between T={lengths[-2]} and T={lengths[-1]}.")
        elif att_exp < 1.2 or any(abs(e - 1) > 0.2 for e in rec_exp.values()):
            complexity = Verdict("complexity-per-layer", "refuted", numbers, "the measured growth exponents contradict "
                                 "the table.")
        else:
            complexity = Verdict("complexity-per-layer", "depends", numbers, "self-attention grows faster than "
                                 "linearly but is not yet in its quadratic regime at these lengths.")
        return [rnn, positions, complexity]
