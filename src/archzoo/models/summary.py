"""Layer table of a model: output shapes, parameters, forward FLOPs and activation memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archzoo.layers.impl import ImplSwitch, use_impl


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    flops: int
    activation_bytes: int


def summarize(model: nn.Module, batch_size: int = 1) -> list[LayerRow]:
    """One row per module that computes something itself — a leaf, a module with parameters of its
    own, or a switchable layer made of submodules such as attention — in call order, for one forward pass of ``example_inputs``.

    FLOPs come from ``torch.utils.flop_counter`` on the reference path (a multiply-add counts as
    2 FLOPs; elementwise work is not counted); a row counts its own work, not its children's.
    Activation memory is the bytes of each row's output at the model's parameter dtype.
    """
    inputs = model.example_inputs(batch_size)
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []
    handles = []
    # a switchable layer built of submodules (attention) is one row: its reference path computes with its
    # children's weights through functions, so the children themselves may never be called
    composite = {name for name, m in model.named_modules() if isinstance(m, ImplSwitch) and list(m.children())}
    for name, module in model.named_modules():
        if any(name.startswith(root + ".") for root in composite):
            continue
        # the model itself gets a row only when it computes with weights of its own or is a single layer
        # (NBSVM, the parameter-free forecasts); otherwise its children's rows already add up to it
        if name in composite or not list(module.children()) or any(True for _ in module.parameters(recurse=False)):
            def hook(mod: nn.Module, args: tuple, out: Any, name: str = name) -> None:
                if name not in outputs:
                    order.append(name)
                outputs[name] = out[0] if isinstance(out, tuple) else out  # recurrent layers: (output, state)
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        # the reference path spells every layer out in matmuls the counter sees; fused kernels such as
        # torch.lstm have no FLOP formula
        with torch.no_grad(), use_impl("reference"), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    flops_by_module = counter.get_flop_counts()  # a module's count includes its children's
    root = type(model).__name__

    def total_flops(name: str) -> int:
        return sum(flops_by_module.get(f"{root}.{name}" if name else root, {}).values())

    modules = dict(model.named_modules())
    rows, counted = [], set()  # a tied weight (shared embedding and output layer) counts at its first row
    for name in order:
        out = outputs[name]
        module = modules[name]
        whole = name in composite
        children = () if whole else (f"{name}.{child}" if name else child for child, _ in module.named_children())
        flops = total_flops(name) - sum(total_flops(child) for child in children)
        params = [p for p in module.parameters(recurse=whole) if id(p) not in counted]
        counted.update(id(p) for p in params)
        rows.append(LayerRow(name or root, type(module).__name__, tuple(out.shape),
                             sum(p.numel() for p in params), int(flops),
                             out.numel() * out.element_size()))
    return rows


def format_table(model_name: str, rows: list[LayerRow], total_params: int) -> str:
    w = max([24] + [len(r.name) for r in rows])  # nested blocks (inceptions.3.branch_pool.1.0) get room
    k = max([12] + [len(r.kind) for r in rows])
    header = f"{'layer':<{w}} {'type':<{k}} {'output shape':<20} {'params':>10} {'FLOPs':>12} {'act. KiB':>9}"
    lines = [f"{model_name}", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<{w}} {r.kind:<{k}} {str(list(r.output_shape)):<20} {r.params:>10,} "
                     f"{r.flops:>12,} {r.activation_bytes / 1024:>9.1f}")
    lines.append("-" * len(header))
    total_flops = sum(r.flops for r in rows)
    total_act = sum(r.activation_bytes for r in rows)
    lines.append(f"{'total':<{w}} {'':<{k}} {'':<20} {total_params:>10,} {total_flops:>12,} {total_act / 1024:>9.1f}")
    lines.append(f"parameters: {total_params:,} ({total_params * 4 / 2**20:.2f} MiB fp32); "
                 f"forward FLOPs per example: {total_flops / rows[0].output_shape[0] if rows else 0:,.0f}")
    return "\n".join(lines)


def describe(name: str, batch_size: int = 1, **overrides: Any) -> str:
    """``archzoo info NAME``: the layer table of the registered model ``name`` built with ``overrides``."""
    from archzoo.models.registry import create_model

    model = create_model(name, **overrides)
    return format_table(name, summarize(model, batch_size), sum(p.numel() for p in model.parameters()))
