"""``archzoo export RUN --format onnx|torch-export [--out FILE] [--dtype fp32|bf16]``: the trained model
as a file that runs without archzoo (onnxruntime, or ``torch.export.load``)."""

from __future__ import annotations

import argparse

from archzoo.cli.common import add_run, output_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained model to ONNX or torch.export",
                       description="Dynamic batch (and sequence) dimensions. Classifiers and forecasters export "
                       "their forward pass (inputs normalised as in training), recurrent language models one step with "
                       "the state, gpt its forward pass, transformer_seq2seq its encoder and decoder step (two files).")
    add_run(p, speed=False)
    p.add_argument("--format", default="onnx", help="onnx (default) or torch-export")
    p.add_argument("--out", type=output_file("model.onnx"), help="file to write (default RUN_DIR/model.onnx or .pt2)")
    p.add_argument("--dtype", default="fp32", help="fp32 (default) or bf16 (torch-export)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run

    for path in load_run(args).export(args.format, args.out, args.dtype):
        print(f"wrote {path}")
    return 0
