"""``archzoo predict RUN_DIR INPUT...``: classify user images (top-3 probabilities) or, with a
sentence-classification run, sentences (the label and its probability); ``--input FILE`` (or ``-``
for standard input) reads one input per line."""

from __future__ import annotations

import argparse

from archzoo.cli.common import add_run, input_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files or sentences with a trained run",
                       description="Images: any size or colour; dark-on-light images are inverted automatically. "
                       "Sentences (a sentence_classification run): e.g. "
                       "`archzoo predict RUN \"the film is a delight\"`. --input FILE (or -) reads one per line.")
    add_run(p, which=False)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, or sentences for a sentence classifier "
                   "(right after RUN_DIR)")
    p.add_argument("--input", type=input_file, metavar="FILE",
                   help="UTF-8 text, one input per line (image paths or sentences); - reads standard input")
    p.add_argument("--top", type=int, help="how many classes to show (default: 3 for images, 1 for sentences)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run, read_lines
    from archzoo.errors import UserError

    inputs = list(args.inputs) + (read_lines(args.input, "--input") if args.input else [])
    if not inputs:
        raise UserError("nothing to predict; give image files or sentences, or --input FILE (- for standard input)")
    predictions = load_run(args).predict(inputs, top=args.top)
    print("\n".join(predictions.lines()))
    return 0
