"""Export a trained model for inference outside archzoo: ONNX (onnxruntime and every ONNX backend) or a
``torch.export`` program (``torch.export.load``), in fp32 or bf16, with dynamic batch and sequence
dimensions.

A model says what to export through ``export_graphs()`` (models/base.py ``ExportGraph``): the whole
forward pass of a classifier or forecaster, one step of a recurrent language model with its state,
the forward pass of GPT, and a translation model's encoder and decoder step.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archzoo.errors import UserError, close_matches
from archzoo.models.base import ExportGraph

FORMATS = {"onnx": ".onnx", "torch-export": ".pt2"}
EXPORTABLE = ("the image classifiers, the sentence classifiers, the forecasters, rnn_lm / lstm_lm / gru_lm, "
              "gpt and transformer_seq2seq")


def check_format(format: str) -> str:
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}{close_matches(str(format), FORMATS)}; choose one of "
                        f"{', '.join(FORMATS)}")
    return format


def model_graphs(model: nn.Module, name: str) -> list[ExportGraph]:
    """The graphs ``model`` exports; a model without any raises one line naming those that export."""
    graphs = getattr(model, "export_graphs", None)
    if graphs is None:
        raise UserError(f"{name} cannot be exported: export covers {EXPORTABLE}")
    return graphs()


def graph_paths(out: Path, graphs: list[ExportGraph], format: str) -> list[Path]:
    """One file per graph: ``out`` itself for one graph, ``<stem>.<graph name><suffix>`` for several."""
    suffix = FORMATS[format]
    out = Path(out)
    if len(graphs) == 1:
        return [out]
    stem = out.name.removesuffix(suffix) if out.name.endswith(suffix) else out.stem
    return [out.with_name(f"{stem}.{g.name}{suffix}") for g in graphs]


def export_model(model: nn.Module, name: str, out: Path, format: str = "onnx", dtype: str = "fp32") -> list[Path]:
    """Write ``model`` (in eval mode, on the CPU) as ``format`` files; returns their paths."""
    from archzoo.deploy.precision import check_dtype

    check_format(format)
    if check_dtype(dtype) == "bf16" and format == "onnx":
        raise UserError("onnxruntime's CPU provider has no bf16 kernels for these models, so a bf16 ONNX file would not "
                        "run; export --dtype fp32 to ONNX, or bf16 with --format torch-export")
    if dtype == "bf16" or any(t.device.type != "cpu" for t in model.parameters()):
        model = copy.deepcopy(model).to("cpu", torch.bfloat16 if dtype == "bf16" else None)  # the caller's stays
    model.eval()
    graphs = model_graphs(model, name)
    paths = graph_paths(out, graphs, format)
    for graph, path in zip(graphs, paths, strict=True):
        inputs = tuple(x.to(torch.bfloat16) if dtype == "bf16" and x.is_floating_point() else x for x in graph.inputs)
        with quiet(), torch.no_grad():
            try:
                program = torch.export.export(graph.module, inputs, dynamic_shapes=dynamic_shapes(graph))
            except Exception as e:  # torch.export reports untraceable code with many exception types
                raise UserError(f"{name} could not be traced for export ({type(e).__name__}: "
                                f"{str(e).strip().splitlines()[0][:160]})") from None
            if format == "torch-export":
                buffer = io.BytesIO()
                torch.export.save(program, buffer)
                write_file(path, buffer.getvalue())
            else:
                onnx_program = torch.onnx.export(program, inputs, input_names=graph.input_names,
                                                 output_names=graph.output_names, dynamo=True, verbose=False,
                                                 optimize=True)
                write_file(path, name_dimensions(onnx_program.model_proto, graph).SerializeToString())
    return paths


def dynamic_shapes(graph: ExportGraph) -> tuple:
    """``torch.export`` dimension objects for the graph's inputs, in order; one object per name."""
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    for input_name in graph.input_names:
        axes = graph.dynamic.get(input_name)
        if not axes:
            shapes.append(None)
            continue
        spec = {}
        for axis, (dim, low, high) in axes.items():
            if dim not in dims:
                dims[dim] = torch.export.Dim(dim, min=low, max=high)
            spec[axis] = dims[dim]
        shapes.append(spec)
    # a forward(first, *rest) takes the specs of its variadic inputs as one tuple
    parameters = inspect.signature(graph.module.forward).parameters.values()
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        fixed = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
        return (*shapes[:fixed], tuple(shapes[fixed:]))
    return tuple(shapes)


def name_dimensions(proto: Any, graph: ExportGraph) -> Any:
    """Give the ONNX graph's symbolic dimensions the names of ``graph.dynamic`` ("batch", "time", ...)
    instead of the tracer's (s23), in its inputs, outputs and intermediate shapes."""
    renames = {}
    for value in proto.graph.input:
        for axis, (dim, _, _) in graph.dynamic.get(value.name, {}).items():
            param = value.type.tensor_type.shape.dim[axis].dim_param
            if param:
                renames[param] = dim
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param in renames:
                d.dim_param = renames[d.dim_param]
    return proto


def write_file(path: Path, data: bytes) -> None:
    from archzoo.fileio import atomic_write_bytes

    atomic_write_bytes(path, data)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters' progress warnings (missing torchvision ops, axis renames)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
