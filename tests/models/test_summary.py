"""Layer table (models/summary.py): output shapes, parameters and FLOPs against hand counts."""

from __future__ import annotations

import math

import pytest
import torch

from archzoo.models import create_model, list_models
from archzoo.models.summary import format_table, summarize
from helpers import NO_MATMUL_MODELS, model_params


def test_simple_cnn_rows_match_hand_counts() -> None:
    model = create_model("simple_cnn")
    rows = {r.name: r for r in summarize(model, batch_size=2)}
    assert rows["features.0"].output_shape == (2, 32, 28, 28)
    assert rows["features.2"].output_shape == (2, 32, 14, 14)
    assert rows["features.5"].output_shape == (2, 64, 7, 7)
    assert rows["classifier.0"].output_shape == (2, 64 * 7 * 7)
    assert rows["classifier.4"].output_shape == (2, 10)
    # a multiply-add is 2 FLOPs: conv = 2 * B * H * W * C_out * C_in * k * k; linear = 2 * B * in * out
    assert rows["features.0"].flops == 2 * 2 * 28 * 28 * 32 * 1 * 9
    assert rows["features.3"].flops == 2 * 2 * 14 * 14 * 64 * 32 * 9
    assert rows["classifier.1"].flops == 2 * 2 * 3136 * 128
    assert rows["features.3"].params == 32 * 64 * 9 + 64
    assert rows["features.0"].activation_bytes == 2 * 32 * 28 * 28 * 4
    assert sum(r.params for r in rows.values()) == 421_642


@pytest.mark.parametrize("name", model_params(list_models()))
def test_summary_covers_every_parameter_and_restores_the_model(name: str) -> None:
    model = create_model(name).train()
    rows = summarize(model)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = model.eval()(*model.example_inputs(1))
    model.train()
    out = out[0] if isinstance(out, tuple) else out  # language models return (logits, state)
    # the last row makes every output (channel-independent forecasters fold channels into the batch
    # and unfold them after it, so compare sizes)
    assert math.prod(rows[-1].output_shape) == out.numel() and all(r.flops >= 0 for r in rows)
    assert (sum(r.flops for r in rows) > 0) == (name not in NO_MATMUL_MODELS)
    assert model.training  # put back in training mode
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_format_table_totals() -> None:
    model = create_model("lenet5")
    rows = summarize(model, batch_size=4)
    text = format_table("lenet5", rows, 61_706)
    lines = text.splitlines()
    assert lines[0] == "lenet5" and lines[1].split()[:3] == ["layer", "type", "output"]
    assert any(line.startswith("features.0") and "[4, 6, 28, 28]" in line for line in lines)
    total_flops = sum(r.flops for r in rows)
    assert f"{total_flops:,}" in lines[-2] and "61,706" in lines[-2]
    assert lines[-1].startswith("parameters: 61,706") and f"{total_flops // 4:,}" in lines[-1]
