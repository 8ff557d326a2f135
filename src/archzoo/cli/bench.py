"""``archzoo bench NAME [--json FILE]``: run a named benchmark and record the result."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a named benchmark (see `archzoo list benchmarks`)")
    p.add_argument("name")
    p.add_argument("--json", type=Path, help="write the result record to this file")
    p.add_argument("--work-dir", type=Path, default=Path("runs/bench"), help="where benchmark runs are written")
    p.add_argument("--resume", action="store_true",
                   help="continue the benchmark's interrupted training run in --work-dir (a finished one is only "
                   "evaluated again), or keep the models cnn-throughput had measured; for the benchmarks that "
                   "save their progress")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import shlex

    from archzoo.benchmarks import BENCHMARKS, run_benchmark
    from archzoo.errors import UserError
    from archzoo.fileio import atomic_write_text, ensure_writable_dir

    BENCHMARKS.get(args.name)
    if args.json:  # check the result can be written before minutes of measuring
        if args.json.is_dir():
            raise UserError(f"--json {args.json} is a folder; give a file name such as {args.json / (args.name + '.json')}")
        ensure_writable_dir(args.json.parent, "choose another --json path")
    work = ensure_writable_dir(args.work_dir / args.name, "choose another --work-dir")
    command = "archzoo bench " + args.name + (f" --json {shlex.quote(str(args.json))}" if args.json else "")
    result = run_benchmark(args.name, work, command + (" --resume" if args.resume else ""), resume=args.resume)
    text = json.dumps(result, indent=2) + "\n"
    if args.json:
        atomic_write_text(args.json, text)
    print(f"{result['benchmark']}: {result['metric']} = {result['value']:.4f} "
          f"(target {result['direction']} {result['target']}) {'PASS' if result['passed'] else 'FAIL'} "
          f"in {result['wall_seconds']:.0f} s")
    return 0
