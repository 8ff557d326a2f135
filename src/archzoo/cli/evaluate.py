"""``archzoo eval RUN_DIR``: test-set report of a checkpoint (rebuilt with no flags)."""

from __future__ import annotations

import argparse

from archzoo.cli.common import add_data_dir, add_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run on its test set",
                       description="The task's test report (accuracy and confusion matrix, BLEU, loss, ...), written "
                       "to eval.json with the weights and step it used.")
    add_run(p)
    add_data_dir(p)
    p.add_argument("--batch-size", type=int, default=1000)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run, print_notes

    loaded = load_run(args)
    result = loaded.evaluate(args.batch_size)
    print_notes(result, loaded)
    lines = loaded.summary_lines(result)
    precision = args.dtype + (f", {args.quantize}" if args.quantize else "")
    print("\n".join([f"{loaded.config.model.name} on {lines[0]}", *lines[1:]]))
    print(f"weights: {loaded.weights} (step {loaded.step}), {precision}")
    print("wrote " + ", ".join(map(str, loaded.written)))
    return 0
